// Group commit: concurrent callers queue requests; whichever finds no write in
// progress becomes the leader and writes everything queued in one go (one LMDB
// transaction and fsync, one signing pass) with no lock held, while the others wait
// until their requests are written.
#pragma once

#include <condition_variable>
#include <cstdint>
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
    std::unique_lock lock(mutex_);
    queue_.insert(queue_.end(), requests.begin(), requests.end());
    queued_ += requests.size();
    const uint64_t mine = queued_;
    while (written_ < mine) {
      if (writing_) {
        done_.wait(lock);
        continue;
      }
      writing_ = true;
      std::vector<Request*> batch;
      batch.swap(queue_);
      const uint64_t upTo = queued_;
      lock.unlock();
      // Results are read by their callers only after they see written_ advance
      // under the mutex, which orders them after these writes.
      [&]() noexcept { write(batch); }();
      lock.lock();
      writing_ = false;
      written_ = upTo;
      done_.notify_all();
    }
  }

 private:
  std::mutex mutex_;
  std::condition_variable done_;
  std::vector<Request*> queue_;
  uint64_t queued_ = 0;   // requests ever queued
  uint64_t written_ = 0;  // requests ever written (a prefix of the queued ones)
  bool writing_ = false;
};

}  // namespace tokenledger
