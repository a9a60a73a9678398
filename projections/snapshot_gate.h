// The read transactions of one read model that hold a snapshot, counted so that
// its map can be resized (LMDB remaps only while this process has no transaction
// open). Internal to projections/.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>

#include "events/lmdb.h"

namespace tokenledger {

// Counts the read transactions of this process that hold a snapshot: LMDB remaps
// (to grow the map) only while there are none. Resizes are rare (the map doubles),
// so a reader pays one uncontended lock per snapshot it takes, not per read.
class SnapshotGate {
 public:
  // Before taking a snapshot: waits while a resize runs.
  void enter() {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return !closed_; });
    ++held_;
  }
  // After releasing it.
  void leave() {
    std::lock_guard lock(mutex_);
    --held_;
    if (closed_ && held_ == 0) changed_.notify_all();
  }
  // Runs `resize` once no snapshot is held, holding new ones back meanwhile; false,
  // without running it, when they were not all released within `timeout`.
  // `closed` runs once new snapshots are held back: it asks the holders to let go
  // (a snapshot taken before could otherwise claim to be current).
  bool withNone(std::chrono::milliseconds timeout, const std::function<void()>& closed,
                const std::function<void()>& resize) {
    std::unique_lock lock(mutex_);
    closed_ = true;
    closed();
    bool none = changed_.wait_for(lock, timeout, [&] { return held_ == 0; });
    struct Reopen {
      SnapshotGate& gate;
      ~Reopen() {
        gate.closed_ = false;
        gate.changed_.notify_all();
      }
    } reopen{*this};
    if (none) resize();
    return none;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  int held_ = 0;
  bool closed_ = false;
};

// A snapshot of the model's environment for one call (not a Reader's).
class Snapshot {
 public:
  Snapshot(SnapshotGate& gate, lmdb::Env& env) : gate_(gate), txn_(open(gate, env)) {}
  ~Snapshot() {
    txn_.abort();
    gate_.leave();
  }
  const lmdb::Txn& txn() const { return txn_; }

 private:
  static lmdb::Txn open(SnapshotGate& gate, lmdb::Env& env) {
    gate.enter();
    try {
      return lmdb::Txn::read(env);
    } catch (...) {
      gate.leave();
      throw;
    }
  }
  SnapshotGate& gate_;
  lmdb::Txn txn_;
};

}  // namespace tokenledger
