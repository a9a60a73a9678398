#include "tools/ledger_audit_text.h"

#include <chrono>
#include <cstdio>

#include "events/clock.h"
#include "events/times.h"
#include "tools/ledger_audit.h"

namespace tokenledger::audit {

std::string printable(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) {
      char buf[8];
      snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  return out;
}

std::string csvField(std::string_view s) {
  std::string v = printable(s);
  if (v.find_first_of(",\"") == std::string::npos &&
      (v.empty() || (v[0] != '=' && v[0] != '+' && v[0] != '-' && v[0] != '@')))
    return v;
  std::string out = "\"";
  // A leading formula character is neutralised for spreadsheets.
  if (!v.empty() && (v[0] == '=' || v[0] == '+' || v[0] == '-' || v[0] == '@')) out += '\'';
  for (char c : v) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

std::string dumpJson(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Timestamp now() {
  return SystemClock().now();
}

Timestamp requireTime(const std::string& flag, const std::string& value) {
  auto t = parseTime(value);
  if (!t)
    throw UsageError("cannot parse " + flag + " \"" + value +
                     "\": use RFC 3339 (e.g. 2026-11-28T10:00:00Z, 2026-11-28T10:00:00.5+01:00) "
                     "or Unix seconds (e.g. 1795860000)");
  return *t;
}

}  // namespace tokenledger::audit
