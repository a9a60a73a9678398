// A file descriptor with one owner: closed when its UniqueFd is destroyed, unless
// release() handed it on.
#pragma once

#include <unistd.h>

#include <utility>

namespace tokenledger {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() { reset(); }
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) reset(other.release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  // False when it holds no descriptor (as after a failed open() or socket()).
  explicit operator bool() const { return fd_ >= 0; }
  int get() const { return fd_; }

  // The descriptor, now the caller's to close.
  int release() { return std::exchange(fd_, -1); }

  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

}  // namespace tokenledger
