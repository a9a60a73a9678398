// Tells when DATA_DIR/projection may have been replaced, without a system call on
// the verification path: an inotify watch on DATA_DIR (the entry "projection") and
// on the projection directory (its data.mdb and lock.mdb, and the directory
// itself), read by one thread that raises a flag.
#pragma once

#include <atomic>
#include <mutex>
#include <string>
#include <thread>

#include "service/unique_fd.h"

namespace tokenledger::verifylib {

class ProjectionWatch {
 public:
  // Raises `flag` on every event that may mean another read model. Inactive (the
  // caller then checks itself) when inotify is unavailable.
  ProjectionWatch(const std::string& dataDir, std::atomic<bool>& flag);
  ~ProjectionWatch();
  ProjectionWatch(const ProjectionWatch&) = delete;
  ProjectionWatch& operator=(const ProjectionWatch&) = delete;

  bool active() const { return active_; }
  // Watches `projectionDir` (the directory now at DATA_DIR/projection) instead of the
  // one watched before. Call before looking at its files, so no change is missed.
  void watchProjection(const std::string& projectionDir);

 private:
  void run();

  std::atomic<bool>& flag_;
  UniqueFd inotify_;
  UniqueFd wake_;  // eventfd: stops the thread
  int dataDirWatch_ = -1;
  std::mutex mu_;  // guards projectionWatch_
  int projectionWatch_ = -1;
  bool active_ = false;
  std::thread thread_;
};

}  // namespace tokenledger::verifylib
