#include "projections/read_model.h"

#include <fcntl.h>
#include <sys/mman.h>

#include <capnp/message.h>
#include <capnp/serialize.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <mutex>
#include <span>

#include "events/lmdb.h"
#include "events/rules.h"
#include "projections/read_model_layout.h"
#include "projections/room.h"
#include "schemas/tokenledger.capnp.h"

namespace tokenledger {
namespace {

using layout::historyKey;
using layout::ownerKey;

struct Dbs {
  MDB_dbi tokens, byOwner, history, eventIds, positions, meta, verify;
};

Dbs openDbs(lmdb::Txn& txn, bool create) {
  using namespace layout;
  return Dbs{txn.openDb(kTokens, 0, create),    txn.openDb(kByOwner, 0, create),
             txn.openDb(kHistory, 0, create),   txn.openDb(kEventIds, 0, create),
             txn.openDb(kPositions, 0, create), txn.openDb(kMeta, 0, create),
             txn.openDb(kVerify, 0, create)};
}

// The verify database's record of a token (read_model_layout.h), into `out`.
const std::string& encodeVerifyRecord(std::string& out, const Token& t) {
  static_assert(kMaxIdLength <= 255, "the verify record holds an owner's length in one byte");
  return layout::encodeVerifyRecord(
      out, layout::VerifyRecord{t.secretHash, t.active, static_cast<uint8_t>(t.kind), t.expiresAtUs,
                                t.deactivateAtUs, t.owner, t.destinationId});
}

class Reader;

// Counts the read transactions of this process that hold a snapshot: LMDB remaps
// (to grow the map) only while there are none. Resizes are rare (the map doubles),
// so a reader pays one uncontended lock per snapshot it takes, not per read.
class SnapshotGate {
 public:
  // Before taking a snapshot: waits while a resize runs.
  void enter() {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return !closed_; });
    ++held_;
  }
  // After releasing it.
  void leave() {
    std::lock_guard lock(mutex_);
    --held_;
    if (closed_ && held_ == 0) changed_.notify_all();
  }
  // Runs `resize` once no snapshot is held, holding new ones back meanwhile; false,
  // without running it, when they were not all released within `timeout`.
  // `closed` runs once new snapshots are held back: it asks the holders to let go
  // (a snapshot taken before could otherwise claim to be current).
  bool withNone(std::chrono::milliseconds timeout, const std::function<void()>& closed,
                const std::function<void()>& resize) {
    std::unique_lock lock(mutex_);
    closed_ = true;
    closed();
    bool none = changed_.wait_for(lock, timeout, [&] { return held_ == 0; });
    struct Reopen {
      SnapshotGate& gate;
      ~Reopen() {
        gate.closed_ = false;
        gate.changed_.notify_all();
      }
    } reopen{*this};
    if (none) resize();
    return none;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  int held_ = 0;
  bool closed_ = false;
};

// A snapshot of the model's environment for one call (not a Reader's).
class Snapshot {
 public:
  Snapshot(SnapshotGate& gate, lmdb::Env& env) : gate_(gate), txn_(open(gate, env)) {}
  ~Snapshot() {
    txn_.abort();
    gate_.leave();
  }
  const lmdb::Txn& txn() const { return txn_; }

 private:
  static lmdb::Txn open(SnapshotGate& gate, lmdb::Env& env) {
    gate.enter();
    try {
      return lmdb::Txn::read(env);
    } catch (...) {
      gate.leave();
      throw;
    }
  }
  SnapshotGate& gate_;
  lmdb::Txn txn_;
};

inline void prefetch(const void* p) {
  __builtin_prefetch(p);
}

// Faults in the whole pages of [p, p + size) for writing, at once rather than one
// fault per page on first use (MADV_POPULATE_WRITE: Linux 5.14 on; a no-op before).
// Leaves their content alone.
void populate(const void* p, size_t size) {
  constexpr uintptr_t kPage = 4096;
  auto from = (reinterpret_cast<uintptr_t>(p) + kPage - 1) / kPage * kPage;
  auto to = (reinterpret_cast<uintptr_t>(p) + size) / kPage * kPage;
  if (to > from) madvise(reinterpret_cast<void*>(from), to - from, MADV_POPULATE_WRITE);
}

template <typename T>
void release(std::vector<T>& v) {
  std::vector<T>().swap(v);
}

// Every cache line of p[0, size).
inline void prefetch(const void* p, size_t size) {
  auto* b = static_cast<const char*>(p);
  for (size_t at = 0; at < size; at += 64) __builtin_prefetch(b + at);
}

std::string bootId() {
  std::ifstream in("/proc/sys/kernel/random/boot_id");
  std::string id;
  std::getline(in, id);
  return id.empty() ? "unknown" : id;
}

void writeFile(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::trunc);
  out << content << "\n";
}

