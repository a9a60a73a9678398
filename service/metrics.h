// Prometheus metrics (text exposition format 0.0.4), served at GET /metrics.
//
// The verify path counts with relaxed atomic adds on per-thread shards (each on its
// own cache line), so that HTTP threads never contend for a line; a scrape sums the
// shards. Commands are rare and count under a mutex. Gauges that other parts own
// (connections, the projector, the read model) are read at scrape time by a
// collector the daemon sets. No label ever carries a token key, secret or user id:
// label values come from fixed sets (reasons, command types, error codes).
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "service/verifier.h"

namespace tokenledger {

// Writes the exposition format: a family's HELP and TYPE once, then its samples.
class Exposition {
 public:
  void family(std::string_view name, std::string_view type, std::string_view help);
  // `labels` is `key="value",…` (use label() to escape values) or empty.
  void sample(std::string_view name, std::string_view labels, double value);
  void sample(std::string_view name, std::string_view labels, uint64_t value);
  static std::string label(std::string_view key, std::string_view value);
  std::string take() { return std::move(out_); }

 private:
  // name{labels} value, one line.
  void line(std::string_view name, std::string_view labels, std::string_view value);
  std::string out_;
};

// Summed counts of a histogram: bucket i counts observations <= bounds[i] (not
// cumulative); the last bucket, past every bound, is +Inf.
struct HistogramCounts {
  std::vector<uint64_t> buckets;
  uint64_t sumNanos = 0;
};

// A latency histogram with fixed bounds, safe to observe from any thread.
class Histogram {
 public:
  static constexpr size_t kMaxBounds = 15;
  explicit Histogram(std::span<const std::chrono::nanoseconds> bounds);
  void observe(std::chrono::nanoseconds took);
  HistogramCounts counts() const;
  // `name`_bucket/_sum/_count samples (seconds) with `labels` (may be empty).
  void write(Exposition& e, std::string_view name, std::string_view labels) const;

 private:
  struct alignas(64) Shard {
    std::array<std::atomic<uint64_t>, kMaxBounds + 1> buckets{};
    std::atomic<uint64_t> sumNanos{0};
  };
  static constexpr size_t kShards = 16;
  std::vector<std::chrono::nanoseconds> bounds_;
  std::array<Shard, kShards> shards_{};
};

class Metrics {
 public:
  Metrics();

  // A verification and how long it took (hot path: a few relaxed adds).
  void verified(VerifyReason reason, std::chrono::nanoseconds took);
  // A command (create, activate, deactivate, rotate) that answered: `outcome` is
  // "ok" or its error code (log_unavailable also counts as a log append error).
  void commandDone(std::string_view type, std::string_view outcome, std::chrono::nanoseconds took);

  // Writes the gauges other parts own; called on every scrape.
  using Collector = std::function<void(Exposition&)>;
  void setCollector(Collector collector) { collector_ = std::move(collector); }

  // The whole exposition.
  std::string render() const;

 private:
  struct alignas(64) VerifyShard {
    std::array<std::atomic<uint64_t>, 6> byReason{};  // indexed by VerifyReason
  };
  static constexpr size_t kShards = 16;
  std::array<VerifyShard, kShards> verifies_{};
  Histogram verifyLatency_;

  mutable std::mutex commandsMutex_;
  std::map<std::pair<std::string, std::string>, uint64_t> commands_;  // (type, outcome)
  std::map<std::string, Histogram, std::less<>> commandLatency_;      // by type
  uint64_t appendErrors_ = 0;

  Collector collector_;
};

}  // namespace tokenledger
