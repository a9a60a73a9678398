// "Last used" on the verify path (issue 17): successful verifications are counted in
// memory, per token and minute, and a flusher writes them at most once per
// interval (--last-used-flush-ms) to the usage store (events/usage_store.h) and, on
// Kafka, the usage topic (events/usage_topic.h). docs/architecture.md, "Last used".
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>

#include "events/clock.h"
#include "events/usage_store.h"
#include "events/usage_topic.h"
#include "projections/projector.h"

namespace tokenledger {

// Per-token uses not flushed yet. record() runs on the HTTP loops: each thread
// takes a shard of its own (as Metrics does), so its mutex is only ever contended by
// the flusher's take(), once per interval. A token's entry is allocated at its first
// use after a flush, not per verify.
class UsageRecorder {
 public:
  using Uses = std::map<std::string, LastUse, std::less<>>;
  void record(std::string_view key, Timestamp at);
  // Everything recorded since the last take, coalesced per token (accumulate).
  Uses take();
  // Tokens waiting in the shards (for the pending gauge).
  size_t pending() const;

 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  struct alignas(64) Shard {
    mutable std::mutex mutex;
    std::unordered_map<std::string, LastUse, Hash, std::equal_to<>> uses;
  };
  static constexpr size_t kShards = 16;
  std::array<Shard, kShards> shards_;
};

// The thread that writes what the recorder took: to the store as this replica's
// rows, then to the topic (when there is one). What the store or the topic did not
// take is kept and tried again with the next flush.
class LastUsedFlusher {
 public:
  LastUsedFlusher(UsageRecorder& recorder, UsageStore& store, UsageTopic* topic,
                  std::string replica, std::chrono::milliseconds interval, Logger logger);
  ~LastUsedFlusher();  // stops, flushing what is pending
  void stop();
  uint64_t flushes() const { return flushes_; }

 private:
  void flush();
  UsageRecorder& recorder_;
  UsageStore& store_;
  UsageTopic* topic_;
  std::string replica_;
  std::chrono::milliseconds interval_;
  Logger logger_;
  UsageRecorder::Uses unstored_;  // uses the store did not take yet
  UsageStore::Rows unpublished_;  // rows the topic did not take yet
  std::atomic<uint64_t> flushes_{0};
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;
};

// DATA_DIR/replica-id: a random id made on the first start, naming this replica's
// rows in the usage store and topic.
std::string loadOrCreateReplicaId(const std::string& dataDir);

}  // namespace tokenledger
