// Times as the API, the CLI tools and the audit tool show and accept them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tokenledger {

// "2026-11-28T03:58:35.123Z" (UTC, milliseconds) from microseconds since the epoch.
std::string formatTime(int64_t us);
// RFC 3339 ("2026-11-28T10:00:00Z", fractions and ±hh:mm offsets allowed) or a
// decimal count of Unix seconds; nullopt on anything else (including dates that do
// not exist, such as 31 February).
std::optional<int64_t> parseTime(std::string_view s);

}  // namespace tokenledger
