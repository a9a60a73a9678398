// ledger-audit rebuild and verify-projection: a read model built offline from the
// log, and a projection compared, database by database and entry by entry, with a
// fresh replay up to the positions it says it applied.
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "events/lmdb.h"
#include "events/signing.h"
#include "events/times.h"
#include "projections/read_model.h"
#include "projections/read_model_layout.h"
#include "tools/ledger_audit_commands.h"
#include "tools/ledger_audit_replay.h"
#include "tools/ledger_audit_text.h"

namespace tokenledger::audit {
namespace {

namespace fs = std::filesystem;

// Replays `source` into a fresh read model in `dir`.
struct RebuildResult {
  uint64_t records = 0;
  ApplyReport report;
  size_t malformed = 0;
};
RebuildResult rebuildInto(LogSource& source, const std::string& dir, const Options& o) {
  RebuildResult out;
  ReadModelOptions options;
  options.trust = trustPolicyOf(o);  // the replicas' verdicts on every event
  auto model = openReadModel(dir, options);
  Decoder decoder;
  std::vector<LogRecord> pending;
  auto flush = [&] {
    if (pending.empty()) return;
    auto r = model->apply(pending, [&](const Position& p, const std::string& why) {
      // Decode failures were reported by the decoder already.
      if (why.find("does not apply") != std::string::npos || why.starts_with("untrusted"))
        std::cerr << "note: event at " << toString(p) << " " << printable(why) << "\n";
    });
    out.report += r;
    pending.clear();
  };
  out.records = replay(source, o.quiet, [&](const LogRecord& r) {
    decoder.decode(r);  // reports malformed records with their position
    pending.push_back(r);
    if (pending.size() >= 8192) flush();
  });
  flush();
  out.malformed = decoder.malformed + decoder.unknown;
  return out;
}

struct Db {
  std::string name;
  std::map<std::string, std::string> entries;
};

// Every database of the read model in `dir` (read_model_layout.h), in layout order.
std::vector<Db> readModelDbs(const std::string& dir) {
  // Read-only: a live replica's files stay as they are.
  lmdb::Env env(
      dir, lmdb::EnvOptions{
               .mapSizeBytes = 64ull << 30, .maxDbs = 16, .maxReaders = 126, .readOnly = true});
  auto txn = lmdb::Txn::read(env);
  std::vector<Db> out;
  for (const char* name : layout::kDatabases) {
    Db db{name, {}};
    try {
      MDB_dbi dbi = txn.openDb(name);
      lmdb::Cursor c(txn, dbi);
      for (bool ok = c.first(); ok; ok = c.next()) db.entries.emplace(c.key(), c.value());
    } catch (const lmdb::LmdbError& e) {
      if (e.code() != MDB_NOTFOUND) throw;
    }
    out.push_back(std::move(db));
  }
  return out;
}

const Db& dbNamed(const std::vector<Db>& dbs, std::string_view name) {
  for (const auto& db : dbs)
    if (db.name == name) return db;
  throw std::logic_error("no database " + std::string(name));
}

Offsets positionsOf(const Db& positions) {
  Offsets o;
  for (const auto& [k, v] : positions.entries) {
    auto p = layout::partitionOf(k);
    auto n = layout::nextOffsetOf(v);
    if (!p || !n) continue;  // shown as a difference by the comparison
    if (o.next.size() <= p->index()) o.next.resize(p->index() + 1);
    o.next[p->index()] = *n;
  }
  return o;
}

std::string describeKey(const std::string& db, const std::string& k) {
  if (db == layout::kTokens || db == layout::kMeta || db == layout::kVerify) return printable(k);
  if (db == layout::kByOwner) {
    auto parts = layout::splitOwnerKey(k);
    return parts ? printable(parts->owner) + "/" + formatTime(parts->createdAt) + "/" +
                       std::string(parts->key)
                 : toHex(k);
  }
  if (db == layout::kPositions) {
    auto p = layout::partitionOf(k);
    return p ? "partition " + std::to_string(p->value) : toHex(k);
  }
  return toHex(k);  // event_ids
}

std::string describeValue(const std::string& db, const std::string& v) {
  if (db == layout::kPositions)
    if (auto n = layout::nextOffsetOf(v)) return "next offset " + std::to_string(n->value);
  if (db == layout::kEventIds || db == layout::kMeta) return printable(v);
  if (db == layout::kByOwner) return "present";
  return std::to_string(v.size()) + " bytes";
}

// Field-by-field differences of two stored token records, their histories too.
std::vector<std::string> tokenDiff(const std::string& key, const std::string& a,
                                   const std::string& b) {
  std::vector<std::string> out;
  Token x, y;
  std::vector<Event> hx, hy;
  try {
    auto rx = decodeTokenRecord(key, a), ry = decodeTokenRecord(key, b);
    x = std::move(rx.token);
    y = std::move(ry.token);
    hx = decodeHistory(x, rx.history);
    hy = decodeHistory(y, ry.history);
  } catch (const std::exception& e) {
    out.push_back(std::string("unreadable stored state: ") + e.what());
    return out;
  }
  auto field = [&](const char* name, const std::string& p, const std::string& l) {
    if (p != l) out.push_back(std::string(name) + ": projection " + p + ", log " + l);
  };
  auto b2s = [](bool v) { return std::string(v ? "true" : "false"); };
  // A stored 0 (the epoch, or an absent time) shows as none.
  auto t2s = [](std::optional<Timestamp> t) {
    return t && *t != Timestamp{} ? formatTime(*t) : std::string("none");
  };
  field("owner", printable(x.owner), printable(y.owner));
  field("kind", std::string(toString(x.kind)), std::string(toString(y.kind)));
  field("destination_id", printable(x.destinationId), printable(y.destinationId));
  field("description", "\"" + printable(x.description) + "\"",
        "\"" + printable(y.description) + "\"");
  field("active", b2s(x.active), b2s(y.active));
  if (x.secretHash != y.secretHash) out.push_back("secret hash differs");
  field("created_at", t2s(x.createdAt), t2s(y.createdAt));
  field("updated_at", t2s(x.updatedAt), t2s(y.updatedAt));
  field("expires_at", t2s(x.expiresAt), t2s(y.expiresAt));
  field("deactivate_at", t2s(x.deactivateAt), t2s(y.deactivateAt));
  field("deactivation_reason", std::string(toString(x.deactivationReason)),
        std::string(toString(y.deactivationReason)));
  field("replaces", x.replaces, y.replaces);
  field("replaced_by", x.replacedBy, y.replacedBy);
  field("event_count", std::to_string(x.eventCount), std::to_string(y.eventCount));
  field("idempotency_key", printable(x.idempotencyKey), printable(y.idempotencyKey));
  auto describe = [](const Event& e) {
    return std::string(e.typeName()) + " " + toHex(e.eventId) + " at " + formatTime(e.occurredAt);
  };
  for (size_t i = 0; i < std::max(hx.size(), hy.size()); ++i) {
    std::string p = i < hx.size() ? describe(hx[i]) : "none";
    std::string l = i < hy.size() ? describe(hy[i]) : "none";
    field(("history event #" + std::to_string(i + 1)).c_str(), p, l);
  }
  if (out.empty()) out.push_back("encoded differently (same fields and history events)");
  return out;
}

// A fresh directory under $TMPDIR (else /tmp), removed with its contents when done.
class ScratchDir {
 public:
  ScratchDir() {
    const char* tmp = std::getenv("TMPDIR");
    std::string base = tmp && *tmp ? tmp : "/tmp";
    std::string pattern = base + "/ledger-audit-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr)
      throw std::runtime_error("cannot create a temporary directory in " + base);
    path_ = pattern;
  }
  ~ScratchDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Prints every difference between a database of the projection and the same one of
// the log replay, entry by entry in key order; returns how many.
size_t printDifferences(const Db& projection, const Db& replay) {
  const auto& name = replay.name;
  const auto& a = projection.entries;
  const auto& b = replay.entries;
  size_t differences = 0;
  auto ia = a.begin();
  auto ib = b.begin();
  while (ia != a.end() || ib != b.end()) {
    if (ib == b.end() || (ia != a.end() && ia->first < ib->first)) {
      std::cout << name << " " << describeKey(name, ia->first)
                << ": in the projection, not in the log replay (" << describeValue(name, ia->second)
                << ")\n";
      ++differences;
      ++ia;
    } else if (ia == a.end() || ib->first < ia->first) {
      std::cout << name << " " << describeKey(name, ib->first)
                << ": missing from the projection (log replay has "
                << describeValue(name, ib->second) << ")\n";
      ++differences;
      ++ib;
    } else {
      if (ia->second != ib->second) {
        ++differences;
        if (name == layout::kTokens) {
          for (const auto& d : tokenDiff(ia->first, ia->second, ib->second))
            std::cout << name << " " << describeKey(name, ia->first) << ": " << d << "\n";
        } else {
          std::cout << name << " " << describeKey(name, ia->first) << ": projection has "
                    << describeValue(name, ia->second) << ", log replay has "
                    << describeValue(name, ib->second) << "\n";
        }
      }
      ++ia;
      ++ib;
    }
  }
  return differences;
}

}  // namespace

int cmdRebuild(const Options& o, const std::string& out) {
  if (fs::exists(fs::path(out) / "data.mdb"))
    throw UsageError("a read model already exists in " + out + "; choose an empty --out directory");
  auto source = openSource(o);
  bool created = !fs::exists(out);
  try {
    auto r = rebuildInto(*source, out, o);
    std::cout << "rebuilt the read model in " << out << " from the " << source->describe() << ": "
              << r.records << " records, " << r.report.applied << " events applied, "
              << r.report.skipped << " skipped, " << r.report.untrusted << " untrusted, "
              << r.report.conflicts << " lost a race (conflicts), " << r.report.duplicates
              << " duplicates\n";
    return r.malformed == 0 ? 0 : 1;
  } catch (const Interrupted&) {
    if (created) fs::remove_all(out);
    throw;
  }
}

int cmdVerifyProjection(const Options& o, const std::string& dir) {
  if (::access((dir + "/data.mdb").c_str(), R_OK) != 0)
    throw UsageError("no read model in " + dir +
                     " (want the directory holding data.mdb, e.g. DATA_DIR/projection)");
  auto theirs = readModelDbs(dir);
  Offsets applied = positionsOf(dbNamed(theirs, layout::kPositions));
  auto source = openSource(o, applied.next.empty() ? std::optional<Offsets>(Offsets::atStart(1))
                                                   : std::optional<Offsets>(applied));
  // The log must reach the projection's positions.
  Offsets end = source->end();
  size_t differences = 0;
  for (size_t p = 0; p < applied.next.size(); ++p) {
    NextOffset logEnd = end.of(Partition{static_cast<int32_t>(p)});
    if (logEnd < applied.next[p]) {
      std::cout << "positions: the projection applied partition " << p << " up to offset "
                << applied.next[p].value << " but the log ends at " << logEnd.value
                << " (events missing from the log, or another log)\n";
      ++differences;
    }
  }
  ScratchDir work;
  auto r = rebuildInto(*source, work.path() + "/model", o);
  auto ours = readModelDbs(work.path() + "/model");
  for (size_t i = 0; i < ours.size(); ++i) differences += printDifferences(theirs[i], ours[i]);
  if (differences == 0)
    std::cout << "the projection in " << dir << " equals a replay of the " << source->describe()
              << " up to " << applied.toString() << " (" << r.records << " records)\n";
  else
    std::cout << differences << " differences between the projection in " << dir
              << " and a replay of the " << source->describe() << "\n";
  return differences == 0 && r.malformed == 0 ? 0 : 1;
}

}  // namespace tokenledger::audit
