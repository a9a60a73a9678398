// An in-memory log of several partitions whose asynchronous appends wait for the
// test: each appendAsync call is held until the test settles it, with the outcome
// it picks, in any order, as Kafka may acknowledge one partition's request before
// another's. It keeps Kafka's promise that later calls never overtake earlier ones
// within a partition: settling a call whose partition still has an earlier call
// held throws. A record's partition is its key's first character as a digit
// ("1-bob" → partition 1), modulo the partition count.
#pragma once

#include <chrono>
#include <condition_variable>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "events/event_log.h"

namespace tokenledger::test {

class HeldLog final : public EventLog {
 public:
  enum class Outcome {
    ok,             // every record lands
    nothing,        // none lands: LogUnavailable, nothing recorded
    unknownLanded,  // every record lands, yet the writer hears "outcome unknown"
    unknownLost,    // none lands, and the writer hears "outcome unknown"
  };

  HeldLog(int32_t partitions, size_t inFlight) : partitions_(partitions), inFlight_(inFlight) {}

  void appendAsync(std::vector<std::pair<std::string, std::string>> records,
                   AppendDone done) override {
    {
      std::lock_guard lock(mutex_);
      calls_.push_back(Call{std::move(records), std::move(done), false});
      maxHeld_ = std::max(maxHeld_, held());
    }
    changed_.notify_all();
  }
  size_t appendsInFlight() const override { return inFlight_; }

  // Calls made so far (settled or not), and how many were held at most at once.
  size_t calls() const {
    std::lock_guard lock(mutex_);
    return calls_.size();
  }
  size_t maxHeld() const {
    std::lock_guard lock(mutex_);
    return maxHeld_;
  }
  // Waits up to 5 s until `n` calls were made; false on timeout.
  bool waitForCalls(size_t n) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, std::chrono::seconds(5), [&] { return calls_.size() >= n; });
  }
  // The partitions call `i` (0-based, in call order) writes to.
  std::set<int32_t> partitionsOf(size_t i) const {
    std::lock_guard lock(mutex_);
    std::set<int32_t> out;
    for (const auto& r : calls_.at(i).records) out.insert(partitionOf(r.first));
    return out;
  }

  // Settles call `i` with `outcome`, running its `done` on this thread.
  void settle(size_t i, Outcome outcome) {
    std::vector<Position> positions;
    AppendDone done;
    {
      std::lock_guard lock(mutex_);
      Call& c = calls_.at(i);
      if (c.settled) throw std::logic_error("call settled twice");
      for (size_t k = 0; k < i; ++k)
        if (!calls_[k].settled)
          for (const auto& r : calls_[k].records)
            for (const auto& mine : c.records)
              if (partitionOf(r.first) == partitionOf(mine.first))
                throw std::logic_error("call " + std::to_string(i) + " would overtake call " +
                                       std::to_string(k) + " in its partition");
      c.settled = true;
      if (outcome == Outcome::ok || outcome == Outcome::unknownLanded) {
        for (auto& [key, value] : c.records) {
          int32_t p = partitionOf(key);
          auto& part = data_[p];
          positions.push_back(Position{Partition{p}, Offset{static_cast<int64_t>(part.size())}});
          part.push_back(LogRecord{positions.back(), key, std::move(value)});
        }
      }
      done = std::move(c.done);
    }
    std::exception_ptr error;
    if (outcome == Outcome::nothing || outcome == Outcome::unknownLost) positions.clear();
    if (outcome == Outcome::nothing)
      error = std::make_exception_ptr(
          LogUnavailable("broker refused", LogUnavailable::Outcome::nothingRecorded));
    if (outcome == Outcome::unknownLanded || outcome == Outcome::unknownLost)
      error = std::make_exception_ptr(LogUnavailable("no acknowledgement"));
    if (error) positions.clear();
    done(std::move(positions), error);
  }

  // Every record of partition `p`, in offset order.
  std::vector<LogRecord> partition(int32_t p) const {
    std::lock_guard lock(mutex_);
    auto it = data_.find(p);
    return it == data_.end() ? std::vector<LogRecord>{} : it->second;
  }

  // The writer appends through appendAsync only.
  std::vector<Position> append(std::string_view, const std::vector<std::string>&) override {
    throw std::logic_error("HeldLog takes appendAsync only");
  }
  int32_t partitionCount() const override { return partitions_; }
  std::unique_ptr<LogReader> openReader(const Offsets&) override {
    throw std::logic_error("HeldLog has no readers: use partition()");
  }
  std::string describe() const override { return "held log"; }

 private:
  struct Call {
    std::vector<std::pair<std::string, std::string>> records;
    AppendDone done;
    bool settled;
  };
  int32_t partitionOf(std::string_view key) const {
    int digit = key.empty() ? 0 : key[0] - '0';
    return (digit < 0 ? 0 : digit) % partitions_;
  }
  size_t held() const {
    size_t n = 0;
    for (const auto& c : calls_) n += c.settled ? 0 : 1;
    return n;
  }

  const int32_t partitions_;
  const size_t inFlight_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<Call> calls_;
  size_t maxHeld_ = 0;
  std::map<int32_t, std::vector<LogRecord>> data_;
};

}  // namespace tokenledger::test
