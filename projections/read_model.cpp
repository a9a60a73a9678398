#include "projections/read_model.h"

#include <fcntl.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <span>

#include "events/lmdb.h"
#include "projections/batch_apply.h"
#include "projections/memory_budget.h"
#include "projections/read_model_layout.h"
#include "projections/room.h"
#include "projections/snapshot_gate.h"

namespace tokenledger {
namespace {

// Names the events a read model applies: a model built under one policy is never
// opened under another (the events it refused or took may differ).
std::string trustFingerprint(const ReadModelOptions& o) {
  return o.trust ? o.trust->fingerprint() : "none: every well-formed event";
}

using layout::ownerKey;

class Reader;

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
  LmdbReadModel(const std::string& dir, const ReadModelOptions& options, ReadModelHooks hooks)
      // MDB_NOMETASYNC: one fsync per batch instead of two. An OS crash may undo the
      // last batches, never corrupt them; their positions go with them, so the
      // projector simply re-applies those events from the log.
      // The map starts small (LMDB makes it at least what the data needs) and Room
      // grows it up to the limit: with MDB_WRITEMAP the file's size is the map's.
      : env_(dir, lmdb::EnvOptions{std::min<uint64_t>(options.mapSizeBytes, 64ull << 20), 16, 1024,
                                   options.syncEachCommit
                                       ? unsigned{MDB_NOMETASYNC}
                                       : unsigned{MDB_NOSYNC | MDB_WRITEMAP | MDB_NORDAHEAD}}),
        dir_(dir),
        lazy_(!options.syncEachCommit),
        syncAtClose_(options.syncAtClose),
        room_(env_,
              Room::Options{dir, options.mapSizeBytes, !options.syncEachCommit,
                            std::move(hooks.log), std::move(hooks.reserveDisk)},
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
    dbs_ = batch::openDbs(txn, true);
    auto version = txn.get(dbs_.meta, layout::kSchemaVersionKey);
    if (!version) {
      txn.put(dbs_.meta, layout::kSchemaVersionKey, std::to_string(layout::kLayoutVersion));
    } else if (*version != std::to_string(layout::kLayoutVersion)) {
      throw std::runtime_error("read model in " + dir + " has schema version " +
                               std::string(*version) + ", this build expects " +
                               std::to_string(layout::kLayoutVersion) +
                               "; rebuild it with `tokenledgerd --rebuild`");
    }
    const std::string fingerprint = trustFingerprint(options);
    auto stored = txn.get(dbs_.meta, layout::kTrustKey);
    if (!stored && readPositions(txn).next.empty()) {
      txn.put(dbs_.meta, layout::kTrustKey, fingerprint);
    } else if (!stored || *stored != fingerprint) {
      throw std::runtime_error("read model in " + dir +
                               " was built under another trust policy; rebuild it with "
                               "`tokenledgerd --rebuild` (the daemon does at start)");
    }
    ownEvents_ = options.ownEvents;
    if (options.trust) {
      trust_.emplace(*options.trust);
      lmdb::Cursor c(txn, dbs_.writers);
      for (bool ok = c.first(); ok; ok = c.next()) {
        auto k = layout::splitWriterKey(c.key());
        if (!k || c.value().size() != kPublicKeyBytes)
          throw std::runtime_error("corrupt writer entry in the read model in " + dir);
        trust_->admit(k->first, PublicKey{std::string(k->second), std::string(c.value())});
      }
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
    // Skips are reported once the batch commits: a batch tried again after
    // MDB_MAP_FULL reports each one once.
    std::vector<std::pair<Position, std::string>> skips;
    SkipReporter collect;
    if (report)
      collect = [&skips](const Position& p, const std::string& why) { skips.emplace_back(p, why); };
    for (;;) {
      try {
        ApplyReport out = applyOnce(records, collect);
        for (const auto& [position, why] : skips) report(position, why);
        return out;
      } catch (const lmdb::LmdbError& e) {
        if (!e.mapFull()) throw;
        skips.clear();  // the transaction was aborted: nothing of it stays
        room_.growAfterMapFull();
      }
    }
  }

  ApplyReport applyOnce(const std::vector<LogRecord>& records, const SkipReporter& report) {
    ApplyReport out;
    room_.makeRoomFor(records.size());
    // Big batches: fault in the pages they will add on the second thread.
    std::future<void> prefaulted;
    if (lazy_ && records.size() >= batch::kParallelBatch)
      prefaulted =
          std::async(std::launch::async, [next = nextPages(records.size() * kBytesPerRecord)] {
            batch::populate(next.data(), next.size());
          });
    auto txn = lmdb::Txn::write(env_);
    Offsets next = readPositions(txn);
    std::vector<const LogRecord*> recs;
    recs.reserve(records.size());
    for (const auto& rec : records) {  // which records are new, by position
      if (next.covers(rec.position)) {
        out.duplicates++;
        continue;
      }
      next.advancePast(rec.position.partition, rec.position.offset);
      recs.push_back(&rec);
    }
    // The trust as the batch extends it, kept only once the batch commits.
    std::optional<WriterTrust> trust = trust_;
    batch::apply(txn, dbs_, std::move(recs), report, out, trust ? &*trust : nullptr,
                 ownEvents_.get());
    for (size_t p = 0; p < next.next.size(); ++p)
      txn.put(dbs_.positions, layout::partitionKey(Partition{static_cast<int32_t>(p)}),
              layout::nextOffsetValue(next.next[p]));
    txn.commit();
    if (out.certificates) trust_ = std::move(trust);
    if (prefaulted.valid()) prefaulted.get();
    generation_.fetch_add(1, std::memory_order_release);
    room_.committed();
    return out;
  }

  std::optional<RoomProblem> claimRoom(uint64_t events) override { return room_.claim(events); }
  std::optional<RoomProblem> roomFor(uint64_t events) const override { return room_.check(events); }

  Offsets applied(int32_t partitions) override {
    Snapshot snapshot(gate_, env_);
    Offsets o = readPositions(snapshot.txn());
    if (o.next.size() < static_cast<size_t>(partitions)) o.next.resize(partitions);
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
        {kTokens, dbs_.tokens},           {kByOwner, dbs_.byOwner},
        {kHistory, dbs_.history},         {kEventIds, dbs_.eventIds},
        {kPositions, dbs_.positions},     {kMeta, dbs_.meta},
        {kVerify, dbs_.verify},           {kWriters, dbs_.writers},
        {kIdempotency, dbs_.idempotency}, {kIdempotencyByTime, dbs_.idempotencyByTime}};
    static_assert(std::size(all) == kDatabases.size(), "dump every database");
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
  const batch::Dbs& dbs() const { return dbs_; }
  SnapshotGate& gate() { return gate_; }

  Offsets readPositions(const lmdb::Txn& txn) {
    Offsets next;
    lmdb::Cursor c(txn, dbs_.positions);
    for (bool ok = c.first(); ok; ok = c.next()) {
      auto p = layout::partitionOf(c.key());
      auto n = layout::nextOffsetOf(c.value());
      if (!p || !n) throw std::runtime_error("corrupt applied position in the read model");
      if (next.next.size() <= p->index()) next.next.resize(p->index() + 1);
      next.next[p->index()] = *n;
    }
    return next;
  }

 private:
  // About what a rebuild adds to the file per record (all databases).
  static constexpr uint64_t kBytesPerRecord = 400;

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

  lmdb::Env env_;
  std::string dir_;
  bool lazy_;
  bool syncAtClose_;
  std::atomic<uint64_t> generation_{1};
  SnapshotGate gate_;
  Room room_;  // after env_, generation_ and gate_, which its callback uses
  batch::Dbs dbs_{};
  std::optional<WriterTrust> trust_;  // the apply thread's; none: every event is taken
  std::shared_ptr<const OwnEvents> ownEvents_;
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
    return decodeToken(key, *raw);
  }

