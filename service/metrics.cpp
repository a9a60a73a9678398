#include "service/metrics.h"

#include <algorithm>
#include <charconv>
#include <cstdio>

namespace tokenledger {
namespace {

using std::chrono::microseconds;
using std::chrono::milliseconds;
using std::chrono::nanoseconds;
using std::chrono::seconds;

constexpr auto kRelaxed = std::memory_order_relaxed;

// A verify answers in microseconds; past 100 ms something is wrong.
constexpr nanoseconds kVerifyBounds[] = {microseconds{5},   microseconds{10},  microseconds{25},
                                         microseconds{50},  microseconds{100}, microseconds{250},
                                         microseconds{500}, milliseconds{1},   milliseconds{5},
                                         milliseconds{25},  milliseconds{100}};
// A command waits for the log and the projection: milliseconds to seconds.
constexpr nanoseconds kCommandBounds[] = {
    milliseconds{1},    milliseconds{2},   milliseconds{5},   milliseconds{10},  milliseconds{25},
    milliseconds{50},   milliseconds{100}, milliseconds{250}, milliseconds{500}, seconds{1},
    milliseconds{2500}, seconds{5},        seconds{10}};

constexpr VerifyReason kReasons[] = {VerifyReason::ok,      VerifyReason::malformed,
                                     VerifyReason::unknown, VerifyReason::inactive,
                                     VerifyReason::expired, VerifyReason::badSecret};

// This thread's shard: threads take shards in turn, so HTTP threads (few, long-lived)
// each count on their own cache line.
size_t shardOfThisThread(size_t shards) {
  static std::atomic<size_t> next{0};
  thread_local size_t shard = next.fetch_add(1, kRelaxed);
  return shard % shards;
}

std::string formatSeconds(nanoseconds n) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", static_cast<double>(n.count()) / 1e9);
  return buf;
}

std::string joinLabels(std::string_view a, std::string_view b) {
  if (a.empty()) return std::string(b);
  if (b.empty()) return std::string(a);
  return std::string(a) + "," + std::string(b);
}

}  // namespace

void Exposition::family(std::string_view name, std::string_view type, std::string_view help) {
  out_ += "# HELP ";
  out_ += name;
  out_ += ' ';
  out_ += help;
  out_ += "\n# TYPE ";
  out_ += name;
  out_ += ' ';
  out_ += type;
  out_ += '\n';
}

void Exposition::sample(std::string_view name, std::string_view labels, double value) {
  // The shortest text that reads back as the same double.
  char buf[40];
  auto end = std::to_chars(buf, buf + sizeof buf, value).ptr;
  line(name, labels, std::string_view(buf, end - buf));
}

void Exposition::sample(std::string_view name, std::string_view labels, uint64_t value) {
  line(name, labels, std::to_string(value));
}

void Exposition::line(std::string_view name, std::string_view labels, std::string_view value) {
  out_ += name;
  if (!labels.empty()) {
    out_ += '{';
    out_ += labels;
    out_ += '}';
  }
  out_ += ' ';
  out_ += value;
  out_ += '\n';
}

std::string Exposition::label(std::string_view key, std::string_view value) {
  std::string s(key);
  s += "=\"";
  for (char c : value) {
    if (c == '\\' || c == '"') {
      s += '\\';
      s += c;
    } else if (c == '\n') {
      s += "\\n";
    } else {
      s += c;
    }
  }
  s += '"';
  return s;
}

Histogram::Histogram(std::span<const nanoseconds> bounds) : bounds_(bounds.begin(), bounds.end()) {
  if (bounds_.size() > kMaxBounds) bounds_.resize(kMaxBounds);
}

void Histogram::observe(nanoseconds took) {
  size_t i = 0;
  while (i < bounds_.size() && took > bounds_[i]) ++i;
  Shard& s = shards_[shardOfThisThread(kShards)];
  s.buckets[i].fetch_add(1, kRelaxed);
  s.sumNanos.fetch_add(static_cast<uint64_t>(std::max<int64_t>(took.count(), 0)), kRelaxed);
}

