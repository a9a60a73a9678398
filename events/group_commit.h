// Group commit: concurrent callers queue requests; whichever finds no write in
// progress becomes the leader and writes everything queued in one go (one LMDB
// transaction and fsync, one signing pass) with no lock held, while the others wait
// until their requests are written.
#pragma once

#include <condition_variable>
#include <mutex>
#include <vector>

namespace tokenledger {

template <typename Request>
class GroupCommit {
 public:
  // Queues `requests` together (one leader takes them all, in order) and returns
  // once they are written. `write(batch)` runs on one thread at a time, fills in each
  // request's results and reports failures through them: it must not throw.
  template <typename Write>
  void submit(const std::vector<Request*>& requests, Write&& write) {
    Waiter me;
    std::unique_lock lock(mutex_);
    queue_.insert(queue_.end(), requests.begin(), requests.end());
    waiters_.push_back(&me);
    if (writing_) {
      me.wake.wait(lock, [&] { return me.written || me.leads; });
      if (me.written) return;
    }
    // Leader: write what is queued (ours included), wake exactly the callers it
    // wrote for, and hand the lead to the first caller that queued meanwhile.
    writing_ = true;
    std::vector<Request*> batch;
    std::vector<Waiter*> batchWaiters;
    batch.swap(queue_);
    batchWaiters.swap(waiters_);
    lock.unlock();
    // Results are read by their callers only after they see `written` set under
    // the mutex, which orders them after these writes.
    [&]() noexcept { write(batch); }();
    lock.lock();
    for (Waiter* w : batchWaiters) {
      w->written = true;
      if (w != &me) w->wake.notify_one();
    }
    if (waiters_.empty()) {
      writing_ = false;
    } else {
      waiters_.front()->leads = true;
      waiters_.front()->wake.notify_one();
    }
  }

 private:
  struct Waiter {
    std::condition_variable wake;
    bool written = false;
    bool leads = false;
  };

  std::mutex mutex_;
  std::vector<Request*> queue_;
  std::vector<Waiter*> waiters_;  // one per submit() whose requests are in queue_
  bool writing_ = false;
};

}  // namespace tokenledger
