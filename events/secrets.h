// Token keys, token secrets and their hashes.
//
// Key:    "tlk_" + 24 base62 characters (public identifier, ~143 random bits).
// Secret: "tls_" + 43 base62 characters (256 random bits, libsodium CSPRNG)
//         + 6 base62 characters of CRC32 over everything before them.
// The fixed prefixes let secret scanners find leaked tokens; the checksum lets
// verification reject mistyped or made-up secrets before any lookup.
// Secrets are stored only as BLAKE2b-256 hashes (fast hashing is right for
// high-entropy secrets) and compared in constant time.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tokenledger {

constexpr std::string_view kKeyPrefix = "tlk_";
constexpr std::string_view kSecretPrefix = "tls_";
constexpr size_t kKeyRandomChars = 24;
constexpr size_t kSecretRandomChars = 43;
constexpr size_t kChecksumChars = 6;
constexpr size_t kKeyLength = kKeyPrefix.size() + kKeyRandomChars;
constexpr size_t kSecretLength = kSecretPrefix.size() + kSecretRandomChars + kChecksumChars;

using SecretHash = std::array<uint8_t, 32>;

// Initialises libsodium; call once before anything else here (idempotent, thread-safe).
void initCrypto();

// Where randomness comes from: libsodium's CSPRNG (systemEntropy()), or in tests a
// fixed sequence, injected like the clocks (events/clock.h).
class Entropy {
 public:
  virtual ~Entropy() = default;
  virtual void fill(void* buf, size_t n) = 0;  // thread-safe
};
Entropy& systemEntropy();

std::string generateTokenKey(Entropy& entropy = systemEntropy());
std::string generateSecret(Entropy& entropy = systemEntropy());

// The 6 checksum characters of a secret whose first 47 characters are `body`: the
// CRC-32 (zlib's) of `body` as 6 base62 digits, most significant first. Fixed
// forever: secrets already issued carry it.
std::string secretChecksum(std::string_view body);

// Format checks only: prefix, length, alphabet, and (secrets) the checksum.
bool isWellFormedKey(std::string_view key);
bool isWellFormedSecret(std::string_view secret);

SecretHash hashSecret(std::string_view secret);
bool hashesEqual(const SecretHash& a, const SecretHash& b);  // constant time

// Random bytes.
std::string randomBytes(size_t n, Entropy& entropy = systemEntropy());
// n characters from [0-9A-Za-z], uniformly.
std::string randomBase62(size_t n, Entropy& entropy = systemEntropy());
std::string toHex(std::string_view bytes);
// Lower- or upper-case hex to bytes; nullopt on an odd length or a non-hex digit.
std::optional<std::string> fromHex(std::string_view hex);

}  // namespace tokenledger
