#include "tools/tokenctl_args.h"

#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "events/rules.h"
#include "tools/tokenctl_output.h"

namespace tokenledger::tools::tokenctl {
namespace {

constexpr std::string_view kDefaultUrl = "http://127.0.0.1:8080";
constexpr std::string_view kUrlEnv = "TOKENLEDGER_URL";
constexpr std::string_view kSecretEnv = "TOKENLEDGER_OPERATOR_SECRET";
constexpr std::string_view kDefaultSecretFile = "./data/operator-secret";
constexpr double kDefaultTimeoutSeconds = 30;
constexpr double kMaxTimeoutSeconds = 24 * 3600;

// A local failure that no flag fixes: no pointer to --help.
constexpr auto kNoHint = UsageError::Hint::none;

const std::vector<CommandSpec>& commandSpecs() {
  static const std::vector<CommandSpec> kSpecs = {
      {"create", {"USER"}, {"--description", "--kind", "--destination-id", "--expires-at"}, true},
      {"list", {"USER"}, {"--kind", "--status", "--limit", "--cursor"}, true},
      {"deactivate-all", {"USER"}, {"--reason", "--kind", "--effective-at", "--yes"}, true},
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
    "--description",  "--kind",          "--destination-id", "--expires-at", "--reason",
    "--effective-at", "--grace-seconds", "--status",         "--limit",      "--cursor"};
const std::set<std::string_view> kCommandBoolFlags = {"--stdin", "--yes"};

// A token key goes into the URL path: only the characters a key can have.
void checkKeyArgument(const std::string& key) {
  bool ok = !key.empty() && key.size() <= kMaxIdLength;
  for (char c : key)
    ok = ok &&
         ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_');
  if (!ok) throw UsageError("invalid KEY '" + sanitize(key) + "': token keys look like tlk_...");
}

std::string envOr(std::string_view name, std::string fallback) {
  const char* value = std::getenv(std::string(name).c_str());
  return value != nullptr && value[0] != '\0' ? std::string(value) : fallback;
}

std::optional<std::string> readSecretFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream content;
  content << in.rdbuf();
  if (in.bad()) return std::nullopt;
  return trimRight(content.str());
}

}  // namespace

// The service checks the rules again; checking them here first sends no request
// that must fail.
void check(std::optional<std::string> error) {
  if (error) throw UsageError(*error);
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
  if (firstError) throw UsageError(*firstError);
  return args;
}

const CommandSpec& validateCommand(const Arguments& args) {
  if (args.command.empty()) throw UsageError("no command given");
  const CommandSpec* spec = nullptr;
  for (const CommandSpec& candidate : commandSpecs()) {
    if (candidate.name == args.command) spec = &candidate;
  }
  if (spec == nullptr) throw UsageError("unknown command '" + sanitize(args.command) + "'");

  for (const auto& [flag, value] : args.flags) {
    if (spec->flags.count(flag) == 0) {
      throw UsageError("option " + flag + " is not valid for '" + std::string(spec->name) + "'");
    }
  }
  size_t expected = spec->positionals.size();
  if (spec->name == "verify" && args.flags.count("--stdin")) expected = 0;
  std::string synopsis = std::string(spec->name);
  for (std::string_view p : spec->positionals) synopsis += " " + std::string(p);
  if (args.positionals.size() < expected) {
    throw UsageError("missing " + std::string(spec->positionals[args.positionals.size()]) +
                     " (usage: tokenctl " + synopsis + ")");
  }
  if (args.positionals.size() > expected) {
    // Never echo the extra argument: it may be a secret typed in the wrong place.
    if (spec->name == "verify") {
      throw UsageError("verify takes either KEY:TOKEN or --stdin, not both or more");
    }
    throw UsageError("too many arguments (usage: tokenctl " + synopsis + ")");
  }
  if (spec->positionals.size() >= 1 && spec->positionals[0] == "USER") {
    check(checkUserId(args.positionals[0]));
  }
  if (spec->positionals.size() >= 2 && spec->positionals[1] == "KEY") {
    checkKeyArgument(args.positionals[1]);
  }
  return *spec;
}

std::string flagOr(const Arguments& args, std::string_view flag, std::string fallback) {
  auto it = args.flags.find(flag);
  return it == args.flags.end() ? fallback : it->second;
}

bool hasFlag(const Arguments& args, std::string_view flag) {
  return args.flags.find(flag) != args.flags.end();
}

std::string resolveUrl(const Arguments& args) {
  std::string url = args.url ? *args.url : envOr(kUrlEnv, std::string(kDefaultUrl));
  if (url.rfind("http://", 0) != 0 && url.rfind("https://", 0) != 0) {
    throw UsageError("the service URL must start with http:// or https:// (got '" + sanitize(url) +
                     "')");
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
    throw UsageError("--timeout: '" + sanitize(text) +
                     "' is not a number of seconds greater than 0 and at most 86400");
  }
  return std::chrono::milliseconds(std::max<int64_t>(1, std::llround(seconds * 1000)));
}

OperatorSecret resolveSecret(const Arguments& args) {
  OperatorSecret secret;
  const std::string envName(kSecretEnv);
  if (const char* env = std::getenv(envName.c_str()); env != nullptr && env[0] != '\0') {
    secret = {trimRight(env), "$" + envName};
  } else if (args.secretFile) {
    std::optional<std::string> content = readSecretFile(*args.secretFile);
    if (!content) {
      throw UsageError("cannot read the operator secret file '" + sanitize(*args.secretFile) +
                           "' (--secret-file)",
                       kNoHint);
    }
    secret = {*content, "--secret-file " + sanitize(*args.secretFile)};
  } else if (::access(std::string(kDefaultSecretFile).c_str(), R_OK) == 0) {
    std::optional<std::string> content = readSecretFile(std::string(kDefaultSecretFile));
    if (content) secret = {*content, std::string(kDefaultSecretFile)};
  }
  if (secret.source.empty()) {
    throw UsageError("no operator secret: set " + envName +
                         " or pass --secret-file FILE (no readable " +
                         std::string(kDefaultSecretFile) + " either)",
                     kNoHint);
  }
  if (secret.value.empty())
    throw UsageError("the operator secret from " + secret.source + " is empty", kNoHint);
  for (char c : secret.value) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      throw UsageError("the operator secret from " + secret.source + " contains control characters",
                       kNoHint);
    }
  }
  return secret;
}

}  // namespace tokenledger::tools::tokenctl
