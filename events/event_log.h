// The event log: the only source of truth. Two backends implement it: the
// embedded LMDB log (one machine, no other service) and Kafka (kafka_log.h).
//
// A log has a fixed number of partitions; records with the same key (the token's
// owner) land in the same partition, in append order. A Position names one record.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tokenledger {

// Coordinates in the log, as distinct types (as redpanda's model::offset): a
// partition, the offset of one record, and a next offset, which is where a reader
// (or the projection) goes on: one past the last record it has. Mixing them up
// does not compile; the one conversion between offsets is explicit: after().
struct Partition {
  constexpr Partition() = default;
  constexpr explicit Partition(int32_t v) : value(v) {}
  int32_t value = 0;
  auto operator<=>(const Partition&) const = default;
  size_t index() const { return static_cast<size_t>(value); }
};

struct Offset {
  constexpr Offset() = default;
  constexpr explicit Offset(int64_t v) : value(v) {}
  int64_t value = 0;
  auto operator<=>(const Offset&) const = default;
  // The record `n` further on in the same partition, and how far apart two are.
  Offset operator+(int64_t n) const { return Offset{value + n}; }
  int64_t operator-(Offset o) const { return value - o.value; }
};

struct NextOffset {
  constexpr NextOffset() = default;
  constexpr explicit NextOffset(int64_t v) : value(v) {}
  int64_t value = 0;
  auto operator<=>(const NextOffset&) const = default;
  // Whether a reader going on here has every record up to and including `o`.
  bool covers(Offset o) const { return o.value < value; }
  // The first record such a reader has not got yet.
  Offset first() const { return Offset{value}; }
};

// Where a reader goes on once it has the record at `o`.
inline NextOffset after(Offset o) {
  return NextOffset{o.value + 1};
}
// Where a reader goes on when it has every record before `o` (and `o` is next).
inline NextOffset before(Offset o) {
  return NextOffset{o.value};
}

// One record.
struct Position {
  Partition partition;
  Offset offset;
  bool operator==(const Position&) const = default;
};

// Next offset to read, per partition: how far a reader (or the projection) got.
// Rendered as "p:o,p:o" (e.g. "0:42") in HTTP headers and consistency tokens.
struct Offsets {
  std::vector<NextOffset> next;

  // True when every record up to and including `p` is covered.
  bool covers(const Position& p) const {
    return p.partition.value >= 0 && p.partition.index() < next.size() &&
           next[p.partition.index()].covers(p.offset);
  }
  // True when every partition is at least as far as in `want`.
  bool covers(const Offsets& want) const {
    for (size_t p = 0; p < want.next.size(); ++p)
      if (of(Partition{static_cast<int32_t>(p)}) < want.next[p]) return false;
    return true;
  }
  // The next offset of partition `p` (0 for one not listed).
  NextOffset of(Partition p) const {
    return p.index() < next.size() ? next[p.index()] : NextOffset{};
  }
  // Moves partition `p`'s next offset past `o`, if it is not past it already
  // (growing the list as needed).
  void advancePast(Partition p, Offset o) {
    if (next.size() <= p.index()) next.resize(p.index() + 1);
    next[p.index()] = std::max(next[p.index()], after(o));
  }
  // The start of every one of `partitions` partitions.
  static Offsets atStart(int32_t partitions) {
    Offsets o;
    o.next.resize(static_cast<size_t>(partitions));
    return o;
  }
  // Offsets::of({n0, n1, …}) from plain numbers (tests, parsing).
  static Offsets of(std::initializer_list<int64_t> nexts) {
    Offsets o;
    for (int64_t n : nexts) o.next.push_back(NextOffset{n});
    return o;
  }
  bool operator==(const Offsets&) const = default;
  std::string toString() const;
  // Parses "p:o,…"; nullopt on anything else.
  static std::optional<Offsets> parse(std::string_view s);
};

// "partition:offset".
std::string toString(const Position& p);
// The same into `out`, so that a loop can reuse one buffer.
const std::string& toString(const Position& p, std::string& out);
std::optional<Position> parsePosition(std::string_view s);

struct LogRecord {
  Position position;
  std::string key;
  std::string value;
};

// The log cannot take or serve records right now (broker down, disk full, …).
// Commands map it to 503; the message says what to do.
//
// A failed append either recorded nothing (the embedded log's transaction aborted,
// or Kafka never took the records) or has an unknown outcome (Kafka took them but
// did not acknowledge in time: they may still land). Only the second may leave a
// writer's sequence number spent (events/signing.h, docs/audit.md).
class LogUnavailable : public std::runtime_error {
 public:
  enum class Outcome { nothingRecorded, unknown };
  explicit LogUnavailable(const std::string& what, Outcome outcome = Outcome::unknown)
      : std::runtime_error(what), outcome_(outcome) {}
  Outcome outcome() const { return outcome_; }
  bool nothingRecorded() const { return outcome_ == Outcome::nothingRecorded; }

