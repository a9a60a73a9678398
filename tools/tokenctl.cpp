// tokenctl: the operator command-line client of tokenledgerd.
//
// It speaks the HTTP API described in docs/api.md and nothing else: it never
// links service internals. Exit codes: 0 success, 1 the service refused (any
// 4xx/5xx, including an invalid token on verify), 2 usage error or the service
// could not be reached.
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "events/rules.h"
#include "tools/http_client.h"

namespace tokenledger::tools {
namespace {

using Json = nlohmann::ordered_json;

constexpr int kExitOk = 0;
constexpr int kExitRefused = 1;
constexpr int kExitUsage = 2;

constexpr std::string_view kDefaultUrl = "http://127.0.0.1:8080";
constexpr std::string_view kUrlEnv = "TOKENLEDGER_URL";
constexpr std::string_view kSecretEnv = "TOKENLEDGER_OPERATOR_SECRET";
constexpr std::string_view kDefaultSecretFile = "./data/operator-secret";
constexpr double kDefaultTimeoutSeconds = 30;
constexpr double kMaxTimeoutSeconds = 24 * 3600;

constexpr std::string_view kUsage = R"(tokenctl - operator client for tokenledgerd

Usage:
  tokenctl [--url URL] [--secret-file FILE] [--json] [--timeout SECONDS] COMMAND ARGS

Commands:
  create USER --description TEXT [--kind user|destination] [--destination-id ID]
              [--expires-at T]
                               create a token; prints its key and its secret token
                               (the secret is shown only once)
  list USER                    list USER's tokens: user tokens and destination tokens
  get USER KEY                 show one token
  activate USER KEY            activate a token (no change if already active)
  deactivate USER KEY [--reason manual|rotation|compromised|expired|bulk]
                      [--effective-at T]
                               deactivate a token, now or at time T (past or future)
  rotate USER KEY [--grace-seconds N]
                               create a successor and deactivate KEY after N seconds
                               (default 0: at once); prints the new secret token
  history USER KEY             list the events of a token
  verify KEY:TOKEN             check a token (HTTP Basic); no operator secret needed
  verify --stdin               same, reading KEY:TOKEN from the first line of stdin,
                               so the secret does not show up in the process list
  help                         show this text

Global options (before or after the command):
  --url URL             service address (default: $TOKENLEDGER_URL, else
                        http://127.0.0.1:8080)
  --secret-file FILE    file holding the operator secret (trailing newline trimmed)
  --json                print the service's JSON response body unchanged, on one line
  --timeout SECONDS     give up on a request after SECONDS (default 30)
  -h, --help            show this text

The operator secret for management commands comes from $TOKENLEDGER_OPERATOR_SECRET,
else --secret-file FILE, else ./data/operator-secret if readable. It is sent as
"Authorization: Bearer" and never printed.

T is an RFC 3339 time (2026-11-28T10:00:00Z, offsets and fractions allowed) or an
integer of Unix seconds. USER and KEY may contain only A-Z a-z 0-9 - _ . @ + :

Exit codes:
  0  success
  1  the service refused the request (any HTTP 4xx/5xx; verify: token not valid)
  2  usage error, missing operator secret, or the service could not be reached
)";

// A usage error: the message is printed with a hint to --help, exit code 2.
struct UsageError {
  std::string message;
};

// Any other local failure that must exit 2 without the --help hint.
struct LocalError {
  std::string message;
};

// ---------------------------------------------------------------- output

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

// A string field of a JSON object, sanitized; empty when absent or not a string.
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

std::string padRight(std::string text, size_t width) {
  if (text.size() < width) text.append(width - text.size(), ' ');
  return text;
}

std::string trimRight(std::string text) {
  while (!text.empty() && (text.back() == ' ' || text.back() == '\n' || text.back() == '\r' ||
                           text.back() == '\t')) {
    text.pop_back();
  }
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

// ---------------------------------------------------------------- arguments

// The same rules as the service (events/rules.h), so mistakes are caught before
// any request; the service checks them again.
void check(std::optional<std::string> error) {
  if (error) throw UsageError{*error};
}

// A token key goes into the URL path: only the characters a key can have.
void checkKeyArgument(const std::string& key) {
  bool ok = !key.empty() && key.size() <= kMaxIdLength;
  for (char c : key)
    ok = ok &&
         ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_');
  if (!ok) throw UsageError{"invalid KEY '" + sanitize(key) + "': token keys look like tlk_..."};
}

std::optional<int64_t> parseInt64(const std::string& text) {
  if (text.empty()) return std::nullopt;
  size_t start = text[0] == '-' ? 1 : 0;
  if (start == text.size()) return std::nullopt;
  for (size_t i = start; i < text.size(); ++i) {
    if (text[i] < '0' || text[i] > '9') return std::nullopt;
  }
  errno = 0;
  char* end = nullptr;
  long long value = std::strtoll(text.c_str(), &end, 10);
  if (errno == ERANGE || end != text.c_str() + text.size()) return std::nullopt;
  return static_cast<int64_t>(value);
}

// A time argument: digits are Unix seconds (sent as a JSON integer), anything
// else is passed on as an RFC 3339 string for the service to validate.
Json timeValue(std::string_view flag, const std::string& text) {
  if (text.empty())
    throw UsageError{std::string(flag) + " needs a time (RFC 3339 or Unix seconds)"};
  size_t digitsFrom = text[0] == '-' ? 1 : 0;
  bool numeric = text.size() > digitsFrom &&
                 text.find_first_not_of("0123456789", digitsFrom) == std::string::npos;
  if (numeric) {
    std::optional<int64_t> seconds = parseInt64(text);
    if (!seconds) {
      throw UsageError{std::string(flag) + ": '" + sanitize(text) + "' is not a valid number"};
    }
    return *seconds;
  }
  return text;
}

struct CommandSpec {
  std::string_view name;
  std::vector<std::string_view> positionals;  // names, for messages
  std::set<std::string_view> flags;           // allowed command flags
  bool needsSecret;
};

const std::vector<CommandSpec>& commandSpecs() {
  static const std::vector<CommandSpec> kSpecs = {
      {"create", {"USER"}, {"--description", "--kind", "--destination-id", "--expires-at"}, true},
      {"list", {"USER"}, {}, true},
      {"get", {"USER", "KEY"}, {}, true},
      {"activate", {"USER", "KEY"}, {}, true},
      {"deactivate", {"USER", "KEY"}, {"--reason", "--effective-at"}, true},
      {"rotate", {"USER", "KEY"}, {"--grace-seconds"}, true},
      {"history", {"USER", "KEY"}, {}, true},
      {"verify", {"KEY:TOKEN"}, {"--stdin"}, false},
      {"help", {}, {}, false},
  };
  return kSpecs;
}

const std::set<std::string_view> kCommandValueFlags = {
    "--description", "--kind",         "--destination-id", "--expires-at",
    "--reason",      "--effective-at", "--grace-seconds"};
const std::set<std::string_view> kCommandBoolFlags = {"--stdin"};

struct Arguments {
  std::optional<std::string> url;
  std::optional<std::string> secretFile;
  std::optional<std::string> timeout;
  bool json = false;
  bool help = false;
  std::string command;
  std::vector<std::string> positionals;
  std::map<std::string, std::string, std::less<>> flags;  // "--stdin" maps to ""
};

Arguments parseArguments(int argc, char** argv) {
  Arguments args;
  std::optional<std::string> firstError;
  auto fail = [&](std::string message) {
    if (!firstError) firstError = std::move(message);
  };
  std::set<std::string> seen;
  bool onlyPositionals = false;

  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (onlyPositionals || arg.size() < 2 || arg[0] != '-') {
      if (args.command.empty()) {
        args.command = arg;
      } else {
        args.positionals.push_back(arg);
      }
      continue;
    }
    if (arg == "--") {
      onlyPositionals = true;
      continue;
    }
    std::string name = arg;
    std::optional<std::string> inlineValue;
    if (size_t eq = arg.find('='); arg.rfind("--", 0) == 0 && eq != std::string::npos) {
      name = arg.substr(0, eq);
      inlineValue = arg.substr(eq + 1);
    }
    if (name == "-h" || name == "--help") {
      args.help = true;
      continue;
    }
    bool global = name == "--url" || name == "--secret-file" || name == "--timeout";
    bool boolean = name == "--json" || kCommandBoolFlags.count(name) > 0;
    bool valued = global || kCommandValueFlags.count(name) > 0;
    if (!boolean && !valued) {
      fail("unknown option '" + sanitize(name) + "'");
      continue;
    }
    if (!seen.insert(name).second) fail("option " + name + " given more than once");
    if (boolean) {
      if (inlineValue) fail("option " + name + " takes no value");
      if (name == "--json") {
        args.json = true;
      } else {
        args.flags[name] = "";
      }
      continue;
    }
    std::string value;
    if (inlineValue) {
      value = *inlineValue;
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      fail("option " + name + " needs a value");
      continue;
    }
    if (name == "--url") {
      args.url = value;
    } else if (name == "--secret-file") {
      args.secretFile = value;
    } else if (name == "--timeout") {
      args.timeout = value;
    } else {
      args.flags[name] = value;
    }
  }
  if (args.help || args.command == "help") {
    args.help = true;
    return args;
  }
  if (firstError) throw UsageError{*firstError};
  return args;
}

const CommandSpec& validateCommand(const Arguments& args) {
  if (args.command.empty()) throw UsageError{"no command given"};
  const CommandSpec* spec = nullptr;
  for (const CommandSpec& candidate : commandSpecs()) {
    if (candidate.name == args.command) spec = &candidate;
  }
  if (spec == nullptr) throw UsageError{"unknown command '" + sanitize(args.command) + "'"};

  for (const auto& [flag, value] : args.flags) {
    if (spec->flags.count(flag) == 0) {
      throw UsageError{"option " + flag + " is not valid for '" + std::string(spec->name) + "'"};
    }
  }
  size_t expected = spec->positionals.size();
  if (spec->name == "verify" && args.flags.count("--stdin")) expected = 0;
  std::string synopsis = std::string(spec->name);
  for (std::string_view p : spec->positionals) synopsis += " " + std::string(p);
  if (args.positionals.size() < expected) {
    throw UsageError{"missing " + std::string(spec->positionals[args.positionals.size()]) +
                     " (usage: tokenctl " + synopsis + ")"};
  }
  if (args.positionals.size() > expected) {
    // Never echo the extra argument: it may be a secret typed in the wrong place.
    if (spec->name == "verify") {
      throw UsageError{"verify takes either KEY:TOKEN or --stdin, not both or more"};
    }
    throw UsageError{"too many arguments (usage: tokenctl " + synopsis + ")"};
  }
  if (spec->positionals.size() >= 1 && spec->positionals[0] == "USER") {
    check(checkUserId(args.positionals[0]));
  }
  if (spec->positionals.size() >= 2 && spec->positionals[1] == "KEY") {
    checkKeyArgument(args.positionals[1]);
  }
  return *spec;
}

std::string flagOr(const Arguments& args, std::string_view flag, std::string fallback = {}) {
  auto it = args.flags.find(flag);
  return it == args.flags.end() ? fallback : it->second;
}

bool hasFlag(const Arguments& args, std::string_view flag) {
  return args.flags.find(flag) != args.flags.end();
}

// ---------------------------------------------------------------- configuration

std::string envOr(std::string_view name, std::string fallback) {
  const char* value = std::getenv(std::string(name).c_str());
  return value != nullptr && value[0] != '\0' ? std::string(value) : fallback;
}

std::string resolveUrl(const Arguments& args) {
  std::string url = args.url ? *args.url : envOr(kUrlEnv, std::string(kDefaultUrl));
  if (url.rfind("http://", 0) != 0 && url.rfind("https://", 0) != 0) {
    throw UsageError{"the service URL must start with http:// or https:// (got '" + sanitize(url) +
                     "')"};
  }
  while (url.size() > 8 && url.back() == '/') url.pop_back();
  return url;
}

std::chrono::milliseconds resolveTimeout(const Arguments& args) {
  if (!args.timeout) {
    return std::chrono::milliseconds(static_cast<int64_t>(kDefaultTimeoutSeconds * 1000));
  }
  const std::string& text = *args.timeout;
  char* end = nullptr;
  errno = 0;
  double seconds = text.empty() ? NAN : std::strtod(text.c_str(), &end);
  bool parsed = !text.empty() && errno == 0 && end == text.c_str() + text.size() &&
                std::isfinite(seconds) && text.find_first_of("xXpPnNiI") == std::string::npos;
  if (!parsed || seconds <= 0 || seconds > kMaxTimeoutSeconds) {
    throw UsageError{"--timeout: '" + sanitize(text) +
                     "' is not a number of seconds greater than 0 and at most 86400"};
  }
  return std::chrono::milliseconds(std::max<int64_t>(1, std::llround(seconds * 1000)));
}

struct OperatorSecret {
  std::string value;
  std::string source;  // for messages: where the secret came from, never the secret
};

std::optional<std::string> readSecretFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream content;
  content << in.rdbuf();
  if (in.bad()) return std::nullopt;
  return trimRight(content.str());
}

OperatorSecret resolveSecret(const Arguments& args) {
  OperatorSecret secret;
  const std::string envName(kSecretEnv);
  if (const char* env = std::getenv(envName.c_str()); env != nullptr && env[0] != '\0') {
    secret = {trimRight(env), "$" + envName};
  } else if (args.secretFile) {
    std::optional<std::string> content = readSecretFile(*args.secretFile);
    if (!content) {
      throw LocalError{"cannot read the operator secret file '" + sanitize(*args.secretFile) +
                       "' (--secret-file)"};
    }
    secret = {*content, "--secret-file " + sanitize(*args.secretFile)};
  } else if (::access(std::string(kDefaultSecretFile).c_str(), R_OK) == 0) {
    std::optional<std::string> content = readSecretFile(std::string(kDefaultSecretFile));
    if (content) secret = {*content, std::string(kDefaultSecretFile)};
  }
  if (secret.source.empty()) {
    throw LocalError{"no operator secret: set " + envName +
                     " or pass --secret-file FILE (no readable " + std::string(kDefaultSecretFile) +
                     " either)"};
  }
  if (secret.value.empty())
    throw LocalError{"the operator secret from " + secret.source + " is empty"};
  for (char c : secret.value) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      throw LocalError{"the operator secret from " + secret.source +
                       " contains control characters"};
    }
  }
  return secret;
}

