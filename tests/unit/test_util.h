// Helpers shared by the unit suites: temporary directories, crypto set-up and
// event builders. Header-only; each suite includes what it needs.
#pragma once

#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>

#include "events/clock.h"
#include "events/event.h"
#include "events/event_log.h"
#include "events/secrets.h"

namespace tokenledger::test {

// A fresh directory under /tmp, removed (with everything in it) on destruction.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "tl-unit-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // A path inside the directory (not created).
  std::string sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// A monotonic clock that moves only when the test moves it: timeouts then happen
// when the test says, never by waiting.
class ManualClock final : public MonotonicClock {
 public:
  time_point now() const override { return time_point(std::chrono::nanoseconds(now_.load())); }
  void advance(std::chrono::nanoseconds d) { now_ += d.count(); }

 private:
  std::atomic<int64_t> now_{std::chrono::steady_clock::now().time_since_epoch().count()};
};

// Polls `condition` until it holds or 10 s pass (then the caller's CHECK fails):
// for what another thread or process makes true in its own time.
template <typename Condition>
bool waitUntil(Condition condition, std::chrono::milliseconds deadline = std::chrono::seconds(10)) {
  auto until = std::chrono::steady_clock::now() + deadline;
  while (!condition()) {
    if (std::chrono::steady_clock::now() >= until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

// A position from plain numbers, for tests' literals.
inline Position pos(int32_t partition, int64_t offset) {
  return Position{Partition{partition}, Offset{offset}};
}

// libsodium must be initialised before keys, secrets or hashes are made.
inline void ensureCrypto() {
  static const bool done = [] {
    initCrypto();
    return true;
  }();
  (void)done;
}

// A time from a plain count of microseconds since the epoch, for tests' literals.
constexpr Timestamp timeUs(int64_t us) {
  return Timestamp{std::chrono::microseconds{us}};
}

// An event with every envelope field set; the body is the caller's.
inline Event makeEvent(const std::string& key, const std::string& owner, Timestamp at,
                       EventBody body) {
  ensureCrypto();
  Event e;
  e.eventId = randomBytes(16);
  e.tokenKey = key;
  e.owner = owner;
  e.actor = "operator";
  e.requestId = "req-" + randomBase62(8);
  e.occurredAt = at;
  e.body = std::move(body);
  return e;
}

inline Created makeCreated(const std::string& secret, TokenKind kind = TokenKind::user,
                           const std::string& destinationId = "") {
  Created c;
  c.kind = kind;
  c.destinationId = destinationId;
  c.description = "Receive leads from RD Station";
  c.secretHash = hashSecret(secret);
  return c;
}

inline LogRecord record(int64_t offset, const Event& e, int32_t partition = 0) {
  return LogRecord{pos(partition, offset), e.owner, encodeEvent(e)};
}

inline int64_t msSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                               start)
      .count();
}

}  // namespace tokenledger::test