class LmdbReadModel final : public ReadModel {
 public:
  LmdbReadModel(const std::string& dir, const ReadModelOptions& options, ReadModelLog log)
      // MDB_NOMETASYNC: one fsync per batch instead of two. An OS crash may undo the
      // last batches, never corrupt them; their positions go with them, so the
      // projector simply re-applies those events from the log.
      // The map starts small (LMDB makes it at least what the data needs) and Room
      // grows it up to the limit: with MDB_WRITEMAP the file's size is the map's.
      : env_(dir, lmdb::EnvOptions{std::min<uint64_t>(options.mapSizeBytes, 64ull << 20), 8, 1024,
                                   options.syncEachCommit
                                       ? unsigned{MDB_NOMETASYNC}
                                       : unsigned{MDB_NOSYNC | MDB_WRITEMAP | MDB_NORDAHEAD}}),
        dir_(dir),
        lazy_(!options.syncEachCommit),
        syncAtClose_(options.syncAtClose),
        room_(env_,
              Room::Options{dir, options.mapSizeBytes, !options.syncEachCommit, std::move(log)},
              [this](const std::function<void()>& resize) {
                // Readers step out at their next call, or within 50 ms when idle
                // (see ReadModelReader::releaseIfStale), once the generation moves.
                return gate_.withNone(
                    std::chrono::seconds(2),
                    [this] { generation_.fetch_add(1, std::memory_order_release); }, resize);
              }) {
    // Marks "unsynced commits may exist in this boot"; removed after the final sync.
    if (lazy_) writeFile(dir_ + "/unsynced-boot", bootId());
    auto txn = lmdb::Txn::write(env_);
    dbs_ = openDbs(txn, true);
    auto version = txn.get(dbs_.meta, layout::kSchemaVersionKey);
    if (!version) {
      txn.put(dbs_.meta, layout::kSchemaVersionKey, std::to_string(layout::kLayoutVersion));
    } else if (*version != std::to_string(layout::kLayoutVersion)) {
      throw std::runtime_error("read model in " + dir + " has schema version " +
                               std::string(*version) + ", this build expects " +
                               std::to_string(layout::kLayoutVersion) +
                               "; rebuild it with `tokenledgerd --rebuild`");
    }
    txn.commit();
  }

  // Three passes: look up everything the batch touches in key order, apply the
  // events in log order in memory, then write every change in key order. Sorted
  // access walks each B-tree once instead of jumping around it per event, which is
  // what bounds rebuilds (tokens are random keys). Big batches (rebuilds, catching
  // up) share the memory work with a second thread; the write transaction stays on
  // this one, as LMDB requires.
  ApplyReport apply(const std::vector<LogRecord>& records, const SkipReporter& report) override {
    ApplyReport out;
    room_.makeRoomFor(records.size());
    // Big batches: fault in the pages they will add on the second thread.
    std::future<void> prefaulted;
    if (lazy_ && records.size() >= kParallelBatch)
      prefaulted =
          std::async(std::launch::async, [next = nextPages(records.size() * kBytesPerRecord)] {
            populate(next.data(), next.size());
          });
    auto txn = lmdb::Txn::write(env_);
    std::vector<int64_t> next = readPositions(txn);
    Batch batch;
    batch.recs.reserve(records.size());
    for (const auto& rec : records) {  // which records are new, by position
      auto part = static_cast<size_t>(rec.position.partition);
      if (next.size() <= part) next.resize(part + 1, 0);
      if (rec.position.offset < next[part]) {
        out.duplicates++;
        continue;
      }
      next[part] = rec.position.offset + 1;
      batch.recs.push_back(&rec);
    }
    batch.parallel = batch.recs.size() >= kParallelBatch;
    decode(batch);
    lookUp(txn, batch);
    applyInLogOrder(batch, report, out);
    write(txn, batch);
    for (size_t p = 0; p < next.size(); ++p)
      txn.put(dbs_.positions, layout::partitionKey(static_cast<uint32_t>(p)),
              layout::nextOffsetValue(next[p]));
    txn.commit();
    if (prefaulted.valid()) prefaulted.get();
    generation_.fetch_add(1, std::memory_order_release);
    room_.committed();
    return out;
  }

  std::optional<RoomProblem> claimRoom(uint64_t events) override { return room_.claim(events); }
  std::optional<RoomProblem> roomFor(uint64_t events) const override { return room_.check(events); }

  Offsets applied(int32_t partitions) override {
    Snapshot snapshot(gate_, env_);
    Offsets o{readPositions(snapshot.txn())};
    if (o.next.size() < static_cast<size_t>(partitions)) o.next.resize(partitions, 0);
    return o;
  }

  uint64_t generation() const override { return generation_.load(std::memory_order_acquire); }

  std::unique_ptr<ReadModelReader> reader() override;

