// The projector: one thread that tails the event log in order and applies it to
// the read model, batch by batch, and wakes whoever waits for a position.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "events/event_log.h"
#include "projections/read_model.h"

namespace tokenledger {

// Receives human-readable warnings (skipped events, retried failures). Called on the
// projector thread.
using Logger = std::function<void(const std::string&)>;

class Projector {
 public:
  virtual ~Projector() = default;
  // Blocks until the read model covers `p` or `timeout` passes; true when covered.
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
  // Stops the thread (idempotent); the destructor calls it.
  virtual void stop() = 0;
};

// Starts the projector thread on `log` and `model`, resuming after the stored
// positions. Both must outlive the projector.
std::unique_ptr<Projector> startProjector(EventLog& log, ReadModel& model, Logger logger);

}  // namespace tokenledger
