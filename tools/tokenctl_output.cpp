#include "tools/tokenctl_output.h"

#include <algorithm>
#include <optional>
#include <set>

namespace tokenledger::tools::tokenctl {
namespace {

std::string padRight(std::string text, size_t width) {
  if (text.size() < width) text.append(width - text.size(), ' ');
  return text;
}

// A key/value block of a token object: known fields in a fixed order, then any
// fields this version does not know about (so nothing the service says is hidden).
std::string tokenBlock(const Json& token, const std::optional<std::string>& secret) {
  static const std::vector<std::pair<std::string_view, std::string_view>> kFields = {
      {"key", "key"},
      {"owner", "owner"},
      {"kind", "kind"},
      {"destination_id", "destination id"},
      {"description", "description"},
      {"status", "status"},
      {"created_at", "created at"},
      {"updated_at", "updated at"},
      {"expires_at", "expires at"},
      {"deactivates_at", "deactivates at"},
      {"deactivated_at", "deactivated at"},
      {"deactivation_reason", "deactivation reason"},
      {"replaces", "replaces"},
      {"replaced_by", "replaced by"},
      {"last_used_at", "last used at"},
      {"last_used_count", "uses that minute"},
  };
  static const std::set<std::string, std::less<>> kNotShown = {"token", "position", "previous",
                                                               "changed"};
  std::vector<std::pair<std::string, std::string>> rows;
  for (const auto& [name, label] : kFields) {
    if (hasField(token, name)) rows.emplace_back(label, field(token, name));
    if (name == "key" && secret) rows.emplace_back("token", *secret);
  }
  if (token.is_object()) {
    for (const auto& [name, value] : token.items()) {
      bool known = kNotShown.count(name) > 0;
      for (const auto& entry : kFields) known = known || entry.first == name;
      if (!known && !value.is_null()) rows.emplace_back(sanitize(name), field(token, name));
    }
  }
  size_t width = 0;
  for (const auto& row : rows) width = std::max(width, row.first.size() + 1);
  std::string out;
  for (const auto& [label, value] : rows) {
    out += padRight(label + ":", width + 1) + value + "\n";
  }
  return out;
}

constexpr std::string_view kShownOnceWarning =
    "WARNING: the token is shown only once. Store it now; it cannot be retrieved again.\n";

// Fixed column widths (a key, "destination", "inactive", a time with milliseconds),
// so that pages printed one after another line up.
const std::vector<size_t> kListWidths = {28, 11, 8, 24};

std::string listRow(const std::vector<std::string>& cells) {
  std::string line;
  for (size_t i = 0; i < cells.size(); ++i)
    line += i + 1 < cells.size() ? padRight(cells[i], kListWidths[i] + 2) : cells[i];
  return trimRight(line) + "\n";
}

std::string listSection(std::string_view title, const std::vector<const Json*>& tokens) {
  std::string out = std::string(title) + "\n";
  if (tokens.empty()) return out + "  (none)\n";
  out += listHeader();
  for (const Json* t : tokens) out += listRowOf(*t);
  return out;
}

std::string formatList(const Json& body) {
  std::vector<const Json*> userTokens, destinationTokens;
  if (body.contains("tokens") && body["tokens"].is_array()) {
    for (const Json& t : body["tokens"])
      (field(t, "kind") == "destination" ? destinationTokens : userTokens).push_back(&t);
  }
  std::string out = listSection("User tokens", userTokens) + "\n" +
                    listSection("Destination tokens", destinationTokens);
  if (hasField(body, "next_cursor"))
    out += "\nMore: tokenctl list " + field(body, "user") + " --cursor " +
           field(body, "next_cursor") + " (with the same filters)\n";
  return out;
}

std::string formatDeactivateAll(const Json& body) {
  auto count = [&](const char* name) {
    return body.contains(name) && body[name].is_number_unsigned()
               ? std::to_string(body[name].get<uint64_t>())
               : std::string("?");
  };
  const std::string user = field(body, "user"), matching = count("matching");
  if (body.contains("dry_run") && body["dry_run"] == true)
    return matching == "0" ? "No active token of " + user + " matches; nothing to do.\n"
                           : matching + " active token(s) of " + user +
                                 " would be deactivated. Run again with --yes to deactivate "
                                 "them.\n";
  return "Deactivated " + count("deactivated") + " token(s) of " + user + " (" + matching +
         " matched)" + (hasField(body, "position") ? ", last at " + field(body, "position") : "") +
         ".\n";
}

std::string formatHistory(const Json& body) {
  std::string out = "History of " + field(body, "key") + "\n";
  if (hasField(body, "replaces")) out += "replaces:    " + field(body, "replaces") + "\n";
  if (hasField(body, "replaced_by")) out += "replaced by: " + field(body, "replaced_by") + "\n";
  std::vector<std::vector<std::string>> rows = {{"TIME", "TYPE", "ACTOR", "DETAILS"}};
  if (body.contains("events") && body["events"].is_array()) {
    for (const Json& e : body["events"]) {
      std::string type = field(e, "type");
      std::vector<std::string> details;
      auto add = [&](std::string_view name, std::string_view label) {
        if (hasField(e, name)) details.push_back(std::string(label) + "=" + field(e, name));
      };
      if (type == "created") {
        add("kind", "kind");
        add("destination_id", "destination");
        add("replaces", "replaces");
        add("expires_at", "expires");
      } else if (type == "deactivated") {
        add("reason", "reason");
        add("effective_at", "effective");
      }
      std::string joined;
      for (const std::string& d : details) joined += (joined.empty() ? "" : " ") + d;
      rows.push_back({field(e, "at"), type, field(e, "actor"), joined});
    }
  }
  std::vector<size_t> widths(4, 0);
  for (const auto& r : rows) {
    for (size_t i = 0; i < r.size(); ++i) widths[i] = std::max(widths[i], r[i].size());
  }
  for (const auto& r : rows) {
    std::string line;
    for (size_t i = 0; i < r.size(); ++i) {
      line += i + 1 < r.size() ? padRight(r[i], widths[i] + 2) : r[i];
    }
    out += trimRight(line) + "\n";
  }
  if (rows.size() == 1) out += "(no events)\n";
  return out;
}

}  // namespace

std::string sanitize(std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c < 0x20 || c == 0x7f) {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else if (c == 0xc2 && i + 1 < text.size() &&
               static_cast<unsigned char>(text[i + 1]) >= 0x80 &&
               static_cast<unsigned char>(text[i + 1]) <= 0x9f) {
      unsigned char c1 = static_cast<unsigned char>(text[++i]);
      out += "\\u00";
      out += kHex[c1 >> 4];
      out += kHex[c1 & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

std::string field(const Json& object, std::string_view name) {
  if (!object.is_object()) return {};
  auto it = object.find(std::string(name));
  if (it == object.end() || it->is_null()) return {};
  if (it->is_string()) return sanitize(it->get<std::string>());
  return sanitize(it->dump());
}

bool hasField(const Json& object, std::string_view name) {
  if (!object.is_object()) return false;
  auto it = object.find(std::string(name));
  return it != object.end() && !it->is_null();
}

std::string trimRight(std::string text) {
  while (!text.empty() && (text.back() == ' ' || text.back() == '\n' || text.back() == '\r' ||
                           text.back() == '\t')) {
    text.pop_back();
  }
  return text;
}

std::string formatSuccess(const std::string& command, const Json& body) {
  if (command == "list") return formatList(body);
  if (command == "deactivate-all") return formatDeactivateAll(body);
  if (command == "history") return formatHistory(body);
  if (command == "get") return tokenBlock(body, std::nullopt);
  if (command == "verify") {
    std::string out = "valid: " + field(body, "key") + " (owner " + field(body, "owner") +
                      ", kind " + field(body, "kind");
    if (hasField(body, "destination_id")) out += ", destination " + field(body, "destination_id");
    return out + ")\n";
  }
  const std::string key = field(body, "key");
  std::optional<std::string> secret;
  if (hasField(body, "token")) secret = field(body, "token");
  if (command == "create") {
    return "Created " + field(body, "kind") + " token " + key + " for " + field(body, "owner") +
           ".\n" + tokenBlock(body, secret) + std::string(kShownOnceWarning);
  }
  if (command == "rotate") {
    std::string out;
    const Json previous = body.contains("previous") ? body["previous"] : Json::object();
    std::string oldKey = field(previous, "key");
    out += "Rotated " + oldKey + " to " + key + ".\n";
    if (field(previous, "status") == "active" && hasField(previous, "deactivates_at")) {
      out += "The previous token " + oldKey + " stays valid until " +
             field(previous, "deactivates_at") + ".\n";
    } else if (!oldKey.empty()) {
      out += "The previous token " + oldKey + " is now " + field(previous, "status") + ".\n";
    }
    return out + tokenBlock(body, secret) + std::string(kShownOnceWarning);
  }
  bool changed =
      body.contains("changed") && body["changed"].is_boolean() && body["changed"].get<bool>();
  std::string headline;
  if (command == "activate") {
    headline = changed ? "Activated " + key + "." : key + " was already active; nothing changed.";
  } else if (!changed) {
    headline = key + " was already inactive; nothing changed.";
  } else if (field(body, "status") == "active" && hasField(body, "deactivates_at")) {
    headline = key + " will be deactivated at " + field(body, "deactivates_at") + ".";
  } else {
    headline = "Deactivated " + key + ".";
  }
  return headline + "\n" + tokenBlock(body, std::nullopt);
}

std::string oneLine(const std::string& body) {
  std::string trimmed = trimRight(body);
  if (trimmed.find('\n') == std::string::npos) return trimmed;
  Json parsed = Json::parse(trimmed, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) {
    for (char& c : trimmed) {
      if (c == '\n' || c == '\r') c = ' ';
    }
    return trimmed;
  }
  return parsed.dump();
}

std::string listHeader() {
  return listRow({"KEY", "KIND", "STATUS", "CREATED", "DESCRIPTION"});
}

std::string listRowOf(const Json& t) {
  return listRow({field(t, "key"), field(t, "kind"), field(t, "status"), field(t, "created_at"),
                  field(t, "description")});
}

}  // namespace tokenledger::tools::tokenctl