  std::string dump() override {
    std::string out;
    Snapshot snapshot(gate_, env_);
    const lmdb::Txn& txn = snapshot.txn();
    using namespace layout;
    const std::pair<const char*, MDB_dbi> all[] = {
        {kTokens, dbs_.tokens},     {kByOwner, dbs_.byOwner},     {kHistory, dbs_.history},
        {kEventIds, dbs_.eventIds}, {kPositions, dbs_.positions}, {kMeta, dbs_.meta},
        {kVerify, dbs_.verify}};
    for (const auto& [name, dbi] : all) {
      lmdb::Cursor c(txn, dbi);
      for (bool ok = c.first(); ok; ok = c.next()) {
        out += name;
        out += ' ';
        out += toHex(c.key());
        out += ' ';
        out += toHex(c.value());
        out += '\n';
      }
    }
    return out;
  }

  ~LmdbReadModel() override {
    if (lazy_ && syncAtClose_) {
      try {
        lmdb::check(mdb_env_sync(env_.get(), 1), "mdb_env_sync");
        std::filesystem::remove(dir_ + "/unsynced-boot");
      } catch (const std::exception&) {
        // leave the marker: the next start decides
      }
    }
    if (lazy_) {
      // MDB_WRITEMAP sized the file to the whole map; cut it to the pages in use,
      // as a file written without it would be, so copies stay small. A file left
      // at full size still works.
      try {
        std::error_code ignored;
        std::filesystem::resize_file(dir_ + "/data.mdb", env_.usedBytes(), ignored);
      } catch (const std::exception&) {
      }
    }
  }

  lmdb::Env& env() { return env_; }
  const Dbs& dbs() const { return dbs_; }
  SnapshotGate& gate() { return gate_; }

  std::vector<int64_t> readPositions(const lmdb::Txn& txn) {
    std::vector<int64_t> next;
    lmdb::Cursor c(txn, dbs_.positions);
    for (bool ok = c.first(); ok; ok = c.next()) {
      auto p = layout::partitionOf(c.key());
      auto n = layout::nextOffsetOf(c.value());
      if (!p || !n) throw std::runtime_error("corrupt applied position in the read model");
      if (next.size() <= *p) next.resize(*p + 1, 0);
      next[*p] = *n;
    }
    return next;
  }

 private:
  static size_t entries(const lmdb::Txn& txn, MDB_dbi dbi) {
    MDB_stat st{};
    lmdb::check(mdb_stat(txn.get(), dbi, &st), "mdb_stat");
    return st.ms_entries;
  }

  // About what a rebuild adds to the file per record (all databases).
  static constexpr uint64_t kBytesPerRecord = 900;

  // The `bytes` of the map (MDB_WRITEMAP) past the pages in use, as far as disk is
  // reserved: where the next commit writes. Writing there faults in every page,
  // which costs about as much as the writing; populate() does it ahead, off the
  // writer's thread.
  std::span<char> nextPages(uint64_t bytes) {
    char* map = env_.mapAddress();
    if (!map) return {};
    uint64_t from = env_.usedBytes();
    uint64_t to = std::min({from + bytes, room_.reservedBytes(), room_.mapBytes()});
    if (to <= from) return {};
    return {map + from, static_cast<size_t>(to - from)};
  }

  // Batches from this size on use a second thread for decoding, sorting and
  // encoding: below it, starting the thread costs more than it saves.
  static constexpr size_t kParallelBatch = 4096;

  // Runs `work` on another thread when `parallel`, else at once; get() on the
  // result waits for it and rethrows what it threw.
  template <typename Work>
  static std::future<void> besides(bool parallel, Work work) {
    if (parallel) return std::async(std::launch::async, std::move(work));
    std::promise<void> done;
    work();
    done.set_value();
    return done.get_future();
  }

  // Byte strings packed one after another: one allocation for a batch's values.
  class Packed {
   public:
    void reserve(size_t bytes, size_t count) {
      bytes_.reserve(bytes);
      ends_.reserve(count);
    }
    void add(std::string_view s) {
      bytes_.append(s);
      ends_.push_back(bytes_.size());
    }
    std::string_view operator[](size_t i) const {
      size_t from = i == 0 ? 0 : ends_[i - 1];
      return std::string_view(bytes_).substr(from, ends_[i] - from);
    }

   private:
    std::string bytes_;
    std::vector<size_t> ends_;
  };

  // A token's state during one apply(): as stored, then as the batch changes it.
  struct Slot {
    std::string_view key;
    std::optional<Token> state;
    bool dirty = false;
  };

  static constexpr uint32_t kNone = UINT32_MAX;
  // Loops that read memory scattered over the batch ask for it kAhead entries
  // early, which overlaps the cache misses they would wait on one by one.
  static constexpr size_t kAhead = 8;