 private:
  Outcome outcome_;
};

// Reads the log in order from given offsets. One reader per thread.
class LogReader {
 public:
  virtual ~LogReader() = default;
  // Up to `max` records after the current offsets, waiting at most `wait` for the
  // first one. Records of one partition come in offset order. Empty on timeout.
  virtual std::vector<LogRecord> poll(size_t max, std::chrono::milliseconds wait) = 0;
  // The end of the log as known now (next offset per partition).
  virtual Offsets endOffsets() = 0;
};

class EventLog {
 public:
  virtual ~EventLog() = default;
  // Why an append would be refused right now without being tried (Kafka: fewer
  // brokers reachable than min.insync.replicas), or nullopt. Writers refuse new
  // commands with it at once, nothing recorded, instead of queueing them behind an
  // append that is waiting out its timeout. Thread-safe, cheap.
  virtual std::optional<std::string> refusesAppends() const { return std::nullopt; }
  // Appends records in order, all with the same key (so the same partition), and
  // returns their positions once they are durable. Throws LogUnavailable, saying
  // whether anything may have been recorded.
  // Thread-safe.
  virtual std::vector<Position> append(std::string_view key,
                                       const std::vector<std::string>& values) = 0;
  // Appends many records with their own keys, in order per key, and returns their
  // positions once all are durable. For bulk copies (migration); the default
  // appends one by one. Throws LogUnavailable.
  virtual std::vector<Position> appendBatch(
      const std::vector<std::pair<std::string, std::string>>& records) {
    std::vector<Position> out;
    for (const auto& [key, value] : records) out.push_back(append(key, {value}).front());
    return out;
  }
  // What became of an appendAsync: the positions, or the error that failed it
  // (LogUnavailable says whether anything may have been recorded).
  using AppendDone = std::function<void(std::vector<Position> positions, std::exception_ptr error)>;
  // Starts appending `records` like appendBatch and returns; `done` runs once all
  // are durable or the append failed, on a thread of the log's or, when it can
  // tell at once, on the caller's. A writer may start up to appendsInFlight()
  // appends before the first is done: within each partition their records land
  // in the order the calls were made (later calls never overtake), so it can keep
  // several going without reordering anything. Must not throw (errors go to done).
  // The default appends synchronously (append for one key, else appendBatch).
  virtual void appendAsync(std::vector<std::pair<std::string, std::string>> records,
                           AppendDone done) {
    std::vector<Position> positions;
    std::exception_ptr error;
    try {
      bool oneKey = std::all_of(records.begin(), records.end(),
                                [&](const auto& r) { return r.first == records.front().first; });
      if (records.empty()) {
      } else if (oneKey) {
        std::vector<std::string> values;
        for (auto& r : records) values.push_back(std::move(r.second));
        positions = append(records.front().first, values);
      } else {
        positions = appendBatch(records);
      }
    } catch (...) {
      error = std::current_exception();
    }
    done(std::move(positions), error);
  }
  // How many appendAsync calls a writer may keep going at once (1: each waits for
  // the one before; a synchronous log gains nothing from more).
  virtual size_t appendsInFlight() const { return 1; }
  // Appends to partition `p` records about no owner (writer certificates: each
  // partition needs its own copy, events/trust.h). The default serves logs of one
  // partition. Throws LogUnavailable, or std::invalid_argument for no such partition.
  virtual std::vector<Position> appendToPartition(Partition p,
                                                  const std::vector<std::string>& values) {
    if (p.value != 0 || partitionCount() != 1)
      throw std::invalid_argument("no partition " + std::to_string(p.value) + " in " + describe());
    return append("", values);
  }
  virtual int32_t partitionCount() const = 0;
  // Why this log cannot take appends for now, when it knows: the embedded log after
  // a commit failed (a full disk, its size limit), until one succeeds. nullopt when
  // it takes appends, or cannot tell (Kafka: an outage is every replica's, and
  // transient). For readiness checks.
  virtual std::optional<std::string> refusing() const { return std::nullopt; }
  virtual std::unique_ptr<LogReader> openReader(const Offsets& from) = 0;
  // The end of the log as of now (next offset per partition): what a replica must
  // have applied to know every event appended before the call (Kafka asks each
  // partition's leader). Throws LogUnavailable. Thread-safe.
  virtual Offsets endOffsets() { return openReader(Offsets{})->endOffsets(); }
  // For messages: "embedded log in DIR" / "kafka topic T on B".
  virtual std::string describe() const = 0;
};

struct EmbeddedLogOptions {
  uint64_t mapSizeBytes = 64ull << 30;
};

// The embedded log in directory `dir` (created if missing). Single partition.
// Appends are durable (fsync) before append() returns; readers in the same process
// are woken by appends.
std::unique_ptr<EventLog> openEmbeddedLog(const std::string& dir,
                                          const EmbeddedLogOptions& options = {});

}  // namespace tokenledger