  bool verifyView(std::string_view key, VerifyView& out) override {
    refresh();
    auto raw = txn_.get(model_.dbs().verify, key);
    return raw && verifyViewOf(*raw, out);
  }

  TokenPage tokensPage(std::string_view owner, const PageRequest& req) override {
    refresh();
    TokenPage page;
    std::string prefix = layout::ownerPrefix(owner), from = prefix;
    if (!req.after.empty()) {
      auto raw = txn_.get(model_.dbs().tokens, req.after);
      std::optional<Token> after;
      if (raw) after = decodeToken(req.after, *raw);
      if (!after || after->owner != owner) {
        page.unknownAfter = true;
        return page;
      }
      ownerKey(from, owner, after->createdAt, req.after);
    }
    lmdb::Cursor c(txn_, model_.dbs().byOwner);
    size_t examined = 0;
    std::string_view last;  // the key of the last token examined
    bool ok = c.seek(from);
    if (ok && !req.after.empty() && c.key() == from) ok = c.next();
    for (; ok && c.key().starts_with(prefix); ok = c.next()) {
      if (page.tokens.size() >= req.limit || examined >= req.maxExamined) {
        page.next = std::string(last);
        break;
      }
      ++examined;
      auto split = layout::splitOwnerKey(c.key());
      if (!split) continue;
      last = split->key;
      auto raw = txn_.get(model_.dbs().tokens, split->key);
      if (!raw) continue;
      Token t = decodeToken(split->key, *raw);
      if (!req.keep || req.keep(t)) page.tokens.push_back(std::move(t));
    }
    return page;
  }