  // One apply()'s working state; each pass fills in what the next reads.
  struct Batch {
    std::vector<const LogRecord*> recs;   // the new records, in log order
    bool parallel = false;                // big enough for the second thread
    std::vector<DecodedView> events;      // per record: views into it
    std::string keys;                     // the slots' keys, in key order
    std::vector<Slot> slots;              // per token the batch mentions, key order
    std::vector<uint32_t> slotOf;         // per event: its token's slot
    std::vector<uint32_t> predecessorOf;  // per event: the slot of the token it replaces
    std::vector<bool> duplicate;          // per event: id stored or seen before
    std::vector<std::pair<std::string_view, uint32_t>> newIds;  // (id, event), key order
    struct HistoryRef {
      uint32_t slot, seq, event;
    };
    std::vector<HistoryRef> history;                            // per applied event
    std::vector<std::pair<std::string_view, uint32_t>> owners;  // (owner, slot) per creation
  };

  static std::string_view firstOf(const std::pair<std::string_view, uint32_t>& pair) {
    return pair.first;
  }

  static void decode(Batch& b) {
    const size_t n = b.recs.size();
    b.events.resize(n);
    auto decode = [&](size_t from, size_t to) {
      for (size_t i = from; i < to; ++i) b.events[i] = decodeEventView(b.recs[i]->value);
    };
    auto upper = besides(b.parallel, [&] { decode(n / 2, n); });
    decode(0, n / 2);
    upper.get();
  }

  // Pass 1: one slot per token the batch mentions (its own key, or a successor's
  // predecessor), in key order, with its stored state; which events are duplicates
  // (an id stored before, or seen earlier in the batch).
  void lookUp(const lmdb::Txn& txn, Batch& b) {
    const auto n = static_cast<uint32_t>(b.recs.size());
    std::vector<std::pair<std::string_view, uint32_t>> idRefs;  // (id, event)
    auto sortedIds = besides(b.parallel, [&] {
      idRefs.reserve(n);
      for (uint32_t i = 0; i < n; ++i)
        if (const EventView* e = std::get_if<EventView>(&b.events[i]))
          idRefs.emplace_back(e->eventId, i);
      sortByKey(idRefs, firstOf);
    });
    struct Ref {
      std::string_view key;
      uint32_t event;
      bool predecessor;
    };
    std::vector<Ref> refs;
    refs.reserve(n);
    for (uint32_t i = 0; i < n; ++i) {
      const EventView* e = std::get_if<EventView>(&b.events[i]);
      if (!e) continue;
      refs.push_back(Ref{e->tokenKey, i, false});
      if (const auto* c = std::get_if<CreatedView>(&e->body); c && !c->replaces.empty())
        refs.push_back(Ref{c->replaces, i, true});
    }
    b.slots.reserve(refs.size());  // moving slots would copy their tokens
    // Tens of MB in a rebuild: their pages are faulted in on another thread while
    // this one sorts.
    auto slotsFaulted = besides(
        b.parallel,
        [p = b.slots.data(), size = b.slots.capacity() * sizeof(Slot)] { populate(p, size); });
    sortByKey(refs, [](const Ref& r) { return r.key; });
    // A rebuild starts from empty databases: nothing to look up there.
    const bool noTokens = entries(txn, dbs_.tokens) == 0;
    const bool noIds = entries(txn, dbs_.eventIds) == 0;
    // The slots' keys, copied next to each other in key order: every later pass
    // walks them in that order, and reading them where they lie in the records
    // (log order) would miss the cache on each one.
    size_t keyBytes = 0;
    for (const Ref& r : refs) keyBytes += r.key.size();
    b.keys.reserve(keyBytes);  // never reallocates: the views below stay valid
    b.slotOf.assign(n, kNone);
    b.predecessorOf.assign(n, kNone);
    for (const Ref& r : refs) {
      if (b.slots.empty() || b.slots.back().key != r.key) {
        b.keys.append(r.key);
        b.slots.push_back(Slot{std::string_view(b.keys).substr(b.keys.size() - r.key.size()),
                               std::nullopt, false});
        if (auto raw = noTokens ? std::nullopt : txn.get(dbs_.tokens, r.key))
          b.slots.back().state = decodeToken(*raw);
      }
      (r.predecessor ? b.predecessorOf : b.slotOf)[r.event] =
          static_cast<uint32_t>(b.slots.size() - 1);
    }
    sortedIds.get();
    b.duplicate.assign(n, true);
    for (size_t from = 0, to = 0; from < idRefs.size(); from = to) {
      uint32_t earliest = idRefs[from].second;
      for (to = from + 1; to < idRefs.size() && idRefs[to].first == idRefs[from].first; ++to)
        earliest = std::min(earliest, idRefs[to].second);
      if (!noIds && txn.get(dbs_.eventIds, idRefs[from].first)) continue;
      b.duplicate[earliest] = false;
      b.newIds.emplace_back(idRefs[from].first, earliest);
    }
    slotsFaulted.get();
  }

