// ledger-audit's text helpers, shared by its commands: strings from the log made
// safe to print (text, CSV, JSON lines) and times from the command line.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "events/times.h"

namespace tokenledger::audit {

// Control characters in strings from the log are shown escaped (\x1b), never raw.
std::string printable(std::string_view s);

// One CSV field: printable, quoted when it holds a comma or a quote, and with a
// leading formula character (= + - @) neutralised for spreadsheets.
std::string csvField(std::string_view s);

// One line of JSON; invalid UTF-8 from the log is replaced, never an exception.
std::string dumpJson(const nlohmann::json& j);

// The wall time now (the system clock).
Timestamp now();

// The time `value` of `flag` (RFC 3339 or Unix seconds). Throws UsageError, with
// examples of both forms, when it is neither.
Timestamp requireTime(const std::string& flag, const std::string& value);

}  // namespace tokenledger::audit
