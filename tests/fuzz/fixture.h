// What the harnesses and the corpus generator share: fixed tokens (keys and
// secrets known in advance, so that seeds can name them and verify them), a fixed
// signing key, the operator secret, and an in-process ledger holding those tokens.
// Nothing here is a real credential.
#pragma once

#include <zlib.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "events/clock.h"
#include "events/event.h"
#include "events/event_log.h"
#include "events/secrets.h"
#include "events/signing.h"
#include "projections/projector.h"
#include "projections/read_model.h"
#include "tests/unit/test_util.h"

// Aborts (which libFuzzer reports as a crash, with the input) when `cond` is false.
#define FUZZ_CHECK(cond, what)                                                              \
  do {                                                                                      \
    if (!(cond)) {                                                                          \
      std::fprintf(stderr, "%s:%d: FUZZ_CHECK(%s) failed: %s\n", __FILE__, __LINE__, #cond, \
                   std::string(what).c_str());                                              \
      std::abort();                                                                         \
    }                                                                                       \
  } while (0)

namespace tokenledger::fuzz {

using namespace std::chrono_literals;

constexpr std::string_view kOperatorSecret = "fuzz-operator-secret";
constexpr Timestamp kNow{1'764'300'000'000'000us};  // 2025-11-28: the harnesses' fixed clock
constexpr std::chrono::microseconds kSec = 1s;

// A well-formed key "tlk_<name>000…".
inline std::string fixedKey(std::string_view name) {
  std::string k = std::string(kKeyPrefix) + std::string(name);
  k.resize(kKeyLength, '0');
  return k;
}

// A well-formed secret "tls_<name>000…<checksum>". The checksum is the one of
// events/secrets.cpp (CRC32 in six base62 digits), which it keeps private;
// FixedLedger checks that the result is well formed.
inline std::string fixedSecret(std::string_view name) {
  static constexpr char kAlphabet[] =
      "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  std::string body = std::string(kSecretPrefix) + std::string(name);
  body.resize(kSecretLength - kChecksumChars, '0');
  uint32_t crc = static_cast<uint32_t>(
      crc32(0L, reinterpret_cast<const Bytef*>(body.data()), static_cast<uInt>(body.size())));
  std::string sum(kChecksumChars, '0');
  for (size_t i = kChecksumChars; i-- > 0; crc /= 62) sum[i] = kAlphabet[crc % 62];
  return body + sum;
}

// The tokens of the fixed ledger, one per state a verify can find.
struct FixedToken {
  std::string owner;
  std::string key;
  std::string secret;
};
inline const std::vector<FixedToken>& fixedTokens() {
  static const std::vector<FixedToken> tokens = {
      {"alice", fixedKey("Active"), fixedSecret("Active")},
      {"alice", fixedKey("Destination"), fixedSecret("Destination")},
      {"alice", fixedKey("Inactive"), fixedSecret("Inactive")},
      {"alice", fixedKey("Expired"), fixedSecret("Expired")},
      {"alice", fixedKey("Rotated"), fixedSecret("Rotated")},      // in its grace period
      {"alice", fixedKey("Successor"), fixedSecret("Successor")},  // replaces Rotated
      {"bob", fixedKey("Bob"), fixedSecret("Bob")},
  };
  return tokens;
}
inline const FixedToken& fixedToken(std::string_view name) {
  for (const auto& t : fixedTokens())
    if (t.key == fixedKey(name)) return t;
  std::abort();
}

// The fixed writer key: the event-decoding harness trusts it, the generator signs
// with it.
constexpr std::string_view kSigningSeed = "tokenledger-fuzz-seed-not-secret";  // 32 bytes
inline const SigningKey& fixedSigningKey() {
  static const SigningKey key = *SigningKey::fromSeed(kSigningSeed);
  return key;
}

// The events that make the fixed tokens, in log order.
inline std::vector<Event> fixedEvents() {
  test::ensureCrypto();
  std::vector<Event> out;
  int n = 0;
  auto event = [&](const FixedToken& t, Timestamp at, EventBody body) {
    Event e;
    e.eventId = std::string(16, static_cast<char>('a' + n++));
    e.tokenKey = t.key;
    e.owner = t.owner;
    e.actor = "operator";
    e.requestId = "fuzz-" + std::to_string(n);
    e.occurredAt = at;
    e.body = std::move(body);
    out.push_back(std::move(e));
  };
  auto created = [](const FixedToken& t, TokenKind kind = TokenKind::user,
                    std::string destination = "", std::optional<Timestamp> expiresAt = std::nullopt,
                    std::string replaces = "") {
    return Created{kind,      std::move(destination), "fuzz " + t.key, hashSecret(t.secret),
                   expiresAt, std::move(replaces)};
  };
  const Timestamp t0 = kNow - 3600 * kSec;
  event(fixedToken("Active"), t0, created(fixedToken("Active")));
  event(fixedToken("Destination"), t0,
        created(fixedToken("Destination"), TokenKind::destination, "rdstation"));
  event(fixedToken("Inactive"), t0, created(fixedToken("Inactive")));
  event(fixedToken("Inactive"), t0 + kSec, Deactivated{Reason::compromised, std::nullopt});
  event(fixedToken("Expired"), t0,
        created(fixedToken("Expired"), TokenKind::user, "", kNow - 60 * kSec));
  event(fixedToken("Rotated"), t0, created(fixedToken("Rotated")));
  event(fixedToken("Successor"), t0 + kSec,
        created(fixedToken("Successor"), TokenKind::user, "", std::nullopt,
                fixedToken("Rotated").key));
  event(fixedToken("Rotated"), t0 + kSec, Deactivated{Reason::rotation, kNow + 3600 * kSec});
  event(fixedToken("Bob"), t0, created(fixedToken("Bob")));
  return out;
}

class FixedClock final : public Clock {
 public:
  Timestamp now() const override { return kNow; }
};

// An embedded log, read model and projector in a fresh directory under /tmp,
// holding fixedEvents() and fully projected. Built once per fuzzing process.
struct FixedLedger {
  FixedLedger() {
    test::ensureCrypto();
    for (const auto& t : fixedTokens())
      FUZZ_CHECK(isWellFormedKey(t.key) && isWellFormedSecret(t.secret),
                 "fixture.h makes malformed keys or secrets: adapt it to events/secrets.h");
    log = openEmbeddedLog(dir.sub("log"), EmbeddedLogOptions{64ull << 20});
    model = openReadModel(dir.sub("model"), ReadModelOptions{64ull << 20});
    projector = startProjector(*log, *model, [](const std::string& warning) {
      std::fprintf(stderr, "projector: %s\n", warning.c_str());
    });
    std::vector<Position> at;
    for (const auto& e : fixedEvents()) at = log->append(e.owner, {encodeEvent(e)});
    FUZZ_CHECK(projector->waitFor(at.back(), 30s), "the projector did not apply the fixed events");
    reader = model->reader();
  }

  test::TempDir dir;
  std::unique_ptr<EventLog> log;
  std::unique_ptr<ReadModel> model;
  std::unique_ptr<Projector> projector;  // destroyed (stopped) before model and log
  std::unique_ptr<ReadModelReader> reader;
  FixedClock clock;
};

}  // namespace tokenledger::fuzz
