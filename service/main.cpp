// tokenledgerd: thin wrapper around Daemon: flags, signals, log sink.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>

#include "events/secrets.h"
#include "service/daemon.h"
#include "service/json.h"
#include "service/log_line.h"

using namespace tokenledger;

namespace {

constexpr const char* kUsage = R"(usage: tokenledgerd [options]

  --data-dir DIR       data directory (default ./data): event log, read model,
                       operator-secret
  --listen HOST:PORT   address to serve HTTP on (default 127.0.0.1:8080; port 0
                       picks a free port)
  --log embedded|kafka event log backend (default embedded: LMDB in DIR/log)
  --kafka-brokers B    with --log kafka: bootstrap brokers HOST:PORT[,HOST:PORT]
  --topic NAME         with --log kafka: the event topic (default token-events)
  --partitions N       with --log kafka: partitions when the topic is created
                       (default 6)
  --replication-factor N
                       with --log kafka: copies of each partition; the topic is
                       created with it, and an existing topic with fewer copies
                       is refused (default: the broker's default.replication.factor)
  --min-insync-replicas N
                       with --log kafka: copies that must have an event before it
                       is acknowledged (min.insync.replicas; producer acks=all);
                       set on the topic it creates, an existing topic with fewer
                       is refused (default: 2 with --replication-factor 3 or
                       more, 1 with 1 or 2, else the broker's default)
  --append-timeout-ms N
                       with --log kafka: how long a command waits for Kafka to
                       acknowledge its event before 503 log_unavailable (default
                       10000; above the brokers' leader failover time)
  --threads N          HTTP event-loop threads (default 2)
  --command-threads N  commands processed concurrently (default 16; 64 with
                       --log kafka, where each waits for a broker round trip)
  --max-connections N  open HTTP connections; past it a new one gets a 503 and
                       is closed (default: the open-files limit less 128, at
                       most 16384; the soft limit is raised to the hard one
                       at start)
  --map-size-mb N      LMDB size limit per database file (default 65536)
  --max-position-waiters N
                       verifications that may wait at once for a min_position
                       this replica has not applied (default 1000); more get 503
  --trust-root FILE    root public key(s) ("KEY_ID BASE64" lines, from ledger-audit
                       keys new-root) whose certified writers this replica trusts;
                       repeatable (default: DIR/trust-root.pub if present). Needed
                       with --log kafka
  --trust-keys FILE    writer public keys trusted on every partition without a
                       certificate (e.g. a log migrated from embedded mode);
                       repeatable
  --writer-cert FILE   this writer's certificate (default DIR/writer.cert),
                       published to every partition at start
  --print-writer-key   print this writer's public key line (creating the key if
                       needed) for `ledger-audit keys certify`, then exit
  --last-used on|off   record when each token last verified successfully, to the
                       minute, and show it as last_used_at (default on)
  --last-used-flush-ms N
                       how often the last-used data is written (default 60000,
                       at least 100): to DIR/usage, and with --log kafka to the
                       compacted usage topic
  --usage-topic NAME   with --log kafka: the usage topic (default TOPIC.usage)
  --rebuild            rebuild the read model from the log, then exit
  --reader-group GROUP let GROUP (a name or a numeric gid) read the read model,
                       for libtokenledger_verify in gateways on this host:
                       DIR and DIR/projection 0710, data.mdb 0640, lock.mdb 0660,
                       group GROUP (default: none, DIR is 0700). The daemon's
                       user must be in GROUP (docs/verify-library.md)
  --log-format text|json
                       the service log on stderr (and the start lines on stdout):
                       text, "TIME message key=value ..." (default), or json, one
                       object per line with time, level, message and fields
  --help               this text

The operator secret comes from TOKENLEDGER_OPERATOR_SECRET, else from
DIR/operator-secret (generated on first start, mode 0600). Events are signed
with DIR/signing-key (Ed25519, generated on first start, mode 0600); the public
keys are in DIR/signing-keys.pub and at GET /v1/keys (see ledger-audit).
Only events of trusted writers change the read model: in embedded mode DIR's own
keys, with no setup; on Kafka, writers certified by a --trust-root key
(docs/kafka.md, "Trusted writers").
Prints "listening on HOST:PORT" once it accepts connections. SIGTERM or SIGINT
finish in-flight requests and exit 0.
)";

std::mutex logMutex;
LogFormat logFormat = LogFormat::text;  // --log-format, set before any thread starts

void writeLine(const LogLine& line) {
  SystemClock clock;
  std::string text = formatLogLine(line, clock.now(), logFormat);
  std::lock_guard lock(logMutex);
  std::cerr << text << std::endl;
}

void logLine(const std::string& msg) {
  writeLine(plainLine(msg));
}

// A line on stdout ("listening on …"): as it is in text, as a log line in JSON.
void announce(const std::string& msg) {
  if (logFormat == LogFormat::text) {
    std::cout << msg << std::endl;
    return;
  }
  SystemClock clock;
  std::cout << formatLogLine(LogLine{"info", msg}, clock.now(), logFormat) << std::endl;
}

// A command line main() refuses: it prints the message and exits 2.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

bool parseUint(const std::string& s, uint64_t max, uint64_t& out) {
  if (s.empty() || s.size() > 20) return false;
  out = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    out = out * 10 + static_cast<uint64_t>(c - '0');
    if (out > max) return false;
  }
  return true;
}

struct Flags {
  DaemonOptions options;
  bool rebuild = false;
  bool printWriterKey = false;
  bool help = false;  // --help: print the usage, nothing else
  LogFormat logFormat = LogFormat::text;
};

// The command line as options. Throws UsageError.
Flags parseFlags(int argc, char** argv) {
  Flags flags;
  DaemonOptions& options = flags.options;
  bool commandThreadsSet = false;
  std::string kafkaOnly;  // the last option given that only Kafka mode takes
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw UsageError(a + " needs a value");
      return argv[++i];
    };
    // The option's value as a number in [min, max].
    auto number = [&](uint64_t min, uint64_t max) -> uint64_t {
      uint64_t n = 0;
      if (!parseUint(value(), max, n) || n < min)
        throw UsageError(a + " wants " + std::to_string(min) + "-" + std::to_string(max));
      return n;
    };
    if (a == "--help" || a == "-h") {
      flags.help = true;
      return flags;
    } else if (a == "--data-dir") {
      options.dataDir = value();
    } else if (a == "--reader-group") {
      options.readerGroup = value();
      if (options.readerGroup.empty()) throw UsageError("--reader-group wants a group name or gid");
    } else if (a == "--listen") {
      std::string v = value();
      auto colon = v.rfind(':');
      uint64_t port = 0;
      if (colon == std::string::npos || colon == 0 || !parseUint(v.substr(colon + 1), 65535, port))
        throw UsageError("--listen wants HOST:PORT, e.g. 127.0.0.1:8080 (got \"" + v + "\")");
      options.listenHost = v.substr(0, colon);
      if (options.listenHost.size() > 2 && options.listenHost.front() == '[' &&
          options.listenHost.back() == ']')
        options.listenHost = options.listenHost.substr(1, options.listenHost.size() - 2);
      options.listenPort = static_cast<uint16_t>(port);
    } else if (a == "--log") {
      options.log = value();
      if (options.log != "embedded" && options.log != "kafka")
        throw UsageError("--log wants embedded or kafka (got \"" + options.log + "\")");
    } else if (a == "--kafka-brokers") {
      options.kafkaBrokers = value();
    } else if (a == "--topic") {
      options.topic = value();
      if (options.topic.empty() || options.topic.size() > 249)
        throw UsageError("--topic wants a Kafka topic name (1-249 characters)");
    } else if (a == "--partitions") {
      options.partitions = static_cast<int>(number(1, 10000));
    } else if (a == "--replication-factor") {
      kafkaOnly = a;
      options.replicationFactor = static_cast<int>(number(1, 32767));
    } else if (a == "--min-insync-replicas") {
      kafkaOnly = a;
      options.minInsyncReplicas = static_cast<int>(number(1, 32767));
    } else if (a == "--append-timeout-ms") {
      kafkaOnly = a;
      options.appendTimeoutMs = static_cast<int>(number(1000, 600000));
    } else if (a == "--threads") {
      options.httpThreads = static_cast<int>(number(1, 64));
    } else if (a == "--command-threads") {
      options.commandThreads = static_cast<int>(number(1, 1024));
      commandThreadsSet = true;
    } else if (a == "--max-connections") {
      options.maxConnections = number(1, 1u << 20);
    } else if (a == "--map-size-mb") {
      options.mapSizeBytes = number(1, 1ull << 24) << 20;
    } else if (a == "--max-position-waiters") {
      options.maxPositionWaiters = static_cast<int>(number(1, 1000000));
    } else if (a == "--trust-root") {
      options.trustRootFiles.push_back(value());
    } else if (a == "--trust-keys") {
      options.trustKeysFiles.push_back(value());
    } else if (a == "--writer-cert") {
      options.writerCertFile = value();
    } else if (a == "--print-writer-key") {
      flags.printWriterKey = true;
    } else if (a == "--rebuild") {
      flags.rebuild = true;
    } else if (a == "--last-used") {
      std::string v = value();
      if (v != "on" && v != "off")
        throw UsageError("--last-used wants on or off (got \"" + v + "\")");
      options.lastUsed = v == "on";
    } else if (a == "--last-used-flush-ms") {
      uint64_t n = 0;
      std::string v = value();
      if (!parseUint(v, 86400000, n) || n < kMinLastUsedFlushMs)
        throw UsageError("--last-used-flush-ms wants milliseconds from " +
                         std::to_string(kMinLastUsedFlushMs) +
                         " (each flush is a disk commit, and a Kafka round trip) to 86400000; "
                         "got \"" +
                         v + "\"");
      options.lastUsedFlushMs = static_cast<int>(n);
    } else if (a == "--usage-topic") {
      kafkaOnly = a;
      options.usageTopic = value();
      if (options.usageTopic.empty() || options.usageTopic.size() > 249)
        throw UsageError("--usage-topic wants a Kafka topic name (1-249 characters)");
    } else if (a == "--log-format") {
      std::string v = value();
      auto format = parseLogFormat(v);
      if (!format) throw UsageError("--log-format wants text or json (got \"" + v + "\")");
      flags.logFormat = *format;
    } else {
      throw UsageError("unknown option " + a);
    }
  }
  if (options.log == "kafka" && !commandThreadsSet) options.commandThreads = 64;
  if (options.log == "kafka" && options.kafkaBrokers.empty())
    throw UsageError("--log kafka needs --kafka-brokers HOST:PORT");
  if (options.log != "kafka" && !options.kafkaBrokers.empty())
    throw UsageError("--kafka-brokers needs --log kafka");
  if (options.log != "kafka" && !kafkaOnly.empty())
    throw UsageError(kafkaOnly + " needs --log kafka");
  if (options.replicationFactor > 0 && options.minInsyncReplicas > options.replicationFactor)
    throw UsageError("--min-insync-replicas " + std::to_string(options.minInsyncReplicas) +
                     " is more than --replication-factor " +
                     std::to_string(options.replicationFactor) + ": every event would be refused");
  return flags;
}

}  // namespace