  // Pass 2: the events in log order, against the slots.
  static void applyInLogOrder(Batch& b, const SkipReporter& report, ApplyReport& out) {
    const auto n = static_cast<uint32_t>(b.recs.size());
    b.history.reserve(n);
    for (uint32_t i = 0; i < n; ++i) {
      // Slots are in key order, events in log order: each event's slot is a miss.
      if (i + kAhead < n && b.slotOf[i + kAhead] != kNone)
        prefetch(&b.slots[b.slotOf[i + kAhead]], sizeof(Slot));
      const LogRecord& rec = *b.recs[i];
      if (auto* err = std::get_if<DecodeError>(&b.events[i])) {
        out.skipped++;
        if (report) report(rec.position, err->message);
        continue;
      }
      if (b.duplicate[i]) {
        out.duplicates++;
        continue;
      }
      const EventView& event = std::get<EventView>(b.events[i]);
      // What the contract forbids (and the layouts above rely on, e.g. the owner's
      // length in one byte of the verify record) never reaches the databases.
      if (auto why = checkEvent(event)) {
        out.skipped++;
        if (report) report(rec.position, std::string(event.typeName()) + " event: " + *why);
        continue;
      }
      Slot& slot = b.slots[b.slotOf[i]];
      const std::optional<Token>& current = slot.state;
      auto applied = applyEvent(current, event);
      if (!applied) {
        out.skipped++;
        if (report)
          report(rec.position, std::string(event.typeName()) + " event for " +
                                   (current ? "an existing" : "an unknown") + " token " +
                                   std::string(event.tokenKey) + " of owner " +
                                   std::string(event.owner) + " does not apply");
        continue;
      }
      bool created = !current;
      if (created) b.owners.emplace_back(event.owner, b.slotOf[i]);
      b.history.push_back(Batch::HistoryRef{b.slotOf[i], applied->eventCount - 1, i});
      slot.state = std::move(applied);
      slot.dirty = true;
      // A successor records its predecessor; the predecessor learns its successor.
      if (created && b.predecessorOf[i] != kNone) {
        Slot& pred = b.slots[b.predecessorOf[i]];
        if (pred.state && pred.state->owner == slot.state->owner) {
          pred.state->replacedBy = slot.state->key;
          pred.dirty = true;
        }
      }
      out.applied++;
    }
  }

  // Pass 3: every change, in key order per database. Encoding tokens and sorting
  // the history go to the second thread meanwhile.
  void write(lmdb::Txn& txn, Batch& b) {
    const std::vector<Slot>& slots = b.slots;
    Packed tokenValues;
    std::promise<void> tokensEncoded;  // set (or failed) before the history sort
    auto encoded = besides(b.parallel, [&] {
      try {
        size_t bytes = 0;  // a close upper bound: no reallocation, each page touched once
        for (const Slot& slot : slots)
          if (slot.dirty) bytes += encodedTokenBound(*slot.state);
        tokenValues.reserve(bytes, slots.size());
        for (size_t i = 0; i < slots.size(); ++i) {
          if (i + kAhead < slots.size() && slots[i + kAhead].dirty) {
            const Token& t = *slots[i + kAhead].state;
            prefetch(t.key.data());
            prefetch(t.description.data());
          }
          if (slots[i].dirty) tokenValues.add(encodeToken(*slots[i].state));
        }
        tokensEncoded.set_value();
      } catch (...) {
        tokensEncoded.set_exception(std::current_exception());
        return;
      }
      std::sort(b.history.begin(), b.history.end(), [](const auto& x, const auto& y) {
        return x.slot != y.slot ? x.slot < y.slot : x.seq < y.seq;
      });
    });
    SortedWriter idsOut(txn, dbs_.eventIds);
    std::string value;  // reused: no allocation per entry
    for (size_t i = 0; i < b.newIds.size(); ++i) {
      if (i + kAhead < b.newIds.size()) {
        prefetch(b.newIds[i + kAhead].first.data());
        prefetch(b.recs[b.newIds[i + kAhead].second]);
      }
      idsOut.put(b.newIds[i].first, toString(b.recs[b.newIds[i].second]->position, value));
    }
    SortedWriter verifyOut(txn, dbs_.verify);
    for (size_t i = 0; i < slots.size(); ++i) {
      if (i + kAhead < slots.size() && slots[i + kAhead].dirty)
        prefetch(slots[i + kAhead].state->destinationId.data());
      if (slots[i].dirty) verifyOut.put(slots[i].key, encodeVerifyRecord(value, *slots[i].state));
    }
    // By owner, then by token key (slots are in key order): ownerKey order.
    sortByKey(b.owners, firstOf, [](const auto& x, const auto& y) { return x.second < y.second; });
    SortedWriter ownersOut(txn, dbs_.byOwner);
    std::string key;  // reused: no allocation per entry
    for (size_t i = 0; i < b.owners.size(); ++i) {
      if (i + kAhead < b.owners.size()) {
        prefetch(b.owners[i + kAhead].first.data());
        prefetch(slots[b.owners[i + kAhead].second].key.data());
      }
      ownersOut.put(ownerKey(key, b.owners[i].first, slots[b.owners[i].second].key), "");
    }
    tokensEncoded.get_future().get();
    SortedWriter tokensOut(txn, dbs_.tokens);
    for (size_t i = 0, v = 0; i < slots.size(); ++i)
      if (slots[i].dirty) tokensOut.put(slots[i].key, tokenValues[v++]);
    encoded.get();  // the history sorted too
    // The history needs only the slots' keys and the records: the rest is freed on
    // the second thread meanwhile.
    auto freed = besides(b.parallel, [&] {
      for (Slot& slot : b.slots) slot.state.reset();
      release(b.events);
      release(b.newIds);
      release(b.owners);
      tokenValues = Packed();
    });
    SortedWriter historyOut(txn, dbs_.history);
    for (size_t i = 0; i < b.history.size(); ++i) {
      if (i + 2 * kAhead < b.history.size()) prefetch(b.recs[b.history[i + 2 * kAhead].event]);
      if (i + kAhead < b.history.size()) {
        const auto& h = b.history[i + kAhead];
        prefetch(slots[h.slot].key.data());
        prefetch(b.recs[h.event]->value.data(), b.recs[h.event]->value.size());
      }
      const auto& h = b.history[i];
      historyOut.put(historyKey(key, slots[h.slot].key, h.seq), b.recs[h.event]->value);
    }
    freed.get();
  }

