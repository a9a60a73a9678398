#include "events/lmdb.h"

#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <utility>

#include "events/big_endian.h"

namespace tokenledger::lmdb {

LmdbError::LmdbError(int code, const std::string& what)
    : std::runtime_error(what + ": " + mdb_strerror(code) +
                         (code == MDB_MAP_FULL
                              ? " (the database reached its size limit; restart with a larger "
                                "--map-size-mb)"
                              : "")),
      code_(code) {}

void check(int rc, const char* what) {
  if (rc != MDB_SUCCESS) throw LmdbError(rc, what);
}

Env::Env(const std::string& path, const EnvOptions& options) : path_(path) {
  unsigned flags = MDB_NOTLS | options.flags;
  bool readOnly = options.readOnly || (options.flags & MDB_RDONLY) != 0;
  std::error_code ec;
  if (readOnly) {
    flags |= MDB_RDONLY;
    if (!std::filesystem::is_directory(path, ec))
      throw std::runtime_error("no LMDB environment in " + path +
                               ": not a directory (check the path; opened read-only, so it is "
                               "not created)");
    if (!std::filesystem::exists(path + "/data.mdb", ec))
      throw std::runtime_error("no LMDB environment in " + path + ": no data.mdb there");
    if (!std::filesystem::exists(path + "/lock.mdb", ec)) flags |= MDB_NOLOCK;
  } else {
    std::filesystem::create_directories(path, ec);
    if (ec) throw std::runtime_error("cannot create directory " + path + ": " + ec.message());
    ::chmod(path.c_str(), 0700);
  }
  check(mdb_env_create(&env_), "mdb_env_create");
  try {
    check(mdb_env_set_mapsize(env_, options.mapSizeBytes), "mdb_env_set_mapsize");
    check(mdb_env_set_maxdbs(env_, options.maxDbs), "mdb_env_set_maxdbs");
    check(mdb_env_set_maxreaders(env_, options.maxReaders), "mdb_env_set_maxreaders");
    int rc = mdb_env_open(env_, path.c_str(), flags, 0600);
    if (rc == EACCES && readOnly)
      throw LmdbError(rc, "cannot open LMDB environment in " + path +
                              " read-only (data.mdb must be readable, and lock.mdb writable: "
                              "readers register there; run as the user that owns them)");
    if (rc != MDB_SUCCESS) throw LmdbError(rc, "cannot open LMDB environment in " + path);
  } catch (...) {
    mdb_env_close(env_);
    env_ = nullptr;
    throw;
  }
}

Env::~Env() {
  if (env_ != nullptr) mdb_env_close(env_);
}

char* Env::mapAddress() {
  if (map_) return *map_;
  map_ = nullptr;
  int fd = -1;
  struct stat st {};
  if (mdb_env_get_fd(env_, &fd) != MDB_SUCCESS || fstat(fd, &st) != 0) return nullptr;
  // The mapping of the data file's device and inode from offset 0: the lock file
  // is another inode, and LMDB maps the data file once.
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    unsigned long long from = 0, to = 0, offset = 0, inode = 0;
    unsigned devMajor = 0, devMinor = 0;
    char perms[8] = {};
    if (std::sscanf(line.c_str(), "%llx-%llx %7s %llx %x:%x %llu", &from, &to, perms, &offset,
                    &devMajor, &devMinor, &inode) == 7 &&
        inode == st.st_ino && devMajor == major(st.st_dev) && devMinor == minor(st.st_dev) &&
        offset == 0) {
      map_ = reinterpret_cast<char*>(static_cast<uintptr_t>(from));
      break;
    }
  }
  return *map_;
}

uint64_t Env::mapSize() const {
  MDB_envinfo info{};
  check(mdb_env_info(env_, &info), "mdb_env_info");
  return info.me_mapsize;
}

void Env::setMapSize(uint64_t bytes) {
  check(mdb_env_set_mapsize(env_, bytes), "mdb_env_set_mapsize");
  map_.reset();  // LMDB mapped the file anew, likely elsewhere
}

uint64_t Env::usedBytes() const {
  MDB_envinfo info{};
  MDB_stat st{};
  check(mdb_env_info(env_, &info), "mdb_env_info");
  check(mdb_env_stat(env_, &st), "mdb_env_stat");
  return (info.me_last_pgno + 1) * uint64_t{st.ms_psize};
}

Txn Txn::write(Env& env) {
  MDB_txn* txn = nullptr;
  check(mdb_txn_begin(env.get(), nullptr, 0, &txn), "mdb_txn_begin(write)");
  return Txn(txn, false);
}

