#include "projections/read_model.h"

#include <capnp/message.h>
#include <capnp/serialize.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "events/lmdb.h"
#include "schemas/tokenledger.capnp.h"

namespace tokenledger {
namespace {

std::string u32be(uint32_t v) {
  std::string s(4, '\0');
  for (int i = 3; i >= 0; --i) {
    s[i] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
  return s;
}

std::string ownerKey(std::string_view owner, std::string_view key) {
  std::string k(owner);
  k.push_back('\0');
  k.append(key);
  return k;
}

std::string historyKey(std::string_view key, uint32_t seq) {
  std::string k(key);
  k.push_back('\0');
  k.append(u32be(seq));
  return k;
}

struct Dbs {
  MDB_dbi tokens, byOwner, history, eventIds, positions, meta, verify;
};

Dbs openDbs(lmdb::Txn& txn, bool create) {
  return Dbs{txn.openDb("tokens", 0, create),    txn.openDb("by_owner", 0, create),
             txn.openDb("history", 0, create),   txn.openDb("event_ids", 0, create),
             txn.openDb("positions", 0, create), txn.openDb("meta", 0, create),
             txn.openDb("verify", 0, create)};
}

// The "verify" database holds, per key, just what verification reads, in a fixed
// layout: no Cap'n Proto decoding on the hot path. Derived from "tokens" in the same
// transaction. Layout: secret hash (32) | active (1) | kind (1) | expiresAtUs (8 BE)
// | deactivateAtUs (8 BE) | owner length (1) | owner | destination id.
constexpr size_t kVerifyFixed = 32 + 1 + 1 + 8 + 8 + 1;

void putI64(std::string& out, int64_t v) {
  out += lmdb::encodeU64(static_cast<uint64_t>(v));
}
int64_t getI64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return static_cast<int64_t>(v);
}

std::string encodeVerifyRecord(const Token& t) {
  std::string out;
  out.reserve(kVerifyFixed + t.owner.size() + t.destinationId.size());
  out.append(reinterpret_cast<const char*>(t.secretHash.data()), t.secretHash.size());
  out.push_back(t.active ? 1 : 0);
  out.push_back(static_cast<char>(t.kind));
  putI64(out, t.expiresAtUs);
  putI64(out, t.deactivateAtUs);
  out.push_back(static_cast<char>(t.owner.size()));  // user ids are at most 128 bytes
  out += t.owner;
  out += t.destinationId;
  return out;
}

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
  LmdbReadModel(const std::string& dir, const ReadModelOptions& options)
      // MDB_NOMETASYNC: one fsync per batch instead of two. An OS crash may undo the
      // last batches, never corrupt them; their positions go with them, so the
      // projector simply re-applies those events from the log.
      : env_(dir, lmdb::EnvOptions{options.mapSizeBytes, 8, 1024,
                                   (options.syncEachCommit ? unsigned{MDB_NOMETASYNC}
                                                           : unsigned{MDB_NOSYNC}) |
                                       (options.bulkLoad ? unsigned{MDB_WRITEMAP} : 0u)}),
        dir_(dir),
        lazy_(!options.syncEachCommit) {
    // Marks "unsynced commits may exist in this boot"; removed after the final sync.
    if (lazy_) writeFile(dir_ + "/unsynced-boot", bootId());
    auto txn = lmdb::Txn::write(env_);
    dbs_ = openDbs(txn, true);
    auto version = txn.get(dbs_.meta, "schema_version");
    if (!version) {
      txn.put(dbs_.meta, "schema_version", std::to_string(kSchemaVersion));
    } else if (*version != std::to_string(kSchemaVersion)) {
      throw std::runtime_error("read model in " + dir + " has schema version " +
                               std::string(*version) + ", this build expects " +
                               std::to_string(kSchemaVersion) +
                               "; rebuild it with `tokenledgerd --rebuild`");
    }
    txn.commit();
  }

