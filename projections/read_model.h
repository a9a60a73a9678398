// The LMDB read model: token state derived from the event log. Its databases and
// their key and value layouts are defined, with their invariants, in
// read_model_layout.h; token state in token.h.
//
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

#include "events/event_log.h"
#include "events/own_events.h"
#include "events/trust.h"
#include "projections/idempotency.h"
#include "projections/room.h"
#include "projections/token.h"

namespace tokenledger {

struct ReadModelOptions {
  // The most the read model's file may hold (--map-size-mb). Its memory map starts
  // small and grows on demand up to this (projections/room.h); at the limit, or
  // with the disk full, roomFor() refuses new events before they are recorded.
  uint64_t mapSizeBytes = 64ull << 30;
  // false (what the daemon and rebuilds use): commits are not fsynced
  // (MDB_NOSYNC) and go straight into the memory map (MDB_WRITEMAP: no write()
  // per dirty page, which is most of a commit's cost). The file is synced when
  // the read model closes. A process crash loses nothing (the page cache survives
  // and LMDB's copy-on-write keeps the last commit intact); an OS crash may lose
  // or damage unsynced pages, which readModelNeedsRebuild() detects on the next
  // start, so the daemon rebuilds from the log, which is the truth and always
  // synced.
  //
  // MDB_WRITEMAP sizes the file to the map while open (sparse: `du` shows the real
  // use) and a write into a hole of a full disk would kill the process (SIGBUS),
  // so each apply() first reserves disk blocks for what it may add (a clear error
  // when the disk is full), and closing cuts the file back to the pages in use.
  bool syncEachCommit = true;
  // Lazy models only: false leaves the unsynced-boot marker at close instead of
  // syncing (rebuilds: the OS writes the pages back soon anyway, and the marker
  // still catches an OS crash before it did).
  bool syncAtClose = true;
  // Which writers may change state (events/trust.h). None: every well-formed event,
  // signed or not (unit tests; tools that inspect a log). A model built under one
  // policy refuses to open under another (readModelRebuildReason tells first).
  std::optional<TrustPolicy> trust = std::nullopt;
  // The envelopes this process signed (events/own_events.h): with a policy, their
  // signatures need no check. Null: every signature is checked.
  std::shared_ptr<const OwnEvents> ownEvents = nullptr;
};

// What the read model is given besides its options (injected, so tests can give
// it a small disk without mounting one).
struct ReadModelHooks {
  // Receives what it reports on its own: map growth and disk-reservation trouble.
  // May be empty.
  std::function<void(const std::string&)> log;
  // Reserves disk blocks for the data file `fd` up to `bytes`: 0, or the errno
  // (ENOSPC: the disk is full). Empty: fallocate.
  std::function<int(int fd, uint64_t bytes)> reserveDisk;
};

// What verification needs of a token, without copying the rest.
struct VerifyView {
  SecretHash secretHash{};
  std::string owner;
  TokenKind kind = TokenKind::user;
  std::string destinationId;
  bool active = false;
  std::optional<Timestamp> expiresAt;
  std::optional<Timestamp> deactivateAt;
  Status statusAt(Timestamp now) const;
};

// Fills `out` from a record of the verify database (read_model_layout.h): false when
// it does not decode (then the key counts as unknown). The daemon's readers and
// libtokenledger_verify read it with this one function.
bool verifyViewOf(std::string_view record, VerifyView& out);

struct ApplyReport {
  size_t applied = 0;       // events that changed state
  size_t duplicates = 0;    // event ids seen before (reported), or positions already applied
  size_t skipped = 0;       // malformed, unknown type, or not applicable (reported)
  size_t untrusted = 0;     // refused by the trust policy (events/trust.h; reported)
  size_t conflicts = 0;     // conditional events that lost, repeated requests (not reported)
  size_t certificates = 0;  // writer certificates accepted