// ---------------------------------------------------------------- commands

struct Call {
  HttpRequest request;
  std::optional<std::string> verifyCredential;  // verify: "KEY:TOKEN"
};

std::string jsonBody(const Json& body) {
  return body.dump();
}

Call buildCall(const Arguments& args, const std::string& base) {
  const std::string& command = args.command;
  Call call;
  HttpRequest& req = call.request;
  req.headers.push_back("Accept: application/json");
  if (command == "verify") {
    std::string credential;
    if (hasFlag(args, "--stdin")) {
      std::getline(std::cin, credential);
      credential = trimRight(credential);
      if (credential.empty()) throw UsageError{"verify --stdin: no KEY:TOKEN on standard input"};
    } else {
      credential = args.positionals[0];
    }
    if (credential.find(':') == std::string::npos || credential.front() == ':' ||
        credential.back() == ':') {
      throw UsageError{"verify needs KEY:TOKEN (the key, a colon, then the secret token)"};
    }
    req.method = "POST";
    req.url = base + "/v1/verify";
    req.headers.push_back("Authorization: Basic " + base64Encode(credential));
    call.verifyCredential = credential;
    return call;
  }

  const std::string& user = args.positionals[0];
  std::string tokens = base + "/v1/users/" + user + "/tokens";
  if (command == "create") {
    if (!hasFlag(args, "--description")) {
      throw UsageError{"create needs --description TEXT"};
    }
    Json body = Json::object();
    std::string description;
    check(checkDescription(flagOr(args, "--description"), description));
    body["description"] = description;
    std::string kind = flagOr(args, "--kind", "user");
    if (kind != "user" && kind != "destination") {
      throw UsageError{"--kind must be 'user' or 'destination', not '" + sanitize(kind) + "'"};
    }
    if (hasFlag(args, "--kind")) body["kind"] = kind;
    if (kind == "destination" && !hasFlag(args, "--destination-id")) {
      throw UsageError{"--kind destination needs --destination-id ID"};
    }
    if (hasFlag(args, "--destination-id")) {
      if (kind != "destination") {
        throw UsageError{"--destination-id is only allowed with --kind destination"};
      }
      check(checkDestinationId(flagOr(args, "--destination-id")));
      body["destination_id"] = flagOr(args, "--destination-id");
    }
    if (hasFlag(args, "--expires-at")) {
      body["expires_at"] = timeValue("--expires-at", flagOr(args, "--expires-at"));
    }
    req.method = "POST";
    req.url = tokens;
    req.body = jsonBody(body);
    return call;
  }
  if (command == "list") {
    req.url = tokens;
    return call;
  }
  std::string token = tokens + "/" + args.positionals[1];
  if (command == "get") {
    req.url = token;
  } else if (command == "history") {
    req.url = token + "/history";
  } else if (command == "activate") {
    req.method = "POST";
    req.url = token + "/activate";
    req.body = "{}";
  } else if (command == "deactivate") {
    Json body = Json::object();
    if (hasFlag(args, "--reason")) {
      static const std::set<std::string, std::less<>> kReasons = {"manual", "rotation",
                                                                  "compromised", "expired", "bulk"};
      std::string reason = flagOr(args, "--reason");
      if (kReasons.count(reason) == 0) {
        throw UsageError{"--reason must be one of manual, rotation, compromised, expired, bulk"};
      }
      body["reason"] = reason;
    }
    if (hasFlag(args, "--effective-at")) {
      body["effective_at"] = timeValue("--effective-at", flagOr(args, "--effective-at"));
    }
    req.method = "POST";
    req.url = token + "/deactivate";
    req.body = jsonBody(body);
  } else if (command == "rotate") {
    Json body = Json::object();
    if (hasFlag(args, "--grace-seconds")) {
      std::string text = flagOr(args, "--grace-seconds");
      std::optional<int64_t> seconds = parseInt64(text);
      if (!seconds || *seconds < 0) {
        throw UsageError{"--grace-seconds: '" + sanitize(text) +
                         "' is not a whole number of seconds (0 or more)"};
      }
      body["grace_seconds"] = *seconds;
    }
    req.method = "POST";
    req.url = token + "/rotate";
    req.body = jsonBody(body);
  }
  return call;
}

