// Event encoding (events/event.h): round trips, hostile input, events from a newer
// schema, and that no secret reaches the bytes.
#include <doctest/doctest.h>

#include <capnp/message.h>
#include <capnp/serialize.h>

#include <cstring>
#include <string>

#include "events/event.h"
#include "schemas/tokenledger.capnp.h"
#include "tests/unit/future_event.h"
#include "tests/unit/test_util.h"

namespace tokenledger {
namespace {

using namespace std::chrono_literals;
using test::makeEvent;

constexpr Timestamp kT{1'764'300'000'000'000us};  // 2025-11-28

Event decodeOk(const std::string& bytes) {
  Decoded d = decodeEvent(bytes);
  if (auto* err = std::get_if<DecodeError>(&d)) FAIL("decode failed: " << err->message);
  return std::get<Event>(d);
}

// Also checks that decodeEventView, which the projection uses, refuses the bytes
// alike: the projection and the audit tools must skip the same records.
DecodeError decodeErr(std::string_view bytes) {
  Decoded d;
  REQUIRE_NOTHROW(d = decodeEvent(bytes));
  REQUIRE_MESSAGE(std::holds_alternative<DecodeError>(d), "decoded garbage as an event");
  DecodedView v;
  REQUIRE_NOTHROW(v = decodeEventView(bytes));
  REQUIRE_MESSAGE(std::holds_alternative<DecodeError>(v), "view decoded garbage as an event");
  CHECK(std::get<DecodeError>(v).kind == std::get<DecodeError>(d).kind);
  CHECK(std::get<DecodeError>(v).message == std::get<DecodeError>(d).message);
  return std::get<DecodeError>(d);
}

void checkEnvelope(const Event& got, const Event& want) {
  CHECK(got.eventId == want.eventId);
  CHECK(got.tokenKey == want.tokenKey);
  CHECK(got.owner == want.owner);
  CHECK(got.actor == want.actor);
  CHECK(got.requestId == want.requestId);
  CHECK(got.occurredAt == want.occurredAt);
  CHECK(got.schemaVersion == want.schemaVersion);
  CHECK(got.signature == want.signature);
  CHECK(got.signingKeyId == want.signingKeyId);
  CHECK(got.typeName() == want.typeName());
}

std::string flatten(capnp::MessageBuilder& message) {
  auto words = capnp::messageToFlatArray(message);
  auto bytes = words.asBytes();
  return std::string(reinterpret_cast<const char*>(bytes.begin()), bytes.size());
}

TEST_CASE("created events round trip") {
  test::ensureCrypto();
  std::string secret = generateSecret();

  SUBCASE("user kind, rotation successor with expiry") {
    Created c = test::makeCreated(secret);
    c.expiresAt = kT + 3'600'000'000us;
    c.replaces = generateTokenKey();
    c.description = "Receive leads — “RD Station” ✓";
    Event e = makeEvent(generateTokenKey(), "alice@example.com", kT, c);
    e.signature = std::string("\x01\x00\xff sig", 6);
    e.signingKeyId = "k1";
    Event got = decodeOk(encodeEvent(e));
    checkEnvelope(got, e);
    REQUIRE(std::holds_alternative<Created>(got.body));
    const auto& g = std::get<Created>(got.body);
    CHECK(g.kind == TokenKind::user);
    CHECK(g.destinationId.empty());
    CHECK(g.description == c.description);
    CHECK(g.secretHash == hashSecret(secret));
    CHECK(g.expiresAt == c.expiresAt);
    CHECK(g.replaces == c.replaces);
    CHECK(got.typeName() == "created");
  }
  SUBCASE("destination kind with destination id, no expiry") {
    Created c = test::makeCreated(secret, TokenKind::destination, "dest-42");
    Event e = makeEvent(generateTokenKey(), "bob", kT, c);
    Event got = decodeOk(encodeEvent(e));
    checkEnvelope(got, e);
    const auto& g = std::get<Created>(got.body);
    CHECK(g.kind == TokenKind::destination);
    CHECK(g.destinationId == "dest-42");
    CHECK_FALSE(g.expiresAt.has_value());
    CHECK(g.replaces.empty());
  }
}

TEST_CASE("activated events round trip") {
  Event e = makeEvent("tlk_x", "alice", kT + 5us, Activated{});
  Event got = decodeOk(encodeEvent(e));
  checkEnvelope(got, e);
  CHECK(std::holds_alternative<Activated>(got.body));
  CHECK(got.typeName() == "activated");
}

TEST_CASE("deactivated events round trip with every reason") {
  for (Reason r :
       {Reason::manual, Reason::rotation, Reason::compromised, Reason::expired, Reason::bulk}) {
    CAPTURE(toString(r));
    for (Timestamp effective : {kT - 86'400'000'000us, kT, kT + 60'000'000us}) {
      Event e = makeEvent("tlk_y", "carol", kT, Deactivated{r, effective});
      Event got = decodeOk(encodeEvent(e));
      checkEnvelope(got, e);
      REQUIRE(std::holds_alternative<Deactivated>(got.body));
      CHECK(std::get<Deactivated>(got.body).reason == r);
      CHECK(std::get<Deactivated>(got.body).effectiveAt == effective);
    }
  }
}

TEST_CASE("names of kinds, reasons and statuses parse back") {
  for (TokenKind k : {TokenKind::user, TokenKind::destination}) CHECK(parseKind(toString(k)) == k);
  for (Reason r :
       {Reason::manual, Reason::rotation, Reason::compromised, Reason::expired, Reason::bulk})
    CHECK(parseReason(toString(r)) == r);
  CHECK(toString(Reason::compromised) == "compromised");
  CHECK_FALSE(parseKind("User").has_value());
  CHECK_FALSE(parseKind("").has_value());
  CHECK_FALSE(parseReason("stolen").has_value());
}

TEST_CASE("decodeEvent reports garbage as malformed without throwing") {
  CHECK(decodeErr("").kind == DecodeError::Kind::malformed);
  CHECK(decodeErr("x").kind == DecodeError::Kind::malformed);
  CHECK(decodeErr("garbage!").kind == DecodeError::Kind::malformed);
  CHECK(decodeErr("hello, world, this is not capnp.").kind == DecodeError::Kind::malformed);
  CHECK(decodeErr(std::string(64, '\xff')).kind == DecodeError::Kind::malformed);
  CHECK(decodeErr(std::string(64, '\0')).kind == DecodeError::Kind::malformed);
  CHECK(decodeErr(std::string(4096, '\x41')).kind == DecodeError::Kind::malformed);
  CHECK_FALSE(decodeErr("garbage!").message.empty());
}

TEST_CASE("decodeEvent reports every truncation of a valid event as malformed") {
  test::ensureCrypto();
  Created c = test::makeCreated(generateSecret());
  c.replaces = generateTokenKey();
  Event e = makeEvent(generateTokenKey(), "alice", kT, c);
  // Signed, so that the blobs at the end are ones the projection does not keep:
  // both decoders must still refuse a message that lacks them.
  e.signature = randomBytes(64);
  e.signingKeyId = "0123456789abcdef";
  e.writerSeq = 7;
  e.prevDigest = randomBytes(32);
  std::string bytes = encodeEvent(e);
  REQUIRE(bytes.size() > 64);
  for (size_t n = 0; n < bytes.size(); ++n) {
    CAPTURE(n);
    CHECK(decodeErr(std::string_view(bytes).substr(0, n)).kind == DecodeError::Kind::malformed);
  }
}

TEST_CASE("both decoders refuse a corrupt field, even one the projection does not keep") {
  test::ensureCrypto();
  Event e = makeEvent(generateTokenKey(), "alice", kT, test::makeCreated(generateSecret()));
  e.signature = randomBytes(64);
  e.signingKeyId = "0123456789abcdef";
  e.prevDigest = randomBytes(32);
  const std::string bytes = encodeEvent(e);
  // Each word in turn made a pointer of another kind, or one that points far out
  // of the message: decodeErr checks that decodeEventView agrees.
  const uint64_t corruptions[] = {~uint64_t{0}, (uint64_t{0x3fffffff} << 2) | 1,
                                  (uint64_t{0x3fffffff} << 2)};
  int refused = 0;
  for (size_t word = 1; word < bytes.size() / 8; ++word) {
    for (uint64_t bad : corruptions) {
      CAPTURE(word);
      std::string corrupt = bytes;
      memcpy(corrupt.data() + 8 * word, &bad, 8);
      if (std::holds_alternative<DecodeError>(decodeEvent(corrupt))) {
        (void)decodeErr(corrupt);
        ++refused;
      } else {
        CHECK(std::holds_alternative<EventView>(decodeEventView(corrupt)));
      }
    }
  }
  CHECK(refused > 10);
}

TEST_CASE("decodeEvent never throws on random bytes") {
  test::ensureCrypto();
  for (int i = 0; i < 2000; ++i) {
    std::string junk = randomBytes(8 * (1 + i % 40));
    // A random segment table that happens to fit is fine; the call must not throw.
    Decoded d;
    DecodedView v;
    CHECK_NOTHROW(d = decodeEvent(junk));
    CHECK_NOTHROW(v = decodeEventView(junk));
    CHECK(std::holds_alternative<Event>(d) == std::holds_alternative<EventView>(v));
  }
}

TEST_CASE("decodeEvent refuses envelopes that lack identity") {
  test::ensureCrypto();
  Event e = makeEvent(generateTokenKey(), "alice", kT, Activated{});
  SUBCASE("no owner") {
    e.owner.clear();
  }
  SUBCASE("no token key") {
    e.tokenKey.clear();
  }
  SUBCASE("event id of the wrong size") {
    e.eventId = e.eventId.substr(0, 15);
  }
  CHECK(decodeErr(encodeEvent(e)).kind == DecodeError::Kind::malformed);
}

TEST_CASE("another message type is not an event") {
  test::ensureCrypto();
  capnp::MallocMessageBuilder message;
  auto c = message.initRoot<schema::Created>();
  c.setDescription("not an envelope");
  c.setSecretHash(kj::arrayPtr(hashSecret(generateSecret()).data(), 32));
  auto words = capnp::messageToFlatArray(message);
  auto bytes = words.asBytes();
  CHECK(decodeErr(std::string(reinterpret_cast<const char*>(bytes.begin()), bytes.size())).kind ==
        DecodeError::Kind::malformed);
}

TEST_CASE("a created event with a secret hash of the wrong size is malformed") {
  capnp::MallocMessageBuilder message;
  auto env = message.initRoot<schema::Envelope>();
  std::string id(16, '\x07');
  env.setEventId(kj::arrayPtr(reinterpret_cast<const capnp::byte*>(id.data()), id.size()));
  env.setTokenKey("tlk_k");
  env.setOwner("alice");
  auto c = env.initEvent().initCreated();
  c.setDescription("short hash");
  c.initSecretHash(20);
  CHECK(decodeErr(flatten(message)).kind == DecodeError::Kind::malformed);
}

TEST_CASE("a created event with an unknown hash algorithm is an unknown type") {
  capnp::MallocMessageBuilder message;
  auto env = message.initRoot<schema::Envelope>();
  std::string id(16, '\x08');
  env.setEventId(kj::arrayPtr(reinterpret_cast<const capnp::byte*>(id.data()), id.size()));
  env.setTokenKey("tlk_k");
  env.setOwner("alice");
  auto c = env.initEvent().initCreated();
  c.setDescription("newer hash");
  c.initSecretHash(32);
  c.setHashAlgorithm(static_cast<schema::HashAlgorithm>(1));  // a value added later
  CHECK(decodeErr(flatten(message)).kind == DecodeError::Kind::unknownType);
}

TEST_CASE("events from a newer schema") {
  test::ensureCrypto();
  std::string id = randomBytes(16);
  std::string key = generateTokenKey();

  SUBCASE("a known member written by the newer schema still decodes") {
    // Proves tests/unit/future.capnp lays out the envelope like schemas/tokenledger.capnp,
    // so the unknown-member case below really exercises the union discriminant.
    SecretHash h = hashSecret(generateSecret());
    Event got = decodeOk(test::encodeFutureCreated(id, key, "alice", kT, h));
    CHECK(got.eventId == id);
    CHECK(got.tokenKey == key);
    CHECK(got.owner == "alice");
    CHECK(got.schemaVersion == 2);
    REQUIRE(std::holds_alternative<Created>(got.body));
    CHECK(std::get<Created>(got.body).kind == TokenKind::destination);
    CHECK(std::get<Created>(got.body).destinationId == "dest-7");
    CHECK(std::get<Created>(got.body).secretHash == h);
  }
  SUBCASE("an unknown union member is reported as unknownType") {
    DecodeError err = decodeErr(test::encodeRevoked(id, key, "alice", kT));
    CHECK(err.kind == DecodeError::Kind::unknownType);
    CHECK(err.message.find("newer schema") != std::string::npos);
  }
}

TEST_CASE("decodeEventView reads what decodeEvent reads, aligned or not") {
  test::ensureCrypto();
  Created c = test::makeCreated(generateSecret(), TokenKind::destination, "dest-1");
  c.expiresAt = kT + 5us;
  c.replaces = generateTokenKey();
  const Event events[] = {
      makeEvent(generateTokenKey(), "alice", kT, c),
      makeEvent(generateTokenKey(), "bob", kT + 1us, Activated{}),
      makeEvent(generateTokenKey(), "carol", kT + 2us, Deactivated{Reason::compromised, kT + 3us})};
  for (const Event& e : events) {
    CAPTURE(e.typeName());
    std::string bytes = encodeEvent(e);
    // The same bytes one byte off an 8-byte boundary: the view copies them.
    std::string shifted = "x" + bytes;
    for (std::string_view in : {std::string_view(bytes), std::string_view(shifted).substr(1)}) {
      DecodedView d = decodeEventView(in);
      REQUIRE(std::holds_alternative<EventView>(d));
      const EventView& v = std::get<EventView>(d);
      CHECK(v.copy.empty() == (reinterpret_cast<uintptr_t>(in.data()) % 8 == 0));
      const EventView want = view(e);
      CHECK(v.eventId == want.eventId);
      CHECK(v.tokenKey == want.tokenKey);
      CHECK(v.owner == want.owner);
      CHECK(v.occurredAt == want.occurredAt);
      CHECK(v.typeName() == e.typeName());
      if (const auto* got = std::get_if<CreatedView>(&v.body)) {
        CHECK(got->kind == c.kind);
        CHECK(got->destinationId == c.destinationId);
        CHECK(got->description == c.description);
        CHECK(got->secretHash == c.secretHash);
        CHECK(got->expiresAt == c.expiresAt);
        CHECK(got->replaces == c.replaces);
      } else if (const auto* got = std::get_if<Deactivated>(&v.body)) {
        CHECK(got->reason == Reason::compromised);
        CHECK(got->effectiveAt == kT + 3us);
      }
    }
  }
}

TEST_CASE("encoded events never contain the secret") {
  test::ensureCrypto();
  for (int i = 0; i < 50; ++i) {
    std::string secret = generateSecret();
    std::string randomPart = secret.substr(kSecretPrefix.size(), kSecretRandomChars);
    Created c = test::makeCreated(secret);
    c.description = "token number " + std::to_string(i);
    Event e = makeEvent(generateTokenKey(), "alice", kT, c);
    std::string bytes = encodeEvent(e);
    CHECK(bytes.find(secret) == std::string::npos);
    CHECK(bytes.find(randomPart) == std::string::npos);
    CHECK(bytes.find(randomPart.substr(0, 16)) == std::string::npos);
    CHECK(bytes.find(std::string(kSecretPrefix)) == std::string::npos);
    // What is there instead is the hash.
    SecretHash h = hashSecret(secret);
    CHECK(bytes.find(std::string(reinterpret_cast<const char*>(h.data()), h.size())) !=
          std::string::npos);
  }
}

}  // namespace
}  // namespace tokenledger
