// ledger-audit: answers auditors' questions from the event log itself (embedded
// data directory or Kafka topic), never through the service: rotation history,
// point-in-time validity, the rotation policy, offline rebuilds and comparisons of
// read models, and tamper evidence (signatures, order, completeness).
// docs/audit.md describes every command, its output and its exit status; this file
// reads the command line and runs one command (ledger_audit_commands.h).
#include <signal.h>

#include <initializer_list>
#include <iostream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "events/secrets.h"
#include "tools/ledger_audit_commands.h"
#include "tools/ledger_audit_replay.h"
#include "tools/ledger_audit_text.h"

using namespace tokenledger;
using namespace tokenledger::audit;

namespace {

constexpr const char* kUsage = R"(usage: ledger-audit [LOG] [--quiet] COMMAND [OPTIONS]

Reads the event log from the beginning (never through the service) and answers:

  history --user U [--key K] [--format text|json|csv]
      every token of U with its lifecycle and rotation lineage (K: only K's lineage)
  at --key K --time T [--format text|json]
      was K valid at T, and which event decided it, twice: as known now (every
      event counts from its effective time, also one recorded after T, such as a
      compromise effective in the past) and as recorded at T (only the events
      recorded by T); says when they differ. Exit 0 valid, 1 not valid, as known now
  at --user U --time T [--format text|json]
      U's tokens valid at T as known now or as recorded at T, both views each
      (exit 0 if any is valid as known now, 1 if none)
  policy --max-age DAYS [--now T] [--format text|json]
      tokens active longer than DAYS without rotation, per user (exit 1 if any)
  policy --unused-days DAYS [--usage-topic NAME] [--now T] [--format text|json]
      active tokens not verified successfully for DAYS days or more (never used:
      counted from their creation, so younger tokens are not listed), per user
      (exit 1 if any). Uses come from DIR/usage, or on Kafka the usage topic
      (default TOPIC.usage)
  rebuild --out DIR
      builds a read model from the log into DIR (which must not hold one)
  verify-projection --projection DIR
      replays the log up to DIR's applied positions and compares; prints each
      difference (exit 1 on any)
  verify-log [--checkpoint FILE]
      checks every signature and the order and completeness of each writer's
      events; names the first bad event (exit 1 on any problem)
  keys new-root --out FILE
      makes the operator's root key: FILE (secret, mode 0600, keep it offline) and
      FILE.pub (give it to every replica with --trust-root, and to ledger-audit)
  keys certify --root FILE --writer-key LINE --out CERT
      certifies a writer key (LINE as `tokenledgerd --print-writer-key` prints it);
      CERT goes to that writer's data directory as writer.cert

LOG (default --data-dir ./data):
  --data-dir DIR                 the embedded log in DIR/log (read-only; the
                                 daemon may keep running)
  --log kafka --kafka-brokers B [--topic T]
                                 a Kafka topic (default token-events)
  --timeout SECONDS              Kafka connection timeout (default 10)
  --quiet                        no progress bar (it shows only on a terminal)

TRUST (as the replicas apply it; events of other writers count as not applied):
  --root FILE                    a trust root's public key (repeatable; default
                                 DIR/trust-root.pub when it exists): writer keys
                                 it certified in the log are trusted
  --keys FILE                    writer keys trusted everywhere (repeatable; lines
                                 "KEY_ID BASE64_PUBLIC_KEY"), default
                                 DIR/signing-keys.pub. On Kafka give --root or --keys.

T: RFC 3339 (2026-11-28T10:00:00Z, fractions and +hh:mm offsets allowed) or Unix
seconds.

Exit status: 0 ok, 1 a negative answer or a problem found (including malformed
events, which are reported with their position while the replay goes on),
2 usage error, unreadable log or unreachable broker, 130 interrupted.
)";

// The command line, checked: a known command, its options, a log to read.
struct CommandLine {
  bool help = false;  // --help: print kUsage, nothing else
  Options log;
  std::string command;
  std::map<std::string, std::string> opts;  // the command's options, by flag
  std::string keysCommand;                  // keys: new-root or certify
  std::string format = "text";

