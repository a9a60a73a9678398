#include "projections/read_model.h"

#include <capnp/message.h>
#include <capnp/serialize.h>

#include <algorithm>
#include <cstring>
#include <filesystem>

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
  MDB_dbi tokens, byOwner, history, eventIds, positions, meta;
};

Dbs openDbs(lmdb::Txn& txn, bool create) {
  return Dbs{txn.openDb("tokens", 0, create),    txn.openDb("by_owner", 0, create),
             txn.openDb("history", 0, create),   txn.openDb("event_ids", 0, create),
             txn.openDb("positions", 0, create), txn.openDb("meta", 0, create)};
}

class Reader;

class LmdbReadModel final : public ReadModel {
 public:
  LmdbReadModel(const std::string& dir, const ReadModelOptions& options)
      // MDB_NOMETASYNC: one fsync per batch instead of two. An OS crash may undo the
      // last batches, never corrupt them; their positions go with them, so the
      // projector simply re-applies those events from the log.
      : env_(dir, lmdb::EnvOptions{options.mapSizeBytes, 8, 1024, MDB_NOMETASYNC}) {
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
        {"tokens", dbs_.tokens},       {"by_owner", dbs_.byOwner},
        {"history", dbs_.history},     {"event_ids", dbs_.eventIds},
        {"positions", dbs_.positions}, {"meta", dbs_.meta}};
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
    txn.put(dbs_.tokens, event.tokenKey, encodeToken(*next));
    if (!current) txn.put(dbs_.byOwner, ownerKey(event.owner, event.tokenKey), "");
    txn.put(dbs_.history, historyKey(event.tokenKey, next->eventCount - 1), rec.value);
    // A successor records its predecessor; the predecessor learns its successor.
    if (!current && !next->replaces.empty()) {
      if (auto raw = txn.get(dbs_.tokens, next->replaces)) {
        Token pred = decodeToken(*raw);
        if (pred.owner == next->owner) {
          pred.replacedBy = next->key;
          txn.put(dbs_.tokens, pred.key, encodeToken(pred));
        }
      }
    }
    out.applied++;
  }

  lmdb::Env env_;
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
    auto raw = txn_.get(model_.dbs().tokens, key);
    if (!raw) return false;
    // Cap'n Proto wants word alignment; LMDB values are only 2-byte aligned.
    size_t words = (raw->size() + 7) / 8;
    if (buffer_.size() < words) buffer_.resize(words);
    memcpy(buffer_.data(), raw->data(), raw->size());
    capnp::FlatArrayMessageReader reader(kj::arrayPtr(buffer_.data(), words));
    auto r = reader.getRoot<schema::TokenState>();
    auto hash = r.getSecretHash();
    if (hash.size() != out.secretHash.size()) return false;
    memcpy(out.secretHash.data(), hash.begin(), hash.size());
    auto owner = r.getOwner();
    out.owner.assign(owner.begin(), owner.size());
    out.kind = r.getKind() == schema::TokenKind::USER ? TokenKind::user : TokenKind::destination;
    auto dest = r.getDestinationId();
    out.destinationId.assign(dest.begin(), dest.size());
    out.active = r.getActive();
    out.expiresAtUs = r.getExpiresAtUs();
    out.deactivateAtUs = r.getDeactivateAtUs();
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
    std::stable_sort(out.begin(), out.end(), [](const Token& a, const Token& b) {
      return a.createdAtUs < b.createdAtUs;
    });
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
  std::vector<capnp::word> buffer_;
};

std::unique_ptr<ReadModelReader> LmdbReadModel::reader() { return std::make_unique<Reader>(*this); }

}  // namespace

Status VerifyView::statusAt(int64_t nowUs) const {
  if (expiresAtUs != 0 && nowUs >= expiresAtUs) return Status::expired;
  if (!active) return Status::inactive;
  if (deactivateAtUs != 0 && nowUs >= deactivateAtUs) return Status::inactive;
  return Status::active;
}

std::unique_ptr<ReadModel> openReadModel(const std::string& dir, const ReadModelOptions& options) {
  return std::make_unique<LmdbReadModel>(dir, options);
}

ApplyReport rebuildReadModel(EventLog& log, const std::string& dir, const SkipReporter& report,
                             const ReadModelOptions& options) {
  if (std::filesystem::exists(std::filesystem::path(dir) / "data.mdb"))
    throw std::runtime_error("a read model already exists in " + dir +
                             "; move it away before rebuilding");
  auto model = openReadModel(dir, options);
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
    auto batch = reader->poll(4096, std::chrono::milliseconds(1000));
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
