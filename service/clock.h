// Injected time source, so tests can drive scheduled deactivations and expiry.
#pragma once

#include <chrono>
#include <cstdint>

namespace tokenledger {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual int64_t nowUs() const = 0;  // microseconds since the Unix epoch
};

class SystemClock final : public Clock {
 public:
  int64_t nowUs() const override {
    return std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
};

}  // namespace tokenledger
