#include "service/http_input.h"

#include <set>

namespace tokenledger {
namespace {

char lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

bool isSpace(char c) {
  return c == ' ' || c == '\t';
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && isSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && isSpace(s.back())) s.remove_suffix(1);
  return s;
}

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::optional<std::string_view> authCredentials(std::string_view header, std::string_view scheme) {
  if (header.size() <= scheme.size() || header[scheme.size()] != ' ') return std::nullopt;
  for (size_t i = 0; i < scheme.size(); ++i)
    if (lower(header[i]) != lower(scheme[i])) return std::nullopt;
  std::string_view rest = trim(header.substr(scheme.size()));
  if (rest.empty()) return std::nullopt;
  return rest;
}

std::string mediaTypeOf(std::string_view contentType) {
  std::string_view type = trim(contentType.substr(0, contentType.find(';')));
  std::string out(type);
  for (char& c : out) c = lower(c);
  return out;
}

std::optional<std::vector<std::string>> splitPath(std::string_view path) {
  std::vector<std::string> parts;
  if (path.empty() || path[0] != '/') return parts;
  path.remove_prefix(1);
  while (true) {
    auto slash = path.find('/');
    std::string_view raw = path.substr(0, slash);
    std::string seg;
    seg.reserve(raw.size());
    for (size_t i = 0; i < raw.size(); ++i) {
      if (raw[i] != '%') {
        seg.push_back(raw[i]);
        continue;
      }
      if (i + 2 >= raw.size()) return std::nullopt;
      int hi = hexValue(raw[i + 1]), lo = hexValue(raw[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      seg.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    }
    parts.push_back(std::move(seg));
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
  return parts;
}

std::string_view queryValue(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    auto amp = query.find('&');
    auto item = query.substr(0, amp);
    if (item.size() > name.size() && item.starts_with(name) && item[name.size()] == '=')
      return item.substr(name.size() + 1);
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return {};
}

std::variant<nlohmann::json, InputError> parseJsonObject(
    std::string_view body, std::initializer_list<std::string_view> allowed) {
  using nlohmann::json;
  // The keys seen so far in each object being parsed, innermost last.
  std::vector<std::set<std::string>> open;
  std::string duplicate;
  auto callback = [&](int, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::object_start) {
      open.emplace_back();
    } else if (event == json::parse_event_t::object_end) {
      if (!open.empty()) open.pop_back();
    } else if (event == json::parse_event_t::key && !open.empty() && duplicate.empty()) {
      const auto& key = parsed.get_ref<const std::string&>();
      if (!open.back().insert(key).second) duplicate = key;
    }
    return true;
  };
  json j = json::parse(body.begin(), body.end(), callback, /*allow_exceptions=*/false);
  if (j.is_discarded())
    return InputError{"invalid_json",
                      "the body is not valid JSON (or not valid UTF-8); send a JSON object"};
  if (!duplicate.empty())
    return InputError{"invalid_json",
                      "the field \"" + duplicate + "\" appears twice in one object; send it once"};
  if (!j.is_object()) return InputError{"invalid_json", "the body must be a JSON object"};
  for (const auto& [name, value] : j.items()) {
    bool known = false;
    for (auto a : allowed) known = known || a == name;
    if (!known) {
      std::string list;
      for (auto a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
      return InputError{"unknown_field", "unknown field \"" + name + "\"; allowed: " +
                                             (list.empty() ? std::string("none") : list)};
    }
  }
  return j;
}

}  // namespace tokenledger
