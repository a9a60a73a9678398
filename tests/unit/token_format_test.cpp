// Token keys, secrets and secret hashes (events/secrets.h).
#include <doctest/doctest.h>

#include <set>
#include <string>

#include "events/secrets.h"
#include "tests/unit/test_util.h"

namespace tokenledger {
namespace {

constexpr std::string_view kBase62 =
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

bool allBase62(std::string_view s) {
  return s.find_first_not_of(kBase62) == std::string::npos;
}

// A base62 character other than `c`.
char otherBase62(char c, size_t salt) {
  char r = kBase62[salt % kBase62.size()];
  return r == c ? kBase62[(salt + 1) % kBase62.size()] : r;
}

SecretHash fromHex(std::string_view hex) {
  SecretHash h{};
  REQUIRE(hex.size() == 2 * h.size());
  for (size_t i = 0; i < h.size(); ++i)
    h[i] = static_cast<uint8_t>(std::stoi(std::string(hex.substr(2 * i, 2)), nullptr, 16));
  return h;
}

TEST_CASE("generated token keys have the documented shape") {
  test::ensureCrypto();
  CHECK(kKeyLength == 28);
  for (int i = 0; i < 200; ++i) {
    std::string key = generateTokenKey();
    REQUIRE(key.size() == kKeyLength);
    CHECK(key.substr(0, 4) == "tlk_");
    CHECK(allBase62(key.substr(4)));
    CHECK(isWellFormedKey(key));
    CHECK_FALSE(isWellFormedSecret(key));
  }
}

TEST_CASE("generated secrets have the documented shape and a valid checksum") {
  test::ensureCrypto();
  CHECK(kSecretLength == 53);
  for (int i = 0; i < 200; ++i) {
    std::string secret = generateSecret();
    REQUIRE(secret.size() == kSecretLength);
    CHECK(secret.substr(0, 4) == "tls_");
    CHECK(allBase62(secret.substr(4)));
    CHECK(isWellFormedSecret(secret));
    CHECK_FALSE(isWellFormedKey(secret));
  }
}

TEST_CASE("the random part uses the whole base62 alphabet") {
  test::ensureCrypto();
  std::set<char> seen;
  for (int i = 0; i < 500; ++i) {
    std::string s = generateSecret();
    auto random = s.substr(kSecretPrefix.size(), kSecretRandomChars);
    seen.insert(random.begin(), random.end());
  }
  // 21 500 draws from 62 symbols: a missing symbol means a biased or short alphabet.
  CHECK(seen.size() == 62);
}

TEST_CASE("keys and secrets do not repeat") {
  test::ensureCrypto();
  std::set<std::string> secrets, keys;
  for (int i = 0; i < 10000; ++i) {
    secrets.insert(generateSecret());
    keys.insert(generateTokenKey());
  }
  CHECK(secrets.size() == 10000);
  CHECK(keys.size() == 10000);
}

TEST_CASE("malformed keys are rejected") {
  test::ensureCrypto();
  std::string key = generateTokenKey();
  REQUIRE(isWellFormedKey(key));

  SUBCASE("wrong prefix") {
    CHECK_FALSE(isWellFormedKey("tls_" + key.substr(4)));
    CHECK_FALSE(isWellFormedKey("TLK_" + key.substr(4)));
    CHECK_FALSE(isWellFormedKey("tlkx" + key.substr(4)));
  }
  SUBCASE("wrong length") {
    CHECK_FALSE(isWellFormedKey(key.substr(0, kKeyLength - 1)));
    CHECK_FALSE(isWellFormedKey(key + "a"));
    CHECK_FALSE(isWellFormedKey("tlk_"));
    CHECK_FALSE(isWellFormedKey(""));
  }
  SUBCASE("character outside base62") {
    for (char bad : std::string("-_+/=. :\n")) {
      for (size_t pos : {size_t{4}, size_t{15}, kKeyLength - 1}) {
        std::string k = key;
        k[pos] = bad;
        CHECK_FALSE(isWellFormedKey(k));
      }
    }
    std::string k = key;
    k[10] = '\0';
    CHECK_FALSE(isWellFormedKey(k));
    k = key;
    k[10] = static_cast<char>(0xC3);
    CHECK_FALSE(isWellFormedKey(k));
  }
}

TEST_CASE("malformed secrets are rejected") {
  test::ensureCrypto();
  std::string secret = generateSecret();
  REQUIRE(isWellFormedSecret(secret));

  SUBCASE("wrong prefix") {
    CHECK_FALSE(isWellFormedSecret("tlk_" + secret.substr(4)));
    CHECK_FALSE(isWellFormedSecret("TLS_" + secret.substr(4)));
  }
  SUBCASE("wrong length") {
    CHECK_FALSE(isWellFormedSecret(secret.substr(0, kSecretLength - 1)));
    CHECK_FALSE(isWellFormedSecret(secret + "0"));
    CHECK_FALSE(isWellFormedSecret(secret.substr(0, kSecretLength - kChecksumChars)));
    CHECK_FALSE(isWellFormedSecret(""));
  }
  SUBCASE("character outside base62") {
    for (char bad : std::string("-_+/=. :")) {
      std::string s = secret;
      s[20] = bad;
      CHECK_FALSE(isWellFormedSecret(s));
      s = secret;
      s[kSecretLength - 1] = bad;
      CHECK_FALSE(isWellFormedSecret(s));
    }
  }
  SUBCASE("any single changed character in the random part fails the checksum") {
    for (size_t pos = kSecretPrefix.size(); pos < kSecretLength - kChecksumChars; ++pos) {
      for (size_t salt : {size_t{1}, size_t{17}, size_t{40}}) {
        std::string s = secret;
        s[pos] = otherBase62(s[pos], pos + salt);
        REQUIRE(s != secret);
        CHECK_MESSAGE(!isWellFormedSecret(s), "changed position " << pos);
      }
    }
  }
  SUBCASE("any single changed character in the checksum is detected") {
    for (size_t pos = kSecretLength - kChecksumChars; pos < kSecretLength; ++pos) {
      for (size_t salt : {size_t{1}, size_t{30}}) {
        std::string s = secret;
        s[pos] = otherBase62(s[pos], pos + salt);
        CHECK_MESSAGE(!isWellFormedSecret(s), "changed position " << pos);
      }
    }
  }
  SUBCASE("two swapped neighbouring characters are detected") {
    for (size_t pos = kSecretPrefix.size(); pos + 1 < kSecretLength - kChecksumChars; ++pos) {
      if (secret[pos] == secret[pos + 1]) continue;
      std::string s = secret;
      std::swap(s[pos], s[pos + 1]);
      CHECK_MESSAGE(!isWellFormedSecret(s), "swapped at " << pos);
    }
  }
}

// Fixed vectors, literal bytes: secrets already issued carry this checksum and are
// stored as this hash. A change that makes one of these fail (alphabet, CRC, digit
// order, prefix, lengths, hash) invalidates every token issued so far: do not
// update the literals, keep the format. Computed once with the code that issued
// tokens, and cross-checked with Python's zlib.crc32 and hashlib.blake2b.
TEST_CASE("fixed vectors: the secret checksum and literal secrets") {
  test::ensureCrypto();
  // The checksum is CRC-32 (zlib) in six base62 digits, most significant first:
  // the standard check value crc32("123456789") = 0xCBF43926 = "3jZRME".
  CHECK(secretChecksum("") == "000000");
  CHECK(secretChecksum("123456789") == "3jZRME");
  CHECK(secretChecksum("tls_0000000000000000000000000000000000000000000") == "3hjhwL");
  CHECK(secretChecksum("tls_0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefg") == "0Rvk3C");

  const std::string valid[] = {
      "tls_00000000000000000000000000000000000000000003hjhwL",
      "tls_0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefg0Rvk3C",
      "tls_OtdXJVQMIXXZIPgSbTGeetRlQO5a5KgG8qgXikG6ofr3pSrlb",  // as generateSecret() made it
  };
  for (const auto& secret : valid) {
    CHECK_MESSAGE(isWellFormedSecret(secret), secret);
    // One character changed, in the random part or in the checksum: rejected.
    for (size_t pos : {size_t{4}, size_t{25}, size_t{46}, size_t{47}, kSecretLength - 1}) {
      std::string s = secret;
      s[pos] = otherBase62(s[pos], pos);
      CHECK_MESSAGE(!isWellFormedSecret(s), s);
    }
  }
  CHECK_FALSE(isWellFormedSecret("tls_00000000000000000000000000000000000000000003hjhwM"));
  CHECK_FALSE(isWellFormedSecret("tls_10000000000000000000000000000000000000000003hjhwL"));
  CHECK_FALSE(isWellFormedSecret("tlk_00000000000000000000000000000000000000000003hjhwL"));

  CHECK(isWellFormedKey("tlk_0123456789ABCDEFGHIJKLMN"));
  CHECK_FALSE(isWellFormedKey("tlk_0123456789ABCDEFGHIJKLM"));
  CHECK_FALSE(isWellFormedKey("tls_0123456789ABCDEFGHIJKLMN"));

  // The read model stores this hash of the secret, byte for byte as typed.
  CHECK(hashSecret("tls_0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefg0Rvk3C") ==
        fromHex("42a2c105f37c00df523e1de041bf41554e109070dd96bcc0c2db321e76bab8df"));
}

TEST_CASE("hashSecret is BLAKE2b-256 and deterministic") {
  test::ensureCrypto();
  // Reference values: Python's hashlib.blake2b(data, digest_size=32).
  CHECK(hashSecret("") ==
        fromHex("0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8"));
  CHECK(hashSecret("abc") ==
        fromHex("bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319"));

  std::string a = generateSecret();
  std::string b = generateSecret();
  SecretHash ha = hashSecret(a);
  CHECK(ha.size() == 32);
  CHECK(hashSecret(a) == ha);
  CHECK(hashSecret(b) != ha);
  CHECK(toHex(std::string_view(reinterpret_cast<const char*>(ha.data()), ha.size())).size() == 64);
  // The hash is not the secret or a prefix of it.
  CHECK(std::string(reinterpret_cast<const char*>(ha.data()), ha.size()) != a.substr(0, 32));
}

TEST_CASE("hashesEqual compares every byte") {
  test::ensureCrypto();
  SecretHash h = hashSecret(generateSecret());
  SecretHash same = h;
  CHECK(hashesEqual(h, same));
  for (size_t i : {size_t{0}, size_t{15}, size_t{31}}) {
    SecretHash other = h;
    other[i] ^= 0x01;
    CHECK_FALSE(hashesEqual(h, other));
  }
  CHECK_FALSE(hashesEqual(h, SecretHash{}));
}

TEST_CASE("randomBytes, randomBase62 and toHex") {
  test::ensureCrypto();
  CHECK(randomBytes(16).size() == 16);
  CHECK(randomBytes(16) != randomBytes(16));
  std::string r = randomBase62(100);
  CHECK(r.size() == 100);
  CHECK(allBase62(r));
  CHECK(toHex(std::string("\x00\x01\xab\xff", 4)) == "0001abff");
  CHECK(toHex("") == "");
}

}  // namespace
}  // namespace tokenledger
