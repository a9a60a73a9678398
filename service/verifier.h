// Verification of "key:token" credentials against the read model.
#pragma once

#include <algorithm>
#include <array>
#include <string>
#include <string_view>

#include "events/secrets.h"
#include "projections/read_model.h"

namespace tokenledger {

enum class VerifyReason { ok, malformed, unknown, inactive, expired, badSecret };
std::string_view toString(VerifyReason reason);  // "malformed", "unknown", "bad_secret", …

struct VerifyOutcome {
  VerifyReason reason = VerifyReason::malformed;
  // The key when it was well formed (kept inline: no allocation per verify).
  std::string_view key() const { return std::string_view(keyBuf_.data(), keyLen_); }
  void setKey(std::string_view k) {
    keyLen_ = std::min(k.size(), keyBuf_.size());
    std::copy_n(k.data(), keyLen_, keyBuf_.data());
  }
  VerifyView token;  // set when reason is ok (owner, kind, destination)
  bool valid() const { return reason == VerifyReason::ok; }

 private:
  std::array<char, kKeyLength> keyBuf_{};
  size_t keyLen_ = 0;
};

// `credentials` is "key:token". The format of both parts is checked before any
// lookup; the hash is computed and compared (in constant time) for unknown keys
// too, so timing does not tell unknown keys from wrong secrets.
VerifyOutcome verifyCredentials(std::string_view credentials, ReadModelReader& reader,
                                Timestamp now);

// Extracts "key:token" from an "Authorization: Basic base64(key:token)" header
// value; false when the header is not a well-formed Basic credential.
bool decodeBasicAuth(std::string_view header, std::string& out);

}  // namespace tokenledger
