// The command executor: a pool of threads, each with its own TokenService (and so
// its own read-model reader), running commands as they arrive. Commands on the
// same token serialise on TokenService's key locks; others run concurrently, so a
// slow log (Kafka's acks=all round trip) is paid in parallel, not in sequence.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "service/token_service.h"

namespace tokenledger {

class CommandExecutor {
 public:
  using Work = std::function<void(TokenService&)>;

  CommandExecutor(int threads, const std::function<std::unique_ptr<TokenService>()>& makeService) {
    for (int i = 0; i < (threads < 1 ? 1 : threads); ++i) {
      std::shared_ptr<TokenService> service = makeService();
      threads_.emplace_back([this, service] { run(*service); });
    }
  }
  ~CommandExecutor() { stop(); }
  CommandExecutor(const CommandExecutor&) = delete;
  CommandExecutor& operator=(const CommandExecutor&) = delete;

  void post(Work work) {
    {
      std::lock_guard lock(mutex_);
      queue_.push_back(std::move(work));
    }
    wake_.notify_one();
  }

  // Runs what is queued, then ends the threads. Idempotent.
  void stop() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    for (auto& t : threads_)
      if (t.joinable()) t.join();
  }

 private:
  void run(TokenService& service) {
    std::unique_lock lock(mutex_);
    while (true) {
      wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;
      auto work = std::move(queue_.front());
      queue_.pop_front();
      lock.unlock();
      work(service);
      // Idle threads must not pin an old read-model snapshot (see release()).
      service.reader().release();
      lock.lock();
    }
  }

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Work> queue_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace tokenledger
