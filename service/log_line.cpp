#include "service/log_line.h"

#include "events/times.h"
#include "service/json.h"

namespace tokenledger {

std::optional<LogFormat> parseLogFormat(std::string_view s) {
  if (s == "text") return LogFormat::text;
  if (s == "json") return LogFormat::json;
  return std::nullopt;
}

LogLine plainLine(std::string message) {
  LogLine line;
  if (message.starts_with("warning")) {
    line.level = "warn";
  } else if (message.find(" failed") != std::string::npos || message.starts_with("cannot ") ||
             message.starts_with("tokenledgerd: ")) {
    line.level = "error";
  }
  line.message = std::move(message);
  return line;
}

std::string formatLogLine(const LogLine& line, Timestamp at, LogFormat format) {
  if (format == LogFormat::json) {
    nlohmann::json fields = nlohmann::json::object();
    for (const auto& [key, value] : line.fields) fields[key] = value;
    // dumpJson keeps one line: control characters in a message are escaped.
    return dumpJson(nlohmann::json{{"time", formatTime(at)},
                                   {"level", line.level},
                                   {"message", line.message},
                                   {"fields", std::move(fields)}});
  }
  std::string out = formatTime(at) + " " + line.message;
  for (const auto& [key, value] : line.fields) out += " " + key + "=" + value;
  return out;
}

}  // namespace tokenledger
