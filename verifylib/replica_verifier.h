// The C++ behind libtokenledger_verify: verification against a replica's live read
// model (DATA_DIR/projection), opened read-only from another process.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <stdexcept>
#include <string>
#include <string_view>

#include "service/verifier.h"
#include "verifylib/projection_watch.h"

namespace tokenledger::verifylib {

// The C API's statuses (tokenledger_verify.h), as thrown by this layer.
enum class Failure { invalidArgument = 1, noReadModel, layout, permission, lmdb, internal };

class VerifyError : public std::runtime_error {
 public:
  VerifyError(Failure failure, const std::string& message)
      : std::runtime_error(message), failure_(failure) {}
  Failure failure() const { return failure_; }

 private:
  Failure failure_;
};

class Generation;  // one opened read model (replica_verifier.cpp)

struct VerifierStats {
  uint64_t reopens = 0;
  bool watching = false;
  bool open = false;
  dev_t dev = 0;
  ino_t ino = 0;
};

// Thread-safe. Each verification takes a fresh LMDB snapshot (a pooled read
// transaction, renewed), so it sees every commit made before it started. The read
// model in use is replaced when the file at DATA_DIR/projection/data.mdb is another
// one (a rebuild renamed a new directory into place): a watcher thread (inotify)
// flags that, and the next call reopens. Without inotify every call stat()s.
class ReplicaVerifier {
 public:
  // Throws VerifyError when the read model cannot be opened now.
  explicit ReplicaVerifier(std::string dataDir);
  ~ReplicaVerifier();
  ReplicaVerifier(const ReplicaVerifier&) = delete;
  ReplicaVerifier& operator=(const ReplicaVerifier&) = delete;

  // "key:token", as verifyCredentials takes it. Throws VerifyError when there is no
  // usable read model (then it retries on the next call).
  VerifyOutcome verify(std::string_view credentials);
  VerifierStats stats();

 private:
  void refreshIfNeeded();
  void reopen();  // under the exclusive lock

  const std::string dataDir_;
  const std::string projectionDir_;
  const std::string dataFile_;
  std::shared_mutex mu_;                // shared: a verification; exclusive: (re)opening
  std::shared_ptr<Generation> gen_;     // shared with the process's other handles on it
  std::optional<VerifyError> failure_;  // why gen_ is null
  std::atomic<bool> stale_{true};       // check the file's identity before the next call
  std::atomic<bool> grow_{false};       // the map must grow: reopen even if the same file
  std::atomic<uint64_t> reopens_{0};
  ProjectionWatch watch_;
};

}  // namespace tokenledger::verifylib