  // Puts keys in ascending order; those past the database's last key go in with
  // MDB_APPEND (no search, and pages fill up instead of splitting in half), which
  // is every key when a rebuild starts from empty.
  class SortedWriter {
   public:
    SortedWriter(lmdb::Txn& txn, MDB_dbi dbi) : cursor_(txn, dbi) {
      empty_ = !cursor_.last();
      if (!empty_) last_ = std::string(cursor_.key());
    }
    // Any order is correct; ascending keys are what makes it fast.
    void put(std::string_view key, std::string_view value) {
      bool append = empty_ || key > last_;
      cursor_.put(key, value, append ? MDB_APPEND : 0);
      if (append) {
        empty_ = false;
        last_.assign(key);
      }
    }

   private:
    lmdb::Cursor cursor_;  // one cursor: appends continue where the last one ended
    std::string last_;     // the database's largest key
    bool empty_ = true;
  };

  // Sorts `v` by key(element) without chasing every key on every comparison: the
  // sort moves 16-byte entries holding the 8 bytes that follow what all keys share
  // (random token keys and ids differ there), and reads whole keys only on ties.
  // Sorting the keys themselves cost more than the writes they order.
  template <typename T, typename KeyOf, typename TieLess = std::nullptr_t>
  static void sortByKey(std::vector<T>& v, KeyOf keyOf, TieLess tieLess = nullptr) {
    if (v.size() < 2) return;
    std::string_view first = keyOf(v[0]);
    size_t common = first.size();
    for (const auto& e : v) {
      std::string_view k = keyOf(e);
      size_t n = 0, m = std::min(common, k.size());
      while (n < m && k[n] == first[n]) ++n;
      common = n;
    }
    struct Entry {
      uint64_t prefix;
      uint32_t size;
      uint32_t index;
    };
    std::vector<Entry> entries(v.size());
    for (size_t i = 0; i < v.size(); ++i) {
      std::string_view k = keyOf(v[i]);
      uint64_t p = 0;
      for (size_t b = common; b < common + 8; ++b)
        p = (p << 8) | (b < k.size() ? static_cast<unsigned char>(k[b]) : 0u);
      entries[i] = Entry{p, static_cast<uint32_t>(k.size()), static_cast<uint32_t>(i)};
    }
    std::sort(entries.begin(), entries.end(), [&](const Entry& a, const Entry& b) {
      if (a.prefix != b.prefix) return a.prefix < b.prefix;
      // Equal prefixes of keys that end within them: equal keys, unless lengths differ.
      if (a.size <= common + 8 && b.size <= common + 8) {
        if (a.size != b.size) return a.size < b.size;
      } else if (int c = keyOf(v[a.index]).compare(keyOf(v[b.index])); c != 0) {
        return c < 0;
      }
      if constexpr (std::is_same_v<TieLess, std::nullptr_t>)
        return false;
      else
        return tieLess(v[a.index], v[b.index]);
    });
    std::vector<T> sorted;
    sorted.reserve(v.size());
    for (const auto& e : entries) sorted.push_back(std::move(v[e.index]));
    v.swap(sorted);
  }

  lmdb::Env env_;
  std::string dir_;
  bool lazy_;
  bool syncAtClose_;
  std::atomic<uint64_t> generation_{1};
  SnapshotGate gate_;
  Room room_;  // after env_, generation_ and gate_, which its callback uses
  Dbs dbs_{};
};

