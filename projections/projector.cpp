#include "projections/projector.h"

#include <atomic>
#include <functional>
#include <future>
#include <mutex>
#include <thread>

#include "events/lmdb.h"

namespace tokenledger {
namespace {

class ProjectorImpl final : public Projector {
 public:
  ProjectorImpl(EventLog& log, ReadModel& model, Logger logger, const MonotonicClock& clock)
      : log_(log), model_(model), logger_(std::move(logger)), clock_(clock) {
    applied_ = model_.applied(log_.partitionCount());
    reader_ = log_.openReader(applied_);
    startEnd_ = reader_->endOffsets();
    ready_ = applied_.covers(startEnd_);
    thread_ = std::thread([this] { run(); });
  }

  ~ProjectorImpl() override { stop(); }

  bool waitFor(const Position& p, std::chrono::milliseconds timeout) override {
    return waitUntil([p](const Offsets& a) { return a.covers(p); }, timeout);
  }

  bool waitFor(const Offsets& o, std::chrono::milliseconds timeout) override {
    return waitUntil([o](const Offsets& a) { return a.covers(o); }, timeout);
  }

  void whenApplied(const Position& p, std::chrono::milliseconds timeout,
                   std::function<void(bool)> done) override {
    whenSatisfied([p](const Offsets& a) { return a.covers(p); }, timeout, std::move(done));
  }

  void whenApplied(const Offsets& o, std::chrono::milliseconds timeout,
                   std::function<void(bool)> done) override {
    whenSatisfied([o](const Offsets& a) { return a.covers(o); }, timeout, std::move(done));
  }

  Offsets applied() const override {
    std::lock_guard lock(mutex_);
    return applied_;
  }

  ApplyReport totals() const override {
    std::lock_guard lock(mutex_);
    return totals_;
  }

  uint64_t appliedVersion() const override { return version_.load(std::memory_order_acquire); }

  bool ready() const override { return ready_.load() && healthy_.load(); }

  std::variant<Admission, Refusal> admit(uint64_t events) override {
    std::lock_guard lock(admitMutex_);  // check and claim as one step
    if (auto why = failing()) return *why;
    if (auto why = model_.claimRoom(pending_->load() + events)) return *why;
    pending_->fetch_add(events);
    return Admission(pending_, events);
  }

  std::optional<Refusal> refusal() const override {
    if (auto why = failing()) return why;
    return model_.roomFor(pending_->load() + 1);
  }

  void stop() override {
    {
      std::lock_guard lock(mutex_);
      if (stopping_) {
        if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
        return;
      }
      stopping_ = true;
    }
    if (thread_.joinable()) thread_.join();
    runCallbacks(true);
  }

 private:
  // One mechanism for both ways of waiting: a callback per waiter, run by the
  // projector once a batch satisfies it (only those: with dozens of commands in
  // flight, waking every waiter per batch would cost more than the batch), when its
  // time is up, or at stop. `satisfied` may outlive the caller's frame.
  void whenSatisfied(std::function<bool(const Offsets&)> satisfied,
                     std::chrono::milliseconds timeout, std::function<void(bool)> done) {
    bool now;
    {
      std::lock_guard lock(mutex_);
      now = satisfied(applied_);
      if (!now && !stopping_) {
        callbacks_.push_back(
            Callback{std::move(satisfied), clock_.now() + timeout, std::move(done)});
        return;
      }
    }
    done(now);
  }

  bool waitUntil(std::function<bool(const Offsets&)> satisfied, std::chrono::milliseconds timeout) {
    // Shared: after a timeout here, the callback still runs later, on its deadline.
    auto result = std::make_shared<std::promise<bool>>();
    auto answer = result->get_future();
    whenSatisfied(satisfied, timeout, [result](bool ok) { result->set_value(ok); });
    // The callback always runs: satisfied, on its deadline (by the injected clock),
    // or at stop.
    return answer.get();
  }

