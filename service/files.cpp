#include "service/files.h"

#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <cerrno>
#include <stdexcept>

#include "service/unique_fd.h"

namespace tokenledger {
namespace {

[[noreturn]] void cannotWrite(const std::string& path) {
  throw std::runtime_error("cannot write " + path + ": " + strerror(errno));
}

// Writes all of `text` to `fd`, then fsyncs it if asked; false (with errno) if either
// fails.
bool writeAll(int fd, std::string_view text, Sync sync) {
  while (!text.empty()) {
    ssize_t n = ::write(fd, text.data(), text.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    text.remove_prefix(static_cast<size_t>(n));
  }
  return sync == Sync::no || ::fsync(fd) == 0;
}

}  // namespace

bool writeFileAtomically(const std::string& path, std::string_view text, mode_t mode, Sync sync,
                         IfExists ifExists) {
  std::string tmp = path + ".tmp";
  ::unlink(tmp.c_str());  // left by a crash, perhaps with another mode
  {
    UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode));
    if (!fd) cannotWrite(tmp);
    if (!writeAll(fd.get(), text, sync)) {
      int err = errno;
      ::unlink(tmp.c_str());
      errno = err;
      cannotWrite(tmp);
    }
  }
  bool placed = ifExists == IfExists::replace ? ::rename(tmp.c_str(), path.c_str()) == 0
                                              : ::link(tmp.c_str(), path.c_str()) == 0;
  int err = errno;
  ::unlink(tmp.c_str());  // after link(), the second name; after rename(), nothing
  if (placed) return true;
  errno = err;
  if (ifExists == IfExists::keep && err == EEXIST) return false;
  cannotWrite(path);
}

void appendToFile(const std::string& path, std::string_view text, mode_t mode, Sync sync) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, mode));
  if (!fd || !writeAll(fd.get(), text, sync)) cannotWrite(path);
}

}  // namespace tokenledger
