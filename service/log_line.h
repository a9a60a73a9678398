// The service log's lines: text (the default, "TIME message key=value …") or JSON
// (--log-format json: one object per line with time, level, message and fields),
// for log pipelines that parse rather than grep.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "events/clock.h"

namespace tokenledger {

enum class LogFormat { text, json };

// "text" or "json"; nullopt for anything else.
std::optional<LogFormat> parseLogFormat(std::string_view s);

struct LogLine {
  std::string_view level = "info";  // "info", "warn" or "error" (static strings)
  std::string message;
  std::vector<std::pair<std::string, std::string>> fields = {};
};

// A line that carries fields (the command log); the daemon's plain Logger is the
// same sink with no fields.
using LineLogger = std::function<void(const LogLine&)>;

// A plain message as a line: its level guessed from how the service words its
// messages ("warning: …" is warn; "… failed…" and "cannot …" are error).
LogLine plainLine(std::string message);

// The line, without the newline.
std::string formatLogLine(const LogLine& line, Timestamp at, LogFormat format);

}  // namespace tokenledger
