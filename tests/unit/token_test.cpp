// A token as the projection keeps it (projections/token.h): the stored encoding,
// its bound, statuses, and the state machine from either decoder.
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
  Token got = decodeToken(encodeToken(t));
  CHECK(got == t);
  CHECK(got.description == "Webhook für Bestellungen");

  Token fresh;
  fresh.key = "tlk_a";
  fresh.owner = "o";
  CHECK(decodeToken(encodeToken(fresh)) == fresh);
  CHECK_FALSE(decodeToken(encodeToken(fresh)) == t);
}

TEST_CASE("encodedTokenBound bounds the encoding closely") {
  test::ensureCrypto();
  Token t;
  t.secretHash = hashSecret(generateSecret());
  for (int i = 0; i < 40; ++i) {
    CAPTURE(i);
    std::string bytes = encodeToken(t);
    CHECK(encodedTokenBound(t) >= bytes.size());
    CHECK(encodedTokenBound(t) <= bytes.size() + 64);
    // Grow a different field each round, through every length modulo 8.
    std::string* fields[] = {&t.key,         &t.owner,    &t.destinationId,
                             &t.description, &t.replaces, &t.replacedBy};
    fields[i % 6]->append(std::string(1 + i % 9, 'x'));
  }
}

TEST_CASE("decodeToken throws on corrupt bytes") {
  CHECK_THROWS_AS((void)decodeToken(""), std::runtime_error);
  CHECK_THROWS_AS((void)decodeToken(std::string(16, '\xff')), std::runtime_error);
}

// The stored state in literal bytes (layout version 2: idempotencyKey @16 added):
// existing read models must read the same, or kLayoutVersion must change.
TEST_CASE("the stored token state, in literal bytes") {
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
  const std::string expected =
      "000000001d0000000000000006000800010000000000020001000000000000000200000000000000"
      "0300000000000000040000000000000005000000000000001d000000ea0000002900000032000000"
      "290000001a0000002900000032000000290000000201000035000000120000003500000012000000"
      "3500000012000000746c6b5f41414141414141414141414141414141414141414141414100000000"
      "616c69636500000064310000000000004c6561647300000011111111111111111111111111111111"
      "11111111111111111111111111111111720000000000000073000000000000006b00000000000000";
  CHECK(toHex(encodeToken(t)) == expected);
  CHECK(decodeToken(encodeToken(t)) == t);
}

TEST_CASE("stored token states never contain the secret") {
  test::ensureCrypto();
  for (int i = 0; i < 50; ++i) {
    std::string secret = generateSecret();
    std::string randomPart = secret.substr(kSecretPrefix.size(), kSecretRandomChars);
    Event e = makeEvent(generateTokenKey(), "alice", kT, test::makeCreated(secret));
    auto t = applyEvent(std::nullopt, e);
    REQUIRE(t.has_value());
    std::string state = encodeToken(*t);
    CHECK(state.find(randomPart.substr(0, 16)) == std::string::npos);
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
