#include "verifylib/projection_watch.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string_view>

namespace tokenledger::verifylib {
namespace {

// Entries whose creation, removal or renaming may mean another read model.
constexpr uint32_t kEntryEvents = IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO;
// The watched directory itself going away or moving.
constexpr uint32_t kSelfEvents = IN_DELETE_SELF | IN_MOVE_SELF;

}  // namespace

ProjectionWatch::ProjectionWatch(const std::string& dataDir, std::atomic<bool>& flag)
    : flag_(flag),
      inotify_(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC)),
      wake_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
  if (!inotify_ || !wake_) return;
  dataDirWatch_ =
      ::inotify_add_watch(inotify_.get(), dataDir.c_str(), kEntryEvents | kSelfEvents | IN_ONLYDIR);
  if (dataDirWatch_ < 0) return;
  active_ = true;
  thread_ = std::thread([this] { run(); });
}

ProjectionWatch::~ProjectionWatch() {
  if (!thread_.joinable()) return;
  uint64_t one = 1;
  (void)!::write(wake_.get(), &one, sizeof one);
  thread_.join();
}

void ProjectionWatch::watchProjection(const std::string& projectionDir) {
  if (!active_) return;
  std::lock_guard lock(mu_);
  int wd = ::inotify_add_watch(inotify_.get(), projectionDir.c_str(),
                               kEntryEvents | kSelfEvents | IN_ONLYDIR);
  // A directory that was replaced keeps its own watch descriptor; drop it. The same
  // directory gives the same descriptor back.
  if (projectionWatch_ >= 0 && projectionWatch_ != wd)
    ::inotify_rm_watch(inotify_.get(), projectionWatch_);
  projectionWatch_ = wd;
  // Could not watch it (e.g. gone again): the caller's next check sees that.
  if (wd < 0) flag_.store(true, std::memory_order_release);
}

void ProjectionWatch::run() {
  alignas(inotify_event) char buf[8192];
  pollfd fds[2] = {{inotify_.get(), POLLIN, 0}, {wake_.get(), POLLIN, 0}};
  while (true) {
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      flag_.store(true, std::memory_order_release);
      return;
    }
    if (fds[1].revents != 0) return;
    bool relevant = false;
    while (true) {
      ssize_t n = ::read(inotify_.get(), buf, sizeof buf);
      if (n <= 0) break;
      for (ssize_t at = 0; at < n;) {
        auto* e = reinterpret_cast<const inotify_event*>(buf + at);
        at += static_cast<ssize_t>(sizeof(inotify_event) + e->len);
        std::string_view name = e->len > 0 ? std::string_view(e->name) : std::string_view();
        if ((e->mask & (IN_Q_OVERFLOW | IN_IGNORED | kSelfEvents)) != 0) {
          relevant = true;  // lost events, or a watched directory is gone: look again
        } else if (e->wd == dataDirWatch_) {
          // DATA_DIR also sees the daemon's state files come and go: only our entry.
          relevant = relevant || name == "projection";
        } else {
          relevant = relevant || name == "data.mdb" || name == "lock.mdb";
        }
      }
    }
    if (relevant) flag_.store(true, std::memory_order_release);
  }
}

}  // namespace tokenledger::verifylib
