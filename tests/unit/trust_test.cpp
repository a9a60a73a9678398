// Issue 14's rules on apply: conditional events (one winner per race), repeated
// requests (Idempotency-Key) and trusted writers. The read model (in batches of any
// size) and EventJudge (ledger-audit's in-memory verdicts) must agree on every event.
#include <doctest/doctest.h>

#include <random>

#include "events/certificate.h"
#include "events/secrets.h"
#include "events/signing.h"
#include "events/trust.h"
#include "projections/event_judge.h"
#include "projections/read_model.h"
#include "tests/unit/test_util.h"

namespace tokenledger {
namespace {

using namespace std::chrono_literals;
using test::makeEvent;

constexpr uint64_t kMap = 64ull << 20;
constexpr Timestamp kT = test::timeUs(1'800'000'000'000'000);

// A log written by signed writers (and others), with its positions.
struct Log {
  std::vector<LogRecord> records;
  std::vector<int64_t> next = std::vector<int64_t>(2, 0);
  uint64_t seq = 0;
  Timestamp at = kT;

  void put(const Event& e, int32_t partition = 0) {
    records.push_back(LogRecord{test::pos(partition, next[partition]++), e.owner, encodeEvent(e)});
  }
  Event signedBy(const SigningKey& key, Event e) {
    e.writerSeq = ++seq;
    signEvent(e, key);
    return e;
  }
  Event event(const std::string& key, const std::string& owner, EventBody body) {
    at += 1ms;
    return makeEvent(key, owner, at, std::move(body));
  }
};

Event certificateEvent(const SigningKey& root, const SigningKey& writer) {
  Event e = makeEvent("", "", kT, certifyWriter(root, writer.publicKey(), 1));
  e.actor = "writer";
  return e;
}

// Applies `records` in batches of random sizes.
std::unique_ptr<ReadModel> applyAll(const std::string& dir, const std::vector<LogRecord>& records,
                                    const TrustPolicy& policy, unsigned seed,
                                    ApplyReport* total = nullptr) {
  ReadModelOptions options{kMap};
  options.trust = policy;
  auto model = openReadModel(dir, options);
  std::mt19937 rng(seed);
  for (size_t i = 0; i < records.size();) {
    size_t n = std::min(records.size() - i, size_t{1} + rng() % 7);
    auto r = model->apply({records.begin() + i, records.begin() + i + n}, nullptr);
    if (total) *total += r;
    i += n;
  }
  return model;
}

TEST_CASE("conflictOf: a conditional event applies only to the version it was decided on") {
  test::ensureCrypto();
  Token old;
  old.key = generateTokenKey();
  old.owner = "alice";
  old.active = true;
  old.eventCount = 1;
  Created c = test::makeCreated(generateSecret());
  c.replaces = old.key;
  Event rotate = makeEvent(generateTokenKey(), "alice", kT, c);
  rotate.basedOnVersion = 1;
  CHECK(conflictOf(std::nullopt, &old, view(rotate)) == Conflict::none);
  CHECK(conflictOf(std::nullopt, nullptr, view(rotate)) == Conflict::stale);
  Token rotated = old;
  rotated.replacedBy = generateTokenKey();
  CHECK(versionOf(rotated) == 2);
  CHECK(conflictOf(std::nullopt, &rotated, view(rotate)) == Conflict::alreadyRotated);
  Token changed = old;
  changed.eventCount = 2;
  CHECK(conflictOf(std::nullopt, &changed, view(rotate)) == Conflict::stale);
  Token others = old;
  others.owner = "bob";
  CHECK(conflictOf(std::nullopt, &others, view(rotate)) == Conflict::stale);

  // The old token's half of the rotation applies only if its successor won.
  Event half = makeEvent(old.key, "alice", kT, Deactivated{Reason::rotation, kT, rotate.tokenKey});
  half.basedOnVersion = 2;
  Token won = old;
  won.replacedBy = rotate.tokenKey;
  CHECK(conflictOf(won, nullptr, view(half)) == Conflict::none);
  CHECK(conflictOf(rotated, nullptr, view(half)) == Conflict::rotationLost);
  CHECK(conflictOf(old, nullptr, view(half)) == Conflict::rotationLost);

  Event off = makeEvent(old.key, "alice", kT, Deactivated{Reason::manual, kT, ""});
  off.basedOnVersion = 1;
  CHECK(conflictOf(old, nullptr, view(off)) == Conflict::none);
  CHECK(conflictOf(changed, nullptr, view(off)) == Conflict::stale);
  off.basedOnVersion = 0;  // written before conditional events: unconditional
  CHECK(conflictOf(changed, nullptr, view(off)) == Conflict::none);
}

// Two replicas decided on the same state: both rotations and both toggles are in
// the log. Exactly one of each race wins, everywhere.
TEST_CASE("races: one winner each, the same in any batching and in EventJudge") {
  test::ensureCrypto();
  test::TempDir dir;
  SigningKey root = SigningKey::generate();
  SigningKey a = SigningKey::generate(), b = SigningKey::generate();
  TrustPolicy policy;
  policy.roots.add(root.publicKey());
  Log log;
  log.put(certificateEvent(root, a));
  log.put(certificateEvent(root, b));

  std::vector<std::string> olds, winners, losers;
  for (int i = 0; i < 20; ++i) {
    std::string key = generateTokenKey();
    olds.push_back(key);
    log.put(log.signedBy(a, log.event(key, "alice", test::makeCreated(generateSecret()))));
    // Two rotations decided on version 1; each with its old token's half.
    for (const SigningKey* w : {&a, &b}) {
      Created c = test::makeCreated(generateSecret());
      c.replaces = key;
      Event created = log.event(generateTokenKey(), "alice", c);
      created.basedOnVersion = 1;
      Event half = log.event(key, "alice", Deactivated{Reason::rotation, log.at, created.tokenKey});
      half.basedOnVersion = 2;
      log.put(log.signedBy(*w, created));
      log.put(log.signedBy(*w, half));
      (w == &a ? winners : losers).push_back(created.tokenKey);
    }
  }
  // Deactivate and activate decided on the same version of one token: the first wins.
  std::string toggled = generateTokenKey();
  log.put(log.signedBy(a, log.event(toggled, "bob", test::makeCreated(generateSecret()))));
  Event off = log.event(toggled, "bob", Deactivated{Reason::manual, std::nullopt, ""});
  off.basedOnVersion = 1;
  Event offAgain = log.event(toggled, "bob", Deactivated{Reason::compromised, std::nullopt, ""});
  offAgain.basedOnVersion = 1;
  log.put(log.signedBy(a, off));
  log.put(log.signedBy(b, offAgain));

  ApplyReport report;
  auto model = applyAll(dir.sub("one"), log.records, policy, 1, &report);
  CHECK(report.certificates == 2);
  CHECK(report.untrusted == 0);
  CHECK(report.conflicts == 20 * 2 + 1);  // each losing rotation's two events, one toggle
  auto reader = model->reader();
  for (size_t i = 0; i < olds.size(); ++i) {
    auto old = reader->token(olds[i]);
    REQUIRE(old);
    CHECK(old->replacedBy == winners[i]);
    CHECK(old->deactivateAt);
    CHECK(reader->token(winners[i]));
    CHECK_FALSE(reader->token(losers[i]));  // the loser's successor never exists
  }
  CHECK(reader->token(toggled)->deactivationReason == Reason::manual);

  // Any batching, and the audit's judge, reach the same state.
  auto other = applyAll(dir.sub("two"), log.records, policy, 2);
  CHECK(other->dump() == model->dump());
  EventJudge judge(policy);
  size_t applied = 0;
  for (const auto& r : log.records) {
    auto d = decodeEvent(r.value);
    REQUIRE(std::holds_alternative<Event>(d));
    applied += judge.judge(r, std::get<Event>(d)).applied;
  }
  CHECK(applied == report.applied);
  for (const auto& [key, t] : judge.tokens()) {
    auto stored = reader->token(key);
    REQUIRE(stored);
    CHECK(*stored == t);
  }
  CHECK(judge.tokens().size() == olds.size() + winners.size() + 1);
}

TEST_CASE("untrusted events change nothing, and each is reported with its position") {
  test::ensureCrypto();
  test::TempDir dir;
  SigningKey root = SigningKey::generate(), otherRoot = SigningKey::generate();
  SigningKey writer = SigningKey::generate(), stranger = SigningKey::generate();
  TrustPolicy policy;
  policy.roots.add(root.publicKey());
  Log log;
  std::string secret = generateSecret();
  // On partition 0 the writer is certified; on partition 1 only later.
  log.put(certificateEvent(root, writer), 0);
  Event good =
      log.signedBy(writer, log.event(generateTokenKey(), "alice", test::makeCreated(secret)));
  log.put(good, 0);
  Event unsignedEvent = log.event(generateTokenKey(), "mallory", test::makeCreated(secret));
  log.put(unsignedEvent, 0);
  Event byStranger =
      log.signedBy(stranger, log.event(generateTokenKey(), "mallory", test::makeCreated(secret)));
  log.put(byStranger, 0);
  log.put(certificateEvent(otherRoot, stranger), 0);  // a root nobody trusts
  Event afterBadCert =
      log.signedBy(stranger, log.event(generateTokenKey(), "mallory", test::makeCreated(secret)));
  log.put(afterBadCert, 0);
  Event early =
      log.signedBy(writer, log.event(generateTokenKey(), "carol", test::makeCreated(secret)));
  log.put(early, 1);  // before the certificate on partition 1
  log.put(certificateEvent(root, writer), 1);
  Event late =
      log.signedBy(writer, log.event(generateTokenKey(), "carol", test::makeCreated(secret)));
  log.put(late, 1);
  // A trusted event whose bytes were changed after signing.
  Event altered =
      log.signedBy(writer, log.event(generateTokenKey(), "alice", test::makeCreated(secret)));
  altered.owner = "mallory";
  log.put(altered, 0);
  // A copy of the good event (replayed by someone who can write to the topic).
  log.records.push_back(LogRecord{test::pos(0, log.next[0]++), "alice", log.records[1].value});

  ReadModelOptions options{kMap};
  options.trust = policy;
  auto model = openReadModel(dir.sub("m"), options);
  std::vector<std::pair<Position, std::string>> seen;
  auto report = model->apply(
      log.records, [&](const Position& p, const std::string& why) { seen.emplace_back(p, why); });
  CHECK(report.applied == 2);
  CHECK(report.untrusted == 6);  // with the certificate by an untrusted root
  CHECK(report.duplicates == 1);
  CHECK(report.certificates == 2);
  auto reader = model->reader();
  CHECK(reader->token(good.tokenKey));
  CHECK(reader->token(late.tokenKey));
  for (const Event* e : {&unsignedEvent, &byStranger, &afterBadCert, &early, &altered})
    CHECK_FALSE(reader->token(e->tokenKey));
  REQUIRE(seen.size() == 7);
  CHECK(seen[6].first == test::pos(0, 7));
  CHECK(seen[6].second.find("duplicate") == 0);
  CHECK(seen[5].first == test::pos(0, 6));
  CHECK(seen[5].second.find("untrusted: invalid signature") == 0);
  CHECK(seen[0].first == test::pos(0, 2));
  CHECK(seen[0].second == "untrusted: unsigned");
  CHECK(seen[1].second.find("untrusted: signed by key " + stranger.keyId()) == 0);
  CHECK(seen[2].first == test::pos(0, 4));
  CHECK(seen[2].second.find("not trusted") != std::string::npos);
  CHECK(seen[3].first == test::pos(0, 5));
  bool earlyReported = false;
  for (const auto& [p, why] : seen)
    if (p == test::pos(1, 0)) earlyReported = why.find("partition 1") != std::string::npos;
  CHECK(earlyReported);

  // The audit's judge agrees event by event.
  EventJudge judge(policy);
  size_t applied = 0, refused = 0;
  for (const auto& r : log.records) {
    auto d = decodeEvent(r.value);
    REQUIRE(std::holds_alternative<Event>(d));
    auto v = judge.judge(r, std::get<Event>(d));
    applied += v.applied;
    refused += v.why.starts_with("untrusted");
  }
  CHECK(applied == 2);
  CHECK(refused == 6);

  // Without a policy (a read model opened before trust existed) all would apply: the
  // policy is part of the read model's identity.
  reader.reset();
  model.reset();
  CHECK(readModelRebuildReason(dir.sub("m"), ReadModelOptions{kMap}).has_value());
  CHECK_FALSE(readModelRebuildReason(dir.sub("m"), options).has_value());
}

TEST_CASE("a repeated request changes nothing within the window, and claims are purged") {
  test::ensureCrypto();
  test::TempDir dir;
  SigningKey writer = SigningKey::generate();
  TrustPolicy policy;
  policy.writers.add(writer.publicKey());
  Log log;
  auto create = [&](const std::string& idem, const std::string& digest, Timestamp at) {
    Event e = makeEvent(generateTokenKey(), "alice", at, test::makeCreated(generateSecret()));
    e.idempotencyKey = idem;
    e.requestDigest = digest;
    e = log.signedBy(writer, e);
    log.put(e);
    return e;
  };
  const std::string d1(32, '\1'), d2(32, '\2');
  Event first = create("k1", d1, kT);
  Event retry = create("k1", d1, kT + 1h);      // the same request again: a duplicate
  Event otherBody = create("k1", d2, kT + 2h);  // refused by the service; a duplicate here
  Event otherKey = create("k2", d1, kT + 3h);   // another key: applies
  Event later = create("k1", d1, kT + 25h);     // after the window: a new claim
  ApplyReport report;
  auto model = applyAll(dir.sub("m"), log.records, policy, 3, &report);
  CHECK(report.applied == 3);
  CHECK(report.conflicts == 2);
  auto reader = model->reader();
  CHECK(reader->token(first.tokenKey));
  CHECK_FALSE(reader->token(retry.tokenKey));
  CHECK_FALSE(reader->token(otherBody.tokenKey));
  CHECK(reader->token(otherKey.tokenKey));
  CHECK(reader->token(later.tokenKey));
  CHECK(reader->token(first.tokenKey)->idempotencyKey == "k1");
  auto claim = reader->idempotency("alice", "k1");
  REQUIRE(claim);
  CHECK(claim->tokenKey == later.tokenKey);
  CHECK(claim->requestDigest == d1);
  CHECK_FALSE(reader->idempotency("bob", "k1"));  // scoped to the owner

  // 48 hours after its event, a claim is purged.
  create("k3", d1, kT + 80h);
  reader.reset();
  model->apply({log.records.back()}, nullptr);
  reader = model->reader();
  CHECK_FALSE(reader->idempotency("alice", "k2"));
  CHECK(reader->idempotency("alice", "k3"));
}

// The writer's own projection takes its own envelopes as signed without checking
// them (events/own_events.h): exactly those bytes, nothing else.
TEST_CASE("own envelopes skip the signature check, byte for byte only") {
  test::ensureCrypto();
  test::TempDir dir;
  SigningKey writer = SigningKey::generate();
  TrustPolicy policy;
  policy.writers.add(writer.publicKey());
  auto own = std::make_shared<OwnEvents>(writer.keyId());
  Log log;
  // Unsigned, so that only the shortcut can let it through.
  Event mine = log.event(generateTokenKey(), "alice", test::makeCreated(generateSecret()));
  log.put(mine);
  own->add(log.records.back().value);
  Event other = log.event(generateTokenKey(), "alice", test::makeCreated(generateSecret()));
  log.put(other);
  std::string changed = encodeEvent(other);
  own->add(changed.substr(0, changed.size() - 1));  // not the same bytes
  ReadModelOptions options{kMap};
  options.trust = policy;
  options.ownEvents = own;
  auto model = openReadModel(dir.sub("m"), options);
  auto report = model->apply(log.records, nullptr);
  CHECK(report.applied == 1);
  CHECK(report.untrusted == 1);
  CHECK(model->reader()->token(mine.tokenKey));
  CHECK_FALSE(model->reader()->token(other.tokenKey));

  // Bounded: the oldest are forgotten.
  OwnEvents small("k");
  small.add("first");
  for (size_t i = 0; i < OwnEvents::kCapacity; ++i) small.add("e" + std::to_string(i));
  CHECK_FALSE(small.contains("first"));
  CHECK(small.contains("e" + std::to_string(OwnEvents::kCapacity - 1)));
}

}  // namespace
}  // namespace tokenledger
