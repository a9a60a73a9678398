// The token state machine: applyEvent and statusAt (events/event.h).
#include <doctest/doctest.h>

#include <optional>
#include <string>

#include "projections/token.h"
#include "tests/unit/test_util.h"

namespace tokenledger {
namespace {

using namespace std::chrono_literals;
using test::makeEvent;

constexpr Timestamp kT{1'764'300'000'000'000us};
constexpr std::chrono::microseconds kSec = 1s;

struct Fixture {
  Fixture() {
    test::ensureCrypto();
    key = generateTokenKey();
    secret = generateSecret();
  }
  Event created(Timestamp at = kT, Created c = {}) {
    if (c.description.empty()) c = test::makeCreated(secret);
    return makeEvent(key, "alice", at, c);
  }
  Event activated(Timestamp at) { return makeEvent(key, "alice", at, Activated{}); }
  Event deactivated(Timestamp at, std::optional<Timestamp> effective, Reason r = Reason::manual) {
    return makeEvent(key, "alice", at, Deactivated{r, effective});
  }
  // Applies, requiring that the event applies.
  Token apply(const std::optional<Token>& t, const Event& e) {
    auto next = applyEvent(t, e);
    REQUIRE_MESSAGE(next.has_value(), e.typeName() << " did not apply");
    return *next;
  }

  std::string key, secret;
};

TEST_CASE_FIXTURE(Fixture, "created makes an active token with the event's data") {
  Created c = test::makeCreated(secret, TokenKind::destination, "dest-9");
  c.expiresAt = kT + 3600 * kSec;
  c.replaces = "tlk_previous";
  Token t = apply(std::nullopt, created(kT, c));
  CHECK(t.key == key);
  CHECK(t.owner == "alice");
  CHECK(t.kind == TokenKind::destination);
  CHECK(t.destinationId == "dest-9");
  CHECK(t.description == c.description);
  CHECK(t.active);
  CHECK(t.secretHash == hashSecret(secret));
  CHECK(t.createdAt == kT);
  CHECK(t.updatedAt == kT);
  CHECK(t.expiresAt == kT + 3600 * kSec);
  CHECK_FALSE(t.deactivateAt.has_value());
  CHECK(t.replaces == "tlk_previous");
  CHECK(t.replacedBy.empty());
  CHECK(t.eventCount == 1);
  CHECK(statusAt(t, kT) == Status::active);
}

TEST_CASE_FIXTURE(Fixture, "events that do not apply give nullopt") {
  Token t = apply(std::nullopt, created());
  SUBCASE("created twice") {
    CHECK_FALSE(applyEvent(t, created(kT + 1us)).has_value());
  }
  SUBCASE("activation of an unknown key") {
    CHECK_FALSE(applyEvent(std::nullopt, activated(kT)).has_value());
  }
  SUBCASE("deactivation of an unknown key") {
    CHECK_FALSE(applyEvent(std::nullopt, deactivated(kT, kT)).has_value());
  }
  SUBCASE("an event from another owner") {
    Event a = makeEvent(key, "mallory", kT + 1us, Deactivated{Reason::manual, kT + 1us});
    CHECK_FALSE(applyEvent(t, a).has_value());
    Event b = makeEvent(key, "mallory", kT + 1us, Activated{});
    CHECK_FALSE(applyEvent(t, b).has_value());
  }
}

TEST_CASE_FIXTURE(Fixture, "deactivation effective now ends the token at once") {
  Token t = apply(std::nullopt, created());
  t = apply(t, deactivated(kT + 10 * kSec, kT + 10 * kSec, Reason::compromised));
  CHECK_FALSE(t.active);
  CHECK(t.deactivationReason == Reason::compromised);
  CHECK(t.updatedAt == kT + 10 * kSec);
  CHECK(statusAt(t, kT + 10 * kSec) == Status::inactive);
  CHECK(statusAt(t, kT + 1000 * kSec) == Status::inactive);
}

TEST_CASE_FIXTURE(Fixture,
                  "deactivation effective in the future keeps the token active until then") {
  Token t = apply(std::nullopt, created());
  Timestamp effective = kT + 60 * kSec;
  t = apply(t, deactivated(kT, effective, Reason::rotation));
  CHECK(t.active);
  CHECK(t.deactivateAt == effective);
  CHECK(statusAt(t, kT) == Status::active);
  CHECK(statusAt(t, effective - 1us) == Status::active);
  CHECK(statusAt(t, effective) == Status::inactive);
  CHECK(statusAt(t, effective + 3600 * kSec) == Status::inactive);
}

TEST_CASE_FIXTURE(Fixture, "deactivation effective in the past ends the token at once") {
  Token t = apply(std::nullopt, created());
  t = apply(t, deactivated(kT + 100 * kSec, kT + 50 * kSec, Reason::compromised));
  CHECK_FALSE(t.active);
  CHECK(t.deactivateAt == kT + 50 * kSec);
  CHECK(statusAt(t, kT + 100 * kSec) == Status::inactive);
}

TEST_CASE_FIXTURE(Fixture, "activation cancels a scheduled deactivation") {
  Token t = apply(std::nullopt, created());
  t = apply(t, deactivated(kT, kT + 60 * kSec, Reason::rotation));
  REQUIRE(statusAt(t, kT + 61 * kSec) == Status::inactive);
  t = apply(t, activated(kT + 30 * kSec));
  CHECK(t.active);
  CHECK_FALSE(t.deactivateAt.has_value());
  CHECK(statusAt(t, kT + 61 * kSec) == Status::active);
  CHECK(statusAt(t, kT + 100000 * kSec) == Status::active);
}

TEST_CASE_FIXTURE(Fixture, "activation brings an inactive token back") {
  Token t = apply(std::nullopt, created());
  t = apply(t, deactivated(kT + 1us, kT + 1us));
  REQUIRE(statusAt(t, kT + 2us) == Status::inactive);
  t = apply(t, activated(kT + 2us));
  CHECK(statusAt(t, kT + 2us) == Status::active);
}

TEST_CASE_FIXTURE(Fixture, "a later deactivation never revives a token that is already out") {
  Token t = apply(std::nullopt, created());
  SUBCASE("token deactivated, then a deactivation scheduled for later") {
    t = apply(t, deactivated(kT + 10 * kSec, kT + 10 * kSec, Reason::manual));
    REQUIRE(statusAt(t, kT + 20 * kSec) == Status::inactive);
    t = apply(t, deactivated(kT + 20 * kSec, kT + 3600 * kSec, Reason::bulk));
    CHECK_FALSE(t.active);
    CHECK(statusAt(t, kT + 20 * kSec) == Status::inactive);
    CHECK(statusAt(t, kT + 1800 * kSec) == Status::inactive);
    CHECK(t.deactivateAt == kT + 10 * kSec);  // when it really went out of service
  }
  SUBCASE("grace period over, then a deactivation scheduled for later") {
    t = apply(t, deactivated(kT, kT + 60 * kSec, Reason::rotation));
    REQUIRE(statusAt(t, kT + 120 * kSec) == Status::inactive);
    t = apply(t, deactivated(kT + 120 * kSec, kT + 3600 * kSec, Reason::bulk));
    CHECK(statusAt(t, kT + 120 * kSec) == Status::inactive);
    CHECK(statusAt(t, kT + 1800 * kSec) == Status::inactive);
    CHECK(t.deactivateAt == kT + 60 * kSec);
  }
  SUBCASE("a compromise found late moves the end earlier") {
    t = apply(t, deactivated(kT + 100 * kSec, kT + 100 * kSec, Reason::manual));
    t = apply(t, deactivated(kT + 200 * kSec, kT + 50 * kSec, Reason::compromised));
    CHECK_FALSE(t.active);
    CHECK(t.deactivateAt == kT + 50 * kSec);
    CHECK(t.deactivationReason == Reason::compromised);
  }
}

TEST_CASE_FIXTURE(Fixture, "a new deactivation replaces a pending one") {
  Token t = apply(std::nullopt, created());
  t = apply(t, deactivated(kT, kT + 60 * kSec, Reason::rotation));
  SUBCASE("now") {
    t = apply(t, deactivated(kT + 10 * kSec, kT + 10 * kSec, Reason::compromised));
    CHECK(statusAt(t, kT + 10 * kSec) == Status::inactive);
    CHECK(t.deactivationReason == Reason::compromised);
  }
  SUBCASE("later") {
    t = apply(t, deactivated(kT + 10 * kSec, kT + 600 * kSec, Reason::rotation));
    CHECK(statusAt(t, kT + 120 * kSec) == Status::active);
    CHECK(statusAt(t, kT + 600 * kSec) == Status::inactive);
  }
}

TEST_CASE_FIXTURE(Fixture, "expiry gives Status::expired") {
  Created c = test::makeCreated(secret);
  c.expiresAt = kT + 100 * kSec;
  Token t = apply(std::nullopt, created(kT, c));
  CHECK(statusAt(t, kT + 99 * kSec) == Status::active);
  CHECK(statusAt(t, kT + 100 * kSec) == Status::expired);
  // Expiry wins over inactive, and activation does not undo it.
  Token off = apply(t, deactivated(kT + 1us, kT + 1us));
  CHECK(statusAt(off, kT + 50 * kSec) == Status::inactive);
  CHECK(statusAt(off, kT + 200 * kSec) == Status::expired);
  Token on = apply(off, activated(kT + 2us));
  CHECK(statusAt(on, kT + 200 * kSec) == Status::expired);
}

TEST_CASE_FIXTURE(Fixture, "eventCount and updatedAt follow every applied event") {
  Token t = apply(std::nullopt, created());
  CHECK(t.eventCount == 1);
  t = apply(t, deactivated(kT + 1us, kT + 1us));
  CHECK(t.eventCount == 2);
  t = apply(t, activated(kT + 2us));
  CHECK(t.eventCount == 3);
  // Idempotent events still count: they are on the log.
  t = apply(t, activated(kT + 3us));
  CHECK(t.eventCount == 4);
  CHECK(t.updatedAt == kT + 3us);
  CHECK(t.createdAt == kT);
}

TEST_CASE_FIXTURE(Fixture, "the last event wins") {
  Token t = apply(std::nullopt, created());
  t = apply(t, deactivated(kT + 1us, kT + 1us));
  t = apply(t, activated(kT + 2us));
  t = apply(t, deactivated(kT + 3us, kT + 3us, Reason::bulk));
  CHECK(statusAt(t, kT + 4us) == Status::inactive);
  CHECK(t.deactivationReason == Reason::bulk);
  t = apply(t, activated(kT + 5us));
  CHECK(statusAt(t, kT + 6us) == Status::active);
  // Log order decides, not the events' own timestamps.
  t = apply(t, deactivated(kT + 1us, kT + 1us, Reason::manual));
  CHECK(statusAt(t, kT + 6us) == Status::inactive);
}

TEST_CASE_FIXTURE(Fixture, "applyEvent leaves its input alone") {
  Token t = apply(std::nullopt, created());
  Token copy = t;
  (void)apply(t, deactivated(kT + 1us, kT + 1us));
  CHECK(t == copy);
}

TEST_CASE_FIXTURE(Fixture, "checkEvent: the contract's rules for any producer's event") {
  CHECK_FALSE(checkEvent(view(created())).has_value());
  CHECK_FALSE(checkEvent(view(deactivated(kT, kT))).has_value());
  auto why = [](Event e) { return checkEvent(view(e)).value_or("valid"); };
  Event e = created();
  e.owner = std::string(300, 'o');  // longer than any user id
  CHECK(why(e).find("owner") != std::string::npos);
  e.owner = "..";
  CHECK(why(e).find("owner") != std::string::npos);
  e.owner = std::string("a\0b", 3);
  CHECK(why(e).find("owner") != std::string::npos);
  e = created();
  e.tokenKey = "tlk_short";
  CHECK(why(e).find("key") != std::string::npos);
  e = created();
  e.occurredAt = Timestamp{};
  CHECK(why(e) != "valid");
  Created c = test::makeCreated(secret);
  c.description = " padded";
  CHECK(why(created(kT, c)).find("white space") != std::string::npos);
  c.description = std::string(201, 'd');
  CHECK(why(created(kT, c)) != "valid");
  c = test::makeCreated(secret, TokenKind::destination, "");
  CHECK(why(created(kT, c)).find("destination_id") != std::string::npos);
  c = test::makeCreated(secret, TokenKind::user, "dest-1");
  CHECK(why(created(kT, c)).find("destination") != std::string::npos);
  c = test::makeCreated(secret);
  c.expiresAt = Timestamp{-1us};
  CHECK(why(created(kT, c)) != "valid");
  c = test::makeCreated(secret);
  c.replaces = key;  // itself
  CHECK(why(created(kT, c)).find("replaces") != std::string::npos);
  c.replaces = "not-a-key";
  CHECK(why(created(kT, c)).find("replaces") != std::string::npos);
}

TEST_CASE_FIXTURE(Fixture,
                  "a deactivation without an effective time takes effect when it occurred") {
  // No effective time (the schema's 0): the token is deactivated, and when is known.
  Token t = apply(apply(std::nullopt, created(kT)), deactivated(kT + 5 * kSec, std::nullopt));
  CHECK_FALSE(t.active);
  CHECK(t.deactivateAt == kT + 5 * kSec);
  CHECK(effectiveAt(Deactivated{Reason::manual, std::nullopt}, kT) == kT);
  CHECK(effectiveAt(Deactivated{Reason::manual, Timestamp{-7us}}, kT) == kT);
  CHECK(effectiveAt(Deactivated{Reason::manual, kT + 1us}, kT) == kT + 1us);
}

}  // namespace
}  // namespace tokenledger
