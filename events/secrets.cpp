#include "events/secrets.h"

#include <sodium.h>
#include <zlib.h>

#include <stdexcept>

namespace tokenledger {
namespace {

constexpr char kAlphabet[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

// A table instead of three range checks: format checks run on every verify.
struct Base62Table {
  bool ok[256] = {};
  constexpr Base62Table() {
    for (const char* p = kAlphabet; *p; ++p) ok[static_cast<unsigned char>(*p)] = true;
  }
};
constexpr Base62Table kBase62;

bool allBase62(std::string_view s) {
  bool ok = true;
  for (char c : s) ok &= kBase62.ok[static_cast<unsigned char>(c)];
  return ok;
}

}  // namespace

std::string secretChecksum(std::string_view body) {
  uint32_t crc = static_cast<uint32_t>(
      crc32(0L, reinterpret_cast<const Bytef*>(body.data()), static_cast<uInt>(body.size())));
  std::string out(kChecksumChars, '0');  // 62^6 > 2^32, so six digits always suffice
  for (size_t i = kChecksumChars; i-- > 0;) {
    out[i] = kAlphabet[crc % 62];
    crc /= 62;
  }
  return out;
}

void initCrypto() {
  if (sodium_init() < 0) throw std::runtime_error("libsodium failed to initialise");
}

Entropy& systemEntropy() {
  struct Sodium final : Entropy {
    void fill(void* buf, size_t n) override { randombytes_buf(buf, n); }
  };
  static Sodium sodium;
  return sodium;
}

std::string randomBytes(size_t n, Entropy& entropy) {
  std::string out(n, '\0');
  entropy.fill(out.data(), n);
  return out;
}

std::string randomBase62(size_t n, Entropy& entropy) {
  // One CSPRNG call for the lot (each call may be a getrandom() system call), then
  // rejection sampling: bytes of 248 and above would bias the modulo, so skip them.
  std::string out;
  out.reserve(n);
  unsigned char buf[128];
  while (out.size() < n) {
    entropy.fill(buf, sizeof buf);
    for (unsigned char b : buf) {
      if (b >= 248) continue;
      out.push_back(kAlphabet[b % 62]);
      if (out.size() == n) break;
    }
  }
  return out;
}

std::string generateTokenKey(Entropy& entropy) {
  return std::string(kKeyPrefix) + randomBase62(kKeyRandomChars, entropy);
}

std::string generateSecret(Entropy& entropy) {
  std::string body = std::string(kSecretPrefix) + randomBase62(kSecretRandomChars, entropy);
  return body + secretChecksum(body);
}

bool isWellFormedKey(std::string_view key) {
  return key.size() == kKeyLength && key.starts_with(kKeyPrefix) &&
         allBase62(key.substr(kKeyPrefix.size()));
}

bool isWellFormedSecret(std::string_view secret) {
  if (secret.size() != kSecretLength || !secret.starts_with(kSecretPrefix) ||
      !allBase62(secret.substr(kSecretPrefix.size())))
    return false;
  std::string_view body = secret.substr(0, kSecretLength - kChecksumChars);
  return secretChecksum(body) == secret.substr(kSecretLength - kChecksumChars);
}

SecretHash hashSecret(std::string_view secret) {
  SecretHash out;
  crypto_generichash(out.data(), out.size(), reinterpret_cast<const unsigned char*>(secret.data()),
                     secret.size(), nullptr, 0);
  return out;
}

bool hashesEqual(const SecretHash& a, const SecretHash& b) {
  static_assert(sizeof(SecretHash) == crypto_verify_32_BYTES);
  return crypto_verify_32(a.data(), b.data()) == 0;  // constant time
}

std::string toHex(std::string_view bytes) {
  std::string out(bytes.size() * 2 + 1, '\0');
  sodium_bin2hex(out.data(), out.size(), reinterpret_cast<const unsigned char*>(bytes.data()),
                 bytes.size());
  out.pop_back();
  return out;
}

std::optional<std::string> fromHex(std::string_view hex) {
  if (hex.size() % 2) return std::nullopt;
  std::string out(hex.size() / 2, '\0');
  size_t len = 0;
  if (sodium_hex2bin(reinterpret_cast<unsigned char*>(out.data()), out.size(), hex.data(),
                     hex.size(), nullptr, &len, nullptr) != 0 ||
      len != out.size())
    return std::nullopt;
  return out;
}

}  // namespace tokenledger
