// ledger-audit's token timelines (tools/ledger_audit_timeline.h) without a log:
// validity at a time as known now and as recorded then (bitemporal), the deciding
// event of each, and when a valid token stops being valid.
#include <doctest/doctest.h>

#include <string>

#include "tests/unit/test_util.h"
#include "tools/ledger_audit_timeline.h"

namespace tokenledger::audit {
namespace {

using namespace std::chrono_literals;
using test::makeCreated;
using test::makeEvent;

constexpr Timestamp kC{1'764'300'000'000'000us};  // 2025-11-28, when the token is created

// One token's timeline, built event by event at log offsets 0, 1, 2, …
struct Story {
  std::string key = generateTokenKey();
  Timelines tl;
  int64_t offset = 0;

  Story() { add(kC, makeCreated(generateSecret())); }
  // Returns the new entry's index (entries move as the vector grows).
  size_t add(Timestamp recorded, EventBody body) {
    Event e = makeEvent(key, "alice", recorded, std::move(body));
    tl.add(test::record(offset++, e), e);
    return timeline().entries.size() - 1;
  }
  size_t deactivate(Timestamp recorded, Reason reason, Timestamp effective) {
    return add(recorded, Deactivated{reason, effective});
  }
  const Timeline& timeline() const { return tl.byKey.at(key); }
  const Entry* entry(size_t i) const { return &timeline().entries.at(i); }
  const Entry* created() const { return entry(0); }
};

AsOf recordedAt(Timestamp t) {
  return AsOf::recordedAt(t);
}

TEST_CASE("a compromise recorded late: valid as recorded then, not valid as known now") {
  Story s;
  // Recorded 10 h after creation, effective 4 h after it.
  const Entry* d = s.entry(s.deactivate(kC + 10h, Reason::compromised, kC + 4h));
  const Timeline& t = s.timeline();

  SUBCASE("before the effective time and the recording: valid on both sides") {
    Timestamp at = kC + 2h;
    CHECK(t.validAt(at));
    CHECK(t.validAt(at, recordedAt(at)));
    CHECK(t.decider(at) == s.created());
    CHECK(t.decider(at, recordedAt(at)) == s.created());
    // Known now, the compromise ends it at its effective time; recorded then,
    // nothing did yet.
    CHECK(t.validUntil(at) == kC + 4h);
    CHECK(t.validUntil(at, recordedAt(at)) == std::nullopt);
  }
  SUBCASE("between the effective time and the recording: the two views differ") {
    Timestamp at = kC + 6h;
    CHECK_FALSE(t.validAt(at));
    CHECK(t.decider(at) == d);
    CHECK(t.validAt(at, recordedAt(at)));
    CHECK(t.decider(at, recordedAt(at)) == s.created());
    auto now = t.stateAt(at), then = t.stateAt(at, recordedAt(at));
    REQUIRE(now);
    REQUIRE(then);
    CHECK_FALSE(now->active);
    CHECK(now->deactivationReason == Reason::compromised);
    CHECK(then->active);
    CHECK(then->eventCount == 1);
  }
  SUBCASE("from the recording on: not valid on both sides, by the same event") {
    for (Timestamp at : {kC + 10h, kC + 11h}) {
      CAPTURE(formatTime(at));
      CHECK_FALSE(t.validAt(at));
      CHECK_FALSE(t.validAt(at, recordedAt(at)));
      CHECK(t.decider(at) == d);
      CHECK(t.decider(at, recordedAt(at)) == d);
    }
  }
  SUBCASE("as known now is the default, and a cut-off after everything is the same") {
    for (Timestamp at : {kC + 2h, kC + 6h, kC + 12h}) {
      CAPTURE(formatTime(at));
      CHECK(t.stateAt(at, AsOf::knownNow()) == t.stateAt(at));
      CHECK(t.stateAt(at, recordedAt(kC + 100h)) == t.stateAt(at));
      CHECK(t.decider(at, recordedAt(kC + 100h)) == t.decider(at));
    }
  }
}

TEST_CASE("a grace period: valid on both sides until it ends") {
  Story s;
  // A rotation recorded 1 h after creation, effective 2 h after it.
  const Entry* d = s.entry(s.deactivate(kC + 1h, Reason::rotation, kC + 2h));
  const Timeline& t = s.timeline();

  Timestamp at = kC + 90min;  // between recording and effect
  CHECK(t.validAt(at));
  CHECK(t.validAt(at, recordedAt(at)));
  CHECK(t.decider(at) == s.created());
  CHECK(t.decider(at, recordedAt(at)) == s.created());
  CHECK(t.validUntil(at) == kC + 2h);
  CHECK(t.validUntil(at, recordedAt(at)) == kC + 2h);  // recorded by then

  Timestamp early = kC + 30min;  // before the rotation was recorded
  CHECK(t.validUntil(early) == kC + 2h);
  CHECK(t.validUntil(early, recordedAt(early)) == std::nullopt);

  Timestamp after = kC + 3h;
  CHECK_FALSE(t.validAt(after));
  CHECK_FALSE(t.validAt(after, recordedAt(after)));
  CHECK(t.decider(after) == d);
  CHECK(t.decider(after, recordedAt(after)) == d);
}

TEST_CASE("a compromise found during a grace period, effective before the rotation") {
  Story s;
  // Rotated at +1 h with a grace period until +3 h; at +2 h found compromised since
  // +30 min (tokenledgerd records it: the token was still in service).
  s.deactivate(kC + 1h, Reason::rotation, kC + 3h);
  size_t compromiseAt = s.deactivate(kC + 2h, Reason::compromised, kC + 30min);
  const Timeline& t = s.timeline();
  REQUIRE(s.entry(compromiseAt)->applied);

  Timestamp at = kC + 90min;  // in the grace period, before the compromise was recorded
  CHECK(t.validAt(at, recordedAt(at)));
  CHECK(t.decider(at, recordedAt(at)) == s.created());
  CHECK(t.validUntil(at, recordedAt(at)) == kC + 3h);  // the grace period's end
  CHECK_FALSE(t.validAt(at));
  CHECK(t.decider(at) == s.entry(compromiseAt));
  // Before the rotation was recorded too: valid as recorded then, without an end.
  CHECK(t.validAt(kC + 45min, recordedAt(kC + 45min)));
  CHECK(t.validUntil(kC + 45min, recordedAt(kC + 45min)) == std::nullopt);
  CHECK_FALSE(t.validAt(kC + 45min));
  // After the grace period: not valid either way, by the compromise (later in the log).
  CHECK(t.decider(kC + 4h, recordedAt(kC + 4h)) == s.entry(compromiseAt));
  CHECK(t.decider(kC + 4h) == s.entry(compromiseAt));
  CHECK_FALSE(t.validAt(kC + 4h, recordedAt(kC + 4h)));
}

TEST_CASE("a deactivation effective before the creation decides nothing before the creation") {
  Story s;
  // Recorded an hour after creation, effective an hour before it (as tokenledgerd
  // accepts: effective_at may lie anywhere in the past).
  const Entry* d = s.entry(s.deactivate(kC + 1h, Reason::compromised, kC - 1h));
  const Timeline& t = s.timeline();

  Timestamp before = kC - 30min;
  CHECK_FALSE(t.stateAt(before));
  CHECK(t.decider(before) == nullptr);  // not created yet, not "deactivated"
  CHECK(t.decider(before, recordedAt(before)) == nullptr);

  Timestamp between = kC + 30min;
  CHECK_FALSE(t.validAt(between));
  CHECK(t.decider(between) == d);
  CHECK(t.validAt(between, recordedAt(between)));
  CHECK(t.decider(between, recordedAt(between)) == s.created());
}

TEST_CASE(
    "a later-recorded deactivation effective earlier: same validity, another deciding event") {
  Story s;
  // Deactivated by hand at +5 h; a compromise effective at +2 h is recorded at +8 h
  // (tokenledgerd does not record a second deactivation, but another producer may).
  size_t manualAt = s.deactivate(kC + 5h, Reason::manual, kC + 5h);
  size_t lateAt = s.deactivate(kC + 8h, Reason::compromised, kC + 2h);
  const Entry *manual = s.entry(manualAt), *late = s.entry(lateAt);
  const Timeline& t = s.timeline();
  REQUIRE(manual->applied);
  REQUIRE(late->applied);

  Timestamp at = kC + 6h;
  CHECK_FALSE(t.validAt(at));
  CHECK_FALSE(t.validAt(at, recordedAt(at)));
  CHECK(t.decider(at) == late);
  CHECK(t.decider(at, recordedAt(at)) == manual);

  Timestamp earlier = kC + 3h;
  CHECK_FALSE(t.validAt(earlier));
  CHECK(t.decider(earlier) == late);
  CHECK(t.validAt(earlier, recordedAt(earlier)));
}

TEST_CASE("an entry the projection ignores counts in neither view") {
  Story s;
  Event e = makeEvent(s.key, "alice", kC + 1h, Deactivated{Reason::manual, kC + 1h});
  s.tl.add(test::record(s.offset++, e), e);
  s.tl.add(test::record(s.offset++, e), e);  // the same event id again
  const Timeline& t = s.timeline();
  REQUIRE(t.entries.size() == 3);
  CHECK_FALSE(t.entries[2].applied);
  CHECK_FALSE(AsOf::knownNow().counts(t.entries[2]));
  CHECK_FALSE(recordedAt(kC + 2h).counts(t.entries[2]));
  CHECK(recordedAt(kC + 1h).counts(t.entries[1]));  // recorded exactly at the cut-off
  CHECK_FALSE(recordedAt(kC + 1h - 1us).counts(t.entries[1]));
  CHECK(t.decider(kC + 2h) == &t.entries[1]);
  CHECK(t.decider(kC + 2h, recordedAt(kC + 2h)) == &t.entries[1]);
}

}  // namespace
}  // namespace tokenledger::audit