class Reader final : public ReadModelReader {
 public:
  // Holds no snapshot until the first read: readers made ahead (one per command
  // thread) must not pin the first one while they wait.
  explicit Reader(LmdbReadModel& model)
      : model_(model), seen_(model.generation()), txn_(openReset(model)) {}
  ~Reader() override { release(); }

  std::optional<Token> token(std::string_view key) override {
    refresh();
    auto raw = txn_.get(model_.dbs().tokens, key);
    if (!raw) return std::nullopt;
    return decodeToken(*raw);
  }

  bool verifyView(std::string_view key, VerifyView& out) override {
    refresh();
    auto raw = txn_.get(model_.dbs().verify, key);
    auto r = raw ? layout::decodeVerifyRecord(*raw) : std::nullopt;
    if (!r) return false;
    out.secretHash = r->secretHash;
    out.active = r->active;
    out.kind = static_cast<TokenKind>(r->kind);
    out.expiresAtUs = r->expiresAtUs;
    out.deactivateAtUs = r->deactivateAtUs;
    out.owner.assign(r->owner);
    out.destinationId.assign(r->destinationId);
    return true;
  }

  std::vector<Token> tokensOf(std::string_view owner) override {
    refresh();
    std::vector<Token> out;
    std::string prefix;
    ownerKey(prefix, owner, "");
    lmdb::Cursor c(txn_, model_.dbs().byOwner);
    for (bool ok = c.seek(prefix); ok && c.key().starts_with(prefix); ok = c.next()) {
      auto key = c.key().substr(prefix.size());
      if (auto raw = txn_.get(model_.dbs().tokens, key)) out.push_back(decodeToken(*raw));
    }
    std::stable_sort(out.begin(), out.end(),
                     [](const Token& a, const Token& b) { return a.createdAtUs < b.createdAtUs; });
    return out;
  }

  std::vector<Event> history(std::string_view key) override {
    refresh();
    std::vector<Event> out;
    std::string prefix = layout::historyPrefix(key);
    lmdb::Cursor c(txn_, model_.dbs().history);
    for (bool ok = c.seek(prefix); ok && c.key().starts_with(prefix); ok = c.next()) {
      auto decoded = decodeEvent(c.value());
      if (auto* e = std::get_if<Event>(&decoded)) out.push_back(std::move(*e));
    }
    return out;
  }

  Offsets applied() override {
    refresh();
    return Offsets{model_.readPositions(txn_)};
  }

  void release() override {
    if (!held_) return;
    txn_.reset();
    held_ = false;
    model_.gate().leave();
  }

  void releaseIfStale() override {
    if (held_ && model_.generation() != seen_) release();
  }

 private:
  // Renews the snapshot only when the projector committed since the last call (or
  // it was released), so a burst of verifications shares one snapshot and still
  // sees every committed change.
  void refresh() {
    uint64_t g = model_.generation();
    if (held_ && g == seen_) return;
    release();
    model_.gate().enter();
    try {
      txn_.renew();
    } catch (...) {
      model_.gate().leave();
      throw;
    }
    held_ = true;
    seen_ = g;
  }

  // A read transaction holding no snapshot yet (it keeps its reader slot).
  static lmdb::Txn openReset(LmdbReadModel& model) {
    model.gate().enter();
    struct Leave {
      SnapshotGate& gate;
      ~Leave() { gate.leave(); }
    } leave{model.gate()};
    auto txn = lmdb::Txn::read(model.env());
    txn.reset();
    return txn;
  }

  LmdbReadModel& model_;
  // Read before the snapshot is taken (declaration order = initialisation order):
  // a batch committed in between then only causes one needless renew, never a
  // snapshot older than the generation it claims.
  uint64_t seen_;
  lmdb::Txn txn_;
  bool held_ = false;
};

std::unique_ptr<ReadModelReader> LmdbReadModel::reader() {
  return std::make_unique<Reader>(*this);
}

}  // namespace

Status VerifyView::statusAt(int64_t nowUs) const {
  if (expiresAtUs != 0 && nowUs >= expiresAtUs) return Status::expired;
  if (!active) return Status::inactive;
  if (deactivateAtUs != 0 && nowUs >= deactivateAtUs) return Status::inactive;
  return Status::active;
}

