// What tokenctl prints: the service's answers as tables and key/value blocks,
// strings from the service made safe for a terminal, and a Printer that keeps the
// secrets out of every line.
#pragma once

#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tokenledger::tools::tokenctl {

using Json = nlohmann::ordered_json;

// Everything printed goes through here, so that the operator secret (and the
// verified token) can never reach stdout or stderr, even if a service echoed it.
class Printer {
 public:
  void addSecret(std::string secret) {
    // Redacting very short strings would garble output; real secrets are long.
    if (secret.size() >= 8) secrets_.push_back(std::move(secret));
  }

  void out(std::string_view text) const { std::cout << redact(text); }
  void err(std::string_view text) const { std::cerr << redact(text); }

 private:
  std::string redact(std::string_view text) const {
    std::string result(text);
    for (const std::string& secret : secrets_) {
      for (size_t at = result.find(secret); at != std::string::npos; at = result.find(secret, at)) {
        result.replace(at, secret.size(), "[redacted]");
      }
    }
    return result;
  }

  std::vector<std::string> secrets_;
};

// Makes a string from the service safe for a terminal: control characters
// (C0, DEL and UTF-8-encoded C1) become visible escapes.
std::string sanitize(std::string_view text);

// A string field of a JSON object, sanitized; empty when absent or not a string.
std::string field(const Json& object, std::string_view name);
// Whether the object has the field, not null.
bool hasField(const Json& object, std::string_view name);
// `text` without trailing spaces, tabs and line ends.
std::string trimRight(std::string text);

// What tokenctl prints for the service's successful answer `body` (a JSON object)
// to `command`.
std::string formatSuccess(const std::string& command, const Json& body);
// The list's header line and one token's line, in fixed columns.
std::string listHeader();
std::string listRowOf(const Json& token);
// The service's body on one line: unchanged unless it spans several lines.
std::string oneLine(const std::string& body);

}  // namespace tokenledger::tools::tokenctl
