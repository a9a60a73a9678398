#include "events/rules.h"

#include <algorithm>
#include <cstdint>

namespace tokenledger {
namespace {

constexpr std::string_view kIdAlphabet = "A-Z a-z 0-9 - _ . @ + :";

bool isIdChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_' || c == '.' || c == '@' || c == '+' || c == ':';
}

bool isIdText(std::string_view id) {
  if (id.empty() || id.size() > kMaxIdLength) return false;
  for (char c : id)
    if (!isIdChar(c)) return false;
  return true;
}

// Decodes one UTF-8 sequence at s[i] into `cp`; returns its length or 0 when invalid.
size_t utf8Decode(std::string_view s, size_t i, uint32_t& cp) {
  auto c = static_cast<unsigned char>(s[i]);
  size_t n;
  cp = c;
  if (c < 0x80) return 1;
  if ((c & 0xE0) == 0xC0) {
    n = 2;
    cp = c & 0x1F;
  } else if ((c & 0xF0) == 0xE0) {
    n = 3;
    cp = c & 0x0F;
  } else if ((c & 0xF8) == 0xF0) {
    n = 4;
    cp = c & 0x07;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    auto cc = static_cast<unsigned char>(s[i + k]);
    if ((cc & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (cc & 0x3F);
  }
  // Reject overlong forms, surrogates and values beyond Unicode.
  if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
      (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
    return 0;
  return n;
}

// Unicode White_Space (ASCII included).
bool isUnicodeSpace(uint32_t cp) {
  return cp == ' ' || (cp >= '\t' && cp <= '\r') || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
         cp == 0x205F || cp == 0x3000;
}

}  // namespace

std::optional<std::string> checkUserId(std::string_view user) {
  if (!isIdText(user))
    return "user id must be 1-" + std::to_string(kMaxIdLength) + " characters of " +
           std::string(kIdAlphabet);
  if (user == "." || user == "..") return "user id must not be \".\" or \"..\"";
  return std::nullopt;
}

std::optional<std::string> checkDestinationId(std::string_view id) {
  if (!isIdText(id))
    return "destination_id must be 1-" + std::to_string(kMaxIdLength) + " characters of " +
           std::string(kIdAlphabet);
  return std::nullopt;
}

std::optional<std::string> checkIdempotencyKey(std::string_view key) {
  bool printable = std::all_of(key.begin(), key.end(), [](char c) { return c > ' ' && c < 0x7f; });
  if (key.empty() || key.size() > kMaxIdempotencyKeyLength || !printable)
    return "Idempotency-Key must be 1-" + std::to_string(kMaxIdempotencyKeyLength) +
           " printable ASCII characters without spaces (e.g. a UUID)";
  return std::nullopt;
}

std::optional<std::string> checkDescription(std::string_view raw, std::string& out) {
  uint32_t cp = 0;
  size_t b = 0, e = raw.size();
  for (size_t n; b < e && (n = utf8Decode(raw, b, cp)) != 0 && isUnicodeSpace(cp);) b += n;
  while (e > b) {
    size_t k = e - 1;  // start of the last code point
    while (k > b && e - k < 4 && (static_cast<unsigned char>(raw[k]) & 0xC0) == 0x80) --k;
    if (utf8Decode(raw, k, cp) != e - k || !isUnicodeSpace(cp)) break;
    e = k;
  }
  std::string_view s = raw.substr(b, e - b);
  size_t chars = 0;
  for (size_t i = 0; i < s.size();) {
    size_t n = utf8Decode(s, i, cp);
    if (n == 0) return "description must be valid UTF-8";
    if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f))  // C0, DEL and C1 controls
      return "description must not contain control characters such as line breaks";
    i += n;
    ++chars;
  }
  if (chars == 0) return "description must not be empty";
  if (chars > kMaxDescriptionChars)
    return "description must be at most " + std::to_string(kMaxDescriptionChars) +
           " characters (it has " + std::to_string(chars) + ")";
  out = std::string(s);
  return std::nullopt;
}

std::optional<std::string> checkStoredDescription(std::string_view description) {
  std::string trimmed;
  if (auto err = checkDescription(description, trimmed)) return err;
  if (trimmed.size() != description.size())
    return "description must not begin or end with white space";
  return std::nullopt;
}

}  // namespace tokenledger