  // Runs the callbacks that applied_ satisfies or whose time is up (all of them when
  // `all`), outside the lock: they may call back into the projector.
  void runCallbacks(bool all) {
    std::vector<std::pair<Callback, bool>> due;  // (callback, satisfied)
    {
      std::lock_guard lock(mutex_);
      if (callbacks_.empty()) return;
      auto now = clock_.now();
      auto kept = callbacks_.begin();
      for (auto& c : callbacks_) {
        bool ok = c.satisfied(applied_);
        if (ok || all || now >= c.deadline)
          due.emplace_back(std::move(c), ok);
        else
          *kept++ = std::move(c);
      }
      callbacks_.erase(kept, callbacks_.end());
    }
    for (auto& [c, ok] : due) c.done(ok);
  }

  // Why `events` more events (beyond those claimed) cannot be admitted now.
  // Commands wait while batches fail to apply.
  std::optional<Refusal> failing() const {
    if (healthy_) return std::nullopt;
    std::lock_guard lock(mutex_);
    return Refusal{"projection_failing",
                   "the read model cannot apply the log right now (" + failure_ +
                       "); nothing was recorded. See the service log, retry later"};
  }

  bool stopping() {
    std::lock_guard lock(mutex_);
    return stopping_;
  }

  void run() {
    std::vector<LogRecord> pending;
    while (!stopping()) {
      runCallbacks(false);  // those the last batch covered, and those whose time is up
      if (pending.empty()) {
        try {
          pending = reader_->poll(1024, std::chrono::milliseconds(100));
          if (readFailing_) {
            readFailing_ = false;
            logger_("projector: reading the log works again");
          }
        } catch (const std::exception& e) {
          // Report the first failure of a streak, not every retry.
          if (!readFailing_)
            logger_(std::string("projector: reading the log failed, retrying until it works: ") +
                    e.what());
          readFailing_ = true;
          std::this_thread::sleep_for(std::chrono::milliseconds(200));
          continue;
        }
      }
      if (pending.empty()) {
        if (!ready_) markReadyIfCaughtUp();
        continue;
      }
      try {
        ApplyReport report =
            model_.apply(pending, [this](const Position& p, const std::string& why) {
              logger_("projector: skipped event at " + toString(p) + ": " + why);
            });
        {
          std::lock_guard lock(mutex_);
          totals_ += report;
        }
        if (!healthy_) logger_("projector: applying the log works again");
        healthy_ = true;
      } catch (const std::exception& e) {
        // Nothing of the batch was applied; keep it and retry, never skip. Commands
        // are refused meanwhile (admit), so none is recorded that cannot be applied.
        if (healthy_) logger_(std::string("projector: applying a batch failed: ") + e.what());
        {
          std::lock_guard lock(mutex_);
          failure_ = e.what();
        }
        healthy_ = false;
        std::this_thread::sleep_for(std::chrono::milliseconds(500));
        continue;
      }
      pending.clear();
      {
        std::lock_guard lock(mutex_);
        applied_ = model_.applied(log_.partitionCount());
        version_.fetch_add(1, std::memory_order_release);
      }
      if (!ready_) markReadyIfCaughtUp();
    }
  }

  void markReadyIfCaughtUp() {
    std::lock_guard lock(mutex_);
    if (applied_.covers(startEnd_)) ready_ = true;
  }

  EventLog& log_;
  ReadModel& model_;
  Logger logger_;
  const MonotonicClock& clock_;
  std::unique_ptr<LogReader> reader_;
  Offsets startEnd_;
  mutable std::mutex mutex_;
  struct Callback {
    std::function<bool(const Offsets&)> satisfied;
    MonotonicClock::time_point deadline;
    std::function<void(bool)> done;
  };
  std::vector<Callback> callbacks_;
  Offsets applied_;
  ApplyReport totals_;  // guarded by mutex_
  bool stopping_ = false;
  std::string failure_;  // why the last apply failed (guarded by mutex_)
  std::mutex admitMutex_;
  // Events of admitted commands not yet applied (or failed).
  std::shared_ptr<std::atomic<uint64_t>> pending_ = std::make_shared<std::atomic<uint64_t>>(0);
  std::atomic<bool> ready_{false};
  std::atomic<bool> healthy_{true};
  std::atomic<uint64_t> version_{1};
  bool readFailing_ = false;  // projector thread only
  std::thread thread_;
};

}  // namespace

std::unique_ptr<Projector> startProjector(EventLog& log, ReadModel& model, Logger logger,
                                          const MonotonicClock& clock) {
  return std::make_unique<ProjectorImpl>(log, model, std::move(logger), clock);
}

}  // namespace tokenledger
