// tokenledger-migrate: copies an embedded event log into a Kafka topic, so a user
// who outgrows one machine keeps the whole history.
//
// Records are copied byte for byte (same key, same Cap'n Proto envelope, same event
// id), in log order; per-owner order survives because an owner's events share a
// partition. Safe to re-run: events whose id is already on the topic are skipped.
// The service must be stopped (the data directory is locked) so nothing is appended
// to the embedded log during the copy.
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cstring>
#include <iostream>
#include <set>
#include <string>

#include "events/event.h"
#include "events/event_log.h"
#include "events/kafka_log.h"
#include "tools/usage_error.h"

using namespace tokenledger;
using tokenledger::tools::UsageError;

namespace {

constexpr const char* kUsage =
    R"(usage: tokenledger-migrate --data-dir DIR --kafka-brokers HOST:PORT [--topic NAME] [--partitions N]

Copies the embedded event log in DIR/log into the Kafka topic (default
token-events; created with N partitions, default 6, if missing). Stop tokenledgerd
first. Safe to re-run: events already on the topic are skipped. Then start
tokenledgerd --log kafka with a fresh --data-dir and --trust-keys
DIR/signing-keys.pub (the copied events are signed by DIR's keys, which no root
certified; without it they are not applied), plus --trust-root for the new
writers (docs/kafka.md, "Trusted writers"); it builds its read model from the
topic.

Exit status: 0 copied and verified, 1 failed (message says why), 2 usage error.
)";

struct Arguments {
  bool help = false;  // --help: print kUsage, nothing else
  std::string dataDir;
  KafkaLogOptions kafka;
};

// Reads the arguments; throws UsageError for the first thing wrong with them.
Arguments parseArguments(int argc, char** argv) {
  Arguments args;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw UsageError(a + " needs a value");
      return argv[++i];
    };
    if (a == "--help" || a == "-h") {
      args.help = true;
      return args;
    } else if (a == "--data-dir") {
      args.dataDir = value();
    } else if (a == "--kafka-brokers") {
      args.kafka.brokers = value();
    } else if (a == "--topic") {
      args.kafka.topic = value();
    } else if (a == "--partitions") {
      std::string v = value();
      if (v.empty() || v.size() > 5 || v.find_first_not_of("0123456789") != std::string::npos ||
          std::stoi(v) < 1)
        throw UsageError("--partitions wants a positive number");
      args.kafka.partitions = std::stoi(v);
    } else {
      throw UsageError("unknown option " + a);
    }
  }
  if (args.dataDir.empty()) throw UsageError("--data-dir is required");
  if (args.kafka.brokers.empty()) throw UsageError("--kafka-brokers is required");
  return args;
}

// The daemon's exclusive lock on DATA_DIR/LOCK, held while this object lives, so
// that nothing is appended to the embedded log during the copy. Throws
// std::runtime_error when a running tokenledgerd holds it.
class DataDirLock {
 public:
  explicit DataDirLock(const std::string& dataDir) {
    fd_ = ::open((dataDir + "/LOCK").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd_ < 0 || ::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      if (fd_ >= 0) ::close(fd_);
      throw std::runtime_error(
          dataDir + " is in use by a running tokenledgerd; stop it first so no event is missed");
    }
  }
  ~DataDirLock() { ::close(fd_); }
  DataDirLock(const DataDirLock&) = delete;
  DataDirLock& operator=(const DataDirLock&) = delete;

 private:
  int fd_ = -1;
};

// Every event id on the topic, read from the beginning up to its current end.
std::set<std::string> eventIdsOn(EventLog& log, size_t& records) {
  std::set<std::string> ids;
  Offsets seen = Offsets::atStart(log.partitionCount());
  auto reader = log.openReader(seen);
  Offsets end = reader->endOffsets();
  while (!seen.covers(end)) {
    for (auto& r : reader->poll(10000, std::chrono::milliseconds(1000))) {
      seen.advancePast(r.position.partition, r.position.offset);
      records++;
      auto decoded = decodeEvent(r.value);
      if (auto* e = std::get_if<Event>(&decoded)) ids.insert(e->eventId);
    }
  }
  return ids;
}

// Copies the embedded log of args.dataDir to the topic and checks that every event
// arrived; returns the exit status (1: events missing after the copy). Throws
// std::runtime_error when there is no embedded log, the data directory is in use or
// a log fails.
int migrate(const Arguments& args) {
  const std::string& dataDir = args.dataDir;
  if (access((dataDir + "/log/data.mdb").c_str(), R_OK) != 0)
    throw std::runtime_error("no embedded log in " + dataDir + "/log");
  initCrypto();
  DataDirLock lock(dataDir);
  auto source = openEmbeddedLog(dataDir + "/log");
  auto target = openKafkaLog(args.kafka);
  size_t before = 0;
  std::set<std::string> present = eventIdsOn(*target, before);

  auto reader = source->openReader(Offsets::atStart(1));
  NextOffset end = reader->endOffsets().of(Partition{0});
  size_t copied = 0, skipped = 0, total = 0;
  std::set<std::string> sourceIds;
  while (true) {
    auto batch = reader->poll(5000, std::chrono::milliseconds(0));
    if (batch.empty()) break;
    std::vector<std::pair<std::string, std::string>> out;
    for (auto& r : batch) {
      total++;
      auto decoded = decodeEvent(r.value);
      if (auto* e = std::get_if<Event>(&decoded)) {
        sourceIds.insert(e->eventId);
        if (present.count(e->eventId)) {
          skipped++;
          continue;
        }
      } else {
        std::cerr << "warning: record at " << toString(r.position)
                  << " is not a valid event; copied unchanged\n";
      }
      out.emplace_back(std::move(r.key), std::move(r.value));
    }
    if (!out.empty()) target->appendBatch(out);
    copied += out.size();
    if (end.covers(batch.back().position.offset) && after(batch.back().position.offset) == end)
      break;
  }
  // Verify: every event of the embedded log is now on the topic.
  size_t after = 0;
  std::set<std::string> now = eventIdsOn(*target, after);
  size_t missing = 0;
  for (const auto& id : sourceIds)
    if (!now.count(id)) missing++;
  std::cout << "read " << total << " events from " << source->describe() << "; copied " << copied
            << ", skipped " << skipped << " already on the topic; " << target->describe()
            << " now holds " << after << " records" << std::endl;
  if (missing) {
    std::cerr << "tokenledger-migrate: " << missing
              << " events are not on the topic after the copy; re-run to retry\n";
    return 1;
  }
  std::cout << "verified: all " << sourceIds.size() << " events are on the topic" << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    Arguments args = parseArguments(argc, argv);
    if (args.help) {
      std::cout << kUsage;
      return 0;
    }
    return migrate(args);
  } catch (const UsageError& e) {
    std::cerr << "tokenledger-migrate: " << e.what() << "\n";
    if (e.seeHelp()) std::cerr << "run tokenledger-migrate --help\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "tokenledger-migrate: " << e.what() << std::endl;
    return 1;
  }
}