  ApplyReport apply(const std::vector<LogRecord>& records, const SkipReporter& report) override {
    ApplyReport out;
    auto txn = lmdb::Txn::write(env_);
    std::vector<int64_t> next = readPositions(txn);
    for (const auto& rec : records) {
      auto part = static_cast<size_t>(rec.position.partition);
      if (next.size() <= part) next.resize(part + 1, 0);
      if (rec.position.offset < next[part]) {
        out.duplicates++;
        continue;
      }
      next[part] = rec.position.offset + 1;
      applyOne(txn, rec, out, report);
    }
    for (size_t p = 0; p < next.size(); ++p)
      txn.put(dbs_.positions, u32be(static_cast<uint32_t>(p)),
              lmdb::encodeU64(static_cast<uint64_t>(next[p])));
    txn.commit();
    generation_.fetch_add(1, std::memory_order_release);
    return out;
  }

  Offsets applied(int32_t partitions) override {
    auto txn = lmdb::Txn::read(env_);
    Offsets o{readPositions(txn)};
    if (o.next.size() < static_cast<size_t>(partitions)) o.next.resize(partitions, 0);
    return o;
  }

  uint64_t generation() const override { return generation_.load(std::memory_order_acquire); }

  std::unique_ptr<ReadModelReader> reader() override;

  std::string dump() override {
    std::string out;
    auto txn = lmdb::Txn::read(env_);
    const std::pair<const char*, MDB_dbi> all[] = {
        {"tokens", dbs_.tokens},      {"by_owner", dbs_.byOwner},    {"history", dbs_.history},
        {"event_ids", dbs_.eventIds}, {"positions", dbs_.positions}, {"meta", dbs_.meta},
        {"verify", dbs_.verify}};
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
    if (lazy_) {
      try {
        sync();
        std::filesystem::remove(dir_ + "/unsynced-boot");
      } catch (const std::exception&) {
        // leave the marker: the next start decides
      }
    }
  }

  void sync() override {
    if (lazy_) lmdb::check(mdb_env_sync(env_.get(), 1), "mdb_env_sync");
  }

  lmdb::Env& env() { return env_; }
  const Dbs& dbs() const { return dbs_; }

  std::vector<int64_t> readPositions(const lmdb::Txn& txn) {
    std::vector<int64_t> next;
    lmdb::Cursor c(txn, dbs_.positions);
    for (bool ok = c.first(); ok; ok = c.next()) {
      auto k = c.key();
      uint32_t p = 0;
      for (unsigned char ch : k) p = (p << 8) | ch;
      if (next.size() <= p) next.resize(p + 1, 0);
      next[p] = static_cast<int64_t>(lmdb::decodeU64(c.value()));
    }
    return next;
  }

 private:
  void applyOne(lmdb::Txn& txn, const LogRecord& rec, ApplyReport& out,
                const SkipReporter& report) {
    auto decoded = decodeEvent(rec.value);
    if (auto* err = std::get_if<DecodeError>(&decoded)) {
      out.skipped++;
      if (report) report(rec.position, err->message);
      return;
    }
    const Event& event = std::get<Event>(decoded);
    if (txn.get(dbs_.eventIds, event.eventId)) {
      out.duplicates++;
      return;
    }
    txn.put(dbs_.eventIds, event.eventId, toString(rec.position));

    std::optional<Token> current;
    if (auto raw = txn.get(dbs_.tokens, event.tokenKey)) current = decodeToken(*raw);
    auto next = applyEvent(current, event);
    if (!next) {
      out.skipped++;
      if (report)
        report(rec.position, std::string(event.typeName()) + " event for " +
                                 (current ? "an existing" : "an unknown") + " token " +
                                 event.tokenKey + " of owner " + event.owner + " does not apply");
      return;
    }
    putToken(txn, *next);
    if (!current) txn.put(dbs_.byOwner, ownerKey(event.owner, event.tokenKey), "");
    txn.put(dbs_.history, historyKey(event.tokenKey, next->eventCount - 1), rec.value);
    // A successor records its predecessor; the predecessor learns its successor.
    if (!current && !next->replaces.empty()) {
      if (auto raw = txn.get(dbs_.tokens, next->replaces)) {
        Token pred = decodeToken(*raw);
        if (pred.owner == next->owner) {
          pred.replacedBy = next->key;
          putToken(txn, pred);
        }
      }
    }
    out.applied++;
  }

