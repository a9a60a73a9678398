// ledger-audit: answers auditors' questions from the event log itself (embedded
// data directory or Kafka topic), never through the service: rotation history,
// point-in-time validity, the rotation policy, offline rebuilds and comparisons of
// read models, and tamper evidence (signatures, order, completeness).
// docs/audit.md describes every command, its output and its exit status.
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "projections/token.h"
#include "events/times.h"
#include "events/lmdb.h"
#include "events/secrets.h"
#include "events/signing.h"
#include "projections/read_model.h"
#include "projections/read_model_layout.h"
#include "tools/checkpoint.h"
#include "tools/ledger_audit.h"

using namespace tokenledger;
using namespace tokenledger::audit;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

constexpr const char* kUsage = R"(usage: ledger-audit [LOG] [--quiet] COMMAND [OPTIONS]

Reads the event log from the beginning (never through the service) and answers:

  history --user U [--key K] [--format text|json|csv]
      every token of U with its lifecycle and rotation lineage (K: only K's lineage)
  at --key K --time T [--format text|json]
      was K valid at T, and which event decided it (exit 0 valid, 1 not valid)
  at --user U --time T [--format text|json]
      U's tokens valid at T (exit 0 if any, 1 if none)
  policy --max-age DAYS [--now T] [--format text|json]
      tokens active longer than DAYS without rotation, per user (exit 1 if any)
  rebuild --out DIR
      builds a read model from the log into DIR (which must not hold one)
  verify-projection --projection DIR
      replays the log up to DIR's applied positions and compares; prints each
      difference (exit 1 on any)
  verify-log [--keys FILE]... [--checkpoint FILE]
      checks every signature and the order and completeness of each writer's
      events; names the first bad event (exit 1 on any problem)

LOG (default --data-dir ./data):
  --data-dir DIR                 the embedded log in DIR/log (read-only; the
                                 daemon may keep running)
  --log kafka --kafka-brokers B [--topic T]
                                 a Kafka topic (default token-events)
  --timeout SECONDS              Kafka connection timeout (default 10)
  --quiet                        no progress bar (it shows only on a terminal)

T: RFC 3339 (2026-11-28T10:00:00Z, fractions and +hh:mm offsets allowed) or Unix
seconds. verify-log trusts the keys in --keys FILE (repeatable; lines
"KEY_ID BASE64_PUBLIC_KEY"), default DIR/signing-keys.pub.

Exit status: 0 ok, 1 a negative answer or a problem found (including malformed
events, which are reported with their position while the replay goes on),
2 usage error, unreadable log or unreachable broker, 130 interrupted.
)";

std::atomic<bool> gInterrupted{false};
void onSigint(int) {
  gInterrupted = true;
}

[[noreturn]] void usage(const std::string& msg) {
  std::cerr << "ledger-audit: " << msg << "\nrun ledger-audit --help for usage\n";
  std::exit(2);
}

// ---------------------------------------------------------------- times

int64_t nowUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int64_t requireTime(const std::string& flag, const std::string& value) {
  auto t = parseTime(value);
  if (!t)
    usage("cannot parse " + flag + " \"" + value +
          "\": use RFC 3339 (e.g. 2026-11-28T10:00:00Z, 2026-11-28T10:00:00.5+01:00) or Unix "
          "seconds (e.g. 1795860000)");
  return *t;
}

// Control characters in strings from the log are shown escaped, never raw.
std::string printable(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) {
      char buf[8];
      snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  return out;
}

