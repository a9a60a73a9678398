// A token as the projection keeps it (projections/token.h): the stored record
// (state and history), statuses, and the state machine from either decoder.
#include <doctest/doctest.h>

#include <string>

#include "projections/token.h"
#include "tests/unit/test_util.h"

namespace tokenledger {
namespace {

using test::makeEvent;
using namespace std::chrono_literals;
using std::nullopt;

constexpr Timestamp kT{1'764'300'000'000'000us};  // 2025-11-28

TEST_CASE("token state round trips") {
  test::ensureCrypto();
  Token t;
  t.key = generateTokenKey();
  t.owner = "dave";
  t.kind = TokenKind::destination;
  t.destinationId = "dest-1";
  t.description = "Webhook für Bestellungen";
  t.active = false;
  t.secretHash = hashSecret(generateSecret());
  t.createdAt = kT;
  t.updatedAt = kT + 10us;
  t.expiresAt = kT + 1'000'000us;
  t.deactivateAt = kT + 5us;
  t.deactivationReason = Reason::compromised;
  t.replaces = generateTokenKey();
  t.replacedBy = generateTokenKey();
  t.eventCount = 7;
  Token got = decodeToken(t.key, encodeToken(t));
  CHECK(got == t);
  CHECK(got.description == "Webhook für Bestellungen");

  Token fresh;
  fresh.key = "tlk_a";
  fresh.owner = "o";
  CHECK(decodeToken("tlk_a", encodeToken(fresh)) == fresh);
  CHECK_FALSE(decodeToken("tlk_a", encodeToken(fresh)) == t);
  // A description of 200 four-byte characters: its length takes two bytes.
  for (int i = 0; i < 200; ++i) t.description += "\xF0\x9F\x94\x91";
  CHECK(decodeToken(t.key, encodeToken(t)) == t);
}

TEST_CASE("encodedTokenSize is the encoding's size") {
  test::ensureCrypto();
  Token t;
  t.secretHash = hashSecret(generateSecret());
  for (int i = 0; i < 40; ++i) {
    CAPTURE(i);
    CHECK(encodedTokenSize(t) == encodeToken(t).size());
    // Grow a different field each round, across the one-byte length limit.
    std::string* fields[] = {&t.owner,    &t.destinationId, &t.description,
                             &t.replaces, &t.replacedBy,    &t.idempotencyKey};
    fields[i % 6]->append(std::string(1 + i * 7, 'x'));
  }
}

TEST_CASE("corrupt token records throw") {
  CHECK_THROWS_AS((void)decodeToken("k", ""), std::runtime_error);
  CHECK_THROWS_AS((void)decodeToken("k", std::string(16, '\xff')), std::runtime_error);
  Token t;
  t.owner = "alice";
  std::string bytes = encodeToken(t);
  CHECK_THROWS_AS((void)decodeToken("k", bytes.substr(0, bytes.size() - 1)), std::runtime_error);
  std::string badKind = bytes;
  badKind[0] = 7;
  CHECK_THROWS_AS((void)decodeToken("k", badKind), std::runtime_error);
  // A history entry of an unknown type, and one cut short.
  CHECK_THROWS_AS((void)decodeHistory(t, std::string(1, '\x09') + std::string(40, '\0')),
                  std::runtime_error);
  CHECK_THROWS_AS((void)decodeHistory(t, std::string(1, '\x02') + std::string(20, '\0')),
                  std::runtime_error);
}

// The stored record in literal bytes (layout version 3): existing read models must
// read the same, or kLayoutVersion must change.
TEST_CASE("the stored token record, in literal bytes") {
  using namespace std::string_literals;
  Token t;
  t.key = "tlk_AAAAAAAAAAAAAAAAAAAAAAAA";
  t.owner = "alice";
  t.kind = TokenKind::destination;
  t.destinationId = "d1";
  t.description = "Leads";
  t.active = false;
  t.secretHash.fill(0x11);
  t.createdAt = Timestamp{1us};
  t.updatedAt = Timestamp{2us};
  t.expiresAt = Timestamp{3us};
  t.deactivateAt = Timestamp{4us};
  t.deactivationReason = Reason::compromised;
  t.replaces = "r";
  t.replacedBy = "s";
  t.eventCount = 5;
  t.idempotencyKey = "k";
  const std::string state = "\x01\x00\x02"s + "\0\0\0\x05"s + "\0\0\0\0\0\0\0\x01"s +
                            "\0\0\0\0\0\0\0\x02"s + "\0\0\0\0\0\0\0\x03"s + "\0\0\0\0\0\0\0\x04"s +
                            std::string(32, '\x11') +
                            "\x05"
                            "alice"
                            "\x02"
                            "d1"
                            "\x05"
                            "Leads"
                            "\x01"
                            "r"
                            "\x01"
                            "s"
                            "\x01"
                            "k"s;
  CHECK(encodeToken(t) == state);
  CHECK(decodeToken(t.key, state) == t);

  // History entries: a creation (its fields are the token's) and a deactivation.
  Event created = makeEvent(t.key, "alice", Timestamp{1us}, Created{});
  created.eventId = std::string(16, '\x21');
  created.actor = "op";
  created.requestId = "r1";
  Event off = makeEvent(t.key, "alice", Timestamp{2us},
                        Deactivated{Reason::rotation, Timestamp{6us}, "tlk_S"});
  off.eventId = std::string(16, '\x22');
  off.idempotencyKey = "i";
  off.actor.clear();
  off.requestId.clear();
  std::string history;
  appendHistoryEntry(history, view(created));
  appendHistoryEntry(history, view(off));
  const std::string expected = "\x01"s + std::string(16, '\x21') + "\0\0\0\0\0\0\0\x01"s +
                               "\x02"
                               "op"
                               "\x02"
                               "r1"
                               "\x00"s +
                               "\x03"s + std::string(16, '\x22') + "\0\0\0\0\0\0\0\x02"s +
                               "\x00\x00\x01"
                               "i"
                               "\x01"s +
                               "\0\0\0\0\0\0\0\x06"s +
                               "\x05"
                               "tlk_S"s;
  CHECK(history == expected);
  CHECK(historyEntrySize(view(created)) + historyEntrySize(view(off)) == expected.size());
  const std::string record = state + history;  // r.history is a view into it
  TokenRecord r = decodeTokenRecord(t.key, record);
  CHECK(r.token == t);
  REQUIRE(r.history == history);
  auto events = decodeHistory(r.token, r.history);
  REQUIRE(events.size() == 2);
  CHECK(events[0].eventId == created.eventId);
  CHECK(events[0].typeName() == "created");
  CHECK(events[0].tokenKey == t.key);
  CHECK(events[0].owner == "alice");
  CHECK(events[0].actor == "op");
  CHECK(events[0].requestId == "r1");
  CHECK(events[0].occurredAt == Timestamp{1us});
  const auto& c = std::get<Created>(events[0].body);
  CHECK(c.description == "Leads");
  CHECK(c.destinationId == "d1");
  CHECK(c.kind == TokenKind::destination);
  CHECK(c.expiresAt == Timestamp{3us});
  CHECK(c.replaces == "r");
  CHECK(events[1].idempotencyKey == "i");
  CHECK(events[1].actor.empty());
  CHECK(std::get<Deactivated>(events[1].body) ==
        Deactivated{Reason::rotation, Timestamp{6us}, "tlk_S"});
}

TEST_CASE("stored token states never contain the secret") {
  test::ensureCrypto();
  for (int i = 0; i < 50; ++i) {
    std::string secret = generateSecret();
    std::string randomPart = secret.substr(kSecretPrefix.size(), kSecretRandomChars);
    Event e = makeEvent(generateTokenKey(), "alice", kT, test::makeCreated(secret));
    auto t = applyEvent(std::nullopt, e);
    REQUIRE(t.has_value());
    std::string record = encodeToken(*t);
    appendHistoryEntry(record, view(e));
    CHECK(record.find(randomPart.substr(0, 16)) == std::string::npos);
  }
}

TEST_CASE("the state machine gives the same token from either decoder") {
  test::ensureCrypto();
  Event e = makeEvent(generateTokenKey(), "alice", kT, test::makeCreated(generateSecret()));
  std::string bytes = encodeEvent(e);
  DecodedView v = decodeEventView(bytes);
  REQUIRE(std::holds_alternative<EventView>(v));
  CHECK(applyEvent(std::nullopt, std::get<EventView>(v)) == applyEvent(std::nullopt, e));
}

TEST_CASE("statuses: expiry wins, a scheduled deactivation takes effect at its time") {
  CHECK(toString(Status::expired) == "expired");
  CHECK(statusAt(true, nullopt, nullopt, kT) == Status::active);
  CHECK(statusAt(true, kT, nullopt, kT) == Status::expired);
  CHECK(statusAt(false, kT, nullopt, kT) == Status::expired);
  CHECK(statusAt(false, nullopt, kT - 1us, kT) == Status::inactive);
  CHECK(statusAt(true, nullopt, kT + 1us, kT) == Status::active);
  CHECK(statusAt(true, nullopt, kT, kT) == Status::inactive);
  Token t;
  t.deactivateAt = kT;
  CHECK(statusAt(t, kT - 1us) == Status::active);
  CHECK(statusAt(t, kT) == Status::inactive);
}

}  // namespace
}  // namespace tokenledger
