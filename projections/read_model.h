// The LMDB read model: token state derived from the event log.
//
// Named databases in one environment:
//   tokens     key                      -> TokenState (Cap'n Proto)
//   by_owner   owner \0 key             -> ""
//   history    key \0 seq (4 bytes BE)  -> the event's envelope bytes, as on the log
//   event_ids  event id (16 bytes)      -> position "p:o" (de-duplication)
//   positions  partition (4 bytes BE)   -> next offset (8 bytes BE)
//   meta       "schema_version"         -> "1"
//   verify     key                      -> what verification reads, fixed layout
//                                          (derived from tokens, same transaction)
// One write transaction per batch stores the state changes together with the
// positions they came from, so a crash never double-applies or skips: replaying
// from the stored positions is exactly-once.
//
// Threads: one writer (the projector). Readers are per-thread objects; their views
// are valid until their next call.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "events/event.h"
#include "events/event_log.h"

namespace tokenledger {

struct ReadModelOptions {
  uint64_t mapSizeBytes = 64ull << 30;
  // false: commits are not fsynced one by one (MDB_NOSYNC); the owner calls sync()
  // now and then and at close. A process crash loses nothing (the page cache
  // survives); an OS crash may lose or damage unsynced pages, which
  // readModelNeedsRebuild() detects on the next start. The read model is derived
  // data: the log, always synced, is the truth.
  bool syncEachCommit = true;
  // Writes go straight into the memory map (MDB_WRITEMAP): faster bulk loads, but a
  // stray write through a bad pointer could corrupt the file, so only for rebuilds
  // into a fresh directory that is not in use until complete.
  bool bulkLoad = false;
};

// What verification needs of a token, without copying the rest.
struct VerifyView {
  SecretHash secretHash{};
  std::string owner;
  TokenKind kind = TokenKind::user;
  std::string destinationId;
  bool active = false;
  int64_t expiresAtUs = 0;
  int64_t deactivateAtUs = 0;
  Status statusAt(int64_t nowUs) const;
};

struct ApplyReport {
  size_t applied = 0;     // events that changed state
  size_t duplicates = 0;  // event ids seen before, or positions already applied
  size_t skipped = 0;     // malformed, unknown type, or not applicable (reported)
};

// Called for each record the projection skips, with its position and why.
using SkipReporter = std::function<void(const Position&, const std::string& why)>;

class ReadModelReader {
 public:
  virtual ~ReadModelReader() = default;
  virtual std::optional<Token> token(std::string_view key) = 0;
  // Fast path for verification; false when the key is unknown.
  virtual bool verifyView(std::string_view key, VerifyView& out) = 0;
  // The owner's tokens in creation order.
  virtual std::vector<Token> tokensOf(std::string_view owner) = 0;
  // The token's events in log order (empty when unknown).
  virtual std::vector<Event> history(std::string_view key) = 0;
  virtual Offsets applied() = 0;
};

class ReadModel {
 public:
  virtual ~ReadModel() = default;

  // Applies records in one write transaction. Records at positions already
  // applied and events with known ids are skipped. Throws lmdb::LmdbError (e.g.
  // map full) with nothing applied.
  virtual ApplyReport apply(const std::vector<LogRecord>& records, const SkipReporter& report) = 0;
  // Next offsets per partition; partitions never applied read 0.
  virtual Offsets applied(int32_t partitions) = 0;
  // Increments after every committed apply(); readers renew their snapshot on change.
  virtual uint64_t generation() const = 0;
  virtual std::unique_ptr<ReadModelReader> reader() = 0;
  // Every entry of every database, one line each, in key order: equal dumps mean
  // equal read models.
  virtual std::string dump() = 0;
  // Flushes unsynced commits to disk (no-op when every commit syncs).
  virtual void sync() = 0;
};

// True when the read model in `dir` was last used without syncing and the machine
// restarted since (a different boot id) before it was closed cleanly: its file may
// lack pages, so rebuild it from the log.
bool readModelNeedsRebuild(const std::string& dir);

std::unique_ptr<ReadModel> openReadModel(const std::string& dir,
                                         const ReadModelOptions& options = {});

// Replays the whole log into a fresh read model in `dir` (which must not hold one).
ApplyReport rebuildReadModel(EventLog& log, const std::string& dir, const SkipReporter& report,
                             const ReadModelOptions& options = {});

}  // namespace tokenledger