std::string csvField(std::string_view s) {
  std::string v = printable(s);
  if (v.find_first_of(",\"") == std::string::npos &&
      (v.empty() || (v[0] != '=' && v[0] != '+' && v[0] != '-' && v[0] != '@')))
    return v;
  std::string out = "\"";
  // A leading formula character is neutralised for spreadsheets.
  if (!v.empty() && (v[0] == '=' || v[0] == '+' || v[0] == '-' || v[0] == '@')) out += '\'';
  for (char c : v) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

std::string dumpJson(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

// ---------------------------------------------------------------- replay

class Progress {
 public:
  Progress(bool enabled, uint64_t total) : enabled_(enabled), total_(total) {
    start_ = last_ = std::chrono::steady_clock::now();
  }
  void update(uint64_t done) {
    if (!enabled_) return;
    auto now = std::chrono::steady_clock::now();
    if (now - last_ < std::chrono::milliseconds(100) && done < total_) return;
    last_ = now;
    double secs = std::chrono::duration<double>(now - start_).count();
    double rate = secs > 0 ? static_cast<double>(done) / secs : 0;
    double frac =
        total_ ? std::min(1.0, static_cast<double>(done) / static_cast<double>(total_)) : 1;
    int width = 30, filled = static_cast<int>(frac * width);
    std::string bar(static_cast<size_t>(filled), '#');
    bar.append(static_cast<size_t>(width - filled), '.');
    std::string eta = "--";
    if (rate > 0 && total_ > done) {
      auto left = static_cast<int64_t>(static_cast<double>(total_ - done) / rate);
      char buf[32];
      snprintf(buf, sizeof buf, "%lld:%02lld", static_cast<long long>(left / 60),
               static_cast<long long>(left % 60));
      eta = buf;
    }
    fprintf(stderr, "\r[%s] %3d%% %llu/%llu events  %.0f events/s  ETA %s   ", bar.c_str(),
            static_cast<int>(frac * 100), static_cast<unsigned long long>(done),
            static_cast<unsigned long long>(total_), rate, eta.c_str());
    fflush(stderr);
    drawn_ = true;
  }
  void finish() {
    if (drawn_) fprintf(stderr, "\r\033[K");
    drawn_ = false;
  }
  ~Progress() { finish(); }

 private:
  bool enabled_;
  uint64_t total_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point start_, last_;
};

struct Options {
  std::string dataDir = "./data";
  bool dataDirGiven = false;
  std::string log = "embedded";
  KafkaSourceOptions kafka;
  bool quiet = false;
};

struct Interrupted {};

// Replays `source` to its end, calling `handle` for every record in order per
// partition. Stops with Interrupted on Ctrl-C.
template <typename Handle>
uint64_t replay(LogSource& source, bool quiet, Handle&& handle) {
  uint64_t total = 0;
  Offsets start = source.start(), end = source.end();
  for (size_t p = 0; p < end.next.size(); ++p)
    total += static_cast<uint64_t>(std::max<int64_t>(0, end.next[p] - start.next[p]));
  Progress progress(!quiet && ::isatty(2), total);
  std::vector<LogRecord> batch;
  uint64_t done = 0;
  while (true) {
    if (gInterrupted) throw Interrupted{};
    batch.clear();
    bool more = source.next(batch, 8192);
    for (auto& r : batch) handle(r);
    done += batch.size();
    progress.update(done);
    if (!more) break;
  }
  progress.finish();
  return done;
}

// Malformed records are reported with their position; the replay goes on.
struct Decoder {
  size_t malformed = 0;
  size_t unknown = 0;
  const Event* decode(const LogRecord& r) {
    auto d = decodeEvent(r.value);
    if (auto* err = std::get_if<DecodeError>(&d)) {
      if (err->kind == DecodeError::Kind::malformed) {
        malformed++;
        std::cerr << "malformed event at " << toString(r.position) << ": "
                  << printable(err->message) << " (skipped)\n";
      } else {
        unknown++;
        std::cerr << "unknown event at " << toString(r.position) << ": " << printable(err->message)
                  << " (skipped; a newer ledger-audit may know it)\n";
      }
      return nullptr;
    }
    event_ = std::move(std::get<Event>(d));
    return &event_;
  }
  bool clean() const { return malformed == 0 && unknown == 0; }
  void summary() const {
    if (!clean())
      std::cerr << "ledger-audit: " << malformed + unknown
                << " records could not be read (see above); the answer covers the rest\n";
  }

 private:
  Event event_;
};

// ---------------------------------------------------------------- token timelines

struct Entry {
  Position position;
  Event event;
  bool applied = true;  // false: the projection ignores it (does not apply, duplicate)
  std::string note;
};

// One token's events and its state as the projection computes it.
struct Timeline {
  std::string key, owner;
  std::vector<Entry> entries;
  std::optional<Token> state;
  std::string replacedBy;
  int64_t replacedAt = 0;

  void add(const LogRecord& r, Event e, std::set<std::string>& seenIds) {
    Entry entry{r.position, std::move(e), true, ""};
    if (key.empty()) {
      key = entry.event.tokenKey;
      owner = entry.event.owner;
    }
    if (!seenIds.insert(entry.event.eventId).second) {
      entry.applied = false;
      entry.note = "duplicate event id (ignored)";
    } else if (auto why = checkEvent(view(entry.event))) {
      entry.applied = false;
      entry.note = "breaks the contract (ignored by the projection): " + *why;
    } else if (auto next = applyEvent(state, entry.event)) {
      state = std::move(next);
    } else {
      entry.applied = false;
      entry.note = "does not apply (ignored by the projection)";
    }
    // Keep only what history needs of a created event; the hash is not shown.
    if (auto* c = std::get_if<Created>(&entry.event.body)) c->secretHash = SecretHash{};
    entries.push_back(std::move(entry));
  }

  // When an entry takes effect, and what it makes the token from then on.
  static int64_t effectAt(const Event& e) {
    if (auto* d = std::get_if<Deactivated>(&e.body)) return effectiveAt(*d, e.occurredAtUs);
    return e.occurredAtUs;
  }
  static bool makesValid(const Event& e) { return !std::holds_alternative<Deactivated>(e.body); }

  // The applied entry that decides validity at `t`: the last one in log order whose
  // effect time is at or before t (each event sets the state from its effect time
  // on; later events in the log override earlier ones, as in the projection).
  const Entry* decider(int64_t t) const {
    const Entry* out = nullptr;
    for (const auto& en : entries)
      if (en.applied && effectAt(en.event) <= t) out = &en;
    return out;
  }
  int64_t expiresAt() const { return state ? state->expiresAtUs : 0; }
  bool validAt(int64_t t) const {
    const Entry* d = decider(t);
    if (!d || !makesValid(d->event)) return false;
    return expiresAt() == 0 || t < expiresAt();
  }
  // The first time after `t` at which the token stops being valid (0: never).
  int64_t validUntil(int64_t t) const {
    int64_t best = 0;
    for (const auto& en : entries) {
      if (!en.applied || makesValid(en.event)) continue;
      int64_t x = effectAt(en.event);
      if (x > t && !validAt(x) && (best == 0 || x < best)) best = x;
    }
    int64_t exp = expiresAt();
    if (exp != 0 && exp > t && (best == 0 || exp < best)) best = exp;
    return best;
  }
  const Entry* created() const {
    for (const auto& en : entries)
      if (en.applied && std::holds_alternative<Created>(en.event.body)) return &en;
    return nullptr;
  }
};

// Timelines of the tokens an audit looks at, in creation order.
struct Timelines {
  std::map<std::string, Timeline> byKey;
  std::vector<std::string> order;
  std::set<std::string> seenIds;

  void add(const LogRecord& r, const Event& e) {
    auto [it, inserted] = byKey.try_emplace(e.tokenKey);
    if (inserted) order.push_back(e.tokenKey);
    it->second.add(r, e, seenIds);
  }
  // Links successors to predecessors (same owner only, as in the projection).
  void link() {
    for (auto& [key, t] : byKey) {
      const Entry* c = t.created();
      if (!c) continue;
      const auto& replaces = std::get<Created>(c->event.body).replaces;
      if (replaces.empty()) continue;
      auto pred = byKey.find(replaces);
      if (pred != byKey.end() && pred->second.owner == t.owner) {
        pred->second.replacedBy = key;
        pred->second.replacedAt = c->event.occurredAtUs;
      }
    }
  }
};

json eventJson(const Entry& en) {
  const Event& e = en.event;
  json j{{"type", "event"},
         {"position", toString(en.position)},
         {"key", e.tokenKey},
         {"owner", e.owner},
         {"event", std::string(e.typeName())},
         {"recorded_at", formatTime(e.occurredAtUs)},
         {"actor", e.actor},
         {"request_id", e.requestId}};
  if (auto* c = std::get_if<Created>(&e.body)) {
    j["kind"] = std::string(toString(c->kind));
    if (c->kind == TokenKind::destination) j["destination_id"] = c->destinationId;
    j["description"] = c->description;
    if (!c->replaces.empty()) j["replaces"] = c->replaces;
    if (c->expiresAtUs) j["expires_at"] = formatTime(c->expiresAtUs);
  } else if (auto* d = std::get_if<Deactivated>(&e.body)) {
    j["reason"] = std::string(toString(d->reason));
    j["effective_at"] = formatTime(effectiveAt(*d, e.occurredAtUs));
  }
  if (!e.signingKeyId.empty()) {
    j["signing_key_id"] = e.signingKeyId;
    j["writer_seq"] = e.writerSeq;
  }
  if (!en.applied) j["ignored"] = en.note;
  return j;
}

std::string eventLine(const Entry& en) {
  const Event& e = en.event;
  std::string out = "  " + formatTime(e.occurredAtUs) + "  " + std::string(e.typeName());
  out.append(std::max<size_t>(1, 13 - e.typeName().size()), ' ');
  out += "by " + printable(e.actor);
  if (auto* c = std::get_if<Created>(&e.body)) {
    out += "  kind " + std::string(toString(c->kind));
    if (c->kind == TokenKind::destination)
      out += " (destination " + printable(c->destinationId) + ")";
    if (!c->replaces.empty()) out += "  replaces " + c->replaces;
    if (c->expiresAtUs) out += "  expires " + formatTime(c->expiresAtUs);
  } else if (auto* d = std::get_if<Deactivated>(&e.body)) {
    const int64_t effective = effectiveAt(*d, e.occurredAtUs);
    out += "  reason " + std::string(toString(d->reason)) + "  effective " + formatTime(effective);
    if (effective > e.occurredAtUs) out += " (grace period)";
    if (effective < e.occurredAtUs) out += " (in the past)";
  }
  out += "  [" + toString(en.position) + "]";
  if (!en.applied) out += "  " + en.note;
  return out;
}

// The window in which predecessor `p` and its successor `s` were both valid.
struct Overlap {
  int64_t from = 0;
  int64_t until = 0;  // 0: open-ended (the predecessor is still valid)
  bool any = false;
};
Overlap overlapOf(const Timeline& p, const Timeline& s) {
  Overlap o;
  const Entry* c = s.created();
  if (!c) return o;
  o.from = c->event.occurredAtUs;
  o.any = p.validAt(o.from) && s.validAt(o.from);
  if (!o.any) return o;
  int64_t a = p.validUntil(o.from), b = s.validUntil(o.from);
  o.until = a == 0 ? b : (b == 0 ? a : std::min(a, b));
  return o;
}

// ---------------------------------------------------------------- commands

std::unique_ptr<LogSource> openSource(const Options& o, const std::optional<Offsets>& limit = {}) {
  if (o.log == "kafka") return openKafkaSource(o.kafka, limit);
  return openEmbeddedSource(o.dataDir, limit);
}

// Expands `key` to its rotation lineage (predecessors and successors).
std::set<std::string> lineageOf(const Timelines& tl, const std::string& key) {
  std::set<std::string> out;
  if (!tl.byKey.count(key)) return out;
  std::string k = key;
  while (!k.empty() && tl.byKey.count(k) && out.insert(k).second) {
    const Entry* c = tl.byKey.at(k).created();
    k = c ? std::get<Created>(c->event.body).replaces : "";
  }
  k = tl.byKey.at(key).replacedBy;
  while (!k.empty() && tl.byKey.count(k) && out.insert(k).second) k = tl.byKey.at(k).replacedBy;
  return out;
}

int cmdHistory(const Options& o, const std::string& user, const std::string& key,
               const std::string& format) {
  auto source = openSource(o);
  Decoder decoder;
  Timelines tl;
  replay(*source, o.quiet, [&](const LogRecord& r) {
    const Event* e = decoder.decode(r);
    if (e && e->owner == user) tl.add(r, *e);
  });
  tl.link();
  decoder.summary();
  std::set<std::string> keep;
  if (!key.empty()) {
    keep = lineageOf(tl, key);
    if (keep.empty())
      std::cerr << "no token " << printable(key) << " of user " << printable(user) << " in the "
                << source->describe() << "\n";
  }
  std::vector<const Timeline*> tokens;
  for (const auto& k : tl.order)
    if (key.empty() || keep.count(k)) tokens.push_back(&tl.byKey.at(k));
  if (tokens.empty() && key.empty())
    std::cerr << "user " << printable(user) << " has no tokens in the " << source->describe()
              << "\n";

  if (format == "json") {
    for (const auto* t : tokens)
      for (const auto& en : t->entries) std::cout << dumpJson(eventJson(en)) << "\n";
    for (const auto* t : tokens) {
      if (t->replacedBy.empty() || !tl.byKey.count(t->replacedBy)) continue;
      Overlap ov = overlapOf(*t, tl.byKey.at(t->replacedBy));
      json j{{"type", "rotation"},
             {"owner", user},
             {"from", t->key},
             {"to", t->replacedBy},
             {"at", formatTime(ov.from)}};
      j["both_valid_from"] = ov.any ? json(formatTime(ov.from)) : json(nullptr);
      j["both_valid_until"] = ov.any && ov.until ? json(formatTime(ov.until)) : json(nullptr);
      std::cout << dumpJson(j) << "\n";
    }
  } else if (format == "csv") {
    std::cout << "type,position,owner,key,event,recorded_at,actor,kind,destination_id,description,"
                 "reason,effective_at,replaces,replaced_by,both_valid_until,request_id\n";
    for (const auto* t : tokens) {
      for (const auto& en : t->entries) {
        const Event& e = en.event;
        std::string kind, dest, desc, reason, effective, replaces;
        if (auto* c = std::get_if<Created>(&e.body)) {
          kind = toString(c->kind);
          dest = c->destinationId;
          desc = c->description;
          replaces = c->replaces;
        } else if (auto* d = std::get_if<Deactivated>(&e.body)) {
          reason = toString(d->reason);
          effective = formatTime(effectiveAt(*d, e.occurredAtUs));
        }
        std::cout << "event," << toString(en.position) << "," << csvField(e.owner) << ","
                  << e.tokenKey << "," << e.typeName() << "," << formatTime(e.occurredAtUs) << ","
                  << csvField(e.actor) << "," << kind << "," << csvField(dest) << ","
                  << csvField(desc) << "," << reason << "," << effective << "," << replaces << ",,,"
                  << csvField(e.requestId) << "\n";
      }
    }
    for (const auto* t : tokens) {
      if (t->replacedBy.empty() || !tl.byKey.count(t->replacedBy)) continue;
      Overlap ov = overlapOf(*t, tl.byKey.at(t->replacedBy));
      std::cout << "rotation,," << csvField(user) << "," << t->key << ",rotated,"
                << formatTime(ov.from) << ",,,,,,,," << t->replacedBy << ","
                << (ov.any ? (ov.until ? formatTime(ov.until) : std::string("open")) : "") << ",\n";
    }
  } else {
    int64_t now = nowUs();
    for (const auto* t : tokens) {
      const Entry* c = t->created();
      std::string head = "token " + t->key;
      if (c) {
        const auto& cr = std::get<Created>(c->event.body);
        head += " (" + std::string(toString(cr.kind)) + ") \"" + printable(cr.description) + "\"";
      }
      head += t->validAt(now) ? "  — valid now" : "  — not valid now";
      std::cout << head << "\n";
      for (const auto& en : t->entries) std::cout << eventLine(en) << "\n";
      std::cout << "\n";
    }
    bool any = false;
    for (const auto* t : tokens) {
      if (t->replacedBy.empty() || !tl.byKey.count(t->replacedBy)) continue;
      if (!any) std::cout << "rotation lineage:\n";
      any = true;
      Overlap ov = overlapOf(*t, tl.byKey.at(t->replacedBy));
      std::cout << "  " << t->key << " -> " << t->replacedBy << "  rotated " << formatTime(ov.from);
      if (!ov.any)
        std::cout << "; never both valid";
      else if (ov.until)
        std::cout << "; both valid until " << formatTime(ov.until) << " ("
                  << (ov.until - ov.from) / 1'000'000 << " s)";
      else
        std::cout << "; both still valid (the old token was never deactivated)";
      std::cout << "\n";
    }
  }
  return decoder.clean() ? 0 : 1;
}

json atJson(const Timeline& t, int64_t time) {
  json j{
      {"key", t.key}, {"owner", t.owner}, {"time", formatTime(time)}, {"valid", t.validAt(time)}};
  const Entry* d = t.decider(time);
  const Entry* c = t.created();
  if (!d) {
    j["reason"] = "not_created_yet";
    if (c) j["deciding_event"] = eventJson(*c);
  } else if (!Timeline::makesValid(d->event)) {
    j["reason"] = "deactivated";
    j["deciding_event"] = eventJson(*d);
  } else if (t.expiresAt() && time >= t.expiresAt()) {
    j["reason"] = "expired";
    if (c) j["deciding_event"] = eventJson(*c);
  } else {
    j["reason"] = std::string(d->event.typeName());
    j["deciding_event"] = eventJson(*d);
    if (int64_t until = t.validUntil(time)) j["valid_until"] = formatTime(until);
  }
  return j;
}

std::string atText(const Timeline& t, int64_t time) {
  json j = atJson(t, time);
  std::string out = t.key + " (user " + printable(t.owner) + ") was " +
                    (j["valid"].get<bool>() ? "VALID" : "NOT VALID") + " at " + formatTime(time);
  std::string reason = j["reason"];
  const Entry* d = t.decider(time);
  const Entry* c = t.created();
  if (reason == "not_created_yet") {
    out += ": it was created only at " + (c ? formatTime(c->event.occurredAtUs) : "?");
    if (c) out += "\n  deciding event: created [" + toString(c->position) + "]";
  } else if (reason == "expired") {
    out += ": it expired at " + formatTime(t.expiresAt());
    if (c) out += "\n  deciding event: created with that expiry [" + toString(c->position) + "]";
  } else if (d) {
    out += "\n  deciding event:" + eventLine(*d).substr(1);
    if (j.contains("valid_until"))
      out += "\n  valid until " + j["valid_until"].get<std::string>() +
             " (a recorded deactivation takes effect then)";
  }
  return out;
}

int cmdAt(const Options& o, const std::string& user, const std::string& key, int64_t time,
          const std::string& format) {
  auto source = openSource(o);
  Decoder decoder;
  Timelines tl;
  replay(*source, o.quiet, [&](const LogRecord& r) {
    const Event* e = decoder.decode(r);
    if (!e) return;
    if (!key.empty() ? e->tokenKey == key : e->owner == user) tl.add(r, *e);
  });
  tl.link();
  decoder.summary();
  std::vector<const Timeline*> tokens;
  for (const auto& k : tl.order)
    if (tl.byKey.at(k).state) tokens.push_back(&tl.byKey.at(k));
  if (!key.empty() && tokens.empty()) {
    std::cerr << "no token " << printable(key) << " in the " << source->describe()
              << ": it never existed there (check the key and the log)\n";
    if (format == "json")
      std::cout << dumpJson(json{{"key", key},
                                 {"time", formatTime(time)},
                                 {"valid", false},
                                 {"reason", "unknown_key"}})
                << "\n";
    return 1;
  }
  if (!key.empty()) {
    const Timeline& t = *tokens.front();
    std::cout << (format == "json" ? dumpJson(atJson(t, time)) : atText(t, time)) << "\n";
    return t.validAt(time) && decoder.clean() ? 0 : 1;
  }
  size_t valid = 0;
  for (const auto* t : tokens) {
    if (!t->validAt(time)) continue;
    ++valid;
    std::cout << (format == "json" ? dumpJson(atJson(*t, time)) : atText(*t, time)) << "\n";
  }
  if (format != "json")
    std::cout << valid << " of " << tokens.size() << " tokens of user " << printable(user)
              << " were valid at " << formatTime(time) << "\n";
  if (tokens.empty())
    std::cerr << "user " << printable(user) << " has no tokens in the " << source->describe()
              << "\n";
  return valid > 0 && decoder.clean() ? 0 : 1;
}

int cmdPolicy(const Options& o, int64_t maxAgeDays, int64_t now, const std::string& format) {
  auto source = openSource(o);
  Decoder decoder;
  // Only what the policy needs per token: the projection's state.
  std::unordered_map<std::string, Token> tokens;
  std::unordered_set<std::string> seenIds;
  std::unordered_map<std::string, std::string> replacedBy;
  replay(*source, o.quiet, [&](const LogRecord& r) {
    const Event* e = decoder.decode(r);
    if (!e || !seenIds.insert(e->eventId).second) return;
    auto it = tokens.find(e->tokenKey);
    std::optional<Token> current;
    if (it != tokens.end()) current = std::move(it->second);  // put back below
    auto next = applyEvent(current, *e);
    if (!next) {
      if (current) it->second = std::move(*current);
      return;
    }
    if (!current && !next->replaces.empty()) replacedBy[next->replaces] = next->key;
    if (it != tokens.end())
      it->second = std::move(*next);
    else
      tokens.emplace(e->tokenKey, std::move(*next));
  });
  decoder.summary();
  int64_t maxAgeUs = maxAgeDays * 86400LL * 1'000'000;
  std::map<std::string, std::vector<const Token*>> byUser;
  for (const auto& [key, t] : tokens) {
    if (statusAt(t, now) != Status::active) continue;
    auto succ = replacedBy.find(key);
    if (succ != replacedBy.end() && tokens.count(succ->second) &&
        tokens.at(succ->second).owner == t.owner)
      continue;  // rotated, in its grace period
    if (now - t.createdAtUs > maxAgeUs) byUser[t.owner].push_back(&t);
  }
  size_t count = 0;
  for (auto& [user, list] : byUser) {
    std::sort(list.begin(), list.end(),
              [](const Token* a, const Token* b) { return a->createdAtUs < b->createdAtUs; });
    if (format != "json") std::cout << "user " << printable(user) << ":\n";
    for (const Token* t : list) {
      ++count;
      int64_t days = (now - t->createdAtUs) / (86400LL * 1'000'000);
      if (format == "json") {
        std::cout << dumpJson(json{{"owner", user},
                                   {"key", t->key},
                                   {"kind", std::string(toString(t->kind))},
                                   {"description", t->description},
                                   {"created_at", formatTime(t->createdAtUs)},
                                   {"age_days", days}})
                  << "\n";
      } else {
        std::cout << "  " << t->key << "  " << toString(t->kind) << "  created "
                  << formatTime(t->createdAtUs) << "  " << days << " days without rotation  \""
                  << printable(t->description) << "\"\n";
      }
    }
  }
  if (format != "json") {
    if (count == 0)
      std::cout << "no token has been active longer than " << maxAgeDays
                << " days without rotation\n";
    else
      std::cout << count << " tokens of " << byUser.size() << " users are active longer than "
                << maxAgeDays << " days without rotation: rotate them\n";
  }
  return count == 0 && decoder.clean() ? 0 : 1;
}

// Replays `source` into a fresh read model in `dir`.
struct RebuildResult {
  uint64_t records = 0;
  ApplyReport report;
  size_t malformed = 0;
};
RebuildResult rebuildInto(LogSource& source, const std::string& dir, bool quiet) {
  RebuildResult out;
  auto model = openReadModel(dir);
  Decoder decoder;
  std::vector<LogRecord> pending;
  auto flush = [&] {
    if (pending.empty()) return;
    auto r = model->apply(pending, [&](const Position& p, const std::string& why) {
      // Decode failures were reported by the decoder already.
      if (why.find("does not apply") != std::string::npos)
        std::cerr << "note: event at " << toString(p) << " " << printable(why) << "\n";
    });
    out.report.applied += r.applied;
    out.report.duplicates += r.duplicates;
    out.report.skipped += r.skipped;
    pending.clear();
  };
  out.records = replay(source, quiet, [&](const LogRecord& r) {
    decoder.decode(r);  // reports malformed records with their position
    pending.push_back(r);
    if (pending.size() >= 8192) flush();
  });
  flush();
  out.malformed = decoder.malformed + decoder.unknown;
  return out;
}

int cmdRebuild(const Options& o, const std::string& out) {
  if (fs::exists(fs::path(out) / "data.mdb"))
    usage("a read model already exists in " + out + "; choose an empty --out directory");
  auto source = openSource(o);
  bool created = !fs::exists(out);
  try {
    auto r = rebuildInto(*source, out, o.quiet);
    std::cout << "rebuilt the read model in " << out << " from the " << source->describe() << ": "
              << r.records << " records, " << r.report.applied << " events applied, "
              << r.report.skipped << " skipped, " << r.report.duplicates << " duplicates\n";
    return r.malformed == 0 ? 0 : 1;
  } catch (const Interrupted&) {
    if (created) fs::remove_all(out);
    throw;
  }
}

// ---- verify-projection

struct Db {
  std::string name;
  std::map<std::string, std::string> entries;
};

// Every database of the read model in `dir` (read_model_layout.h), in layout order.
std::vector<Db> readModelDbs(const std::string& dir) {
  // Read-only: a live replica's files stay as they are.
  lmdb::Env env(dir,
                lmdb::EnvOptions{
                    .mapSizeBytes = 64ull << 30, .maxDbs = 8, .maxReaders = 126, .readOnly = true});
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
    if (o.next.size() <= *p) o.next.resize(*p + 1, 0);
    o.next[*p] = *n;
  }
  return o;
}

std::string describeKey(const std::string& db, const std::string& k) {
  if (db == layout::kTokens || db == layout::kMeta || db == layout::kVerify) return printable(k);
  if (db == layout::kByOwner) {
    auto parts = layout::splitOwnerKey(k);
    return parts ? printable(parts->first) + "/" + std::string(parts->second) : toHex(k);
  }
  if (db == layout::kHistory) {
    auto parts = layout::splitHistoryKey(k);
    return parts ? std::string(parts->first) + " event #" + std::to_string(parts->second + 1)
                 : toHex(k);
  }
  if (db == layout::kPositions) {
    auto p = layout::partitionOf(k);
    return p ? "partition " + std::to_string(*p) : toHex(k);
  }
  return toHex(k);  // event_ids
}

std::string describeValue(const std::string& db, const std::string& v) {
  if (db == layout::kPositions)
    if (auto n = layout::nextOffsetOf(v)) return "next offset " + std::to_string(*n);
  if (db == layout::kEventIds || db == layout::kMeta) return printable(v);
  if (db == layout::kByOwner) return "present";
  if (db == layout::kHistory) {
    auto d = decodeEvent(v);
    if (auto* e = std::get_if<Event>(&d))
      return std::string(e->typeName()) + " at " + formatTime(e->occurredAtUs) + " (" +
             std::to_string(v.size()) + " bytes)";
  }
  return std::to_string(v.size()) + " bytes";
}

// Field-by-field differences of two stored tokens.
std::vector<std::string> tokenDiff(const std::string& a, const std::string& b) {
  std::vector<std::string> out;
  Token x, y;
  try {
    x = decodeToken(a);
    y = decodeToken(b);
  } catch (const std::exception& e) {
    out.push_back(std::string("unreadable stored state: ") + e.what());
    return out;
  }
  auto field = [&](const char* name, const std::string& p, const std::string& l) {
    if (p != l) out.push_back(std::string(name) + ": projection " + p + ", log " + l);
  };
  auto b2s = [](bool v) { return std::string(v ? "true" : "false"); };
  auto t2s = [](int64_t us) { return us ? formatTime(us) : std::string("none"); };
  field("owner", printable(x.owner), printable(y.owner));
  field("kind", std::string(toString(x.kind)), std::string(toString(y.kind)));
  field("destination_id", printable(x.destinationId), printable(y.destinationId));
  field("description", "\"" + printable(x.description) + "\"",
        "\"" + printable(y.description) + "\"");
  field("active", b2s(x.active), b2s(y.active));
  if (x.secretHash != y.secretHash) out.push_back("secret hash differs");
  field("created_at", t2s(x.createdAtUs), t2s(y.createdAtUs));
  field("updated_at", t2s(x.updatedAtUs), t2s(y.updatedAtUs));
  field("expires_at", t2s(x.expiresAtUs), t2s(y.expiresAtUs));
  field("deactivate_at", t2s(x.deactivateAtUs), t2s(y.deactivateAtUs));
  field("deactivation_reason", std::string(toString(x.deactivationReason)),
        std::string(toString(y.deactivationReason)));
  field("replaces", x.replaces, y.replaces);
  field("replaced_by", x.replacedBy, y.replacedBy);
  field("event_count", std::to_string(x.eventCount), std::to_string(y.eventCount));
  if (out.empty()) out.push_back("encoded differently (same fields)");
  return out;
}

std::string tempDirUnder(const std::string& base) {
  std::string pattern = base + "/ledger-audit-XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr)
    throw std::runtime_error("cannot create a temporary directory in " + base);
  return pattern;
}

int cmdVerifyProjection(const Options& o, const std::string& dir) {
  if (::access((dir + "/data.mdb").c_str(), R_OK) != 0)
    usage("no read model in " + dir +
          " (want the directory holding data.mdb, e.g. DATA_DIR/projection)");
  auto theirs = readModelDbs(dir);
  Offsets applied = positionsOf(dbNamed(theirs, layout::kPositions));
  auto source = openSource(o, applied.next.empty() ? std::optional<Offsets>(Offsets{{0}})
                                                   : std::optional<Offsets>(applied));
  // The log must reach the projection's positions.
  Offsets end = source->end();
  size_t differences = 0;
  for (size_t p = 0; p < applied.next.size(); ++p) {
    int64_t logEnd = p < end.next.size() ? end.next[p] : 0;
    if (logEnd < applied.next[p]) {
      std::cout << "positions: the projection applied partition " << p << " up to offset "
                << applied.next[p] << " but the log ends at " << logEnd
                << " (events missing from the log, or another log)\n";
      ++differences;
    }
  }
  const char* tmpBase = std::getenv("TMPDIR");
  std::string work = tempDirUnder(tmpBase && *tmpBase ? tmpBase : "/tmp");
  struct Cleanup {
    std::string path;
    ~Cleanup() {
      std::error_code ec;
      fs::remove_all(path, ec);
    }
  } cleanup{work};
  auto r = rebuildInto(*source, work + "/model", o.quiet);
  auto ours = readModelDbs(work + "/model");
  for (size_t i = 0; i < ours.size(); ++i) {
    const auto& name = ours[i].name;
    const auto& a = theirs[i].entries;  // projection
    const auto& b = ours[i].entries;    // log replay
    auto ia = a.begin();
    auto ib = b.begin();
    while (ia != a.end() || ib != b.end()) {
      if (ib == b.end() || (ia != a.end() && ia->first < ib->first)) {
        std::cout << name << " " << describeKey(name, ia->first)
                  << ": in the projection, not in the log replay ("
                  << describeValue(name, ia->second) << ")\n";
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
            for (const auto& d : tokenDiff(ia->second, ib->second))
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
  }
  if (differences == 0)
    std::cout << "the projection in " << dir << " equals a replay of the " << source->describe()
              << " up to " << applied.toString() << " (" << r.records << " records)\n";
  else
    std::cout << differences << " differences between the projection in " << dir
              << " and a replay of the " << source->describe() << "\n";
  return differences == 0 && r.malformed == 0 ? 0 : 1;
}

// ---- verify-log

struct Finding {
  Position position;
  bool hasPosition = true;
  std::string kind;
  std::string message;
};

struct SeqEntry {
  Position position;
  Digest digest{};
  bool present = false;
};

struct Writer {
  std::vector<SeqEntry> bySeq;                                       // index seq - 1
  std::map<int32_t, std::pair<uint64_t, Position>> lastInPartition;  // seq, position
  std::map<uint64_t, std::pair<std::string, Position>> pendingPrev;  // seq -> its prevDigest
  uint64_t count = 0;
};

std::string digestHex(const Digest& d) {
  return toHex(std::string_view(reinterpret_cast<const char*>(d.data()), d.size()));
}

std::optional<Checkpoint> readCheckpoint(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::stringstream ss;
  ss << in.rdbuf();
  auto parsed = parseCheckpoint(ss.str());
  if (auto* err = std::get_if<std::string>(&parsed))
    usage("checkpoint " + path + " is not a ledger-audit checkpoint: " + *err +
          "; restore it from your copy, or pass a new --checkpoint FILE to start over");
  return std::get<Checkpoint>(std::move(parsed));
}

void writeCheckpoint(const std::string& path, const std::string& log, const Offsets& end,
                     const std::map<std::string, Writer>& writers) {
  json w = json::object();
  for (const auto& [id, wr] : writers) {
    if (wr.bySeq.empty()) continue;
    const auto& last = wr.bySeq.back();
    w[id] = json{{"seq", wr.bySeq.size()},
                 {"digest", digestHex(last.digest)},
                 {"position", toString(last.position)}};
  }
  json j{{"version", 1},
         {"log", log},
         {"end", end.toString()},
         {"written_at", formatTime(nowUs())},
         {"writers", w}};
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << j.dump(2) << "\n";
    if (!out) throw std::runtime_error("cannot write " + tmp);
  }
  fs::rename(tmp, path);
}

int cmdVerifyLog(const Options& o, const std::vector<std::string>& keyFiles,
                 const std::string& checkpointPath) {
  KeyRing ring;
  std::vector<std::string> files = keyFiles;
  if (files.empty()) {
    if (o.log == "kafka")
      usage(
          "verify-log on Kafka needs --keys FILE: the signing-keys.pub of every replica that "
          "writes to the topic (concatenate them)");
    files.push_back(o.dataDir + "/signing-keys.pub");
  }
  for (const auto& f : files) {
    std::ifstream in(f);
    if (!in) usage("cannot read keys file " + f);
    std::stringstream ss;
    ss << in.rdbuf();
    if (auto err = ring.addLines(ss.str(), f)) usage(*err);
  }
  if (ring.keys().empty()) usage("no public keys in " + files.front());
  std::optional<Checkpoint> checkpoint;
  if (!checkpointPath.empty()) checkpoint = readCheckpoint(checkpointPath);

  auto source = openSource(o);
  std::vector<Finding> findings;
  std::map<std::string, Writer> writers;
  std::map<std::string, size_t> unknownKeys;
  size_t malformed = 0, unsignedCount = 0;
  std::vector<int64_t> lastOffset(static_cast<size_t>(source->partitions()), -1);
  Offsets start = source->start();
  for (size_t p = 0; p < start.next.size(); ++p) {
    if (start.next[p] > 0) {
      findings.push_back({Position{static_cast<int32_t>(p), 0}, true, "missing",
                          "partition " + std::to_string(p) + " starts at offset " +
                              std::to_string(start.next[p]) +
                              ": the records before it were deleted (retention or tampering)"});
    }
    lastOffset[p] = start.next[p] - 1;
  }

  auto handle = [&](const LogRecord& r, const SignatureCheck& c) {
    const Position& pos = r.position;
    auto part = static_cast<size_t>(pos.partition);
    if (source->denseOffsets() && part < lastOffset.size() && pos.offset != lastOffset[part] + 1)
      findings.push_back({pos, true, "missing",
                          "records at offsets " + std::to_string(lastOffset[part] + 1) + ".." +
                              std::to_string(pos.offset - 1) + " of partition " +
                              std::to_string(pos.partition) + " are gone from the log"});
    if (part < lastOffset.size()) lastOffset[part] = pos.offset;
    switch (c.status) {
      case SignatureStatus::malformed:
        malformed++;
        findings.push_back({pos, true, "malformed", "not a readable event envelope"});
        return;
      case SignatureStatus::unsignedEvent:
        unsignedCount++;
        findings.push_back({pos, true, "unsigned", "the event carries no signature"});
        return;
      case SignatureStatus::unknownKey:
        unknownKeys[c.keyId]++;
        findings.push_back({pos, true, "forged",
                            "signed by key \"" + printable(c.keyId) +
                                "\", which is not among the trusted keys (another producer?)"});
        return;
      case SignatureStatus::invalid:
        findings.push_back({pos, true, "altered",
                            "the signature by key " + c.keyId + " (writer seq " +
                                std::to_string(c.writerSeq) +
                                ") does not match the event's content"});
        return;
      case SignatureStatus::valid:
        break;
    }
    auto decoded = decodeEvent(r.value);
    if (auto* err = std::get_if<DecodeError>(&decoded);
        err && err->kind == DecodeError::Kind::malformed) {
      malformed++;
      findings.push_back(
          {pos, true, "malformed", "signed, but not a valid event: " + printable(err->message)});
    }
    Writer& w = writers[c.keyId];
    uint64_t s = c.writerSeq;
    if (s == 0 || s > (1ull << 40)) {
      findings.push_back({pos, true, "malformed", "writer sequence number " + std::to_string(s)});
      return;
    }
    if (w.bySeq.size() < s) w.bySeq.resize(s);
    SeqEntry& slot = w.bySeq[s - 1];
    if (slot.present) {
      findings.push_back({pos, true, "duplicate",
                          "writer " + c.keyId + " seq " + std::to_string(s) + " was already at " +
                              toString(slot.position) + " (a replayed or copied event)"});
      return;
    }
    slot = SeqEntry{pos, c.digest, true};
    w.count++;
    // Order: within a partition a writer's sequence only grows.
    auto [it, first] = w.lastInPartition.try_emplace(pos.partition, s, pos);
    if (!first) {
      if (s < it->second.first)
        findings.push_back({it->second.second, true, "reordered",
                            "writer " + c.keyId + " seq " + std::to_string(it->second.first) +
                                " at " + toString(it->second.second) + " comes before seq " +
                                std::to_string(s) + " at " + toString(pos)});
      it->second = {s, pos};
    }
    // Chain: prevDigest names the writer's previous event.
    std::string expectPrev;
    if (s == 1) {
      if (!c.prevDigest.empty())
        findings.push_back({pos, true, "altered", "seq 1 claims a predecessor"});
    } else if (s >= 2 && w.bySeq[s - 2].present) {
      const auto& d = w.bySeq[s - 2].digest;
      if (c.prevDigest != std::string(reinterpret_cast<const char*>(d.data()), d.size()))
        findings.push_back({pos, true, "altered",
                            "writer " + c.keyId + " seq " + std::to_string(s) +
                                " does not follow the seq " + std::to_string(s - 1) + " at " +
                                toString(w.bySeq[s - 2].position) + " (one of them was replaced)"});
    } else {
      w.pendingPrev[s] = {c.prevDigest, pos};
    }
    auto next = w.pendingPrev.find(s + 1);
    if (next != w.pendingPrev.end()) {
      if (next->second.first !=
          std::string(reinterpret_cast<const char*>(c.digest.data()), c.digest.size()))
        findings.push_back({next->second.second, true, "altered",
                            "writer " + c.keyId + " seq " + std::to_string(s + 1) +
                                " does not follow the seq " + std::to_string(s) + " at " +
                                toString(pos) + " (one of them was replaced)"});
      w.pendingPrev.erase(next);
    }
  };

  // Signatures are checked on every core; the order checks run in log order.
  unsigned threads = std::max(1u, std::min(8u, std::thread::hardware_concurrency()));
  std::vector<LogRecord> chunk;
  std::vector<SignatureCheck> checks;
  auto drain = [&] {
    checks.assign(chunk.size(), SignatureCheck{});
    std::vector<std::thread> pool;
    size_t per = (chunk.size() + threads - 1) / threads;
    for (unsigned t = 0; t < threads && t * per < chunk.size(); ++t) {
      pool.emplace_back([&, t] {
        for (size_t i = t * per; i < std::min(chunk.size(), (t + 1) * per); ++i)
          checks[i] = checkSignature(chunk[i].value, ring);
      });
    }
    for (auto& th : pool) th.join();
    for (size_t i = 0; i < chunk.size(); ++i) handle(chunk[i], checks[i]);
    chunk.clear();
  };
  uint64_t records = replay(*source, o.quiet, [&](const LogRecord& r) {
    chunk.push_back(r);
    if (chunk.size() >= 4096) drain();
  });
  drain();

  // Completeness: each writer's sequence is 1..N without holes.
  for (const auto& [id, w] : writers) {
    for (uint64_t s = 1; s <= w.bySeq.size(); ++s) {
      if (w.bySeq[s - 1].present) continue;
      uint64_t to = s;
      while (to < w.bySeq.size() && !w.bySeq[to].present) ++to;  // to = last missing
      const auto& after = w.bySeq[to];                           // seq to + 1, present
      findings.push_back({after.position, true, "missing",
                          "writer " + id + " seq " + std::to_string(s) +
                              (to > s ? ".." + std::to_string(to) : std::string()) + " (" +
                              std::to_string(to - s + 1) +
                              " events) are not in the log; the next one, seq " +
                              std::to_string(to + 1) + ", is at " + toString(after.position)});
      s = to;
    }
  }
  // Checkpoint: what was verified last time must still be there, unchanged.
  Offsets end = source->end();
  if (checkpoint) {
    for (size_t p = 0; p < checkpoint->end.next.size(); ++p) {
      int64_t now = p < end.next.size() ? end.next[p] : 0;
      if (now < checkpoint->end.next[p])
        findings.push_back({Position{static_cast<int32_t>(p), now}, true, "missing",
                            "partition " + std::to_string(p) + " ended at offset " +
                                std::to_string(checkpoint->end.next[p]) +
                                " at the checkpoint and ends at " + std::to_string(now) +
                                " now: its newest records were deleted"});
    }
    for (const auto& [id, cp] : checkpoint->writers) {
      auto it = writers.find(id);
      uint64_t have = it == writers.end() ? 0 : it->second.bySeq.size();
      if (have < cp.first) {
        findings.push_back({Position{}, false, "missing",
                            "writer " + id + " reached seq " + std::to_string(cp.first) +
                                " at the checkpoint but ends at seq " + std::to_string(have) +
                                " now: its newest events were deleted"});
      } else if (it->second.bySeq[cp.first - 1].present &&
                 digestHex(it->second.bySeq[cp.first - 1].digest) != cp.second) {
        findings.push_back({it->second.bySeq[cp.first - 1].position, true, "altered",
                            "writer " + id + " seq " + std::to_string(cp.first) +
                                " differs from the one recorded at the checkpoint (history "
                                "rewritten with the writer's key)"});
      }
    }
  }

  std::stable_sort(findings.begin(), findings.end(), [](const Finding& a, const Finding& b) {
    if (a.hasPosition != b.hasPosition) return a.hasPosition;
    if (a.position.partition != b.position.partition)
      return a.position.partition < b.position.partition;
    return a.position.offset < b.position.offset;
  });
  std::cout << "read " << records << " records from the " << source->describe() << "\n";
  for (const auto& [id, w] : writers)
    std::cout << "writer " << id << ": " << w.count << " events, seq 1.." << w.bySeq.size() << "\n";
  if (findings.empty()) {
    std::cout << "OK: every event is signed by a trusted key, and each writer's events are "
                 "complete and in order (up to its newest event)\n";
    if (!checkpointPath.empty()) {
      writeCheckpoint(checkpointPath, source->describe(), end, writers);
      std::cout << "checkpoint written to " << checkpointPath << "\n";
    }
    return 0;
  }
  const auto& first = findings.front();
  std::cout << "FAILED: " << findings.size() << " problems; first bad event: "
            << (first.hasPosition ? toString(first.position) : std::string("(end of log)")) << " ("
            << first.kind << ")\n";
  for (const auto& f : findings)
    std::cout << (f.hasPosition ? toString(f.position) : std::string("-")) << "  " << f.kind << ": "
              << f.message << "\n";
  if (!checkpointPath.empty()) std::cout << "checkpoint not updated\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  std::string command;
  std::map<std::string, std::string> opts;
  std::vector<std::string> keyFiles;
  std::vector<std::string> args(argv + 1, argv + argc);
  const std::set<std::string> commands = {"history",           "at",        "policy", "rebuild",
                                          "verify-projection", "verify-log"};
  const std::set<std::string> valued = {"--user",   "--key",        "--time",
                                        "--format", "--max-age",    "--now",
                                        "--out",    "--projection", "--checkpoint"};
  for (size_t i = 0; i < args.size(); ++i) {
    std::string a = args[i];
    std::string inlineValue;
    bool hasInline = false;
    if (a.starts_with("--") && a.find('=') != std::string::npos) {
      inlineValue = a.substr(a.find('=') + 1);
      a = a.substr(0, a.find('='));
      hasInline = true;
    }
    auto value = [&]() -> std::string {
      if (hasInline) return inlineValue;
      if (i + 1 >= args.size()) usage(a + " needs a value");
      return args[++i];
    };
    if (a == "--help" || a == "-h" || a == "help") {
      std::cout << kUsage;
      return 0;
    } else if (a == "--data-dir") {
      o.dataDir = value();
      o.dataDirGiven = true;
    } else if (a == "--log") {
      o.log = value();
      if (o.log != "embedded" && o.log != "kafka")
        usage("--log wants embedded or kafka (got \"" + o.log + "\")");
    } else if (a == "--kafka-brokers") {
      o.kafka.brokers = value();
    } else if (a == "--topic") {
      o.kafka.topic = value();
    } else if (a == "--timeout") {
      std::string v = value();
      if (v.empty() || v.size() > 4 || v.find_first_not_of("0123456789") != std::string::npos ||
          std::stoi(v) < 1)
        usage("--timeout wants seconds (1-9999)");
      o.kafka.timeoutMs = std::stoi(v) * 1000;
    } else if (a == "--quiet" || a == "-q") {
      o.quiet = true;
    } else if (a == "--keys") {
      keyFiles.push_back(value());
    } else if (valued.count(a)) {
      opts[a] = value();
    } else if (!a.starts_with("-") && command.empty() && commands.count(a)) {
      command = a;
    } else if (!a.starts_with("-") && command.empty()) {
      usage("unknown command " + a);
    } else {
      usage("unknown option " + a);
    }
  }
  if (command.empty()) usage("no command given");
  if (o.log == "kafka" && o.kafka.brokers.empty())
    usage("--log kafka needs --kafka-brokers HOST:PORT");
  if (o.log != "kafka" && !o.kafka.brokers.empty()) usage("--kafka-brokers needs --log kafka");
  if (o.log == "kafka" && o.dataDirGiven)
    usage("--data-dir is for the embedded log; with --log kafka pass --keys for verify-log");
  auto get = [&](const char* name) { return opts.count(name) ? opts[name] : std::string(); };
  auto need = [&](const char* name, const std::string& what) {
    if (!opts.count(name) || opts[name].empty()) usage(command + " needs " + name + " " + what);
    return opts[name];
  };
  std::string format = opts.count("--format") ? opts["--format"] : "text";
  bool csvAllowed = command == "history";
  if (format != "text" && format != "json" && !(csvAllowed && format == "csv"))
    usage(std::string("--format wants text or json") + (csvAllowed ? " or csv" : ""));
  auto allowOnly = [&](std::initializer_list<const char*> allowed) {
    for (const auto& [k, v] : opts) {
      bool ok = k == "--format";
      for (const char* a : allowed) ok = ok || k == a;
      if (!ok) usage(k + " does not apply to " + command);
    }
    if (!keyFiles.empty() && command != "verify-log") usage("--keys applies to verify-log only");
  };

  struct sigaction sa {};
  sa.sa_handler = onSigint;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  try {
    initCrypto();
    if (command == "history") {
      allowOnly({"--user", "--key"});
      return cmdHistory(o, need("--user", "USER"), get("--key"), format);
    }
    if (command == "at") {
      allowOnly({"--user", "--key", "--time"});
      std::string user = get("--user"), key = get("--key");
      if (user.empty() == key.empty()) usage("at needs either --key K or --user U");
      int64_t t = requireTime("--time", need("--time", "T (RFC 3339 or Unix seconds)"));
      return cmdAt(o, user, key, t, format);
    }
    if (command == "policy") {
      allowOnly({"--max-age", "--now"});
      std::string days = need("--max-age", "DAYS");
      if (days.size() > 6 || days.find_first_not_of("0123456789") != std::string::npos)
        usage("--max-age wants a whole number of days");
      int64_t now = opts.count("--now") ? requireTime("--now", opts["--now"]) : nowUs();
      return cmdPolicy(o, std::stoll(days), now, format);
    }
    if (command == "rebuild") {
      allowOnly({"--out"});
      return cmdRebuild(o, need("--out", "DIR"));
    }
    if (command == "verify-projection") {
      allowOnly({"--projection"});
      return cmdVerifyProjection(o, need("--projection", "DIR"));
    }
    allowOnly({"--checkpoint"});
    return cmdVerifyLog(o, keyFiles, get("--checkpoint"));
  } catch (const Interrupted&) {
    std::cerr << "\nledger-audit: interrupted; no answer was given (the log is unchanged)\n";
    return 130;
  } catch (const UsageError& e) {
    std::cerr << "ledger-audit: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "ledger-audit: " << e.what() << "\n";
    return 2;
  }
}
