// ledger-audit's view of the event log, shared by its source files: which log the
// command line names (Options) and how records come out of it (LogSource). The
// tool reads the event log directly (events/ and projections/ libraries), never
// through the service. Errors the user can fix are UsageError (exit status 2).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "events/event_log.h"
#include "events/trust.h"
#include "tools/usage_error.h"

namespace tokenledger::audit {

using tools::UsageError;

// A snapshot of a log, read once from the beginning to the end it had when opened
// (records appended later are not read), or up to `limit` per partition.
class LogSource {
 public:
  virtual ~LogSource() = default;
  virtual std::string describe() const = 0;
  virtual int32_t partitions() const = 0;
  // First offset per partition (Kafka: records below it were deleted).
  virtual Offsets start() const = 0;
  // Where the replay stops, per partition.
  virtual Offsets end() const = 0;
  // Whether offsets are dense (the embedded log numbers records 0, 1, 2, …).
  virtual bool denseOffsets() const = 0;
  // Appends the next records (in order per partition) to `out`; false when every
  // partition reached its end. Throws std::runtime_error when the log fails.
  virtual bool next(std::vector<LogRecord>& out, size_t max) = 0;
};

// DIR/log of a data directory, read-only (works while tokenledgerd runs). Throws
// UsageError when DIR/log holds no log, lmdb::LmdbError when LMDB cannot open it.
std::unique_ptr<LogSource> openEmbeddedSource(const std::string& dataDir,
                                              const std::optional<Offsets>& limit);

struct KafkaSourceOptions {
  std::string brokers;
  std::string topic = "token-events";
  int timeoutMs = 10000;
};
// Assigns every partition of the topic from its beginning; never creates the topic,
// joins no group and commits nothing. Throws UsageError when the broker cannot be
// reached within the timeout, the topic does not exist or librdkafka refuses a
// setting.
std::unique_ptr<LogSource> openKafkaSource(const KafkaSourceOptions& options,
                                           const std::optional<Offsets>& limit);

// The log of the command line (LOG in --help) and how to read it.
struct Options {
  std::string dataDir = "./data";
  bool dataDirGiven = false;
  std::string log = "embedded";  // or "kafka"
  KafkaSourceOptions kafka;
  bool quiet = false;  // no progress bar
  // Trusted writers (events/trust.h): --root files (trust roots) and --keys files
  // (writer keys trusted everywhere).
  std::vector<std::string> rootFiles;
  std::vector<std::string> keyFiles;
};

// The trust the replicas apply, from the command line: the roots in --root (default
// DIR/trust-root.pub when it exists) and the writer keys in --keys. None (every
// well-formed event applies) for an embedded log without either, as tokenledgerd.
// Throws UsageError when a file cannot be read or holds no key, and on Kafka when
// neither is given.
std::optional<TrustPolicy> trustPolicyOf(const Options& o);
// The keys verify-log checks signatures against when the log has no trust policy:
// --keys, default DIR/signing-keys.pub. Throws UsageError as trustPolicyOf.
TrustPolicy signingKeysOf(const Options& o);

// The whole of `path`; throws UsageError naming `what` when it cannot be read.
std::string readTextFile(const std::string& path, const std::string& what);

// The embedded log or the Kafka topic `options` names; throws as the two above.
std::unique_ptr<LogSource> openSource(const Options& options,
                                      const std::optional<Offsets>& limit = {});

}  // namespace tokenledger::audit
