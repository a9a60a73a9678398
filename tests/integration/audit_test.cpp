// ledger-audit on a Kafka topic (real broker from the `kafka` fixture): two
// replicas, each with its own signing key certified by one root (kafka_trust.h),
// write one history; every command reads the topic with --root; messages appended
// by another producer (kcat) are caught.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "events/secrets.h"
#include "tests/integration/kafka_trust.h"
#include "tests/service/audit_test.h"

using namespace tltest;
using namespace tokenledger;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

const std::string kBinary = TOKENLEDGERD_PATH;
const std::string kAudit = LEDGER_AUDIT_PATH;
const std::string kOperator = "kafka-audit-operator-0123456789";

std::string brokers() {
  const char* v = std::getenv("KAFKA_BROKERS");
  REQUIRE_MESSAGE(v != nullptr,
                  "KAFKA_BROKERS is not set: run through ctest (it starts the broker)");
  return v;
}

struct World {
  std::string root, topic, d1, d2, keys;
  std::unique_ptr<TrustRoot> trust;
  Story story;
  std::string daveKey;
  World() {
    initCrypto();
    root = tempDir("audit-kafka");
    topic = "audit-" + randomBase62(8);
    d1 = root + "/replica1";
    d2 = root + "/replica2";
    trust = std::make_unique<TrustRoot>(root, kBinary, kAudit);
    std::vector<std::string> args{"--log", "kafka", "--kafka-brokers", brokers(), "--topic", topic};
    {
      Daemon r1(kBinary, d1, root, kOperator, trust->daemonArgs(d1, args));
      Daemon r2(kBinary, d2, root, kOperator, trust->daemonArgs(d2, args));
      story = tellStory(r1, kOperator);
      auto r = r2.call("POST", "/v1/users/dave/tokens", R"({"description":"via replica 2"})",
                       {"Authorization: Bearer " + kOperator});
      REQUIRE(r.status == 201);
      daveKey = r.json()["key"];
      // Both replicas publish their key over HTTP too.
      auto k1 = r1.call("GET", "/v1/keys").json();
      REQUIRE(k1["keys"].size() == 1);
      CHECK(k1["keys"][0]["algorithm"] == "ed25519");
      REQUIRE(r1.terminate() == 0);
      REQUIRE(r2.terminate() == 0);
    }
    keys = root + "/keys.pub";
    std::ofstream(keys) << readFile(d1 + "/signing-keys.pub") << readFile(d2 + "/signing-keys.pub");
  }
  ~World() { fs::remove_all(root); }
  // ledger-audit on the topic, trusting what the replicas trust (the root).
  std::string audit(const std::string& args) const {
    return bare(trust->auditFlags() + " " + args);
  }
  // The same without trust flags: `args` says whom to trust, if anyone.
  std::string bare(const std::string& args) const {
    return kAudit + " --log kafka --kafka-brokers " + brokers() + " --topic " + topic + " " + args;
  }
};

World& world() {
  static World w;
  return w;
}

TEST_CASE("kafka: history, at and policy read the topic") {
  auto& w = world();
  const Story& s = w.story;
  auto h = runCmd(w.audit("history --user alice --format json"));
  CHECK(h.status == 0);
  int events = 0;
  for (const auto& line : lines(h.out))
    if (json::parse(line)["type"] == "event") events++;
  CHECK(events == 5);
  CHECK(contains(h.out, "\"from\":\"" + s.k1 + "\""));
  auto text = runCmd(w.audit("history --user alice"));
  CHECK(contains(text.out, s.k1 + " -> " + s.k3));
  CHECK(runCmd(w.audit("history --user nobody")).status == 0);
  // On Kafka every command that reads the log needs to be told whom to trust.
  for (const char* cmd :
       {"history --user alice", "at --key tlk_x --time 0", "policy --max-age 30", "verify-log"}) {
    auto refused = runCmd(w.bare(cmd));
    CHECK_MESSAGE(refused.status == 2, cmd);
    CHECK_MESSAGE(contains(refused.err, "--root"), cmd << ": " << refused.err);
  }
  // The replicas' writer keys trusted directly: the same history.
  auto byKeys = runCmd(w.bare("--keys " + w.keys + " history --user alice --format json"));
  CHECK(byKeys.status == 0);
  CHECK(byKeys.out == h.out);

  auto grace =
      runCmd(w.audit("at --key " + s.k1 + " --time " + std::to_string(s.rotatedAtS + 1800)));
  CHECK(grace.status == 0);
  auto over =
      runCmd(w.audit("at --key " + s.k1 + " --time " + std::to_string(s.rotatedAtS + 7200)));
  CHECK(over.status == 1);
  CHECK(contains(over.out, "reason rotation"));
  CHECK(runCmd(w.audit("at --user dave --time 2099-01-01T00:00:00Z")).status == 0);
  CHECK(runCmd(w.audit("at --key tlk_unknown --time 0")).status == 1);
  CHECK(runCmd(w.audit("at --key " + s.k1 + " --time soon")).status == 2);

  auto p =
      runCmd(w.audit("policy --max-age 30 --now " + std::to_string(s.rotatedAtS + 365 * 86400)));
  CHECK(p.status == 1);
  CHECK(contains(p.out, s.k3));
  CHECK(contains(p.out, w.daveKey));
  CHECK(runCmd(w.audit("policy --max-age 30")).status == 0);
}

