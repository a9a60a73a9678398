// tokenledgerd as a class: everything main() does, with the clock and the log
// sink injected, so tests drive the real server in-process or as a process.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "events/clock.h"
#include "events/event_log.h"
#include "events/signing.h"
#include "events/trust.h"
#include "projections/projector.h"
#include "service/log_line.h"

namespace tokenledger {

struct DaemonOptions {
  std::string dataDir = "./data";
  std::string listenHost = "127.0.0.1";
  uint16_t listenPort = 8080;
  std::string log = "embedded";  // or "kafka"
  std::string kafkaBrokers;
  std::string topic = "token-events";
  int partitions = 6;
  // Durability on Kafka (events/kafka_log.h): -1 = the broker's default.
  int replicationFactor = -1;
  int minInsyncReplicas = -1;
  int appendTimeoutMs = 10000;
  int httpThreads = 2;
  int commandThreads = 16;  // concurrent commands (each waits for the log and the projection)
  // Open HTTP connections; 0: defaultMaxConnections() of the open-files limit.
  size_t maxConnections = 0;
  uint64_t mapSizeBytes = 64ull << 30;
  int maxPositionWaiters = 1000;  // verifications waiting for a min_position at once
  std::string operatorSecret;     // empty: DATA_DIR/operator-secret, generated if missing
  // Trusted writers (events/trust.h, docs/kafka.md "Trusted writers"):
  // root public keys ("KEY_ID BASE64" lines; none given: DATA_DIR/trust-root.pub if
  // it exists), writer keys trusted on every partition (e.g. of a migrated log), and
  // this writer's certificate (empty: DATA_DIR/writer.cert).
  std::vector<std::string> trustRootFiles;
  std::vector<std::string> trustKeysFiles;
  std::string writerCertFile;
  // --reader-group: a group (name or numeric gid) that may read the read model, for
  // libtokenledger_verify (docs/verify-library.md); empty: only the daemon's user.
  std::string readerGroup;
  // Last used (issue 17): recorded and shown unless off; flushed every this often;
  // on Kafka to this topic (empty: TOPIC.usage).
  bool lastUsed = true;
  int lastUsedFlushMs = 60000;
  std::string usageTopic;
};

// --last-used-flush-ms below this is refused: each flush is an LMDB commit (and a
// Kafka round trip).
constexpr int kMinLastUsedFlushMs = 100;

class Daemon {
 public:
  virtual ~Daemon() = default;
  virtual std::string address() const = 0;               // "HOST:PORT" bound
  virtual std::string operatorSecretSource() const = 0;  // where the secret comes from
  virtual void run() = 0;   // until stop(); drains in-flight commands first
  virtual void stop() = 0;  // thread-safe
};

// Descriptors kept for everything but connections (logs, LMDB, Kafka's sockets).
constexpr uint64_t kReservedFiles = 128;
// The default --max-connections: each idle connection costs a descriptor and about
// 1 KB, one mid-request up to libh2o's 1 MiB body limit for its 10 s request timeout.
constexpr uint64_t kDefaultMaxConnectionsCap = 16384;

// Connections that fit in `openFilesLimit` descriptors beside kReservedFiles.
uint64_t connectionsFitting(uint64_t openFilesLimit);

// min(connectionsFitting(limit), kDefaultMaxConnectionsCap).
uint64_t defaultMaxConnections(uint64_t openFilesLimit);

// Raises the soft RLIMIT_NOFILE to the hard limit; returns a line for the log.
std::string raiseOpenFilesLimit();

// Opens the data directory (locking it against a second daemon), the log, the
// read model, starts the projector and binds the listener. Throws
// std::runtime_error with a message for the operator. Commands are logged, with
// their request ids, to `commandLog` (default: as text lines to `logger`).
std::unique_ptr<Daemon> openDaemon(const DaemonOptions& options, const Clock& clock, Logger logger,
                                   LineLogger commandLog = {});

// Rebuilds DATA_DIR/projection from the log (the daemon must not run). Returns a
// one-line summary.
std::string rebuildProjection(const DaemonOptions& options, Logger logger);

// The same with an open log, for callers that hold the data directory's lock.
std::string replaceProjection(EventLog& log, const DaemonOptions& options, const Logger& logger);

// Whom a daemon with `options` trusts (events/trust.h); none (every well-formed
// event applies) in embedded mode without --trust-root or --trust-keys: on one
// machine whoever can write the log can write the read model too, so checks on apply
// would protect nothing, and logs written before signing existed keep working.
// Throws std::runtime_error when a file is missing or malformed, and on Kafka without
// a trust root or trusted keys (saying how to certify `key`, when given).
std::optional<TrustPolicy> trustPolicy(const DaemonOptions& options,
                                       const SigningKey* key = nullptr);

// Whom a daemon with `options` and writer key `key` trusts, and the certificate it
// publishes on every partition at start (none when its key is trusted as a writer
// key: embedded mode's own keys, or --trust-keys).
struct DaemonTrust {
  std::optional<TrustPolicy> policy;
  std::optional<WriterCertificate> certificate;
};
// Throws std::runtime_error, saying what to do, when a file is missing or malformed,
// the certificate is not for `key` or not by a trusted root, or `key` would not be
// trusted at all (its own events refused): on Kafka, without a trust root.
DaemonTrust daemonTrust(const DaemonOptions& options, const SigningKey& key);

// Gives the read model in `projectionDir` to `group` to read, as libtokenledger_verify
// needs (the directory 0710, data.mdb 0640, lock.mdb 0660: readers register in it),
// or, with no group, makes it private again (0700, 0600, 0600). Throws
// std::runtime_error saying what to do when the group is unknown or not the daemon's.
void shareProjection(const std::string& projectionDir, const std::string& group);

// Reads or creates DATA_DIR/operator-secret (mode 0600).
std::string loadOrCreateOperatorSecret(const std::string& dataDir);

// Reads or creates DATA_DIR/signing-key (the writer's Ed25519 key, mode 0600) and
// appends its public key to DATA_DIR/signing-keys.pub unless listed there already
// (old keys stay listed, so logs signed before a key change still verify).
// `created` tells whether the key was made now.
SigningKey loadOrCreateSigningKey(const std::string& dataDir, bool& created);

}  // namespace tokenledger
