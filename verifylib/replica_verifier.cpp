#include "verifylib/replica_verifier.h"

#include <lmdb.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>
#include <vector>

#include "events/clock.h"
#include "events/lmdb.h"
#include "events/secrets.h"
#include "projections/read_model_layout.h"

namespace tokenledger::verifylib {
namespace {

// The map this process reserves for the data file: address space only (the file is
// mapped read-only and shared). At least the daemon's default --map-size-mb, so its
// map can grow that far without us remapping; a bigger one makes LMDB say
// MDB_MAP_RESIZED and we reopen with twice as much.
constexpr uint64_t kMinMapBytes = 64ull << 30;
// Reader slots, if this process is the first to open lock.mdb (the daemon not
// running): then its size is ours, and the daemon, opening it later, keeps it. At
// least what the daemon asks for (1,024 in projections/read_model.cpp).
constexpr unsigned kMaxReaders = 4096;

std::string describeErrno(int err) {
  return std::strerror(err);
}

struct TxnAbort {
  void operator()(MDB_txn* t) const { mdb_txn_abort(t); }
};
using TxnPtr = std::unique_ptr<MDB_txn, TxnAbort>;

// The one ReadModelReader call verifyCredentials makes, on a caller's snapshot.
class TxnReader final : public ReadModelReader {
 public:
  TxnReader(MDB_txn* txn, MDB_dbi verify) : txn_(txn), verify_(verify) {}

  bool verifyView(std::string_view key, VerifyView& out) override {
    MDB_val k = lmdb::toVal(key), v;
    if (mdb_get(txn_, verify_, &k, &v) != MDB_SUCCESS) return false;
    return verifyViewOf(lmdb::fromVal(v), out);  // as the daemon's reader
  }

  // verifyCredentials needs nothing else; the library reads only `verify`.
  [[noreturn]] static void unsupported() {
    throw std::logic_error("the verify library reads only the verify database");
  }
  std::optional<Token> token(std::string_view) override { unsupported(); }
  TokenPage tokensPage(std::string_view, const PageRequest&) override { unsupported(); }
  std::vector<Event> history(std::string_view) override { unsupported(); }
  std::optional<IdempotencyRecord> idempotency(std::string_view, std::string_view) override {
    unsupported();
  }
  Offsets applied() override { unsupported(); }
  void release() override {}
  void releaseIfStale() override {}

 private:
  MDB_txn* txn_;
  MDB_dbi verify_;
};

}  // namespace

// One opened read model: its environment, the verify database, and the read
// transactions not in use (reset: they hold a reader slot, no snapshot).
class Generation {
 public:
  Generation(const std::string& dir, const struct stat& data, uint64_t mapBytes)
      : env_(openEnv(dir, mapBytes)), dev_(data.st_dev), ino_(data.st_ino), mapBytes_(mapBytes) {
    // Slots of gateway processes that died mid-call would pin old pages for the
    // daemon (the file grows): free them, as LMDB's own tools do.
    int dead = 0;
    mdb_reader_check(env_.get(), &dead);
    try {
      auto txn = lmdb::Txn::read(env_);
      MDB_dbi meta = 0;
      if (mdb_dbi_open(txn.get(), layout::kMeta, 0, &meta) != MDB_SUCCESS)
        throw VerifyError(Failure::layout, dir + " is not a tokenledger read model (no " +
                                               layout::kMeta + " database)");
      auto version = txn.get(meta, layout::kSchemaVersionKey);
      const std::string want = std::to_string(layout::kLayoutVersion);
      if (!version || *version != want)
        throw VerifyError(
            Failure::layout,
            "the read model in " + dir + " has layout version " +
                std::string(version ? *version : "none") + "; this libtokenledger_verify reads " +
                want +
                ". Use the library built with the tokenledgerd that serves it (a daemon of "
                "another version rebuilds the read model at start)");
      if (mdb_dbi_open(txn.get(), layout::kVerify, 0, &verify_) != MDB_SUCCESS)
        throw VerifyError(Failure::layout,
                          "the read model in " + dir + " has no " + layout::kVerify + " database");
      txn.commit();  // keeps the database handles for later transactions
    } catch (const lmdb::LmdbError& e) {
      throw VerifyError(Failure::lmdb, std::string("cannot read the read model: ") + e.what());
    }
  }

  bool same(const struct stat& st) const { return st.st_dev == dev_ && st.st_ino == ino_; }
  dev_t dev() const { return dev_; }
  ino_t ino() const { return ino_; }

