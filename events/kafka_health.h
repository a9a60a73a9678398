// Which Kafka brokers a librdkafka client can reach, from its statistics JSON
// (statistics.interval.ms, docs: librdkafka STATISTICS.md). The Kafka log refuses
// an append at once when fewer brokers are reachable than the topic needs in sync
// (min.insync.replicas): otherwise the command would wait the whole append timeout
// for an answer that cannot come (docs/kafka.md, "When brokers fail").
#pragma once

#include <string_view>

namespace tokenledger {

struct BrokersReachable {
  int up = 0;     // brokers with an open, usable connection ("UP" or "UPDATE")
  int known = 0;  // brokers of the cluster (learned from metadata, node id >= 0)
};

// Parses the statistics JSON; {0, 0} if it cannot be parsed.
BrokersReachable brokersReachable(std::string_view statsJson);

}  // namespace tokenledger
