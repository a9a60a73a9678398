// The usage topic on Kafka (issue 17, "Last used"): each replica produces its
// flushed rows (usage_store.h) to a compacted topic, <ledger topic>.usage by
// default, keyed by token key + NUL + replica id, so compaction keeps each replica's
// latest row per token; every replica reads the whole topic into its own store. The
// ledger topic stays the record of lifecycle events only.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "events/usage_store.h"

namespace tokenledger {

struct UsageTopicOptions {
  std::string brokers;
  std::string topic = "token-events.usage";
  int partitions = 6;          // when the topic is created
  int replicationFactor = -1;  // when created; -1: the broker's default
  int connectTimeoutMs = 15000;
  int publishTimeoutMs = 10000;
};

class UsageTopic {
 public:
  using OnRows = std::function<void(const UsageStore::Rows&)>;
  // Connects, creates the topic if missing (cleanup.policy=compact) and refuses one
  // that does not compact; then reads it from its beginning on a thread of its own,
  // handing each batch of rows to `onRows` (which must not throw). Throws
  // std::runtime_error saying what to do.
  UsageTopic(const UsageTopicOptions& options, OnRows onRows);
  ~UsageTopic();
  UsageTopic(const UsageTopic&) = delete;
  UsageTopic& operator=(const UsageTopic&) = delete;

  // Produces `rows` and waits for their acknowledgement; throws std::runtime_error
  // when Kafka did not take them all within publishTimeoutMs.
  void publish(const UsageStore::Rows& rows);
  std::string describe() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Reads the whole usage topic once (to its end when called) into a map of merged
// uses by token key, for ledger-audit. Throws std::runtime_error.
std::map<std::string, LastUse, std::less<>> readUsageTopic(const std::string& brokers,
                                                           const std::string& topic, int timeoutMs);

}  // namespace tokenledger
