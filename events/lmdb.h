// RAII wrappers for LMDB handles (MDB_env, MDB_txn, MDB_cursor).
//
// Lives in events/ because the embedded event log needs it; projections/ builds the
// read model on it too. Every failing call throws LmdbError carrying the MDB_* code,
// so callers can tell MDB_MAP_FULL (disk budget exhausted: raise --map-size-mb) from
// bugs. Views returned by get()/Cursor stay valid only until the transaction ends or
// (write transactions) the next write in it.
#pragma once

#include <lmdb.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace tokenledger::lmdb {

class LmdbError : public std::runtime_error {
 public:
  LmdbError(int code, const std::string& what);
  int code() const { return code_; }
  bool mapFull() const { return code_ == MDB_MAP_FULL; }

 private:
  int code_;
};

// Throws LmdbError unless rc == MDB_SUCCESS; `what` names the operation.
void check(int rc, const char* what);

struct EnvOptions {
  uint64_t mapSizeBytes = 64ull << 30;  // virtual address space; the file grows as used
  unsigned maxDbs = 16;
  unsigned maxReaders = 1024;
  // Extra mdb_env_open flags, e.g. MDB_NOMETASYNC for data that can be rebuilt.
  unsigned flags = 0;
  // Opens an existing environment and changes nothing an operator can see (for
  // tools that inspect a daemon's files): no directory is created or chmod'ed,
  // data.mdb is opened with MDB_RDONLY, and write transactions fail. Readers
  // still register in lock.mdb, so a daemon writing meanwhile does not reuse the
  // pages they read; LMDB needs that file writable. A missing lock.mdb means no
  // process has the environment open (every locking open creates it and none
  // removes it; e.g. a copy of data.mdb alone), so it is read without locks
  // (MDB_NOLOCK) rather than the file created. MDB_RDONLY in `flags` implies this.
  bool readOnly = false;
};

// An open environment in directory `path` (created if missing, mode 0700, unless
// read-only).
// MDB_NOTLS: read transactions are owned by objects, not threads, so they can be
// reset/renewed by whichever thread holds them.
class Env {
 public:
  Env(const std::string& path, const EnvOptions& options);
  ~Env();
  Env(const Env&) = delete;
  Env& operator=(const Env&) = delete;

  MDB_env* get() const { return env_; }
  const std::string& path() const { return path_; }
  // Where this process maps the data file, found in /proc/self/maps (LMDB tells only
  // with MDB_FIXEDMAP); null when unknown. Looked up on the first call after the map
  // was (re)made.
  char* mapAddress();
  // The size of the memory map: the most the data file may hold now.
  uint64_t mapSize() const;
  // Remaps the data file with room for `bytes` (LMDB: only while this process has
  // no transaction open at all, read transactions included: the caller guarantees
  // it). Throws LmdbError.
  void setMapSize(uint64_t bytes);
  // Bytes up to the last page in use (the high-water mark of the data file).
  uint64_t usedBytes() const;

 private:
  MDB_env* env_ = nullptr;
  std::string path_;
  std::optional<char*> map_;
};

inline MDB_val toVal(std::string_view s) {
  return MDB_val{s.size(), const_cast<char*>(s.data())};
}
inline std::string_view fromVal(const MDB_val& v) {
  return std::string_view(static_cast<const char*>(v.mv_data), v.mv_size);
}

class Cursor;

// A transaction. Aborts in its destructor unless committed. A read transaction can
// be reset() and renew()ed to reuse its reader slot cheaply.
//
// Its cursors cannot outlive it: when it ends (commit, abort, reset, destruction)
// it closes or detaches every cursor still open on it (LMDB frees a write
// transaction's cursors itself, and a cursor freed twice would crash), and a
// detached cursor throws std::logic_error when used.
class Txn {
 public:
  static Txn write(Env& env);
  static Txn read(Env& env);
  ~Txn();
  Txn(Txn&& other) noexcept;
  Txn& operator=(Txn&& other) noexcept;
  Txn(const Txn&) = delete;
  Txn& operator=(const Txn&) = delete;

  MDB_txn* get() const { return txn_; }

  // Opens (and for write transactions, with create = true, creates) a named database.
  MDB_dbi openDb(const char* name, unsigned flags = 0, bool create = false);

  // nullopt when the key is absent.
  std::optional<std::string_view> get(MDB_dbi dbi, std::string_view key) const;
  void put(MDB_dbi dbi, std::string_view key, std::string_view value, unsigned flags = 0);
  // Returns false when the key was absent.
  bool del(MDB_dbi dbi, std::string_view key);
  void drop(MDB_dbi dbi);  // empties the database

  void commit();
  void abort();
  void reset();  // read transactions only: release the snapshot, keep the slot
  void renew();  // read transactions only: take a fresh snapshot

 private:
  friend class Cursor;
  Txn(MDB_txn* txn, bool readOnly)
      : txn_(txn), readOnly_(readOnly), cursors_(std::make_unique<std::vector<Cursor*>>()) {}
  // Closes (read) or detaches (write: LMDB frees them) the cursors still open.
  void endCursors();

  MDB_txn* txn_ = nullptr;
  bool readOnly_ = false;
  // The cursors open on this transaction; on the heap, so that it stays where the
  // cursors point when the Txn moves.
  std::unique_ptr<std::vector<Cursor*>> cursors_;
};

// A cursor over one database of a transaction, closed in its destructor or when
// the transaction ends, whichever comes first.
class Cursor {
 public:
  Cursor(const Txn& txn, MDB_dbi dbi);
  ~Cursor();
  Cursor(const Cursor&) = delete;
  Cursor& operator=(const Cursor&) = delete;

  // Each returns false when there is no such entry; key()/value() then are undefined.
  bool first();
  bool last();
  bool next();
  bool seek(std::string_view key);  // first entry with key >= `key`
  // Write transactions only. Puts through one cursor with MDB_APPEND skip the
  // search from the root that each Txn::put starts with (bulk loading).
  void put(std::string_view key, std::string_view value, unsigned flags = 0);
  std::string_view key() const { return fromVal(key_); }
  std::string_view value() const { return fromVal(value_); }

 private:
  friend class Txn;
  bool op(MDB_cursor_op operation);
  MDB_cursor* live() const;  // throws std::logic_error once the transaction ended
  MDB_cursor* cursor_ = nullptr;
  std::vector<Cursor*>* registry_ = nullptr;  // the transaction's; null once it ended
  MDB_val key_{0, nullptr};
  MDB_val value_{0, nullptr};
};

// Big-endian encoding so that LMDB's byte order equals numeric order.
std::string encodeU64(uint64_t v);
uint64_t decodeU64(std::string_view s);

}  // namespace tokenledger::lmdb
