// The Kafka backend of EventLog (librdkafka). See docs/kafka.md for the topic
// contract.
//
// - Producer: idempotent (enable.idempotence, acks=all), murmur2 partitioner on
//   the owner key (the same partition a Java producer would pick), so each user's
//   history is ordered. append() returns once every record is acknowledged, or
//   throws LogUnavailable within `appendTimeoutMs`.
// - Topic: created if missing with `partitions`, the replication factor and
//   min.insync.replicas asked for, retention.ms=-1 and cleanup.policy=delete; an
//   existing topic with compaction, finite retention or less durability than asked
//   for is refused with a message that says how to fix it.
// - Readers assign themselves every partition at the given offsets (no consumer
//   group, no commits): the caller stores offsets (in LMDB) and resumes there.
#pragma once

#include <memory>
#include <string>

#include "events/clock.h"
#include "events/event_log.h"

namespace tokenledger {

struct KafkaLogOptions {
  std::string brokers;  // "host:port[,host:port…]"
  std::string topic = "token-events";
  int partitions = 6;  // only when the topic is created
  // Durability: the topic is created with these, and an existing topic with fewer
  // replicas per partition or a lower min.insync.replicas is refused. -1: the
  // broker's defaults; minInsyncReplicas -1 with a replication factor: 2 from 3
  // replicas up, else 1.
  int replicationFactor = -1;
  int minInsyncReplicas = -1;
  int appendTimeoutMs = 10000;
  int connectTimeoutMs = 15000;  // for the start-up checks
  // Times how long a new topic and moving leaders are waited for (5 s each).
  const MonotonicClock* clock = &steadyClock();
};

// Connects, checks or creates the topic. Throws std::runtime_error (unreachable
// brokers, refused topic configuration) with a message for the operator.
std::unique_ptr<EventLog> openKafkaLog(const KafkaLogOptions& options);

}  // namespace tokenledger