HistogramCounts Histogram::counts() const {
  HistogramCounts c;
  c.buckets.assign(bounds_.size() + 1, 0);
  for (const Shard& s : shards_) {
    for (size_t i = 0; i < c.buckets.size(); ++i) c.buckets[i] += s.buckets[i].load(kRelaxed);
    c.sumNanos += s.sumNanos.load(kRelaxed);
  }
  return c;
}

void Histogram::write(Exposition& e, std::string_view name, std::string_view labels) const {
  HistogramCounts c = counts();
  std::string bucket = std::string(name) + "_bucket";
  uint64_t cumulative = 0;
  for (size_t i = 0; i < c.buckets.size(); ++i) {
    cumulative += c.buckets[i];
    std::string le = i < bounds_.size() ? formatSeconds(bounds_[i]) : "+Inf";
    e.sample(bucket, joinLabels(labels, Exposition::label("le", le)), cumulative);
  }
  e.sample(std::string(name) + "_sum", labels, static_cast<double>(c.sumNanos) / 1e9);
  e.sample(std::string(name) + "_count", labels, cumulative);
}

Metrics::Metrics() : verifyLatency_(kVerifyBounds) {}

void Metrics::verified(VerifyReason reason, nanoseconds took) {
  verifies_[shardOfThisThread(kShards)].byReason[static_cast<size_t>(reason)].fetch_add(1,
                                                                                        kRelaxed);
  verifyLatency_.observe(took);
}

void Metrics::commandDone(std::string_view type, std::string_view outcome, nanoseconds took) {
  std::lock_guard lock(commandsMutex_);
  ++commands_[{std::string(type), std::string(outcome)}];
  auto it = commandLatency_.find(type);
  if (it == commandLatency_.end())
    it = commandLatency_.try_emplace(std::string(type), kCommandBounds).first;
  it->second.observe(took);
  if (outcome == "log_unavailable") ++appendErrors_;
}

std::string Metrics::render() const {
  Exposition e;
  e.family("tokenledger_build_info", "gauge",
           "Always 1; the labels say which build of tokenledgerd answers.");
  e.sample("tokenledger_build_info",
           Exposition::label("version", TOKENLEDGER_VERSION) + "," +
               Exposition::label("compiler", __VERSION__),
           uint64_t{1});

  e.family("tokenledger_verifications_total", "counter",
           "Verifications answered, by result (valid, invalid) and reason (ok or why not).");
  for (VerifyReason r : kReasons) {
    uint64_t n = 0;
    for (const auto& s : verifies_) n += s.byReason[static_cast<size_t>(r)].load(kRelaxed);
    std::string labels = Exposition::label("result", r == VerifyReason::ok ? "valid" : "invalid") +
                         "," + Exposition::label("reason", toString(r));
    e.sample("tokenledger_verifications_total", labels, n);
  }
  e.family("tokenledger_verify_duration_seconds", "histogram",
           "Time to answer a verification, from the parsed request to the built response.");
  verifyLatency_.write(e, "tokenledger_verify_duration_seconds", "");

  {
    std::lock_guard lock(commandsMutex_);
    e.family("tokenledger_commands_total", "counter",
             "Commands answered, by type (create, activate, deactivate, rotate) and outcome "
             "(ok or the error code).");
    for (const auto& [key, n] : commands_)
      e.sample(
          "tokenledger_commands_total",
          Exposition::label("type", key.first) + "," + Exposition::label("outcome", key.second), n);
    e.family("tokenledger_command_duration_seconds", "histogram",
             "Time to answer a command, including the log append and the projection.");
    for (const auto& [type, h] : commandLatency_)
      h.write(e, "tokenledger_command_duration_seconds", Exposition::label("type", type));
    e.family("tokenledger_log_append_errors_total", "counter",
             "Commands whose append to the event log failed (answered 503 log_unavailable).");
    e.sample("tokenledger_log_append_errors_total", "", appendErrors_);
  }
  if (collector_) collector_(e);
  return e.take();
}

}  // namespace tokenledger
