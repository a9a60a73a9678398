// The projector: one thread that tails the event log in order and applies it to
// the read model, batch by batch, and wakes whoever waits for a position.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <variant>

#include "events/clock.h"
#include "events/event_log.h"
#include "projections/read_model.h"

namespace tokenledger {

// Receives human-readable warnings (skipped events, retried failures). Called on the
// projector thread.
using Logger = std::function<void(const std::string&)>;

// Why this replica takes no commands now, in the API's terms: the read model's room
// (read_model_full, disk_full) or `projection_failing`.
using Refusal = RoomProblem;

// Room in the read model that a command claims from before it appends its events
// until they are applied, or its append failed: while claims are held, others are
// admitted only if everything claimed still fits. So no event is recorded that the
// read model then has no room to apply. Released when destroyed; move-only.
class Admission {
 public:
  Admission() = default;
  Admission(std::shared_ptr<std::atomic<uint64_t>> pending, uint64_t events)
      : pending_(std::move(pending)), events_(events) {}
  Admission(Admission&& other) noexcept
      : pending_(std::move(other.pending_)), events_(std::exchange(other.events_, 0)) {}
  Admission& operator=(Admission&& other) noexcept {
    if (this != &other) {
      release();
      pending_ = std::move(other.pending_);
      events_ = std::exchange(other.events_, 0);
    }
    return *this;
  }
  Admission(const Admission&) = delete;
  Admission& operator=(const Admission&) = delete;
  ~Admission() { release(); }

 private:
  void release() {
    if (pending_ && events_) pending_->fetch_sub(events_);
    events_ = 0;
  }
  std::shared_ptr<std::atomic<uint64_t>> pending_;
  uint64_t events_ = 0;
};

class Projector {
 public:
  virtual ~Projector() = default;
  // Blocks until the read model covers `p` or `timeout` passes (by the projector's
  // clock, checked at least every 100 ms); true when covered.
  virtual bool waitFor(const Position& p, std::chrono::milliseconds timeout) = 0;
  virtual bool waitFor(const Offsets& o, std::chrono::milliseconds timeout) = 0;
  // The same without blocking: `done(true)` once the read model covers `p`,
  // `done(false)` when `timeout` passes first (checked at least every 100 ms) or
  // the projector stops. `done` runs on the projector's thread (or at once on the
  // caller's, when `p` is covered already); it must not throw or block.
  virtual void whenApplied(const Position& p, std::chrono::milliseconds timeout,
                           std::function<void(bool)> done) = 0;
  // The same for every offset of `o` (next offsets per partition).
  virtual void whenApplied(const Offsets& o, std::chrono::milliseconds timeout,
                           std::function<void(bool)> done) = 0;
  // The applied offsets (next offset per partition, every partition of the log),
  // as of the last batch.
  virtual Offsets applied() const = 0;
  // Changes whenever applied() does; cheap, for caching what is derived from it.
  virtual uint64_t appliedVersion() const = 0;
  // True once the projection has caught up with the log end seen at start, and
  // while the last apply succeeded.
  virtual bool ready() const = 0;
  // Claims room for a command of `events` events before it appends them, or says
  // why not: the read model is at its size limit or the disk is full (nothing is
  // recorded then), or the projector is failing. Thread-safe.
  virtual std::variant<Admission, Refusal> admit(uint64_t events) = 0;
  // What admit(1) would refuse with now, claiming nothing; nullopt when it would
  // admit. For /readyz.
  virtual std::optional<Refusal> refusal() const = 0;
  // What the batches applied since start did with their events (applied, skipped,
  // untrusted, …), for /readyz. Thread-safe.
  virtual ApplyReport totals() const = 0;
  // Stops the thread (idempotent); the destructor calls it.
  virtual void stop() = 0;
};

// Starts the projector thread on `log` and `model`, resuming after the stored
// positions. Both must outlive the projector, and so must `clock`, which times the
// deadlines of waitFor and whenApplied (tests move it by hand).
std::unique_ptr<Projector> startProjector(EventLog& log, ReadModel& model, Logger logger,
                                          const MonotonicClock& clock = steadyClock());

}  // namespace tokenledger