  // Maps twice as much of the file (LMDB: only while no transaction of this
  // environment is active in the process, hence the exclusive lock).
  void grow() {
    std::unique_lock remap(mapMu_);
    int rc = mdb_env_set_mapsize(env_.get(), 2 * mapBytes_);
    if (rc != MDB_SUCCESS)
      throw VerifyError(Failure::lmdb,
                        std::string("cannot map more of the read model: ") + mdb_strerror(rc));
    mapBytes_ *= 2;
  }

  // nullopt: the daemon's map grew past ours (grow(), then call again).
  std::optional<VerifyOutcome> verify(std::string_view credentials, Timestamp now) {
    std::shared_lock mapped(mapMu_);
    TxnPtr txn = take();
    if (!txn) return std::nullopt;
    // Back to the pool, snapshot released, however verifyCredentials ends.
    struct Give {
      Generation& g;
      TxnPtr& t;
      ~Give() { g.give(std::move(t)); }
    } give{*this, txn};
    TxnReader reader(txn.get(), verify_);
    return verifyCredentials(credentials, reader, now);
  }

 private:
  static lmdb::Env openEnv(const std::string& dir, uint64_t mapBytes) {
    try {
      // MDB_RDONLY: data.mdb is opened O_RDONLY and mapped read-only.
      return lmdb::Env(
          dir, lmdb::EnvOptions{mapBytes, 16, kMaxReaders, MDB_RDONLY | MDB_NORDAHEAD, true});
    } catch (const lmdb::LmdbError& e) {
      if (e.code() == EACCES || e.code() == EPERM)
        throw VerifyError(Failure::permission,
                          "cannot open the read model in " + dir +
                              ": permission denied. This process needs read access to "
                              "data.mdb and write access to lock.mdb (LMDB readers register "
                              "there): start tokenledgerd with --reader-group GROUP and run "
                              "this process in GROUP (docs/verify-library.md)");
      if (e.code() == ENOENT)
        throw VerifyError(Failure::noReadModel, "the read model in " + dir +
                                                    " disappeared while "
                                                    "being opened (rebuilt?); try again");
      throw VerifyError(Failure::lmdb, e.what());
    }
  }

  // A read transaction with a fresh snapshot; null on MDB_MAP_RESIZED.
  TxnPtr take() {
    TxnPtr txn;
    {
      std::lock_guard lock(poolMu_);
      if (!pool_.empty()) {
        txn = std::move(pool_.back());
        pool_.pop_back();
      }
    }
    int rc;
    if (txn) {
      rc = mdb_txn_renew(txn.get());
    } else {
      MDB_txn* t = nullptr;
      rc = mdb_txn_begin(env_.get(), nullptr, MDB_RDONLY, &t);
      txn.reset(t);
    }
    if (rc == MDB_SUCCESS) return txn;
    txn.reset();  // a failed renew leaves it finished: abort frees it
    if (rc == MDB_MAP_RESIZED) return nullptr;
    if (rc == MDB_READERS_FULL)
      throw VerifyError(Failure::lmdb,
                        "no LMDB reader slot left in lock.mdb: the daemon and every gateway "
                        "together run more concurrent readers than the table holds; use fewer "
                        "threads per process");
    throw VerifyError(Failure::lmdb,
                      std::string("cannot start a read transaction: ") + mdb_strerror(rc));
  }

  void give(TxnPtr txn) noexcept {
    mdb_txn_reset(txn.get());
    try {
      std::lock_guard lock(poolMu_);
      pool_.push_back(std::move(txn));
    } catch (...) {
      // out of memory: the transaction is aborted instead (its slot freed)
    }
  }

