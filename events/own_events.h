// The envelopes this process signed and appended lately, so that its own projection
// need not check their signatures again (events/trust.h): bytes identical to what
// it signed carry a valid signature by construction, so the verdict is the one
// every other replica reaches by verifying. Matched by a 16-byte BLAKE2b of the
// whole envelope (collisions cost 2^64 work; a second preimage of a given envelope
// 2^128). Bounded: the newest kCapacity envelopes. Thread-safe: the signer adds,
// the projector asks.
#pragma once

#include <cstddef>
#include <deque>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_set>

namespace tokenledger {

class OwnEvents {
 public:
  static constexpr size_t kCapacity = 1 << 16;

  explicit OwnEvents(std::string keyId) : keyId_(std::move(keyId)) {}

  // The writer key the envelopes are signed with.
  const std::string& keyId() const { return keyId_; }
  // Remembers `envelope`, as encoded for the log.
  void add(std::string_view envelope);
  // Whether `envelope` is byte for byte one remembered.
  bool contains(std::string_view envelope) const;

 private:
  static std::string fingerprint(std::string_view envelope);

  const std::string keyId_;
  mutable std::mutex mutex_;
  std::unordered_set<std::string> set_;
  std::deque<std::string> order_;  // oldest first, for eviction
};

}  // namespace tokenledger
