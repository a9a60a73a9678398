// Times in the domain, and as the API, the CLI tools and the audit tool show and
// accept them.
//
// A point in time is a Timestamp: UTC wall time at microsecond precision, as the
// wire holds it; lengths of time are std::chrono durations. Where a time may be
// absent (no expiry, no scheduled deactivation) it is a std::optional<Timestamp>.
// The wire and the read model's stored layouts hold times as microseconds since
// the Unix epoch with 0 for "absent"; their encoders and decoders are the only
// places that convert (events/schema_convert.h, projections/read_model_layout.cpp).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tokenledger {

using Timestamp = std::chrono::sys_time<std::chrono::microseconds>;

// "2026-11-28T03:58:35.123Z" (UTC, milliseconds).
std::string formatTime(Timestamp t);
// RFC 3339 ("2026-11-28T10:00:00Z", fractions and ±hh:mm offsets allowed) or a
// decimal count of Unix seconds; nullopt on anything else (including dates that do
// not exist, such as 31 February).
std::optional<Timestamp> parseTime(std::string_view s);

}  // namespace tokenledger