  lmdb::Env env_;  // first: closed after the transactions below are aborted
  MDB_dbi verify_ = 0;
  dev_t dev_;
  ino_t ino_;
  uint64_t mapBytes_;        // guarded by mapMu_
  std::shared_mutex mapMu_;  // shared: a verification; exclusive: growing the map
  std::mutex poolMu_;
  std::vector<TxnPtr> pool_;
};

namespace {

// Every read model open in this process, by device and inode of its data.mdb: handles
// on the same one share it. LMDB allows one environment per file per process: closing
// a second one would clear the first one's reader slots (they carry the same pid) and
// drop the process's locks on lock.mdb, letting the daemon reuse pages still read.
std::mutex registryMu;
std::map<std::pair<dev_t, ino_t>, std::weak_ptr<Generation>>& registry() {
  static auto* r = new std::map<std::pair<dev_t, ino_t>, std::weak_ptr<Generation>>();
  return *r;
}

std::shared_ptr<Generation> shareGeneration(const std::string& dir, const struct stat& st,
                                            uint64_t mapBytes) {
  std::lock_guard lock(registryMu);
  auto& r = registry();
  for (auto it = r.begin(); it != r.end();) it = it->second.expired() ? r.erase(it) : ++it;
  auto& slot = r[{st.st_dev, st.st_ino}];
  if (auto g = slot.lock()) return g;
  auto g = std::make_shared<Generation>(dir, st, mapBytes);
  slot = g;
  return g;
}

}  // namespace

ReplicaVerifier::ReplicaVerifier(std::string dataDir)
    : dataDir_(std::move(dataDir)),
      projectionDir_(dataDir_ + "/projection"),
      dataFile_(projectionDir_ + "/data.mdb"),
      watch_(dataDir_, stale_) {
  initCrypto();
  std::unique_lock lock(mu_);
  reopen();
  if (!gen_) throw *failure_;
}

ReplicaVerifier::~ReplicaVerifier() = default;

void ReplicaVerifier::refreshIfNeeded() {
  if (watch_.active()) {
    if (!stale_.load(std::memory_order_acquire)) return;
  } else {
    // No inotify: compare the file at the path with the open one on every call.
    struct stat st {};
    bool found = ::stat(dataFile_.c_str(), &st) == 0;
    std::shared_lock lock(mu_);
    if (found && gen_ && gen_->same(st) && !grow_.load()) return;
  }
  std::unique_lock lock(mu_);
  reopen();
}

void ReplicaVerifier::reopen() {
  bool grow = grow_.exchange(false);
  // Cleared before looking, so that a change from here on raises it again.
  stale_.store(false, std::memory_order_release);
  watch_.watchProjection(projectionDir_);
  auto fail = [&](Failure f, const std::string& message) {
    // Answers come only from the read model the daemon uses now: never from one that
    // was replaced or removed (it would miss every later deactivation).
    gen_.reset();
    failure_.emplace(f, message);
    stale_.store(true, std::memory_order_release);  // look again on the next call
  };
  struct stat st {};
  if (::stat(dataFile_.c_str(), &st) != 0) {
    int err = errno;
    struct stat dir {};
    if (err == EACCES || err == EPERM)
      return fail(Failure::permission,
                  "cannot see " + dataFile_ + ": " + describeErrno(err) +
                      ". Start tokenledgerd with --reader-group GROUP and run this process in "
                      "GROUP (docs/verify-library.md)");
    if (::stat(dataDir_.c_str(), &dir) != 0)
      return fail(Failure::noReadModel, "no data directory " + dataDir_ + " (" +
                                            describeErrno(errno) +
                                            "): check the path, or start tokenledgerd "
                                            "--data-dir " +
                                            dataDir_ + " first");
    return fail(Failure::noReadModel,
                "no read model in " + projectionDir_ +
                    " yet: tokenledgerd has not created it, or is rebuilding it; start "
                    "tokenledgerd --data-dir " +
                    dataDir_ + " (calls retry by themselves)");
  }
  if (gen_ && gen_->same(st)) {
    if (grow) gen_->grow();
    return;
  }
  uint64_t mapBytes = std::max<uint64_t>(kMinMapBytes, 2 * static_cast<uint64_t>(st.st_size));
  gen_.reset();
  struct stat lockFile {};
  if (::stat((projectionDir_ + "/lock.mdb").c_str(), &lockFile) != 0)
    return fail(Failure::noReadModel,
                projectionDir_ +
                    "/lock.mdb is missing: no tokenledgerd has opened this read model yet "
                    "(the library never creates files there); start tokenledgerd --data-dir " +
                    dataDir_);
  try {
    gen_ = shareGeneration(projectionDir_, st, mapBytes);
    failure_.reset();
    reopens_.fetch_add(1, std::memory_order_relaxed);
  } catch (const VerifyError& e) {
    fail(e.failure(), e.what());
  }
}

VerifyOutcome ReplicaVerifier::verify(std::string_view credentials) {
  static const SystemClock clock;
  for (int attempt = 0;; ++attempt) {
    refreshIfNeeded();
    std::shared_lock lock(mu_);
    if (!gen_) throw *failure_;
    if (auto out = gen_->verify(credentials, clock.now())) return *out;
    if (attempt == 3)
      throw VerifyError(Failure::lmdb,
                        "the read model's map keeps growing past what this process maps; "
                        "retry");
    grow_.store(true);
    stale_.store(true, std::memory_order_release);
  }
}

VerifierStats ReplicaVerifier::stats() {
  std::shared_lock lock(mu_);
  VerifierStats s;
  s.reopens = reopens_.load(std::memory_order_relaxed);
  s.watching = watch_.active();
  s.open = gen_ != nullptr;
  if (gen_) {
    s.dev = gen_->dev();
    s.ino = gen_->ino();
  }
  return s;
}

}  // namespace tokenledger::verifylib
