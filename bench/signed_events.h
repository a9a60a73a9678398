// Events of one writer, chained and signed the way the service's SignedAppender
// writes them, for the bench tools that fill a log (audit_replay, scale_model):
// each signing pass one group of `group` events under one Ed25519 signature over
// their Merkle root (0: every event signed alone, as builds before group
// signatures did). The chain is sequential; the signatures run on every core.
#pragma once

#include <algorithm>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "events/event.h"
#include "events/signing.h"

namespace tlbench {

class SignedChain {
 public:
  SignedChain(const tokenledger::SigningKey& key, size_t group) : key_(key), group_(group) {}

  // Events per call that keep groups whole: a multiple of the group size near 20,000.
  size_t chunk() const {
    size_t per = std::max<size_t>(group_, 1);
    return std::max<size_t>(1, 20000 / per) * per;
  }

  // Chains `events` after the previous call's (writer sequence numbers and digests)
  // and signs them; returns them as (owner, envelope) pairs for EventLog::appendBatch.
  std::vector<std::pair<std::string, std::string>> seal(std::vector<tokenledger::Event>& events) {
    using namespace tokenledger;
    const size_t m = events.size(), per = std::max<size_t>(group_, 1);
    std::vector<Digest> digests(m);
    for (size_t i = 0; i < m; ++i) {
      Event& e = events[i];
      e.signingKeyId = key_.keyId();
      e.writerSeq = ++seq_;
      e.prevDigest = prev_;
      digests[i] = eventDigest(e);
      prev_.assign(reinterpret_cast<const char*>(digests[i].data()), digests[i].size());
    }
    unsigned threads = std::max(1u, std::thread::hardware_concurrency());
    std::vector<std::thread> pool;
    for (unsigned t = 0; t < threads; ++t)
      pool.emplace_back([&, t] {
        for (size_t g = t * per; g < m; g += threads * per) {
          if (group_ == 0) {
            signEvent(events[g], key_);
            continue;
          }
          size_t end = std::min(m, g + per);
          std::vector<Event*> members;
          for (size_t i = g; i < end; ++i) members.push_back(&events[i]);
          signGroup(members, std::span<const Digest>(digests).subspan(g, end - g), key_);
        }
      });
    for (auto& th : pool) th.join();
    std::vector<std::pair<std::string, std::string>> batch;
    batch.reserve(m);
    for (auto& e : events) batch.emplace_back(e.owner, encodeEvent(e));
    return batch;
  }

 private:
  const tokenledger::SigningKey& key_;
  size_t group_;
  uint64_t seq_ = 0;
  std::string prev_;
};

}  // namespace tlbench
