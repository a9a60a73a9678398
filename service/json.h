// JSON rendering of tokens and events, error bodies, and time parsing for the API.
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <string_view>

#include "events/times.h"
#include "events/usage_store.h"
#include "projections/token.h"

namespace tokenledger {

// A JSON string (RFC 3339) or integer (Unix seconds) after the epoch; nullopt
// otherwise.
std::optional<Timestamp> parseTime(const nlohmann::json& v);

// With `lastUse` (issue 17): last_used_at (the minute, RFC 3339) and last_used_count.
nlohmann::json tokenJson(const Token& token, Timestamp now,
                         std::optional<LastUse> lastUse = std::nullopt);
nlohmann::json eventJson(const Event& event);

// Serialises; invalid UTF-8 (which only unvalidated input could carry) becomes U+FFFD
// instead of throwing.
std::string dumpJson(const nlohmann::json& j);

// {"error":{"code":…,"message":…}}
std::string errorBody(std::string_view code, std::string_view message);

}  // namespace tokenledger
