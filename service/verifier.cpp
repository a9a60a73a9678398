#include "service/verifier.h"

#include <sodium.h>

#include "events/secrets.h"
#include "service/http_input.h"

namespace tokenledger {
namespace {

// Compared against when the key is unknown: the same work, and never a match
// (no secret hashes to all zeroes).
const SecretHash kNoSuchHash{};

}  // namespace

std::string_view toString(VerifyReason reason) {
  switch (reason) {
    case VerifyReason::ok:
      return "ok";
    case VerifyReason::malformed:
      return "malformed";
    case VerifyReason::unknown:
      return "unknown";
    case VerifyReason::inactive:
      return "inactive";
    case VerifyReason::expired:
      return "expired";
    case VerifyReason::badSecret:
      return "bad_secret";
  }
  return "malformed";
}

namespace {

// Standard base64 (RFC 4648, with padding), table-driven: this runs on every verify
// and libsodium's constant-time decoder costs more than the rest of verification.
// The credentials are not compared here, so timing leaks nothing about secrets.
struct Base64Table {
  int8_t value[256];
  constexpr Base64Table() : value() {
    for (auto& v : value) v = -1;
    const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (int i = 0; i < 64; ++i)
      value[static_cast<unsigned char>(alphabet[i])] = static_cast<int8_t>(i);
  }
};
constexpr Base64Table kBase64;

bool decodeBase64(std::string_view in, std::string& out) {
  if (in.empty() || in.size() % 4 != 0) return false;
  size_t pad = 0;
  if (in.back() == '=') pad = in[in.size() - 2] == '=' ? 2 : 1;
  out.clear();
  out.reserve(in.size() / 4 * 3);
  for (size_t i = 0; i < in.size(); i += 4) {
    bool last = i + 4 == in.size();
    int v[4];
    for (int k = 0; k < 4; ++k) {
      unsigned char c = static_cast<unsigned char>(in[i + k]);
      if (last && c == '=' && k >= 4 - static_cast<int>(pad)) {
        v[k] = 0;
        continue;
      }
      v[k] = kBase64.value[c];
      if (v[k] < 0) return false;
    }
    uint32_t n = (uint32_t(v[0]) << 18) | (uint32_t(v[1]) << 12) | (uint32_t(v[2]) << 6) | v[3];
    out.push_back(static_cast<char>(n >> 16));
    if (!last || pad < 2) out.push_back(static_cast<char>((n >> 8) & 0xff));
    if (!last || pad < 1) out.push_back(static_cast<char>(n & 0xff));
  }
  return true;
}

}  // namespace

bool decodeBasicAuth(std::string_view header, std::string& out) {
  auto b64 = authCredentials(header, "Basic");
  if (!b64 || b64->size() > 512) return false;
  std::string decoded;
  if (!decodeBase64(*b64, decoded)) return false;  // `out` stays untouched on failure
  out = std::move(decoded);
  return true;
}

VerifyOutcome verifyCredentials(std::string_view credentials, ReadModelReader& reader,
                                Timestamp now) {
  VerifyOutcome out;
  auto colon = credentials.find(':');
  if (colon == std::string_view::npos) return out;
  std::string_view key = credentials.substr(0, colon);
  std::string_view secret = credentials.substr(colon + 1);
  if (!isWellFormedKey(key) || !isWellFormedSecret(secret)) return out;
  out.setKey(key);

  bool known = reader.verifyView(key, out.token);
  SecretHash presented = hashSecret(secret);
  bool match = hashesEqual(presented, known ? out.token.secretHash : kNoSuchHash);
  if (!known) {
    out.reason = VerifyReason::unknown;
  } else if (!match) {
    out.reason = VerifyReason::badSecret;
  } else {
    switch (out.token.statusAt(now)) {
      case Status::active:
        out.reason = VerifyReason::ok;
        break;
      case Status::inactive:
        out.reason = VerifyReason::inactive;
        break;
      case Status::expired:
        out.reason = VerifyReason::expired;
        break;
    }
  }
  return out;
}

}  // namespace tokenledger