  void putToken(lmdb::Txn& txn, const Token& t) {
    txn.put(dbs_.tokens, t.key, encodeToken(t));
    txn.put(dbs_.verify, t.key, encodeVerifyRecord(t));
  }

  lmdb::Env env_;
  std::string dir_;
  bool lazy_;
  Dbs dbs_{};
  std::atomic<uint64_t> generation_{1};
};

class Reader final : public ReadModelReader {
 public:
  explicit Reader(LmdbReadModel& model)
      : model_(model), seen_(model.generation()), txn_(lmdb::Txn::read(model.env())) {}

  std::optional<Token> token(std::string_view key) override {
    refresh();
    auto raw = txn_.get(model_.dbs().tokens, key);
    if (!raw) return std::nullopt;
    return decodeToken(*raw);
  }

  bool verifyView(std::string_view key, VerifyView& out) override {
    refresh();
    auto raw = txn_.get(model_.dbs().verify, key);
    if (!raw || raw->size() < kVerifyFixed) return false;
    const char* p = raw->data();
    memcpy(out.secretHash.data(), p, out.secretHash.size());
    out.active = p[32] != 0;
    out.kind = static_cast<TokenKind>(p[33]);
    out.expiresAtUs = getI64(p + 34);
    out.deactivateAtUs = getI64(p + 42);
    size_t ownerLen = static_cast<unsigned char>(p[50]);
    if (raw->size() < kVerifyFixed + ownerLen) return false;
    out.owner.assign(p + kVerifyFixed, ownerLen);
    out.destinationId.assign(p + kVerifyFixed + ownerLen, raw->size() - kVerifyFixed - ownerLen);
    return true;
  }

  std::vector<Token> tokensOf(std::string_view owner) override {
    refresh();
    std::vector<Token> out;
    std::string prefix = ownerKey(owner, "");
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
    std::string prefix(key);
    prefix.push_back('\0');
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

 private:
  // Renews the snapshot only when the projector committed since the last call, so a
  // burst of verifications shares one snapshot and still sees every committed change.
  void refresh() {
    uint64_t g = model_.generation();
    if (g != seen_) {
      txn_.reset();
      txn_.renew();
      seen_ = g;
    }
  }

  LmdbReadModel& model_;
  // Read before the snapshot is taken (declaration order = initialisation order):
  // a batch committed in between then only causes one needless renew, never a
  // snapshot older than the generation it claims.
  uint64_t seen_;
  lmdb::Txn txn_;
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

bool readModelNeedsRebuild(const std::string& dir) {
  std::ifstream in(dir + "/unsynced-boot");
  if (!in) return false;
  std::string id;
  std::getline(in, id);
  return id != bootId();
}

std::unique_ptr<ReadModel> openReadModel(const std::string& dir, const ReadModelOptions& options) {
  return std::make_unique<LmdbReadModel>(dir, options);
}

ApplyReport rebuildReadModel(EventLog& log, const std::string& dir, const SkipReporter& report,
                             const ReadModelOptions& options) {
  if (std::filesystem::exists(std::filesystem::path(dir) / "data.mdb"))
    throw std::runtime_error("a read model already exists in " + dir +
                             "; move it away before rebuilding");
  // Unsynced commits, one sync at the end: a crash midway leaves a directory that
  // is not yet in use and is rebuilt again.
  ReadModelOptions lazy = options;
  lazy.syncEachCommit = false;
  lazy.bulkLoad = true;
  auto model = openReadModel(dir, lazy);
  auto reader = log.openReader(Offsets{std::vector<int64_t>(log.partitionCount(), 0)});
  Offsets end = reader->endOffsets();
  ApplyReport total;
  Offsets done = model->applied(log.partitionCount());
  auto reached = [&] {
    for (size_t p = 0; p < end.next.size(); ++p)
      if (done.next[p] < end.next[p]) return false;
    return true;
  };
  while (!reached()) {
    auto batch = reader->poll(65536, std::chrono::milliseconds(1000));
    if (batch.empty()) continue;
    auto r = model->apply(batch, report);
    total.applied += r.applied;
    total.duplicates += r.duplicates;
    total.skipped += r.skipped;
    done = model->applied(log.partitionCount());
  }
  return total;
}

}  // namespace tokenledger
