#include "tools/ledger_audit_replay.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "tools/ledger_audit_text.h"

namespace tokenledger::audit {
namespace {

std::atomic<bool> gInterrupted{false};
void onSigint(int) {
  gInterrupted = true;
}

// "[#####.....]  50% 500/1000 events  2000 events/s  ETA 0:01" on stderr, redrawn
// at most every 100 ms and erased when done.
class Progress {
 public:
  Progress(bool enabled, uint64_t total) : enabled_(enabled), total_(total) {
    start_ = last_ = std::chrono::steady_clock::now();
  }
  void update(uint64_t done) {
    if (!enabled_) return;
    auto now = std::chrono::steady_clock::now();
    if (now - last_ < std::chrono::milliseconds(100) && done < total_) return;
    last_ = now;
    double secs = std::chrono::duration<double>(now - start_).count();
    double rate = secs > 0 ? static_cast<double>(done) / secs : 0;
    double frac =
        total_ ? std::min(1.0, static_cast<double>(done) / static_cast<double>(total_)) : 1;
    int width = 30, filled = static_cast<int>(frac * width);
    std::string bar(static_cast<size_t>(filled), '#');
    bar.append(static_cast<size_t>(width - filled), '.');
    std::string eta = "--";
    if (rate > 0 && total_ > done) {
      auto left = static_cast<int64_t>(static_cast<double>(total_ - done) / rate);
      char buf[32];
      snprintf(buf, sizeof buf, "%lld:%02lld", static_cast<long long>(left / 60),
               static_cast<long long>(left % 60));
      eta = buf;
    }
    fprintf(stderr, "\r[%s] %3d%% %llu/%llu events  %.0f events/s  ETA %s   ", bar.c_str(),
            static_cast<int>(frac * 100), static_cast<unsigned long long>(done),
            static_cast<unsigned long long>(total_), rate, eta.c_str());
    fflush(stderr);
    drawn_ = true;
  }
  void finish() {
    if (drawn_) fprintf(stderr, "\r\033[K");
    drawn_ = false;
  }
  ~Progress() { finish(); }

 private:
  bool enabled_;
  uint64_t total_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point start_, last_;
};

}  // namespace

void stopReplaysOnSigint() {
  struct sigaction sa {};
  sa.sa_handler = onSigint;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, nullptr);
}

uint64_t replay(LogSource& source, bool quiet,
                const std::function<void(const LogRecord&)>& handle) {
  uint64_t total = 0;
  Offsets start = source.start(), end = source.end();
  for (size_t p = 0; p < end.next.size(); ++p)
    total += static_cast<uint64_t>(std::max<int64_t>(0, end.next[p].value - start.next[p].value));
  Progress progress(!quiet && ::isatty(2), total);
  std::vector<LogRecord> batch;
  uint64_t done = 0;
  while (true) {
    if (gInterrupted) throw Interrupted{};
    batch.clear();
    bool more = source.next(batch, 8192);
    for (auto& r : batch) handle(r);
    done += batch.size();
    progress.update(done);
    if (!more) break;
  }
  progress.finish();
  return done;
}

const Event* Decoder::decode(const LogRecord& r) {
  auto d = decodeEvent(r.value);
  if (auto* err = std::get_if<DecodeError>(&d)) {
    if (err->kind == DecodeError::Kind::malformed) {
      malformed++;
      std::cerr << "malformed event at " << toString(r.position) << ": " << printable(err->message)
                << " (skipped)\n";
    } else {
      unknown++;
      std::cerr << "unknown event at " << toString(r.position) << ": " << printable(err->message)
                << " (skipped; a newer ledger-audit may know it)\n";
    }
    return nullptr;
  }
  event_ = std::move(std::get<Event>(d));
  return &event_;
}

void Decoder::summary() const {
  if (!clean())
    std::cerr << "ledger-audit: " << malformed + unknown
              << " records could not be read (see above); the answer covers the rest\n";
}

SignatureChecker::SignatureChecker()
    : verifiers_(std::max(1u, std::min(8u, std::thread::hardware_concurrency()))) {}

std::vector<SignatureCheck> SignatureChecker::check(const std::vector<LogRecord>& records,
                                                    const KeyRing& keys) {
  const size_t threads = verifiers_.size();
  std::vector<SignatureCheck> checks(records.size());
  std::vector<std::thread> pool;
  size_t per = (records.size() + threads - 1) / threads;
  for (size_t t = 0; t < threads && t * per < records.size(); ++t) {
    pool.emplace_back([&, t] {
      for (size_t i = t * per; i < std::min(records.size(), (t + 1) * per); ++i)
        checks[i] = verifiers_[t].check(records[i].value, keys);
    });
  }
  for (auto& th : pool) th.join();
  return checks;
}

}  // namespace tokenledger::audit
