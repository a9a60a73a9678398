#include "service/last_used.h"

#include <fstream>

#include "events/secrets.h"
#include "service/files.h"

namespace tokenledger {
namespace {

// This thread's shard: threads take shards in turn (HTTP loops are few and live long).
size_t shardOfThisThread(size_t shards) {
  static std::atomic<size_t> next{0};
  thread_local size_t shard = next.fetch_add(1, std::memory_order_relaxed);
  return shard % shards;
}

}  // namespace

void UsageRecorder::record(std::string_view key, Timestamp at) {
  LastUse use{minuteOf(at), 1};
  Shard& s = shards_[shardOfThisThread(kShards)];
  std::lock_guard lock(s.mutex);
  if (auto it = s.uses.find(key); it != s.uses.end())
    it->second = accumulate(it->second, use);
  else
    s.uses.emplace(std::string(key), use);
}

UsageRecorder::Uses UsageRecorder::take() {
  Uses out;
  for (Shard& s : shards_) {
    std::unordered_map<std::string, LastUse, Hash, std::equal_to<>> taken;
    {
      std::lock_guard lock(s.mutex);
      taken.swap(s.uses);
    }
    for (auto& [key, use] : taken) {
      auto [it, fresh] = out.try_emplace(key, use);
      if (!fresh) it->second = accumulate(it->second, use);
    }
  }
  return out;
}

size_t UsageRecorder::pending() const {
  size_t n = 0;
  for (const Shard& s : shards_) {
    std::lock_guard lock(s.mutex);
    n += s.uses.size();
  }
  return n;
}

LastUsedFlusher::LastUsedFlusher(UsageRecorder& recorder, UsageStore& store, UsageTopic* topic,
                                 std::string replica, std::chrono::milliseconds interval,
                                 Logger logger)
    : recorder_(recorder),
      store_(store),
      topic_(topic),
      replica_(std::move(replica)),
      interval_(interval),
      logger_(std::move(logger)) {
  thread_ = std::thread([this] {
    // Always one flush after stop(): the one that writes what came last.
    for (std::unique_lock lock(mutex_);;) {
      wake_.wait_for(lock, interval_, [this] { return stopping_; });
      bool last = stopping_;
      lock.unlock();
      flush();
      if (last) return;
      lock.lock();
    }
  });
}

LastUsedFlusher::~LastUsedFlusher() {
  stop();
}

void LastUsedFlusher::stop() {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();  // its last flush() ran after stopping_ was seen
}

void LastUsedFlusher::flush() {
  try {
    // Kept until the store took them, so a failed write loses nothing.
    for (auto& [key, use] : recorder_.take()) {
      auto [it, fresh] = unstored_.try_emplace(key, use);
      if (!fresh) it->second = accumulate(it->second, use);
    }
    if (!unstored_.empty()) {
      auto rows = store_.addOwn(unstored_, replica_);
      unstored_.clear();
      if (topic_) {
        // Newer rows replace older ones of the same token.
        std::map<std::string, std::string> merged(unpublished_.begin(), unpublished_.end());
        for (auto& [k, v] : rows) merged[k] = std::move(v);
        unpublished_.assign(merged.begin(), merged.end());
      }
    }
    if (topic_ && !unpublished_.empty()) {
      topic_->publish(unpublished_);
      unpublished_.clear();
    }
    flushes_.fetch_add(1, std::memory_order_relaxed);
  } catch (const std::exception& e) {
    logger_(std::string("last used: flush failed: ") + e.what() + "; retrying with the next one");
  }
}

std::string loadOrCreateReplicaId(const std::string& dataDir) {
  std::string path = dataDir + "/replica-id";
  std::string id;
  std::ifstream(path) >> id;
  if (!id.empty()) return id;
  id = randomBase62(16);
  if (writeFileAtomically(path, id + "\n", 0600, Sync::yes, IfExists::keep)) return id;
  std::ifstream(path) >> id;  // another start was first
  return id;
}

}  // namespace tokenledger
