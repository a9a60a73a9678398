// Writes the seed corpus of every harness (tests/fuzz/corpus/<harness>/) from the
// fixture's tokens and key, so that the binary seeds are made, not edited:
//
//   fuzz_make_corpus CORPUS_DIR DATA_DIR
//
// DATA_DIR receives a data directory (embedded log of the fixed events, signed, and
// signing-keys.pub) for `ledger-audit verify-log --checkpoint` to write the real
// checkpoint seed from; tests/fuzz/make_corpus.sh runs both. Deterministic: the
// same seeds every time (Ed25519 signatures are too).
#include <sodium.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "events/certificate.h"
#include "events/event.h"
#include "events/event_log.h"
#include "events/signing.h"
#include "tests/fuzz/fixture.h"
#include "tests/unit/future_event.h"

namespace tokenledger::fuzz {
namespace {

namespace fs = std::filesystem;

void write(const fs::path& dir, const std::string& name, std::string_view bytes) {
  fs::create_directories(dir);
  std::ofstream out(dir / name, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + (dir / name).string());
}

std::string basic(const FixedToken& t) {
  return "Basic " + base64Encode(t.key + ":" + t.secret);
}

// An api seed: request line, headers, then (when `body` is set) a blank line and it.
std::string request(const std::string& line, const std::vector<std::string>& headers,
                    const std::optional<std::string>& body = std::nullopt) {
  std::string out = line + "\n";
  for (const auto& h : headers) out += h + "\n";
  if (body) out += "\n" + *body;
  return out;
}

void eventSeeds(const fs::path& dir, const fs::path& dataDir) {
  std::vector<Event> events = fixedEvents();
  // Unsigned, as the log held them before signing existed; one of each kind.
  write(dir, "created.bin", encodeEvent(events[0]));
  write(dir, "created_destination.bin", encodeEvent(events[1]));
  write(dir, "deactivated.bin", encodeEvent(events[3]));
  write(dir, "created_expiring.bin", encodeEvent(events[4]));
  write(dir, "created_rotation.bin", encodeEvent(events[6]));
  Event activated = events[3];
  activated.body = Activated{};
  write(dir, "activated.bin", encodeEvent(activated));
  // What a newer producer writes (tests/unit/future.capnp): a member this build does
  // not know, and a creation with fields it does not know.
  const Event& e = events[0];
  write(dir, "future_revoked.bin",
        test::encodeRevoked(e.eventId, e.tokenKey, e.owner, e.occurredAt));
  write(dir, "future_created.bin",
        test::encodeFutureCreated(e.eventId, e.tokenKey, e.owner, e.occurredAt,
                                  hashSecret(fixedToken("Active").secret)));

  // The same events signed by the fixed writer, chained, into a data directory.
  std::string prev;
  uint64_t seq = 0;
  auto log = openEmbeddedLog((dataDir / "log").string(), EmbeddedLogOptions{64ull << 20});
  for (auto& e : events) {
    e.writerSeq = ++seq;
    e.prevDigest = prev;
    Digest d = signEvent(e, fixedSigningKey());
    prev.assign(reinterpret_cast<const char*>(d.data()), d.size());
    log->append(e.owner, {encodeEvent(e)});
  }
  write(dataDir, "signing-keys.pub", fixedSigningKey().publicKeyLine() + "\n");
  write(dir, "signed_created.bin", encodeEvent(events[0]));
  write(dir, "signed_deactivated_rotation.bin", encodeEvent(events[7]));
  // A writer certificate (the fixed key certifying itself, as its own root), and a
  // conditional event with an idempotency key (issue 14's fields).
  Event cert;
  cert.eventId = events[0].eventId;
  cert.actor = "writer";
  cert.occurredAt = events[0].occurredAt;
  cert.body = certifyWriter(fixedSigningKey(), fixedSigningKey().publicKey(), 1);
  write(dir, "writer_certificate.bin", encodeEvent(cert));
  Event conditional = events[3];
  conditional.basedOnVersion = 2;
  conditional.idempotencyKey = "retry-7";
  conditional.requestDigest = std::string(32, '\x07');
  write(dir, "conditional_idempotent.bin", encodeEvent(conditional));
  // Three events signed as one group (as the SignedAppender signs a pass).
  std::vector<Event> grouped{events[0], events[1], events[3]};
  std::vector<Event*> members;
  std::vector<Digest> digests;
  for (auto& e : grouped) {
    e.signature.clear();
    digests.push_back(eventDigest(e));
    members.push_back(&e);
  }
  signGroup(members, digests, fixedSigningKey());
  write(dir, "group_signed_leaf0.bin", encodeEvent(grouped[0]));
  write(dir, "group_signed_leaf2.bin", encodeEvent(grouped[2]));
}

void apiSeeds(const fs::path& dir) {
  const std::string op = "Authorization: Bearer " + std::string(kOperatorSecret);
  const std::string json = "Content-Type: application/json";
  const auto& active = fixedToken("Active");
  const auto& successor = fixedToken("Successor");
  const std::string tokens = "/v1/users/alice/tokens";
  // Verification, every outcome.
  write(dir, "verify_valid.txt", request("GET /v1/verify", {"Authorization: " + basic(active)}));
  write(dir, "verify_destination.txt",
        request("POST /v1/verify", {"Authorization: " + basic(fixedToken("Destination"))}, ""));
  write(dir, "verify_inactive.txt",
        request("GET /v1/verify", {"Authorization: " + basic(fixedToken("Inactive"))}));
  write(dir, "verify_expired.txt",
        request("GET /v1/verify", {"Authorization: " + basic(fixedToken("Expired"))}));
  write(dir, "verify_malformed.txt", request("GET /v1/verify", {"Authorization: Basic e30="}));
  write(dir, "verify_min_position_query.txt",
        request("GET /v1/verify?min_position=0:3", {"Authorization: " + basic(active)}));
  write(
      dir, "verify_min_position_wait.txt",
      request("POST /v1/verify", {"Authorization: " + basic(successor),
                                  "Tokenledger-Min-Position: 0:5,1:99999", "X-Fuzz-Api: started"}));
  write(dir, "verify_head_wait.txt",
        request("HEAD /v1/verify", {"Tokenledger-Min-Position: 0:999", "X-Fuzz-Api: started"}));
  // Operations and the page.
  write(dir, "healthz.txt", request("GET /healthz", {}));
  write(dir, "readyz.txt", request("HEAD /readyz", {}));
  write(dir, "keys.txt", request("GET /v1/keys", {}));
  write(dir, "page.txt", request("GET /", {}));
  // Reads.
  write(dir, "list.txt", request("GET " + tokens, {op}));
  write(dir, "get.txt", request("GET " + tokens + "/" + successor.key, {op}));
  write(dir, "history.txt", request("GET " + tokens + "/" + successor.key + "/history", {op}));
  write(dir, "get_other_owner.txt", request("GET " + tokens + "/" + fixedToken("Bob").key, {op}));
  write(dir, "list_escaped_user.txt", request("GET /v1/users/a%40b.example/tokens", {op}));
  write(dir, "wrong_secret.txt", request("GET " + tokens, {"Authorization: Bearer nope"}));
  // Commands, with their bodies.
  write(dir, "create.txt",
        request("POST " + tokens, {op, json}, R"({"description":"Receive leads"})"));
  write(dir, "create_destination.txt",
        request("POST " + tokens, {op, json, "X-Fuzz-Api: started"},
                R"({"description":"Webhook","kind":"destination","destination_id":"rdstation",)"
                R"("expires_at":"2026-11-28T10:00:00.5+01:00"})"));
  write(dir, "create_draining.txt",
        request("POST " + tokens, {op, "X-Fuzz-Api: draining"}, R"({"description":"x"})"));
  write(dir, "create_form_type.txt",
        request("POST " + tokens, {op, "Content-Type: application/x-www-form-urlencoded"},
                R"({"description":"curl -d","expires_at":1795860000})"));
  write(dir, "create_xml.txt",
        request("POST " + tokens, {op, "Content-Type: text/xml"}, "<description/>"));
  write(dir, "activate.txt", request("POST " + tokens + "/" + active.key + "/activate", {op}));
  write(dir, "deactivate.txt",
        request("POST " + tokens + "/" + active.key + "/deactivate", {op, json},
                R"({"reason":"compromised","effective_at":"2026-01-01T00:00:00Z"})"));
  write(dir, "rotate.txt",
        request("POST " + tokens + "/" + successor.key + "/rotate", {op, json},
                R"({"grace_seconds":3600,"expires_at":1795860000})"));
  write(dir, "rotate_wrong_method.txt",
        request("GET " + tokens + "/" + successor.key + "/rotate", {op}));
}

void jsonSeeds(const fs::path& dir) {
  write(dir, "create.json", R"({"description":"Receive leads from RD Station","kind":"user"})");
  write(dir, "create_destination.json",
        R"({"description":"Webhook","kind":"destination","destination_id":"rdstation",)"
        R"("expires_at":"2026-11-28T10:00:00.123Z"})");
  write(dir, "create_unix_time.json", R"({"description":"x","expires_at":1795860000})");
  write(dir, "deactivate.json", R"({"reason":"rotation","effective_at":"2026-11-28T10:00:00Z"})");
  write(dir, "rotate.json", R"({"grace_seconds":31622400})");
  write(dir, "duplicate.json", R"({"description":"a","description":"b"})");
  write(dir, "nested.json", R"({"description":{"x":[1,2.5e3,-0,null,true,"\u00e9\ud83d\ude00"]}})");
  write(dir, "empty.json", "{}");
}

void httpInputSeeds(const fs::path& dir) {
  const auto& active = fixedToken("Active");
  write(dir, "basic.txt", basic(active));
  write(dir, "basic_lower_spaces.txt", "basic   " + base64Encode(active.key + ":x") + "  ");
  write(dir, "credentials.txt", fixedToken("Successor").key + ":" + fixedToken("Successor").secret);
  write(dir, "bearer.txt", "Bearer " + std::string(kOperatorSecret));
  write(dir, "path.txt", "/v1/users/a%40b/tokens/" + active.key + "/history");
  write(dir, "query.txt", "a=1&min_position=0:5,1:7&b");
  write(dir, "media_type.txt", " Application/JSON ; charset=UTF-8");
  write(dir, "offsets.txt", "0:12,1:0,2:9223372036854775807");
  write(dir, "time_offset.txt", "2026-11-28T10:00:00.5+01:00");
  write(dir, "time_utc.txt", "2026-11-28t23:59:60.999999z");
  write(dir, "time_unix.txt", "1795860000");
}

void checkpointSeeds(const fs::path& dir) {
  // Two partitions and two writers, in the shape verify-log writes (the real one,
  // real.json, comes from ledger-audit itself: make_corpus.sh).
  write(dir, "two_writers.json", R"({
  "end": "0:12,1:3",
  "log": "kafka topic token-events on 127.0.0.1:9092",
  "version": 1,
  "writers": {
    "0123456789abcdef": {
      "digest": "8f3b2a1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a",
      "position": "0:11",
      "seq": 12
    },
    "fedcba9876543210": {
      "digest": "0000000000000000000000000000000000000000000000000000000000000001",
      "position": "1:2",
      "seq": 3
    }
  },
  "written_at": "2026-11-28T10:00:00.000Z"
}
)");
  // What the reader inside ledger_audit.cpp got wrong before parseCheckpoint: an
  // exception (nlohmann type_error) and an out-of-bounds read (seq 0).
  write(dir, "end_not_string.json", R"({"end":5,"writers":{}})");
  write(dir, "seq_zero.json",
        R"({"end":"0:9","writers":{"34188b4ea5de958c":{"seq":0,"digest":")" + std::string(64, 'a') +
            R"("}}})");
}

}  // namespace
}  // namespace tokenledger::fuzz

int main(int argc, char** argv) {
  using namespace tokenledger::fuzz;
  if (argc != 3) {
    std::cerr << "usage: fuzz_make_corpus CORPUS_DIR DATA_DIR (see tests/fuzz/make_corpus.sh)\n";
    return 2;
  }
  try {
    fs::path corpus = argv[1];
    eventSeeds(corpus / "event_decode", argv[2]);
    apiSeeds(corpus / "api");
    jsonSeeds(corpus / "json_body");
    httpInputSeeds(corpus / "http_input");
    checkpointSeeds(corpus / "checkpoint");
  } catch (const std::exception& e) {
    std::cerr << "fuzz_make_corpus: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
