// Verification of "key:token" credentials against the read model.
#pragma once

#include <string>
#include <string_view>

#include "projections/read_model.h"

namespace tokenledger {

enum class VerifyReason { ok, malformed, unknown, inactive, expired, badSecret };
std::string_view toString(VerifyReason reason);  // "malformed", "unknown", "bad_secret", …

struct VerifyOutcome {
  VerifyReason reason = VerifyReason::malformed;
  std::string key;   // set when the key was well formed
  VerifyView token;  // set when reason is ok (owner, kind, destination)
  bool valid() const { return reason == VerifyReason::ok; }
};

// `credentials` is "key:token". The format of both parts is checked before any
// lookup; the hash is computed and compared (in constant time) for unknown keys
// too, so timing does not tell unknown keys from wrong secrets.
VerifyOutcome verifyCredentials(std::string_view credentials, ReadModelReader& reader,
                                int64_t nowUs);

// Extracts "key:token" from an "Authorization: Basic base64(key:token)" header
// value; false when the header is not a well-formed Basic credential.
bool decodeBasicAuth(std::string_view header, std::string& out);

}  // namespace tokenledger
