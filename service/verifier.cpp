#include "service/verifier.h"

#include <sodium.h>

#include "events/secrets.h"

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

bool decodeBasicAuth(std::string_view header, std::string& out) {
  constexpr std::string_view kScheme = "basic ";
  if (header.size() <= kScheme.size()) return false;
  for (size_t i = 0; i < kScheme.size(); ++i)
    if (static_cast<char>(tolower(static_cast<unsigned char>(header[i]))) != kScheme[i])
      return false;
  std::string_view b64 = header.substr(kScheme.size());
  while (!b64.empty() && b64.front() == ' ') b64.remove_prefix(1);
  while (!b64.empty() && b64.back() == ' ') b64.remove_suffix(1);
  if (b64.empty() || b64.size() > 512) return false;
  unsigned char buf[384];
  size_t len = 0;
  const char* end = nullptr;
  if (sodium_base642bin(buf, sizeof buf, b64.data(), b64.size(), nullptr, &len, &end,
                        sodium_base64_VARIANT_ORIGINAL) != 0 ||
      end != b64.data() + b64.size())
    return false;
  out.assign(reinterpret_cast<const char*>(buf), len);
  return true;
}

VerifyOutcome verifyCredentials(std::string_view credentials, ReadModelReader& reader,
                                int64_t nowUs) {
  VerifyOutcome out;
  auto colon = credentials.find(':');
  if (colon == std::string_view::npos) return out;
  std::string_view key = credentials.substr(0, colon);
  std::string_view secret = credentials.substr(colon + 1);
  if (!isWellFormedKey(key) || !isWellFormedSecret(secret)) return out;
  out.key = std::string(key);

  bool known = reader.verifyView(key, out.token);
  SecretHash presented = hashSecret(secret);
  bool match = hashesEqual(presented, known ? out.token.secretHash : kNoSuchHash);
  if (!known) {
    out.reason = VerifyReason::unknown;
  } else if (!match) {
    out.reason = VerifyReason::badSecret;
  } else {
    switch (out.token.statusAt(nowUs)) {
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