  ApplyReport& operator+=(const ApplyReport& o) {
    applied += o.applied;
    duplicates += o.duplicates;
    skipped += o.skipped;
    untrusted += o.untrusted;
    conflicts += o.conflicts;
    certificates += o.certificates;
    return *this;
  }
};

// What ReadModelReader::tokensPage returns.
struct PageRequest {
  // Start after this token of the owner (a previous page's `next`); empty: first.
  std::string_view after;
  size_t limit = 100;
  // Only the tokens it accepts are returned; null: all.
  std::function<bool(const Token&)> keep;
  // How many tokens one page may examine: a filter that accepts few tokens of a
  // large owner ends a page early (with `next` set) instead of scanning them all.
  size_t maxExamined = 10000;
};
struct TokenPage {
  std::vector<Token> tokens;
  // The last token examined, when more may follow: the next page starts after it.
  std::string next;
  // `after` is not one of the owner's tokens (nothing else is set).
  bool unknownAfter = false;
};

// Called for each record the projection skips, with its position and why.
using SkipReporter = std::function<void(const Position&, const std::string& why)>;

class ReadModelReader {
 public:
  virtual ~ReadModelReader() = default;
  virtual std::optional<Token> token(std::string_view key) = 0;
  // Fast path for verification; false when the key is unknown.
  virtual bool verifyView(std::string_view key, VerifyView& out) = 0;
  // Some of the owner's tokens in creation order (ties: in key order), from after
  // `req.after`. Tokens are never removed, so a `next` stays valid however the
  // owner's tokens change.
  virtual TokenPage tokensPage(std::string_view owner, const PageRequest& req) = 0;
  // All of the owner's tokens in creation order (tests and small owners).
  std::vector<Token> tokensOf(std::string_view owner);
  // The token's events in log order (empty when unknown).
  virtual std::vector<Event> history(std::string_view key) = 0;
  // The claim on `owner`'s idempotency key (projections/idempotency.h), as stored:
  // the caller judges whether it still holds (claimHolds).
  virtual std::optional<IdempotencyRecord> idempotency(std::string_view owner,
                                                       std::string_view key) = 0;
  virtual Offsets applied() = 0;
  // A reader holds an LMDB snapshot between calls, and LMDB cannot reuse any page
  // freed after the oldest snapshot: one idle reader makes the file grow with every
  // commit. Owners release it when they go idle; the next call takes a fresh one.
  virtual void release() = 0;
  // Releases only a snapshot older than the newest commit (cheap when current).
  virtual void releaseIfStale() = 0;
};

class ReadModel {
 public:
  virtual ~ReadModel() = default;

  // Applies records in one write transaction. Records at positions already
  // applied and events with known ids are skipped. Throws, with nothing applied:
  // RoomExhausted when the batch does not fit (size limit or disk full),
  // lmdb::LmdbError, or std::runtime_error when the map could not grow right now
  // (a reader kept its snapshot for 2 s; retry).
  virtual ApplyReport apply(const std::vector<LogRecord>& records, const SkipReporter& report) = 0;
  // Next offsets per partition; partitions never applied read 0.
  virtual Offsets applied(int32_t partitions) = 0;
  // Increments after every committed apply(); readers renew their snapshot on change.
  virtual uint64_t generation() const = 0;
  // Room for `events` more events: nullopt when they fit under the size limit and
  // in reserved disk (reserving more if needed), else why not. Thread-safe and
  // cheap unless it reserves: commands ask before they append, through
  // Projector::admit.
  virtual std::optional<RoomProblem> claimRoom(uint64_t events) = 0;
  // What claimRoom(events) would refuse with now, reserving nothing (readiness).
  virtual std::optional<RoomProblem> roomFor(uint64_t events) const = 0;
  virtual std::unique_ptr<ReadModelReader> reader() = 0;
  // Every entry of every database, one line each, in key order: equal dumps mean
  // equal read models.
  virtual std::string dump() = 0;
};

// Why the read model in `dir` must be rebuilt from the log before it is opened
// with `options`, or nullopt: it was last used without syncing and the machine
// restarted since (a different boot id) before it was closed cleanly, so its file
// may lack pages; or it has another layout version (read_model_layout.h); or it was
// built under another trust policy. Never throws: a model it cannot read is one
// to rebuild.
std::optional<std::string> readModelRebuildReason(const std::string& dir,
                                                  const ReadModelOptions& options);

std::unique_ptr<ReadModel> openReadModel(const std::string& dir,
                                         const ReadModelOptions& options = {},
                                         ReadModelHooks hooks = {});

// Replays the whole log into a fresh read model in `dir` (which must not hold one),
// in transactions of rebuildChunkRecords(availableMemoryBytes()) records
// (memory_budget.h).
// A rebuild of more than one transaction ends with compactReadModel(dir).
ApplyReport rebuildReadModel(EventLog& log, const std::string& dir, const SkipReporter& report,
                             const ReadModelOptions& options = {}, ReadModelHooks hooks = {});

// Rewrites the closed read model in `dir` with only its pages in use (LMDB's
// compacting copy, then a rename over data.mdb). Throws lmdb::LmdbError or
// std::filesystem::filesystem_error; the model is unchanged unless it returns.
void compactReadModel(const std::string& dir);

}  // namespace tokenledger
