// tokenctl's command line: global options, the command and its arguments, checked
// against the same rules as the service (events/rules.h) before anything is sent,
// and what they resolve to (service URL, timeout, operator secret). Everything
// wrong is a UsageError.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "tools/usage_error.h"

namespace tokenledger::tools::tokenctl {

struct CommandSpec {
  std::string_view name;
  std::vector<std::string_view> positionals;  // names, for messages
  std::set<std::string_view> flags;           // allowed command flags
  bool needsSecret;
};

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

// Reads the command line. Throws UsageError for the first thing wrong with it,
// unless help was asked for (args.help), which wins.
Arguments parseArguments(int argc, char** argv);

// The command's spec, once its options and arguments (USER and KEY included) are
// checked. Throws UsageError for the first thing wrong.
const CommandSpec& validateCommand(const Arguments& args);

// The value of a command flag, or `fallback` when it was not given.
std::string flagOr(const Arguments& args, std::string_view flag, std::string fallback = {});
bool hasFlag(const Arguments& args, std::string_view flag);

// Throws UsageError with `error`, a message of a rule of events/rules.h, if any.
void check(std::optional<std::string> error);
// A decimal integer, optionally negative; nullopt on anything else or overflow.
std::optional<int64_t> parseInt64(const std::string& text);

// --url, else $TOKENLEDGER_URL, else http://127.0.0.1:8080, without trailing
// slashes. Throws UsageError unless it starts with http:// or https://.
std::string resolveUrl(const Arguments& args);
// --timeout, else 30 s. Throws UsageError unless it is a number of seconds in
// (0, 86400].
std::chrono::milliseconds resolveTimeout(const Arguments& args);

struct OperatorSecret {
  std::string value;
  std::string source;  // for messages: where the secret came from, never the secret
};

// $TOKENLEDGER_OPERATOR_SECRET, else --secret-file, else ./data/operator-secret if
// readable. Throws UsageError (no pointer to --help) when there is none, it cannot
// be read, or it is empty or holds control characters.
OperatorSecret resolveSecret(const Arguments& args);

}  // namespace tokenledger::tools::tokenctl
