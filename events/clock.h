// Time sources, injected (as workerd injects its clock into its server) so that
// tests drive scheduled deactivations, expiry and timeouts instead of sleeping.
#pragma once

#include <chrono>

#include "events/times.h"

namespace tokenledger {

// Wall time: when events occur, expiry, scheduled deactivations.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual Timestamp now() const = 0;
};

class SystemClock final : public Clock {
 public:
  Timestamp now() const override {
    return std::chrono::time_point_cast<Timestamp::duration>(std::chrono::system_clock::now());
  }
};

// Monotonic time: deadlines and intervals (waits for the projection, how often the
// writer's state is persisted, retry budgets). Never goes back.
class MonotonicClock {
 public:
  using time_point = std::chrono::steady_clock::time_point;
  virtual ~MonotonicClock() = default;
  virtual time_point now() const = 0;
};

class SteadyClock final : public MonotonicClock {
 public:
  time_point now() const override { return std::chrono::steady_clock::now(); }
};

// The process's real monotonic clock (a default argument everywhere).
inline const MonotonicClock& steadyClock() {
  static const SteadyClock clock;
  return clock;
}

}  // namespace tokenledger