Txn Txn::read(Env& env) {
  MDB_txn* txn = nullptr;
  check(mdb_txn_begin(env.get(), nullptr, MDB_RDONLY, &txn), "mdb_txn_begin(read)");
  return Txn(txn, true);
}

Txn::~Txn() {
  abort();
}

Txn::Txn(Txn&& other) noexcept
    : txn_(std::exchange(other.txn_, nullptr)),
      readOnly_(other.readOnly_),
      cursors_(std::move(other.cursors_)) {}

Txn& Txn::operator=(Txn&& other) noexcept {
  if (this != &other) {
    abort();
    txn_ = std::exchange(other.txn_, nullptr);
    readOnly_ = other.readOnly_;
    cursors_ = std::move(other.cursors_);
  }
  return *this;
}

void Txn::endCursors() {
  if (!cursors_) return;
  for (Cursor* c : *cursors_) {
    if (readOnly_) mdb_cursor_close(c->cursor_);
    c->cursor_ = nullptr;
    c->registry_ = nullptr;
  }
  cursors_->clear();
}

MDB_dbi Txn::openDb(const char* name, unsigned flags, bool create) {
  MDB_dbi dbi = 0;
  int rc = mdb_dbi_open(txn_, name, flags | (create ? MDB_CREATE : 0), &dbi);
  if (rc != MDB_SUCCESS) throw LmdbError(rc, std::string("cannot open database '") + name + "'");
  return dbi;
}

std::optional<std::string_view> Txn::get(MDB_dbi dbi, std::string_view key) const {
  MDB_val k = toVal(key);
  MDB_val v;
  int rc = mdb_get(txn_, dbi, &k, &v);
  if (rc == MDB_NOTFOUND) return std::nullopt;
  check(rc, "mdb_get");
  return fromVal(v);
}

void Txn::put(MDB_dbi dbi, std::string_view key, std::string_view value, unsigned flags) {
  MDB_val k = toVal(key);
  MDB_val v = toVal(value);
  check(mdb_put(txn_, dbi, &k, &v, flags), "mdb_put");
}

bool Txn::del(MDB_dbi dbi, std::string_view key) {
  MDB_val k = toVal(key);
  int rc = mdb_del(txn_, dbi, &k, nullptr);
  if (rc == MDB_NOTFOUND) return false;
  check(rc, "mdb_del");
  return true;
}

void Txn::drop(MDB_dbi dbi) {
  check(mdb_drop(txn_, dbi, 0), "mdb_drop");
}

void Txn::commit() {
  endCursors();
  MDB_txn* txn = std::exchange(txn_, nullptr);
  check(mdb_txn_commit(txn), "mdb_txn_commit");
}

void Txn::abort() {
  if (txn_ != nullptr) {
    endCursors();
    mdb_txn_abort(std::exchange(txn_, nullptr));
  }
}

void Txn::reset() {
  endCursors();
  mdb_txn_reset(txn_);
}

void Txn::renew() {
  check(mdb_txn_renew(txn_), "mdb_txn_renew");
}

Cursor::Cursor(const Txn& txn, MDB_dbi dbi) {
  check(mdb_cursor_open(txn.get(), dbi, &cursor_), "mdb_cursor_open");
  registry_ = txn.cursors_.get();
  registry_->push_back(this);
}

Cursor::~Cursor() {
  if (registry_ == nullptr) return;  // the transaction ended and took care of it
  mdb_cursor_close(cursor_);
  std::erase(*registry_, this);
}

MDB_cursor* Cursor::live() const {
  if (cursor_ == nullptr) throw std::logic_error("LMDB cursor used after its transaction ended");
  return cursor_;
}

bool Cursor::op(MDB_cursor_op operation) {
  int rc = mdb_cursor_get(live(), &key_, &value_, operation);
  if (rc == MDB_NOTFOUND) return false;
  check(rc, "mdb_cursor_get");
  return true;
}

bool Cursor::first() {
  return op(MDB_FIRST);
}
bool Cursor::last() {
  return op(MDB_LAST);
}
bool Cursor::next() {
  return op(MDB_NEXT);
}
bool Cursor::seek(std::string_view key) {
  key_ = toVal(key);
  return op(MDB_SET_RANGE);
}

void Cursor::put(std::string_view key, std::string_view value, unsigned flags) {
  MDB_val k = toVal(key);
  MDB_val v = toVal(value);
  check(mdb_cursor_put(live(), &k, &v, flags), "mdb_cursor_put");
}

std::string encodeU64(uint64_t v) {
  std::string s;
  appendBigEndian(s, v, 8);
  return s;
}

uint64_t decodeU64(std::string_view s) {
  if (s.size() != 8) throw std::runtime_error("corrupt 8-byte integer in LMDB");
  return readBigEndian(s);
}

}  // namespace tokenledger::lmdb
