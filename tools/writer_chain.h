// verify-log's checks of each writer's chain (docs/audit.md, "verify-log"). Every
// signed event names its writer (the signing key id), a sequence number 1, 2, 3, …
// and the digest of that writer's previous event. Fed the validly signed events in
// log order per partition, the checker finds a writer's events out of order,
// copied, missing or replaced, and what a checkpoint recorded that is gone. It sees
// positions and signature checks only, no log (tests/unit/writer_chain_test.cpp).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "events/event_log.h"
#include "events/signing.h"
#include "tools/checkpoint.h"

namespace tokenledger::audit {

// One problem verify-log reports.
struct Finding {
  Position position;
  bool hasPosition = true;  // false: at the log's end (a writer's newest events gone)
  std::string kind;         // missing, duplicate, reordered, altered, malformed, …
  std::string message;
};

// Report order: by position, the ones without a position last; equal positions keep
// the order in which they were found.
void sortFindings(std::vector<Finding>& findings);

class WriterChainChecker {
 public:
  // What the events seen so far say of one writer.
  struct Writer {
    uint64_t events = 0;    // distinct sequence numbers seen
    uint64_t lastSeq = 0;   // the highest one (0: none valid yet)
    Position lastPosition;  // where the event with lastSeq is
    Digest lastDigest{};
  };

  // A validly signed event (check.status == valid) of writer check.keyId at
  // `position`. Events come in log order within each partition; partitions may
  // interleave. Finds a sequence number out of range (malformed), a copy of an
  // earlier event (duplicate), a smaller seq after a larger one in the same
  // partition (reordered, at the larger one) and a prevDigest that does not name
  // the writer's previous event (altered, whichever of the two comes second).
  void add(const Position& position, const SignatureCheck& check);

  // After the last event: each writer's missing sequence numbers (missing, at the
  // event after the gap), then, given a checkpoint, what it recorded that is gone
  // (missing, without position) or different (altered).
  void finish(const std::optional<Checkpoint>& checkpoint = std::nullopt);

  // In the order found; sortFindings() puts them in report order.
  const std::vector<Finding>& findings() const { return findings_; }
  // By key id, every writer seen, even one whose events were all malformed.
  std::map<std::string, Writer> writers() const;

 private:
  struct Slot {
    Position position;
    Digest digest{};
    bool present = false;
  };
  struct Chain {
    std::vector<Slot> bySeq;                                             // index seq - 1
    std::map<Partition, std::pair<uint64_t, Position>> lastInPartition;  // seq, position
    // Events whose predecessor was not seen yet: seq -> its prevDigest and position.
    std::map<uint64_t, std::pair<std::string, Position>> pendingPrev;
    uint64_t count = 0;
  };
  void compareWith(const Checkpoint& checkpoint);

  std::map<std::string, Chain> chains_;
  std::vector<Finding> findings_;
};

}  // namespace tokenledger::audit
