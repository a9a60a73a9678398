// The fixed signing key and event of the signing suites (signing_test.cpp,
// group_signing_test.cpp), and the helpers their literal vectors need. Every event
// in every log was signed over bytes made like these: a change that makes a vector
// fail means old logs no longer verify (do not update the literals, keep the format).
#pragma once

#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <string_view>

#include "events/event.h"
#include "events/signing.h"

namespace tokenledger::test {

inline std::string unhex(std::string_view hex) {
  REQUIRE(hex.size() % 2 == 0);
  std::string out;
  for (size_t i = 0; i < hex.size(); i += 2)
    out.push_back(static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  return out;
}

inline std::string hexOf(const Digest& d) {
  return toHex(std::string_view(reinterpret_cast<const char*>(d.data()), d.size()));
}

// n bytes counting up from `first`.
inline std::string bytesFrom(int first, int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s.push_back(static_cast<char>(first + i));
  return s;
}

inline KeyRing ringOf(const SigningKey& key) {
  KeyRing ring;
  ring.add(key.publicKey());
  return ring;
}

namespace vectors {

// RFC 8032, section 7.1, TEST 1.
constexpr std::string_view kSeed =
    "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
constexpr std::string_view kKeyId = "7849ac3049680be1";
constexpr std::string_view kPublicKeyLine =
    "7849ac3049680be1 11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";

inline SigningKey fixedKey() {
  auto key = SigningKey::fromSeed(unhex(kSeed));
  REQUIRE(key.has_value());
  return std::move(*key);
}

// A creation with every field set, none random: writer seq 42 after a digest of
// bytes 0x20..0x3f.
inline Event fixedEvent() {
  Event e;
  e.eventId = bytesFrom(0x00, 16);
  e.tokenKey = "tlk_0123456789ABCDEFGHIJKLMN";
  e.owner = "alice";
  e.actor = "operator";
  e.requestId = "req-0001";
  e.occurredAt =
      Timestamp{std::chrono::microseconds{1'767'225'600'000'000}};  // 2026-01-01T00:00:00Z
  e.schemaVersion = 1;
  e.writerSeq = 42;
  e.prevDigest = bytesFrom(0x20, 32);
  Created c;
  c.kind = TokenKind::destination;
  c.destinationId = "crm-1";
  c.description = "Receive leads from RD Station";
  for (size_t i = 0; i < c.secretHash.size(); ++i) c.secretHash[i] = static_cast<uint8_t>(0xa0 + i);
  c.expiresAt =
      Timestamp{std::chrono::microseconds{1'798'761'600'000'000}};  // 2027-01-01T00:00:00Z
  c.replaces = "tlk_ZYXWVUTSRQPONMLKJIHGFEDC";
  e.body = c;
  return e;
}

}  // namespace vectors
}  // namespace tokenledger::test