std::string listSection(std::string_view title, const std::vector<const Json*>& tokens,
                        const std::vector<size_t>& widths) {
  std::string out = std::string(title) + "\n";
  if (tokens.empty()) return out + "  (none)\n";
  auto row = [&](const std::vector<std::string>& cells) {
    std::string line;
    for (size_t i = 0; i < cells.size(); ++i) {
      line += i + 1 < cells.size() ? padRight(cells[i], widths[i] + 2) : cells[i];
    }
    return trimRight(line) + "\n";
  };
  out += row({"KEY", "KIND", "STATUS", "CREATED", "DESCRIPTION"});
  for (const Json* t : tokens) {
    out += row({field(*t, "key"), field(*t, "kind"), field(*t, "status"), field(*t, "created_at"),
                field(*t, "description")});
  }
  return out;
}

std::string formatList(const Json& body) {
  std::vector<const Json*> userTokens, destinationTokens;
  std::vector<size_t> widths = {3, 4, 6, 7};
  if (body.contains("tokens") && body["tokens"].is_array()) {
    for (const Json& t : body["tokens"]) {
      (field(t, "kind") == "destination" ? destinationTokens : userTokens).push_back(&t);
      widths[0] = std::max(widths[0], field(t, "key").size());
      widths[1] = std::max(widths[1], field(t, "kind").size());
      widths[2] = std::max(widths[2], field(t, "status").size());
      widths[3] = std::max(widths[3], field(t, "created_at").size());
    }
  }
  return listSection("User tokens", userTokens, widths) + "\n" +
         listSection("Destination tokens", destinationTokens, widths);
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

std::string formatSuccess(const std::string& command, const Json& body) {
  if (command == "list") return formatList(body);
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

// The service's body on one line: unchanged unless it spans several lines.
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

int run(int argc, char** argv, Printer& printer) {
  Arguments args = parseArguments(argc, argv);
  if (args.help) {
    printer.out(kUsage);
    return kExitOk;
  }
  const CommandSpec& spec = validateCommand(args);
  const std::string base = resolveUrl(args);
  const std::chrono::milliseconds timeout = resolveTimeout(args);

  std::optional<OperatorSecret> secret;
  if (spec.needsSecret) {
    secret = resolveSecret(args);
    printer.addSecret(secret->value);
  }
  Call call = buildCall(args, base);
  if (call.verifyCredential) {
    printer.addSecret(*call.verifyCredential);
    size_t colon = call.verifyCredential->find(':');
    printer.addSecret(call.verifyCredential->substr(colon + 1));
  }
  if (secret) call.request.headers.push_back("Authorization: Bearer " + secret->value);
  if (call.request.body) call.request.headers.push_back("Content-Type: application/json");

  CurlGlobal curlGlobal;
  if (!curlGlobal.ok()) throw LocalError{"could not initialize libcurl"};
  std::unique_ptr<HttpClient> client = newCurlHttpClient(timeout, "tokenctl/0.1");
  HttpResponse response;
  TransportError transportError;
  if (!client->perform(call.request, response, transportError)) {
    throw LocalError{"cannot reach tokenledgerd at " + base + ": " +
                     sanitize(transportError.message) + "; is it running?"};
  }

  Json body = Json::parse(response.body, nullptr, /*allow_exceptions=*/false);
  const bool ok = response.status >= 200 && response.status < 300;
  const std::string status = std::to_string(response.status);

  if (args.json && (ok || !body.is_discarded())) printer.out(oneLine(response.body) + "\n");

  if (ok) {
    if (args.json) return kExitOk;
    if (body.is_discarded() || !body.is_object()) {
      printer.err("error: unexpected answer from tokenledgerd (HTTP " + status +
                  "): the body is not a JSON object\n");
      return kExitRefused;
    }
    printer.out(formatSuccess(args.command, body));
    return kExitOk;
  }

  if (args.command == "verify" && response.status == 401 && body.is_object() &&
      body.contains("valid")) {
    if (!args.json) printer.out("invalid: " + field(body, "reason") + "\n");
    return kExitRefused;
  }
  if (body.is_object() && body.contains("error") && body["error"].is_object()) {
    const Json& error = body["error"];
    printer.err("error: " + field(error, "message") + " (" + field(error, "code") + ", HTTP " +
                status + ")\n");
    if (response.status == 401 && secret) {
      printer.err("hint: the operator secret was taken from " + secret->source + "\n");
    }
  } else {
    std::string snippet = sanitize(trimRight(response.body).substr(0, 200));
    printer.err("error: tokenledgerd answered HTTP " + status +
                (snippet.empty() ? std::string() : ": " + snippet) + "\n");
  }
  return kExitRefused;
}

}  // namespace
}  // namespace tokenledger::tools

int main(int argc, char** argv) {
  using namespace tokenledger::tools;
  Printer printer;
  try {
    return run(argc, argv, printer);
  } catch (const UsageError& e) {
    printer.err("error: " + e.message + "\nrun tokenctl --help for usage\n");
    return kExitUsage;
  } catch (const LocalError& e) {
    printer.err("error: " + e.message + "\n");
    return kExitUsage;
  } catch (const std::exception& e) {
    printer.err(std::string("error: internal error in tokenctl: ") + e.what() + "\n");
    return kExitUsage;
  }
}