  std::string get(const std::string& name) const {
    auto it = opts.find(name);
    return it == opts.end() ? std::string() : it->second;
  }
  // The value of `name`; throws UsageError when it is missing or empty.
  std::string need(const std::string& name, const std::string& what) const {
    std::string v = get(name);
    if (v.empty()) throw UsageError(command + " needs " + name + " " + what);
    return v;
  }
  // Throws UsageError for an option `command` does not take.
  void allowOnly(std::initializer_list<const char*> allowed) const {
    for (const auto& [k, v] : opts) {
      bool ok = k == "--format";
      for (const char* a : allowed) ok = ok || k == a;
      if (!ok) throw UsageError(k + " does not apply to " + command);
    }
  }
};

// Reads the arguments; throws UsageError for the first thing wrong with them.
CommandLine parseCommandLine(const std::vector<std::string>& args) {
  CommandLine c;
  Options& o = c.log;
  const std::set<std::string> commands = {"history",           "at",         "policy", "rebuild",
                                          "verify-projection", "verify-log", "keys"};
  const std::set<std::string> valued = {
      "--user",     "--key",         "--time",       "--format",     "--max-age",
      "--now",      "--out",         "--projection", "--checkpoint", "--writer-key",
      "--root-key", "--unused-days", "--usage-topic"};
  for (size_t i = 0; i < args.size(); ++i) {
    std::string a = args[i];
    std::string inlineValue;
    bool hasInline = false;
    if (a.starts_with("--") && a.find('=') != std::string::npos) {
      inlineValue = a.substr(a.find('=') + 1);
      a = a.substr(0, a.find('='));
      hasInline = true;
    }
    auto value = [&]() -> std::string {
      if (hasInline) return inlineValue;
      if (i + 1 >= args.size()) throw UsageError(a + " needs a value");
      return args[++i];
    };
    if (a == "--help" || a == "-h" || a == "help") {
      c.help = true;
      return c;
    } else if (a == "--data-dir") {
      o.dataDir = value();
      o.dataDirGiven = true;
    } else if (a == "--log") {
      o.log = value();
      if (o.log != "embedded" && o.log != "kafka")
        throw UsageError("--log wants embedded or kafka (got \"" + o.log + "\")");
    } else if (a == "--kafka-brokers") {
      o.kafka.brokers = value();
    } else if (a == "--topic") {
      o.kafka.topic = value();
    } else if (a == "--timeout") {
      std::string v = value();
      if (v.empty() || v.size() > 4 || v.find_first_not_of("0123456789") != std::string::npos ||
          std::stoi(v) < 1)
        throw UsageError("--timeout wants seconds (1-9999)");
      o.kafka.timeoutMs = std::stoi(v) * 1000;
    } else if (a == "--quiet" || a == "-q") {
      o.quiet = true;
    } else if (a == "--keys") {
      o.keyFiles.push_back(value());
    } else if (a == "--root" && c.command == "keys") {
      c.opts["--root-key"] = value();  // the secret root key to certify with
    } else if (a == "--root") {
      o.rootFiles.push_back(value());
    } else if (!a.starts_with("-") && c.command == "keys" && c.keysCommand.empty()) {
      if (a != "new-root" && a != "certify")
        throw UsageError("keys wants new-root or certify (got \"" + a + "\")");
      c.keysCommand = a;
    } else if (valued.count(a)) {
      c.opts[a] = value();
    } else if (!a.starts_with("-") && c.command.empty() && commands.count(a)) {
      c.command = a;
    } else if (!a.starts_with("-") && c.command.empty()) {
      throw UsageError("unknown command " + a);
    } else {
      throw UsageError("unknown option " + a);
    }
  }
  if (c.command.empty()) throw UsageError("no command given");
  if (c.command == "keys" && c.keysCommand.empty())
    throw UsageError("keys wants new-root or certify");
  if (o.log == "kafka" && o.kafka.brokers.empty())
    throw UsageError("--log kafka needs --kafka-brokers HOST:PORT");
  if (o.log != "kafka" && !o.kafka.brokers.empty())
    throw UsageError("--kafka-brokers needs --log kafka");
  if (o.log == "kafka" && o.dataDirGiven)
    throw UsageError(
        "--data-dir is for the embedded log; with --log kafka pass --root and/or --keys");
  if (c.opts.count("--format")) c.format = c.opts["--format"];
  bool csvAllowed = c.command == "history";
  if (c.format != "text" && c.format != "json" && !(csvAllowed && c.format == "csv"))
    throw UsageError(std::string("--format wants text or json") + (csvAllowed ? " or csv" : ""));
  return c;
}

