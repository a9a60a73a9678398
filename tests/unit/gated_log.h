// A log wrapper for the signer's tests: refuses appends, recording nothing, while
// `down`; holds each append at the gate while `gated`, so that the signer signs the
// next passes meanwhile; says it refuses appends (refusesAppends) while `refusing`.
#pragma once

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "events/event_log.h"

namespace tokenledger::test {

struct GatedLog final : EventLog {
  EventLog& inner;
  std::atomic<bool> down{false}, gated{false}, refusing{false};
  std::atomic<int> waiting{0};
  explicit GatedLog(EventLog& l) : inner(l) {}
  std::vector<Position> append(std::string_view key,
                               const std::vector<std::string>& values) override {
    waiting++;
    while (gated) std::this_thread::yield();
    waiting--;
    if (down) throw LogUnavailable("disk full", LogUnavailable::Outcome::nothingRecorded);
    return inner.append(key, values);
  }
  std::optional<std::string> refusesAppends() const override {
    if (refusing) return "only 1 of 3 brokers are reachable";
    return std::nullopt;
  }
  int32_t partitionCount() const override { return inner.partitionCount(); }
  std::unique_ptr<LogReader> openReader(const Offsets& from) override {
    return inner.openReader(from);
  }
  std::string describe() const override { return "gated log"; }
};

}  // namespace tokenledger::test