  std::vector<Event> history(std::string_view key) override {
    refresh();
    auto raw = txn_.get(model_.dbs().tokens, key);
    if (!raw) return {};
    TokenRecord r = decodeTokenRecord(key, *raw);
    std::vector<Event> out = decodeHistory(r.token, r.history);
    if (r.token.eventCount <= out.size()) return out;
    // The entries past the record's (layout::kInlineHistory), in seq order.
    std::string prefix = layout::historyPrefix(key);
    lmdb::Cursor c(txn_, model_.dbs().history);
    for (bool ok = c.seek(prefix); ok && c.key().starts_with(prefix); ok = c.next())
      for (Event& e : decodeHistory(r.token, c.value())) out.push_back(std::move(e));
    return out;
  }

  std::optional<IdempotencyRecord> idempotency(std::string_view owner,
                                               std::string_view key) override {
    refresh();
    std::string k;
    auto raw = txn_.get(model_.dbs().idempotency, layout::idempotencyKey(k, owner, key));
    return raw ? layout::decodeIdempotencyRecord(*raw) : std::nullopt;
  }

  Offsets applied() override {
    refresh();
    return model_.readPositions(txn_);
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

bool verifyViewOf(std::string_view record, VerifyView& out) {
  auto r = layout::decodeVerifyRecord(record);
  if (!r) return false;
  out.secretHash = r->secretHash;
  out.active = r->active;
  out.kind = static_cast<TokenKind>(r->kind);
  out.expiresAt = r->expiresAt;
  out.deactivateAt = r->deactivateAt;
  out.owner.assign(r->owner);
  out.destinationId.assign(r->destinationId);
  return true;
}

Status VerifyView::statusAt(Timestamp now) const {
  return tokenledger::statusAt(active, expiresAt, deactivateAt, now);
}

std::optional<std::string> readModelRebuildReason(const std::string& dir,
                                                  const ReadModelOptions& options) {
  if (std::ifstream in(dir + "/unsynced-boot"); in) {
    std::string id;
    std::getline(in, id);
    if (id != bootId()) return "the machine restarted while the read model had unsynced commits";
  }
  if (!std::filesystem::exists(dir + "/data.mdb")) return std::nullopt;
  try {
    lmdb::Env env(dir, lmdb::EnvOptions{64ull << 20, 16, 16, MDB_RDONLY, true});
    auto txn = lmdb::Txn::read(env);
    MDB_dbi meta = txn.openDb(layout::kMeta);
    auto version = txn.get(meta, layout::kSchemaVersionKey);
    if (!version || *version != std::to_string(layout::kLayoutVersion))
      return "the read model has layout version " + std::string(version ? *version : "none") +
             ", this build writes " + std::to_string(layout::kLayoutVersion);
    auto trust = txn.get(meta, layout::kTrustKey);
    if (trust && *trust != trustFingerprint(options))
      return "the read model was built under another trust policy (" + std::string(*trust) + ")";
    return std::nullopt;
  } catch (const std::exception& e) {
    return std::string("the read model cannot be read (") + e.what() + ")";
  }
}

std::unique_ptr<ReadModel> openReadModel(const std::string& dir, const ReadModelOptions& options,
                                         ReadModelHooks hooks) {
  return std::make_unique<LmdbReadModel>(dir, options, std::move(hooks));
}

ApplyReport rebuildReadModel(EventLog& log, const std::string& dir, const SkipReporter& report,
                             const ReadModelOptions& options, ReadModelHooks hooks) {
  if (std::filesystem::exists(std::filesystem::path(dir) / "data.mdb"))
    throw std::runtime_error("a read model already exists in " + dir +
                             "; move it away before rebuilding");
  // Unsynced commits, one sync at the end: a crash midway leaves a directory that
  // is not yet in use and is rebuilt again.
  ReadModelOptions lazy = options;
  lazy.syncEachCommit = false;
  lazy.syncAtClose = false;
  auto model = openReadModel(dir, lazy, std::move(hooks));
  Offsets start = Offsets::atStart(log.partitionCount());
  auto reader = log.openReader(start);
  Offsets end = reader->endOffsets();
  ApplyReport total;
  Offsets polled = start;
  auto reached = [&] { return polled.covers(end); };
  // Big transactions: apply() sorts each one's writes, and an empty read model
  // takes them all with MDB_APPEND; a later transaction inserts among what the
  // earlier ones stored, at about twice the cost per record.
  const size_t kChunk = rebuildChunkRecords(availableMemoryBytes());
  int64_t records = 0;
  for (NextOffset next : end.next) records += next.value;
  std::vector<LogRecord> chunk;
  chunk.reserve(std::min<size_t>(kChunk, static_cast<size_t>(records)));
  size_t transactions = 0;
  while (!reached()) {
    auto batch = reader->poll(65536, std::chrono::milliseconds(1000));
    for (auto& r : batch) {
      polled.advancePast(r.position.partition, r.position.offset);
      chunk.push_back(std::move(r));
    }
    if (chunk.empty() || (chunk.size() < kChunk && !reached())) continue;
    total += model->apply(chunk, report);
    transactions++;
    chunk.clear();
  }
  model.reset();
  // Every transaction after the first inserted among what the earlier ones stored
  // (splitting pages half full) and copied each page it touched (the old copies
  // stay in the file, free): at 10M tokens the file held 3 times the data. A
  // compacting copy keeps only the pages in use, numbered anew.
  if (transactions > 1) compactReadModel(dir);
  return total;
}

void compactReadModel(const std::string& dir) {
  namespace fs = std::filesystem;
  const std::string into = dir + "/compacting";
  fs::remove_all(into);
  fs::create_directories(into);
  {
    lmdb::Env env(dir, lmdb::EnvOptions{fs::file_size(dir + "/data.mdb"), 16, 16, MDB_RDONLY});
    lmdb::check(mdb_env_copy2(env.get(), into.c_str(), MDB_CP_COMPACT), "mdb_env_copy2");
  }
  fs::rename(into + "/data.mdb", dir + "/data.mdb");
  fs::remove_all(into);
}

std::vector<Token> ReadModelReader::tokensOf(std::string_view owner) {
  std::vector<Token> out;
  PageRequest req;
  req.limit = req.maxExamined = 1000;
  std::string next;
  do {
    req.after = next;
    TokenPage page = tokensPage(owner, req);
    std::move(page.tokens.begin(), page.tokens.end(), std::back_inserter(out));
    next = std::move(page.next);
  } while (!next.empty());
  return out;
}

}  // namespace tokenledger