// Runs the command `c` names; throws as the commands do (ledger_audit_commands.h)
// and UsageError for an option the command does not take.
int run(const CommandLine& c) {
  const Options& o = c.log;
  if (c.command == "history") {
    c.allowOnly({"--user", "--key"});
    return cmdHistory(o, c.need("--user", "USER"), c.get("--key"), c.format);
  }
  if (c.command == "at") {
    c.allowOnly({"--user", "--key", "--time"});
    std::string user = c.get("--user"), key = c.get("--key");
    if (user.empty() == key.empty()) throw UsageError("at needs either --key K or --user U");
    Timestamp t = requireTime("--time", c.need("--time", "T (RFC 3339 or Unix seconds)"));
    return cmdAt(o, user, key, t, c.format);
  }
  if (c.command == "policy") {
    c.allowOnly({"--max-age", "--now", "--unused-days", "--usage-topic"});
    bool unused = c.opts.count("--unused-days") > 0;
    if (unused == (c.opts.count("--max-age") > 0))
      throw UsageError("policy needs either --max-age DAYS or --unused-days DAYS");
    const char* flag = unused ? "--unused-days" : "--max-age";
    std::string days = c.need(flag, "DAYS");
    if (days.size() > 6 || days.find_first_not_of("0123456789") != std::string::npos)
      throw UsageError(std::string(flag) + " wants a whole number of days");
    Timestamp now = c.opts.count("--now") ? requireTime("--now", c.get("--now")) : audit::now();
    if (unused)
      return cmdUnused(o, std::chrono::days{std::stoll(days)}, now, c.format,
                       c.get("--usage-topic"));
    if (c.opts.count("--usage-topic")) throw UsageError("--usage-topic goes with --unused-days");
    return cmdPolicy(o, std::chrono::days{std::stoll(days)}, now, c.format);
  }
  if (c.command == "rebuild") {
    c.allowOnly({"--out"});
    return cmdRebuild(o, c.need("--out", "DIR"));
  }
  if (c.command == "verify-projection") {
    c.allowOnly({"--projection"});
    return cmdVerifyProjection(o, c.need("--projection", "DIR"));
  }
  if (c.command == "keys") {
    if (!o.rootFiles.empty() || !o.keyFiles.empty())
      throw UsageError("keys " + c.keysCommand + " reads no log: --keys does not apply");
    if (c.keysCommand == "new-root") {
      c.allowOnly({"--out"});
      return cmdKeysNewRoot(c.need("--out", "FILE"));
    }
    c.allowOnly({"--root-key", "--writer-key", "--out"});
    return cmdKeysCertify(c.need("--root-key", "FILE (the root key)"),
                          c.need("--writer-key", "LINE"), c.need("--out", "CERT"));
  }
  c.allowOnly({"--checkpoint"});
  return cmdVerifyLog(o, c.get("--checkpoint"));
}

}  // namespace

int main(int argc, char** argv) {
  try {
    CommandLine c = parseCommandLine(std::vector<std::string>(argv + 1, argv + argc));
    if (c.help) {
      std::cout << kUsage;
      return 0;
    }
    stopReplaysOnSigint();
    ::signal(SIGPIPE, SIG_IGN);
    initCrypto();
    return run(c);
  } catch (const Interrupted&) {
    std::cerr << "\nledger-audit: interrupted; no answer was given (the log is unchanged)\n";
    return 130;
  } catch (const UsageError& e) {
    std::cerr << "ledger-audit: " << e.what() << "\n";
    if (e.seeHelp()) std::cerr << "run ledger-audit --help for usage\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "ledger-audit: " << e.what() << "\n";
    return 2;
  }
}