TEST_CASE("kafka: rebuild and verify-projection against a replica's read model") {
  auto& w = world();
  auto r = runCmd(w.audit("rebuild --out " + w.root + "/rebuilt"));
  CHECK(r.status == 0);
  CHECK(contains(r.out, "7 events applied"));
  auto v = runCmd(w.audit("verify-projection --projection " + w.d1 + "/projection"));
  CHECK(v.status == 0);
  CHECK(contains(v.out, "equals a replay"));
  CHECK(runCmd(w.audit("verify-projection --projection " + w.d2 + "/projection")).status == 0);
}

TEST_CASE("kafka: verify-log passes untouched; catches another producer's messages") {
  auto& w = world();
  auto ok = runCmd(w.audit("verify-log"));
  CHECK_MESSAGE(ok.status == 0, ok.out << ok.err);
  CHECK(contains(ok.out, "OK"));
  CHECK(lines(ok.out).size() >= 3);  // two writers listed
  // Without the root, and with only the first replica's key, the second replica's
  // events are foreign.
  auto one = runCmd(w.bare("verify-log --keys " + w.d1 + "/signing-keys.pub"));
  CHECK(one.status == 1);
  CHECK(contains(one.out, "forged"));
  CHECK(runCmd(w.bare("verify-log")).status == 2);  // Kafka needs --root or --keys

  // Another producer appends a forged event to partition 0 with kcat.
  std::string b = brokers();
  auto last = runCmd("kcat -C -b " + b + " -t " + w.topic + " -p 0 -e -q -f '%o\\n'");
  int64_t next = 0;
  for (const auto& line : lines(last.out))
    if (!line.empty()) next = std::stoll(line) + 1;
  std::string forged = w.root + "/forged.bin";
  std::ofstream(forged, std::ios::binary) << foreignEvent("alice", w.story.k1, 1);
  REQUIRE(runCmd("kcat -P -b " + b + " -t " + w.topic + " -p 0 -k alice " + forged).status == 0);
  auto bad = runCmd(w.audit("verify-log"));
  CHECK(bad.status == 1);
  CHECK(contains(bad.out, "first bad event: 0:" + std::to_string(next) + " (forged)"));

  // A genuine message copied again by another producer: a replay, caught too. (One
  // of alice's events: the records without a key are the writers' certificates.)
  std::string part, offset;
  for (const auto& line :
       lines(runCmd("kcat -C -b " + b + " -t " + w.topic + " -e -q -f '%p %o %k\\n'").out)) {
    std::istringstream fields(line);
    std::string p, o, k;
    fields >> p >> o >> k;
    if (k == "alice" && !(p == "0" && o == std::to_string(next))) {  // not the forged one
      part = p;
      offset = o;
      break;
    }
  }
  REQUIRE(!part.empty());
  std::string copy = w.root + "/copy.bin";
  REQUIRE(runCmd("kcat -C -b " + b + " -t " + w.topic + " -p " + part + " -o " + offset +
                 " -c 1 -e -q -f '%s' > " + copy)
              .status == 0);
  REQUIRE(
      runCmd("kcat -P -b " + b + " -t " + w.topic + " -p " + part + " -k alice " + copy).status ==
      0);
  auto dup = runCmd(w.audit("verify-log"));
  CHECK(dup.status == 1);
  CHECK(contains(dup.out, "duplicate"));

  // Garbage: reported with its position; other commands read past it (exit 1).
  REQUIRE(runCmd("printf 'not an event' | kcat -P -b " + b + " -t " + w.topic + " -p 0 -k alice")
              .status == 0);
  auto h = runCmd(w.audit("history --user alice"));
  CHECK(h.status == 1);
  CHECK(contains(h.err, "malformed event at 0:"));
  CHECK(contains(h.out, w.story.k3));
  CHECK(contains(runCmd(w.audit("verify-log")).out, "malformed"));
}

TEST_CASE("kafka: a missing topic and an unreachable broker exit 2") {
  auto& w = world();
  auto r = runCmd(kAudit + " --log kafka --kafka-brokers " + brokers() + " --topic no-such-topic-" +
                  randomBase62(6) + w.trust->auditFlags() + " history --user a");
  CHECK(r.status == 2);
  CHECK(contains(r.err, "does not exist"));
  auto down = runCmd(kAudit + " --log kafka --kafka-brokers 127.0.0.1:1 --timeout 3 --topic " +
                     w.topic + w.trust->auditFlags() + " verify-log");
  CHECK(down.status == 2);
  CHECK(down.seconds < 15);
}

}  // namespace
