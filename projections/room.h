// How much more the read model's LMDB file may hold: its memory map, grown on
// demand up to a limit (--map-size-mb), and, for a writable map (MDB_WRITEMAP),
// the disk blocks reserved ahead of the pages about to be written, since a write
// into an unreserved hole of a full disk is SIGBUS rather than an error.
//
// One bound on what a write transaction of n events may add to the file serves
// both sides: commands are admitted (check) only while the room covers the bound
// of every event admitted and not yet applied, and the writer prepares exactly that
// room before each transaction (makeRoomFor). So an event that was recorded in the
// log because it was admitted always fits into the read model.
//
// Threads: claim(), check() and the getters from any thread; the rest only from the
// one writer, with no write transaction open.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>

#include "events/lmdb.h"

namespace tokenledger {

// Why the read model cannot take more events now, in the API's terms: code
// `read_model_full` (the size limit is reached) or `disk_full`, and a message that
// says what to do.
struct RoomProblem {
  std::string code;
  std::string message;
};

// Thrown by Room::makeRoomFor when a transaction would not fit: nothing was written.
class RoomExhausted : public std::runtime_error {
 public:
  explicit RoomExhausted(RoomProblem problem)
      : std::runtime_error(problem.message), problem_(std::move(problem)) {}
  const RoomProblem& problem() const { return problem_; }

 private:
  RoomProblem problem_;
};

class Room {
 public:
  using Log = std::function<void(const std::string&)>;
  // Runs `resize` while no read transaction is open in this process, holding new
  // ones back meanwhile; returns false, without running it, when the open ones were
  // not all released in time.
  using WithoutReaders = std::function<bool(const std::function<void()>& resize)>;

  struct Options {
    std::string dir;           // for messages
    uint64_t limitBytes = 0;   // the map never grows beyond this
    bool reserveDisk = false;  // MDB_WRITEMAP: reserve blocks before writing
    Log log;                   // map growth and reservation trouble; may be empty
    // Disk blocks for the data file `fd` up to `bytes`: 0 or the errno. Empty:
    // fallocate (tests inject a small disk).
    std::function<int(int fd, uint64_t bytes)> reserve;
  };

  // Sets the map to what the data needs plus room to grow (at most the limit).
  Room(lmdb::Env& env, Options options, WithoutReaders withoutReaders);

  // At most what one transaction applying `events` events adds to the file: a few
  // pages per event and tree, never more than a copy of the whole file, plus the
  // pages every transaction copies (roots, free list, meta).
  uint64_t boundFor(uint64_t events) const;

  // For admitting commands: nullopt when a transaction of `events` events fits
  // under the limit and in disk reserved for it, reserving more first when a burst
  // outgrew what was reserved ahead. Else read_model_full, or disk_full when the
  // disk refused. Thread-safe.
  std::optional<RoomProblem> claim(uint64_t events);
  // What claim() would refuse with, reserving nothing (for readiness checks).
  std::optional<RoomProblem> check(uint64_t events) const;

  // Before a transaction of `events` events: grows the map and reserves disk so
  // that it fits, or throws RoomExhausted (or LmdbError) with nothing written.
  void makeRoomFor(uint64_t events);

  // After a transaction failed with MDB_MAP_FULL (boundFor is an estimate: events
  // with every field at its largest outgrow it): doubles the map, up to the limit,
  // with disk reserved for all of it, for the transaction to be tried again.
  // Throws RoomExhausted at the limit or with the disk full, std::runtime_error
  // when a reader kept the map from growing now.
  void growAfterMapFull();

  // After each commit: takes the new high-water mark, and reserves disk ahead
  // (in proportion to the file, so that small disks work and big files do not call
  // fallocate per batch). A reservation that fails turns check() to disk_full until
  // a later one succeeds.
  void committed();

  // When closing a writable map: the file is cut back to this.
  uint64_t highWater() const { return highWater_.load(std::memory_order_acquire); }
  uint64_t mapBytes() const { return map_.load(std::memory_order_acquire); }
  // Bytes of the file known to have disk blocks (writable maps; else the map).
  uint64_t reservedBytes() const { return reserved_.load(std::memory_order_acquire); }
  uint64_t limitBytes() const { return options_.limitBytes; }

 private:
  // Disk blocks for the file up to `bytes` (beyond its end too); 0 or the errno.
  // Thread-safe.
  int reserve(uint64_t bytes);
  RoomProblem diskFull() const;
  bool diskRefused() const;
  // Keeps why the disk refused (0: it did not) for check(), logging changes.
  void setDiskError(int rc);
  bool growMap(uint64_t atLeast);
  RoomProblem full() const;

  lmdb::Env& env_;
  Options options_;
  WithoutReaders withoutReaders_;
  std::atomic<uint64_t> highWater_{0};
  std::atomic<uint64_t> map_{0};
  std::atomic<uint64_t> reserved_{0};
  std::mutex reserving_;      // one fallocate at a time
  mutable std::mutex mutex_;  // guards diskError_
  std::string diskError_;     // why the last reservation failed; empty when it did not
};

}  // namespace tokenledger