namespace {

std::optional<uint64_t> readNumber(const std::string& path) {
  std::ifstream in(path);
  uint64_t v = 0;
  if (in >> v) return v;
  return std::nullopt;  // absent, or "max" (cgroup v2: no limit)
}

// What the memory cgroup still allows: limit minus usage, or nullopt without a
// limit. Version 2, then version 1; the process's own group (from /proc/self/cgroup),
// else the hierarchy's root, which is the container's own group in a container.
std::optional<uint64_t> cgroupHeadroom(const std::string& root) {
  std::string v2Path, v1Path;
  std::ifstream in(root + "/proc/self/cgroup");
  for (std::string line; std::getline(in, line);) {
    if (line.starts_with("0::")) v2Path = line.substr(3);
    auto memory = line.find(":memory:");
    if (memory != std::string::npos) v1Path = line.substr(memory + 8);
  }
  const std::string v2 = root + "/sys/fs/cgroup", v1 = root + "/sys/fs/cgroup/memory";
  const std::pair<std::string, std::string> files[] = {
      {v2 + v2Path + "/memory.max", v2 + v2Path + "/memory.current"},
      {v2 + "/memory.max", v2 + "/memory.current"},
      {v1 + v1Path + "/memory.limit_in_bytes", v1 + v1Path + "/memory.usage_in_bytes"},
      {v1 + "/memory.limit_in_bytes", v1 + "/memory.usage_in_bytes"}};
  for (const auto& [limitFile, usageFile] : files) {
    auto limit = readNumber(limitFile), usage = readNumber(usageFile);
    // No limit is written as "max" (v2) or as a huge number (v1).
    if (limit && usage && *limit < (uint64_t{1} << 60))
      return *limit > *usage ? *limit - *usage : 0;
  }
  return std::nullopt;
}

}  // namespace

std::optional<uint64_t> availableMemoryBytes(const std::string& root) {
  std::optional<uint64_t> available;
  std::ifstream in(root + "/proc/meminfo");
  std::string name;
  uint64_t kb = 0;
  while (in >> name >> kb) {
    if (name == "MemAvailable:") {
      available = kb * 1024;
      break;
    }
    in.ignore(256, '\n');
  }
  if (auto headroom = cgroupHeadroom(root); headroom && (!available || *headroom < *available))
    available = headroom;
  return available;
}

size_t rebuildChunkRecords(std::optional<uint64_t> availableBytes) {
  // About what a record costs while its batch is applied (the record, its decoded
  // view, its slot and token, sort entries and encoded values).
  constexpr uint64_t kBytesPerRecord = 1536;
  constexpr size_t kMin = size_t{1} << 16, kMax = size_t{1} << 20;
  if (!availableBytes) return size_t{1} << 18;  // unknown: a few hundred MB
  return std::clamp<size_t>(*availableBytes / 4 / kBytesPerRecord, kMin, kMax);
}

bool readModelNeedsRebuild(const std::string& dir) {
  std::ifstream in(dir + "/unsynced-boot");
  if (!in) return false;
  std::string id;
  std::getline(in, id);
  return id != bootId();
}

std::unique_ptr<ReadModel> openReadModel(const std::string& dir, const ReadModelOptions& options,
                                         ReadModelLog log) {
  return std::make_unique<LmdbReadModel>(dir, options, std::move(log));
}

ApplyReport rebuildReadModel(EventLog& log, const std::string& dir, const SkipReporter& report,
                             const ReadModelOptions& options, ReadModelLog modelLog) {
  if (std::filesystem::exists(std::filesystem::path(dir) / "data.mdb"))
    throw std::runtime_error("a read model already exists in " + dir +
                             "; move it away before rebuilding");
  // Unsynced commits, one sync at the end: a crash midway leaves a directory that
  // is not yet in use and is rebuilt again.
  ReadModelOptions lazy = options;
  lazy.syncEachCommit = false;
  lazy.syncAtClose = false;
  auto model = openReadModel(dir, lazy, std::move(modelLog));
  auto reader = log.openReader(Offsets{std::vector<int64_t>(log.partitionCount(), 0)});
  Offsets end = reader->endOffsets();
  ApplyReport total;
  std::vector<int64_t> polled(end.next.size(), 0);
  auto reached = [&] {
    for (size_t p = 0; p < end.next.size(); ++p)
      if (polled[p] < end.next[p]) return false;
    return true;
  };
  // Big transactions: apply() sorts each one's writes, and an empty read model
  // takes them all with MDB_APPEND; a later transaction inserts among what the
  // earlier ones stored, at about twice the cost per record.
  const size_t kChunk = rebuildChunkRecords(availableMemoryBytes());
  int64_t records = 0;
  for (int64_t next : end.next) records += next;
  std::vector<LogRecord> chunk;
  chunk.reserve(std::min<size_t>(kChunk, static_cast<size_t>(records)));
  while (!reached()) {
    auto batch = reader->poll(65536, std::chrono::milliseconds(1000));
    for (auto& r : batch) {
      auto p = static_cast<size_t>(r.position.partition);
      if (p < polled.size()) polled[p] = std::max(polled[p], r.position.offset + 1);
      chunk.push_back(std::move(r));
    }
    if (chunk.empty() || (chunk.size() < kChunk && !reached())) continue;
    auto r = model->apply(chunk, report);
    total.applied += r.applied;
    total.duplicates += r.duplicates;
    total.skipped += r.skipped;
    chunk.clear();
  }
  return total;
}

}  // namespace tokenledger