int main(int argc, char** argv) {
  Flags flags;
  try {
    flags = parseFlags(argc, argv);
  } catch (const UsageError& e) {
    std::cerr << "tokenledgerd: " << e.what() << "\nrun tokenledgerd --help for the options\n";
    return 2;
  }
  if (flags.help) {
    std::cout << kUsage;
    return 0;
  }
  DaemonOptions& options = flags.options;
  logFormat = flags.logFormat;

  // Signals go to a dedicated thread (sigwait), never to a random worker.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  try {
    initCrypto();
    if (flags.printWriterKey) {
      std::filesystem::create_directories(options.dataDir);
      bool created = false;
      std::cout << loadOrCreateSigningKey(options.dataDir, created).publicKeyLine() << std::endl;
      return 0;
    }
    if (flags.rebuild) {
      std::cout << rebuildProjection(options, logLine) << std::endl;
      return 0;
    }
    if (const char* env = std::getenv("TOKENLEDGER_OPERATOR_SECRET"); env && *env) {
      options.operatorSecret = env;
      if (options.operatorSecret.size() < 16) {
        std::cerr << "tokenledgerd: TOKENLEDGER_OPERATOR_SECRET is shorter than 16 characters; "
                     "use a long random value\n";
        return 2;
      }
    }
    // Idle connections each hold a descriptor: use all the hard limit allows.
    logLine(raiseOpenFilesLimit());
    SystemClock clock;
    auto daemon = openDaemon(options, clock, logLine, writeLine);
    announce("operator secret: " + daemon->operatorSecretSource());
    if (options.log == "kafka") {
      announce("event log: kafka topic " + options.topic + " on " + options.kafkaBrokers +
               "; read model in " + options.dataDir);
    } else {
      announce("event log: embedded in " + options.dataDir);
    }
    std::thread signalThread([&] {
      while (true) {
        timespec timeout{0, 200'000'000};
        int sig = sigtimedwait(&signals, nullptr, &timeout);
        if (sig == SIGTERM || sig == SIGINT) {
          logLine(std::string("received ") + (sig == SIGTERM ? "SIGTERM" : "SIGINT") +
                  ", finishing in-flight requests");
          daemon->stop();
          return;
        }
      }
    });
    announce("listening on " + daemon->address());
    daemon->run();
    signalThread.join();
    daemon.reset();
    logLine("stopped");
    return 0;
  } catch (const std::exception& e) {
    if (logFormat == LogFormat::json)
      writeLine(LogLine{"error", std::string("tokenledgerd: ") + e.what()});
    else
      std::cerr << "tokenledgerd: " << e.what() << std::endl;
    return 1;
  }
}
