#include "events/times.h"

#include <cstdio>
#include <ctime>

namespace tokenledger {

std::string formatTime(Timestamp at) {
  // Whole seconds rounded down (also before the epoch), and the milliseconds past them.
  const auto secs = std::chrono::floor<std::chrono::seconds>(at);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(at - secs).count();
  time_t t = static_cast<time_t>(secs.time_since_epoch().count());
  struct tm tm {};
  gmtime_r(&t, &tm);
  char buf[96];
  snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
           tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
  return buf;
}

std::optional<Timestamp> parseTime(std::string_view s) {
  using std::chrono::microseconds;
  using std::chrono::seconds;
  if (s.empty() || s.size() > 40) return std::nullopt;
  bool digits = true;
  for (char c : s) digits = digits && c >= '0' && c <= '9';
  if (digits) {
    if (s.size() > 11) return std::nullopt;
    return Timestamp{seconds{std::stoll(std::string(s))}};
  }
  auto num = [&](size_t pos, size_t len, int& out) {
    if (pos + len > s.size()) return false;
    out = 0;
    for (size_t i = pos; i < pos + len; ++i) {
      if (s[i] < '0' || s[i] > '9') return false;
      out = out * 10 + (s[i] - '0');
    }
    return true;
  };
  int y, mo, d, h, mi, se;
  // The length first: s[4] and s[7] must not read past a "2026-11".
  if (s.size() < 19 || !num(0, 4, y) || s[4] != '-' || !num(5, 2, mo) || s[7] != '-' ||
      !num(8, 2, d) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || !num(11, 2, h) ||
      s[13] != ':' || !num(14, 2, mi) || s[16] != ':' || !num(17, 2, se))
    return std::nullopt;
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60) return std::nullopt;
  size_t i = 19;
  microseconds frac{0};
  if (i < s.size() && s[i] == '.') {
    ++i;
    int64_t scale = 100000;
    size_t start = i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
      frac += microseconds{(s[i] - '0') * scale};
      scale /= 10;
      ++i;
    }
    if (i == start) return std::nullopt;
  }
  seconds offset{0};
  if (i < s.size() && (s[i] == 'Z' || s[i] == 'z')) {
    ++i;
  } else if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
    int oh, om;
    if (!num(i + 1, 2, oh) || i + 3 >= s.size() || s[i + 3] != ':' || !num(i + 4, 2, om) ||
        oh > 23 || om > 59)
      return std::nullopt;
    offset = seconds{(oh * 60 + om) * 60 * (s[i] == '+' ? 1 : -1)};
    i += 6;
  } else {
    return std::nullopt;
  }
  if (i != s.size()) return std::nullopt;
  struct tm tm {};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = se == 60 ? 59 : se;  // a leap second is the second after :59
  time_t t = timegm(&tm);
  // timegm normalises 31 February into March; refuse dates that do not exist.
  struct tm back {};
  gmtime_r(&t, &back);
  if (back.tm_mday != d) return std::nullopt;
  if (se == 60) ++t;
  return Timestamp{seconds{static_cast<int64_t>(t)} - offset + frac};
}

}  // namespace tokenledger
