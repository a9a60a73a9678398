// verify-log's per-writer checks (tools/writer_chain.h) without a log: signature
// checks of validly signed events, fed in log order per partition, and each kind of
// finding with the message an operator reads.
#include <doctest/doctest.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "tools/writer_chain.h"

namespace tokenledger::audit {
namespace {

const std::string kWriter = "0123456789abcdef";
const std::string kOther = "fedcba9876543210";

Position at(int32_t partition, int64_t offset) {
  return Position{Partition{partition}, Offset{offset}};
}

// The digest of a writer's event `seq`; another `version` stands for a replaced one.
Digest digestOf(const std::string& writer, uint64_t seq, char version = 'a') {
  Digest d{};
  d.fill(static_cast<uint8_t>(version));
  d[0] = static_cast<uint8_t>(seq);
  d[1] = static_cast<uint8_t>(seq >> 8);
  d[2] = static_cast<uint8_t>(writer.empty() ? 0 : writer[0]);
  return d;
}

std::string bytesOf(const Digest& d) {
  return std::string(reinterpret_cast<const char*>(d.data()), d.size());
}

// A validly signed event `seq` of `writer` that names the writer's (original) event
// seq - 1 as its predecessor.
SignatureCheck signedEvent(uint64_t seq, const std::string& writer = kWriter, char version = 'a') {
  SignatureCheck c;
  c.status = SignatureStatus::valid;
  c.keyId = writer;
  c.writerSeq = seq;
  c.digest = digestOf(writer, seq, version);
  if (seq > 1) c.prevDigest = bytesOf(digestOf(writer, seq - 1));
  return c;
}

struct Fed {
  Position position;
  SignatureCheck check;
};

// The findings of `events`, fed in this order, in report order.
std::vector<Finding> findingsOf(const std::vector<Fed>& events,
                                const std::optional<Checkpoint>& checkpoint = std::nullopt) {
  WriterChainChecker checker;
  for (const auto& e : events) checker.add(e.position, e.check);
  checker.finish(checkpoint);
  std::vector<Finding> out = checker.findings();
  sortFindings(out);
  return out;
}

// "position kind: message", as verify-log prints a finding.
std::string line(const Finding& f) {
  return (f.hasPosition ? toString(f.position) : std::string("-")) + " " + f.kind + ": " +
         f.message;
}

std::vector<std::string> linesOf(const std::vector<Finding>& findings) {
  std::vector<std::string> out;
  for (const auto& f : findings) out.push_back(line(f));
  return out;
}

TEST_CASE("complete chains in order have no findings, across writers and partitions") {
  WriterChainChecker checker;
  // Two writers interleaved in partition 0; kWriter's seq 3 in partition 1 is read
  // before its seq 2 (partitions interleave in any order).
  checker.add(at(0, 0), signedEvent(1));
  checker.add(at(0, 1), signedEvent(1, kOther));
  checker.add(at(1, 0), signedEvent(3));
  checker.add(at(0, 2), signedEvent(2));
  checker.add(at(0, 3), signedEvent(2, kOther));
  checker.finish();
  CHECK(checker.findings().empty());

  auto writers = checker.writers();
  REQUIRE(writers.size() == 2);
  const auto& w = writers.at(kWriter);
  CHECK(w.events == 3);
  CHECK(w.lastSeq == 3);
  CHECK(w.lastPosition == at(1, 0));
  CHECK(w.lastDigest == digestOf(kWriter, 3));
  CHECK(writers.at(kOther).lastSeq == 2);
}

TEST_CASE("reordered: a smaller seq after a larger one in the same partition") {
  auto f = findingsOf({{at(0, 0), signedEvent(1)},
                       {at(0, 1), signedEvent(3)},
                       {at(0, 2), signedEvent(2)},
                       {at(0, 3), signedEvent(4)}});
  CHECK(linesOf(f) == std::vector<std::string>{"0:1 reordered: writer " + kWriter +
                                               " seq 3 at 0:1 comes before seq 2 at 0:2"});
  // The same events in two partitions are no reordering.
  CHECK(findingsOf(
            {{at(0, 0), signedEvent(1)}, {at(0, 1), signedEvent(3)}, {at(1, 0), signedEvent(2)}})
            .empty());
}

TEST_CASE("duplicate: a writer's seq seen twice, the copy is reported and ignored") {
  WriterChainChecker checker;
  checker.add(at(0, 0), signedEvent(1));
  checker.add(at(0, 1), signedEvent(2));
  checker.add(at(0, 2), signedEvent(2));
  checker.add(at(0, 3), signedEvent(3));
  checker.finish();
  CHECK(linesOf(checker.findings()) ==
        std::vector<std::string>{"0:2 duplicate: writer " + kWriter +
                                 " seq 2 was already at 0:1 (a replayed or copied event)"});
  CHECK(checker.writers().at(kWriter).events == 3);
}

TEST_CASE("missing: each gap in a writer's sequence, as a range, at the event after it") {
  auto f = findingsOf({{at(0, 0), signedEvent(1)},
                       {at(0, 1), signedEvent(2)},
                       {at(0, 2), signedEvent(5)},
                       {at(0, 3), signedEvent(6)},
                       {at(0, 4), signedEvent(8)}});
  CHECK(linesOf(f) ==
        std::vector<std::string>{
            "0:2 missing: writer " + kWriter +
                " seq 3..4 (2 events) are not in the log; the next one, seq 5, is at 0:2",
            "0:4 missing: writer " + kWriter +
                " seq 7 (1 events) are not in the log; the next one, seq 8, is at 0:4"});
  // A writer whose first events are gone.
  CHECK(linesOf(findingsOf({{at(0, 9), signedEvent(3, kOther)}})) ==
        std::vector<std::string>{
            "0:9 missing: writer " + kOther +
            " seq 1..2 (2 events) are not in the log; the next one, seq 3, is at 0:9"});
}

TEST_CASE("altered: prevDigest does not name the previous event, which came before") {
  SUBCASE("the later event's prevDigest was changed") {
    SignatureCheck second = signedEvent(2);
    second.prevDigest = bytesOf(digestOf(kWriter, 1, 'x'));
    auto f = findingsOf({{at(0, 0), signedEvent(1)}, {at(0, 1), second}});
    CHECK(linesOf(f) == std::vector<std::string>{"0:1 altered: writer " + kWriter +
                                                 " seq 2 does not follow the seq 1 at 0:0 (one "
                                                 "of them was replaced)"});
  }
  SUBCASE("the earlier event was replaced (another digest)") {
    auto f = findingsOf({{at(0, 0), signedEvent(1)},
                         {at(0, 1), signedEvent(2, kWriter, 'b')},
                         {at(0, 2), signedEvent(3)}});
    CHECK(linesOf(f) == std::vector<std::string>{"0:2 altered: writer " + kWriter +
                                                 " seq 3 does not follow the seq 2 at 0:1 (one "
                                                 "of them was replaced)"});
  }
  SUBCASE("seq 1 names a predecessor") {
    SignatureCheck first = signedEvent(1);
    first.prevDigest = bytesOf(digestOf(kWriter, 0));
    CHECK(linesOf(findingsOf({{at(0, 0), first}})) ==
          std::vector<std::string>{"0:0 altered: seq 1 claims a predecessor"});
  }
}

TEST_CASE("altered: prevDigest does not name the previous event, which comes after") {
  // Seq 2 is read first (partition 1); the chain is checked when seq 1 arrives, and
  // the finding is at seq 2, whichever of the two was replaced.
  SignatureCheck second = signedEvent(2);
  second.prevDigest = bytesOf(digestOf(kWriter, 1, 'x'));
  auto f = findingsOf({{at(1, 0), second}, {at(0, 0), signedEvent(1)}});
  CHECK(linesOf(f) == std::vector<std::string>{"1:0 altered: writer " + kWriter +
                                               " seq 2 does not follow the seq 1 at 0:0 (one "
                                               "of them was replaced)"});
  // The right predecessor, read late, is no finding.
  CHECK(findingsOf({{at(1, 0), signedEvent(2)}, {at(0, 0), signedEvent(1)}}).empty());
}

TEST_CASE("malformed: a sequence number out of range; the writer is still listed") {
  WriterChainChecker checker;
  checker.add(at(0, 0), signedEvent(0));
  checker.add(at(0, 1), signedEvent((1ull << 40) + 1));
  checker.finish();
  CHECK(linesOf(checker.findings()) ==
        std::vector<std::string>{"0:0 malformed: writer sequence number 0",
                                 "0:1 malformed: writer sequence number 1099511627777"});
  auto writers = checker.writers();
  REQUIRE(writers.count(kWriter) == 1);
  CHECK(writers.at(kWriter).events == 0);
  CHECK(writers.at(kWriter).lastSeq == 0);
}

TEST_CASE("checkpoint: what it recorded must still be there, unchanged") {
  const std::vector<Fed> chain = {
      {at(0, 0), signedEvent(1)}, {at(0, 1), signedEvent(2)}, {at(0, 2), signedEvent(3)}};
  auto checkpointAt = [](std::string writer, uint64_t seq, const Digest& digest) {
    return Checkpoint{Offsets::of({3}), {{writer, {seq, digestHex(digest)}}}};
  };

  SUBCASE("the same events, and more since: no finding") {
    CHECK(findingsOf(chain, checkpointAt(kWriter, 2, digestOf(kWriter, 2))).empty());
    CHECK(findingsOf(chain, checkpointAt(kWriter, 3, digestOf(kWriter, 3))).empty());
  }
  SUBCASE("the writer's newest events were deleted") {
    auto f = findingsOf(chain, checkpointAt(kWriter, 5, digestOf(kWriter, 5)));
    REQUIRE(f.size() == 1);
    CHECK_FALSE(f[0].hasPosition);
    CHECK(line(f[0]) == "- missing: writer " + kWriter +
                            " reached seq 5 at the checkpoint but ends at seq 3 now: its newest "
                            "events were deleted");
  }
  SUBCASE("a writer of the checkpoint is gone altogether") {
    auto f = findingsOf(chain, checkpointAt(kOther, 1, digestOf(kOther, 1)));
    CHECK(linesOf(f) == std::vector<std::string>{"- missing: writer " + kOther +
                                                 " reached seq 1 at the checkpoint but ends at "
                                                 "seq 0 now: its newest events were deleted"});
  }
  SUBCASE("the event at the checkpoint's seq is another one") {
    auto f = findingsOf(chain, checkpointAt(kWriter, 2, digestOf(kWriter, 2, 'b')));
    CHECK(linesOf(f) == std::vector<std::string>{"0:1 altered: writer " + kWriter +
                                                 " seq 2 differs from the one recorded at the "
                                                 "checkpoint (history rewritten with the "
                                                 "writer's key)"});
  }
  SUBCASE("the checkpoint's event is missing: reported once, as missing") {
    auto f = findingsOf({{at(0, 0), signedEvent(1)}, {at(0, 1), signedEvent(3)}},
                        checkpointAt(kWriter, 2, digestOf(kWriter, 2)));
    CHECK(linesOf(f) ==
          std::vector<std::string>{
              "0:1 missing: writer " + kWriter +
              " seq 2 (1 events) are not in the log; the next one, seq 3, is at 0:1"});
  }
  SUBCASE("at one position, the gap comes before the checkpoint's difference") {
    auto f = findingsOf({{at(0, 0), signedEvent(1)}, {at(0, 1), signedEvent(3)}},
                        checkpointAt(kWriter, 3, digestOf(kWriter, 3, 'b')));
    REQUIRE(f.size() == 2);
    CHECK(f[0].kind == "missing");
    CHECK(f[1].kind == "altered");
  }
}

TEST_CASE("report order: by partition and offset, positionless last, ties as found") {
  std::vector<Finding> f = {{Position{}, false, "missing", "end"},
                            {at(1, 0), true, "altered", "b"},
                            {at(0, 5), true, "duplicate", "first"},
                            {at(0, 2), true, "reordered", "a"},
                            {at(0, 5), true, "altered", "second"}};
  sortFindings(f);
  std::vector<std::string> order;
  for (const auto& x : f) order.push_back(x.message);
  CHECK(order == std::vector<std::string>{"a", "first", "second", "b", "end"});
}

}  // namespace
}  // namespace tokenledger::audit
