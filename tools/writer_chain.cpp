#include "tools/writer_chain.h"

#include <algorithm>

namespace tokenledger::audit {
namespace {

std::string bytesOf(const Digest& d) {
  return std::string(reinterpret_cast<const char*>(d.data()), d.size());
}

}  // namespace

void sortFindings(std::vector<Finding>& findings) {
  std::stable_sort(findings.begin(), findings.end(), [](const Finding& a, const Finding& b) {
    if (a.hasPosition != b.hasPosition) return a.hasPosition;
    if (a.position.partition != b.position.partition)
      return a.position.partition < b.position.partition;
    return a.position.offset < b.position.offset;
  });
}

void WriterChainChecker::add(const Position& pos, const SignatureCheck& c) {
  Chain& w = chains_[c.keyId];
  uint64_t s = c.writerSeq;
  if (s == 0 || s > (1ull << 40)) {
    findings_.push_back({pos, true, "malformed", "writer sequence number " + std::to_string(s)});
    return;
  }
  if (w.bySeq.size() < s) w.bySeq.resize(s);
  Slot& slot = w.bySeq[s - 1];
  if (slot.present) {
    findings_.push_back({pos, true, "duplicate",
                         "writer " + c.keyId + " seq " + std::to_string(s) + " was already at " +
                             toString(slot.position) + " (a replayed or copied event)"});
    return;
  }
  slot = Slot{pos, c.digest, true};
  w.count++;
  // Order: within a partition a writer's sequence only grows.
  auto [it, first] = w.lastInPartition.try_emplace(pos.partition, s, pos);
  if (!first) {
    if (s < it->second.first)
      findings_.push_back({it->second.second, true, "reordered",
                           "writer " + c.keyId + " seq " + std::to_string(it->second.first) +
                               " at " + toString(it->second.second) + " comes before seq " +
                               std::to_string(s) + " at " + toString(pos)});
    it->second = {s, pos};
  }
  // Chain: prevDigest names the writer's previous event, which may come later in
  // the log (another partition, or reordered): then it is checked when it comes.
  if (s == 1) {
    if (!c.prevDigest.empty())
      findings_.push_back({pos, true, "altered", "seq 1 claims a predecessor"});
  } else if (w.bySeq[s - 2].present) {
    if (c.prevDigest != bytesOf(w.bySeq[s - 2].digest))
      findings_.push_back({pos, true, "altered",
                           "writer " + c.keyId + " seq " + std::to_string(s) +
                               " does not follow the seq " + std::to_string(s - 1) + " at " +
                               toString(w.bySeq[s - 2].position) + " (one of them was replaced)"});
  } else {
    w.pendingPrev[s] = {c.prevDigest, pos};
  }
  auto next = w.pendingPrev.find(s + 1);
  if (next != w.pendingPrev.end()) {
    if (next->second.first != bytesOf(c.digest))
      findings_.push_back({next->second.second, true, "altered",
                           "writer " + c.keyId + " seq " + std::to_string(s + 1) +
                               " does not follow the seq " + std::to_string(s) + " at " +
                               toString(pos) + " (one of them was replaced)"});
    w.pendingPrev.erase(next);
  }
}

void WriterChainChecker::finish(const std::optional<Checkpoint>& checkpoint) {
  // Completeness: each writer's sequence is 1..N without holes.
  for (const auto& [id, w] : chains_) {
    for (uint64_t s = 1; s <= w.bySeq.size(); ++s) {
      if (w.bySeq[s - 1].present) continue;
      uint64_t to = s;
      while (to < w.bySeq.size() && !w.bySeq[to].present) ++to;  // to = last missing
      const auto& after = w.bySeq[to];  // seq to + 1: the last seq is always present
      findings_.push_back({after.position, true, "missing",
                           "writer " + id + " seq " + std::to_string(s) +
                               (to > s ? ".." + std::to_string(to) : std::string()) + " (" +
                               std::to_string(to - s + 1) +
                               " events) are not in the log; the next one, seq " +
                               std::to_string(to + 1) + ", is at " + toString(after.position)});
      s = to;
    }
  }
  if (checkpoint) compareWith(*checkpoint);
}

// What was verified last time must still be there, unchanged.
void WriterChainChecker::compareWith(const Checkpoint& checkpoint) {
  for (const auto& [id, cp] : checkpoint.writers) {
    auto it = chains_.find(id);
    uint64_t have = it == chains_.end() ? 0 : it->second.bySeq.size();
    if (have < cp.first) {
      findings_.push_back({Position{}, false, "missing",
                           "writer " + id + " reached seq " + std::to_string(cp.first) +
                               " at the checkpoint but ends at seq " + std::to_string(have) +
                               " now: its newest events were deleted"});
    } else if (it->second.bySeq[cp.first - 1].present &&
               digestHex(it->second.bySeq[cp.first - 1].digest) != cp.second) {
      findings_.push_back({it->second.bySeq[cp.first - 1].position, true, "altered",
                           "writer " + id + " seq " + std::to_string(cp.first) +
                               " differs from the one recorded at the checkpoint (history "
                               "rewritten with the writer's key)"});
    }
  }
}

std::map<std::string, WriterChainChecker::Writer> WriterChainChecker::writers() const {
  std::map<std::string, Writer> out;
  for (const auto& [id, w] : chains_) {
    Writer& summary = out[id];
    summary.events = w.count;
    summary.lastSeq = w.bySeq.size();
    if (!w.bySeq.empty()) {
      summary.lastPosition = w.bySeq.back().position;
      summary.lastDigest = w.bySeq.back().digest;
    }
  }
  return out;
}

}  // namespace tokenledger::audit
