// ledger-audit on the embedded log: a real daemon writes a signed history, the
// tool (a separate process) answers from DATA_DIR/log; copies of the log are
// tampered with in every way verify-log claims to catch.
#include <doctest/doctest.h>

#include <sys/stat.h>

#include <csignal>
#include <filesystem>
#include <functional>
#include <map>
#include <thread>

#include "events/event_log.h"
#include "events/lmdb.h"
#include "events/secrets.h"
#include "projections/token.h"
#include "tests/service/audit_test.h"

using namespace tltest;
using namespace tokenledger;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

const std::string kBinary = TOKENLEDGERD_PATH;
const std::string kAudit = LEDGER_AUDIT_PATH;
const std::string kOperator = "audit-operator-secret-0123456789";

// One daemon-written data directory for the whole suite (stopped, so the log is
// quiet), plus the story told through it.
struct World {
  std::string root, data;
  Story story;
  World() {
    initCrypto();
    root = tempDir("audit");
    data = root + "/data";
    {
      Daemon d(kBinary, data, root, kOperator);
      story = tellStory(d, kOperator);
      REQUIRE(d.terminate() == 0);
    }
    // A restart continues the writer's sequence (checked by verify-log below).
    Daemon d(kBinary, data, root, kOperator);
    auto r = d.call("POST", "/v1/users/carol/tokens", R"({"description":"after restart"})",
                    {"Authorization: Bearer " + kOperator});
    REQUIRE(r.status == 201);
    REQUIRE(d.terminate() == 0);
  }
  ~World() { fs::remove_all(root); }
  std::string audit(const std::string& args, const std::string& dir = "") const {
    return kAudit + " --data-dir " + (dir.empty() ? data : dir) + " " + args;
  }
};

World& world() {
  static World w;
  return w;
}

// Raw access to DATA_DIR/log of a copy: records keyed by 8-byte big-endian offset,
// valued 4-byte key length + key + envelope.
struct RawLog {
  lmdb::Env env;
  MDB_dbi dbi = 0;
  explicit RawLog(const std::string& dir)
      : env(dir + "/log", lmdb::EnvOptions{1ull << 30, 4, 126, 0}) {
    auto txn = lmdb::Txn::write(env);
    dbi = txn.openDb("events");
    txn.commit();
  }
  static std::string pack(const std::string& key, const std::string& value) {
    std::string out(4, '\0');
    for (int i = 0; i < 4; ++i) out[i] = static_cast<char>((key.size() >> (8 * (3 - i))) & 0xff);
    return out + key + value;
  }
  std::string get(int64_t off) {
    auto txn = lmdb::Txn::read(env);
    auto v = txn.get(dbi, lmdb::encodeU64(static_cast<uint64_t>(off)));
    REQUIRE(v.has_value());
    return std::string(*v);
  }
  void put(int64_t off, const std::string& raw) {
    auto txn = lmdb::Txn::write(env);
    txn.put(dbi, lmdb::encodeU64(static_cast<uint64_t>(off)), raw);
    txn.commit();
  }
  void del(int64_t off) {
    auto txn = lmdb::Txn::write(env);
    REQUIRE(txn.del(dbi, lmdb::encodeU64(static_cast<uint64_t>(off))));
    txn.commit();
  }
  int64_t end() {
    auto txn = lmdb::Txn::read(env);
    lmdb::Cursor c(txn, dbi);
    return c.last() ? static_cast<int64_t>(lmdb::decodeU64(c.key())) + 1 : 0;
  }
};

// A copy of the data directory's log and public keys (never the original).
std::string copyOfLog(const std::string& name) {
  std::string dir = world().root + "/" + name;
  fs::remove_all(dir);
  fs::create_directories(dir + "/log");
  fs::copy_file(world().data + "/log/data.mdb", dir + "/log/data.mdb");
  fs::copy_file(world().data + "/signing-keys.pub", dir + "/signing-keys.pub");
  return dir;
}

// What an operator could notice about a directory tree: each entry's type, mode and
// size, and (but for lock.mdb) its mtime and contents. LMDB readers register in
// lock.mdb, which keeps a running daemon from reusing the pages they read, so reading
// writes to it by design.
std::map<std::string, std::string> snapshot(const std::string& root) {
  std::map<std::string, std::string> out;
  auto add = [&](const fs::path& p) {
    struct stat st {};
    REQUIRE(::lstat(p.c_str(), &st) == 0);
    char mode[16];
    snprintf(mode, sizeof mode, "%o", static_cast<unsigned>(st.st_mode));
    std::string s = std::string("mode ") + mode + " size " + std::to_string(st.st_size);
    if (p.filename() != "lock.mdb") {
      s += " mtime " + std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec);
      if (S_ISREG(st.st_mode))
        s += " contents " + std::to_string(std::hash<std::string>{}(readFile(p.string())));
    }
    out[fs::relative(p, root).string()] = s;
  };
  add(root);
  for (const auto& e : fs::recursive_directory_iterator(root)) add(e.path());
  return out;
}

// "" when equal, else one line per entry that appeared, went or changed.
std::string changes(const std::map<std::string, std::string>& before,
                    const std::map<std::string, std::string>& after) {
  std::string out;
  for (const auto& [path, was] : before) {
    auto it = after.find(path);
    if (it == after.end())
      out += path + ": removed\n";
    else if (it->second != was)
      out += path + ": " + was + " -> " + it->second + "\n";
  }
  for (const auto& [path, now] : after)
    if (!before.count(path)) out += path + ": created (" + now + ")\n";
  return out;
}

std::string firstBad(const std::string& out) {
  auto at = out.find("first bad event: ");
  if (at == std::string::npos) return "";
  auto rest = out.substr(at + strlen("first bad event: "));
  return rest.substr(0, rest.find(' '));
}

TEST_CASE("history: timeline, lineage, json and csv; unknown user is empty") {
  auto& w = world();
  const Story& s = w.story;
  auto r = runCmd(w.audit("history --user alice"));
  CHECK(r.status == 0);
  CHECK(contains(r.out, "token " + s.k1));
  CHECK(contains(r.out, "token " + s.k2 + " (destination) \"CRM webhook\""));
  CHECK(contains(r.out, "reason rotation"));
  CHECK(contains(r.out, "(grace period)"));
  CHECK(contains(r.out, "reason compromised"));
  CHECK(contains(r.out, "(in the past)"));
  CHECK(contains(r.out, s.k1 + " -> " + s.k3));
  CHECK(contains(r.out, "both valid until"));
  CHECK_FALSE(contains(r.out, s.k4));  // bob's

  auto j = runCmd(w.audit("history --user alice --format json"));
  CHECK(j.status == 0);
  int events = 0, rotations = 0;
  for (const auto& line : lines(j.out)) {
    auto obj = json::parse(line);
    if (obj["type"] == "event") {
      events++;
      CHECK(obj["owner"] == "alice");
      CHECK(obj.contains("signing_key_id"));
    } else {
      rotations++;
      CHECK(obj["from"] == s.k1);
      CHECK(obj["to"] == s.k3);
      CHECK(obj["both_valid_until"].is_string());
    }
  }
  CHECK(events == 5);  // k1 created + rotation deactivation, k2 created + deactivated, k3 created
  CHECK(rotations == 1);

  auto c = runCmd(w.audit("history --user alice --key " + s.k3 + " --format csv"));
  CHECK(c.status == 0);
  auto rows = lines(c.out);
  REQUIRE(rows.size() >= 2);
  CHECK(rows[0].starts_with("type,position,owner,key,event,recorded_at"));
  CHECK(contains(c.out, s.k1));        // the lineage: k3's predecessor
  CHECK_FALSE(contains(c.out, s.k2));  // not in k3's lineage
  CHECK(contains(c.out, "rotation,,alice," + s.k1 + ",rotated,"));

  auto none = runCmd(w.audit("history --user nobody --format json"));
  CHECK(none.status == 0);
  CHECK(none.out.empty());
  CHECK(contains(none.err, "no tokens"));
}

TEST_CASE("at: effective times count, the deciding event is named; bad input") {
  auto& w = world();
  const Story& s = w.story;
  auto t = [](int64_t secs) { return std::to_string(secs); };
  // Within the rotation grace period: k1 still valid.
  auto inGrace = runCmd(w.audit("at --key " + s.k1 + " --time " + t(s.rotatedAtS + 1800)));
  CHECK(inGrace.status == 0);
  CHECK(contains(inGrace.out, "was VALID"));
  CHECK(contains(inGrace.out, "valid until"));
  // After the grace period: not valid, decided by the rotation's deactivation.
  auto after =
      runCmd(w.audit("at --key " + s.k1 + " --time " + t(s.rotatedAtS + 7200) + " --format json"));
  CHECK(after.status == 1);
  auto a = json::parse(after.out);
  CHECK(a["valid"] == false);
  CHECK(a["deciding_event"]["event"] == "deactivated");
  CHECK(a["deciding_event"]["reason"] == "rotation");
  CHECK(a["deciding_event"]["position"].is_string());
  // A compromise recorded now but effective an hour ago: invalid from then on,
  // even at a time before it was recorded.
  auto late = runCmd(w.audit("at --key " + s.k2 + " --time " + t(s.rotatedAtS + 1)));
  CHECK(late.status == 1);
  CHECK(contains(late.out, "NOT VALID"));
  CHECK(contains(late.out, "compromised"));
  CHECK(contains(late.out, "(in the past)"));
  // Before creation: not valid, and it says so.
  auto before = runCmd(w.audit("at --key " + s.k1 + " --time 2001-01-01T00:00:00Z"));
  CHECK(before.status == 1);
  CHECK(contains(before.out, "created only at"));
  // RFC 3339 with an offset is the same instant as Unix seconds.
  auto rfc = runCmd(w.audit("at --key " + s.k3 + " --time 2099-01-01T01:00:00+01:00"));
  CHECK(rfc.status == 0);
  CHECK(contains(rfc.out, "2099-01-01T00:00:00.000Z"));

  auto user = runCmd(w.audit("at --user alice --time " + t(s.rotatedAtS + 1800)));
  CHECK(user.status == 0);
  CHECK(contains(user.out, s.k1));
  CHECK(contains(user.out, s.k3));
  CHECK_FALSE(contains(user.out, s.k2 + " (user alice) was VALID"));
  CHECK(contains(user.out, "2 of 3 tokens of user alice were valid"));

  auto unknown = runCmd(w.audit("at --key tlk_doesnotexist000000000000 --time 0"));
  CHECK(unknown.status == 1);
  CHECK(contains(unknown.err, "no token tlk_doesnotexist000000000000"));
  auto bad = runCmd(w.audit("at --key " + s.k1 + " --time tomorrow"));
  CHECK(bad.status == 2);
  CHECK(contains(bad.err, "RFC 3339"));
  CHECK(contains(bad.err, "Unix seconds"));
  CHECK(runCmd(w.audit("at --time 5")).status == 2);
  CHECK(runCmd(kAudit + " --data-dir " + w.root + "/nothing history --user a").status == 2);
}

// Bitemporal `at`: "as recorded at T" counts only the events recorded by T, "as
// known now" all of them. A daemon of its own, so that the shared story keeps its
// events and counts: dora's token, found compromised 1.5 s after its creation,
// effective 0.5 s after it (the token at 0:0, the deactivation at 0:1).
struct Backdated {
  std::string root, data, key;
  Timestamp created{}, effective{}, recorded{};
  Backdated() {
    using namespace std::chrono_literals;
    root = tempDir("audit-bitemporal");
    data = root + "/data";
    std::vector<std::string> auth{"Authorization: Bearer " + kOperator};
    Daemon d(kBinary, data, root, kOperator);
    auto c = d.call("POST", "/v1/users/dora/tokens", R"({"description":"leaked later"})", auth);
    REQUIRE(c.status == 201);
    key = c.json()["key"].get<std::string>();
    created = *parseTime(c.json()["created_at"].get<std::string>());
    std::this_thread::sleep_for(1500ms);
    effective = created + 500ms;
    auto de = d.call(
        "POST", "/v1/users/dora/tokens/" + key + "/deactivate",
        json{{"reason", "compromised"}, {"effective_at", formatTime(effective)}}.dump(), auth);
    REQUIRE(de.status == 200);
    recorded = *parseTime(de.json()["updated_at"].get<std::string>());
    REQUIRE(recorded > effective + 500ms);
    REQUIRE(d.terminate() == 0);
  }
  ~Backdated() { fs::remove_all(root); }
};

TEST_CASE("at: a backdated change is answered both as known now and as recorded then") {
  using namespace std::chrono_literals;
  static Backdated b;  // once for all subcases
  const std::string& key = b.key;
  const Timestamp created = b.created, effective = b.effective, recorded = b.recorded;
  const std::string& data = b.data;
  auto at = [&](const std::string& what, Timestamp t, const std::string& format = "text") {
    return runCmd(kAudit + " --data-dir " + data + " at " + what + " --time " + formatTime(t) +
                  " --format " + format);
  };

  SUBCASE("between the effective time and the recording: not valid now, valid as recorded") {
    Timestamp t = effective + (recorded - effective) / 2;
    auto j = at("--key " + key, t, "json");
    CHECK(j.status == 1);  // as known now decides the exit status
    auto a = json::parse(j.out);
    // As known now: today's fields, unchanged.
    CHECK(a["valid"] == false);
    CHECK(a["reason"] == "deactivated");
    CHECK(a["deciding_event"]["event"] == "deactivated");
    CHECK(a["deciding_event"]["reason"] == "compromised");
    CHECK(a["deciding_event"]["effective_at"] == formatTime(effective));
    CHECK(a["deciding_event"]["recorded_at"] == formatTime(recorded));
    CHECK(a["deciding_event"]["position"] == "0:1");
    // As recorded at T: the deactivation was not in the ledger yet.
    CHECK(a["as_recorded"]["valid"] == true);
    CHECK(a["as_recorded"]["reason"] == "created");
    CHECK(a["as_recorded"]["deciding_event"]["event"] == "created");
    CHECK(a["as_recorded"]["deciding_event"]["position"] == "0:0");
    CHECK(a["as_recorded"]["deciding_event"]["recorded_at"] == formatTime(created));
    CHECK_FALSE(a["as_recorded"].contains("valid_until"));  // no end was recorded then
    CHECK(a["backdated_change"] == true);

    auto txt = at("--key " + key, t);
    CHECK(txt.status == 1);
    CHECK(contains(txt.out, key + " (user dora) was NOT VALID at " + formatTime(t) +
                                " as known now, but VALID as recorded then"));
    CHECK(contains(txt.out, "\n  as known now: not valid: deactivated (compromised) effective " +
                                formatTime(effective) + " (in the past), recorded " +
                                formatTime(recorded)));
    CHECK(contains(txt.out, "[0:1]"));
    CHECK(contains(txt.out, "\n  as recorded at " + formatTime(t) + ": valid: created " +
                                formatTime(created)));
    CHECK(contains(txt.out, "[0:0]"));
    CHECK_FALSE(contains(txt.out, "same as recorded"));

    // --user lists it too: valid as recorded then, though no longer as known now.
    auto user = at("--user dora", t);
    CHECK(user.status == 1);  // none valid as known now
    CHECK(contains(user.out, key + " (user dora) was NOT VALID"));
    CHECK(contains(user.out, "0 of 1 tokens of user dora were valid at " + formatTime(t) +
                                 " as known now; 1 more as recorded then"));
    auto userJson = at("--user dora", t, "json");
    REQUIRE(lines(userJson.out).size() == 1);
    auto u = json::parse(lines(userJson.out)[0]);
    CHECK(u["valid"] == false);
    CHECK(u["as_recorded"]["valid"] == true);
    CHECK(u["backdated_change"] == true);
  }
  SUBCASE("before the effective time and the recording: valid on both sides") {
    Timestamp t = created + 250ms;
    auto j = at("--key " + key, t, "json");
    CHECK(j.status == 0);
    auto a = json::parse(j.out);
    CHECK(a["valid"] == true);
    CHECK(a["as_recorded"]["valid"] == true);
    CHECK(a["deciding_event"]["position"] == "0:0");
    CHECK(a["as_recorded"]["deciding_event"]["position"] == "0:0");
    CHECK(a["backdated_change"] == false);
    // Known now, the compromise ends it; recorded then, nothing did yet.
    CHECK(a["valid_until"] == formatTime(effective));
    CHECK_FALSE(a["as_recorded"].contains("valid_until"));

    auto txt = at("--key " + key, t);
    CHECK(txt.status == 0);
    CHECK(contains(txt.out, key + " (user dora) was VALID at " + formatTime(t) +
                                " (same as recorded then)\n  deciding event:"));
    CHECK_FALSE(contains(txt.out, "as known now"));
    CHECK(contains(txt.out, "valid until " + formatTime(effective) +
                                " (a deactivation recorded after " + formatTime(t)));
  }
  SUBCASE("after the recording: not valid on both sides, by the same event") {
    Timestamp t = recorded + 1s;
    auto a = json::parse(at("--key " + key, t, "json").out);
    CHECK(a["valid"] == false);
    CHECK(a["as_recorded"]["valid"] == false);
    CHECK(a["as_recorded"]["reason"] == "deactivated");
    CHECK(a["as_recorded"]["deciding_event"]["position"] == "0:1");
    CHECK(a["backdated_change"] == false);
    auto txt = at("--key " + key, t);
    CHECK(txt.status == 1);
    CHECK(contains(txt.out, "was NOT VALID at " + formatTime(t) + " (same as recorded then)"));
    CHECK(contains(txt.out, "reason compromised"));
  }
  SUBCASE("before the creation: not created yet on both sides") {
    auto a = json::parse(at("--key " + key, created - 1s, "json").out);
    CHECK(a["reason"] == "not_created_yet");
    CHECK(a["as_recorded"]["reason"] == "not_created_yet");
    CHECK(a["backdated_change"] == false);
  }
}

TEST_CASE("at: a grace period, asked between its recording and its end, is valid on both sides") {
  auto& w = world();
  const Story& s = w.story;
  // k1's rotation was recorded at about rotatedAtS with an hour of grace.
  Timestamp t = Timestamp{std::chrono::seconds{s.rotatedAtS + 1800}};
  auto j = runCmd(w.audit("at --key " + s.k1 + " --time " + formatTime(t) + " --format json"));
  CHECK(j.status == 0);
  auto a = json::parse(j.out);
  CHECK(a["valid"] == true);
  CHECK(a["as_recorded"]["valid"] == true);
  CHECK(a["backdated_change"] == false);
  CHECK(a["reason"] == "created");
  CHECK(a["as_recorded"]["reason"] == "created");
  // The rotation was recorded before T, so both views know when the grace ends.
  REQUIRE(a["valid_until"].is_string());
  CHECK(a["as_recorded"]["valid_until"] == a["valid_until"]);
  Timestamp until = *parseTime(a["valid_until"].get<std::string>());
  CHECK(until > t);
  CHECK(until <= t + std::chrono::seconds{1800 + 5});

  auto txt = runCmd(w.audit("at --key " + s.k1 + " --time " + formatTime(t)));
  CHECK(txt.status == 0);
  CHECK(contains(txt.out, "was VALID at " + formatTime(t) + " (same as recorded then)"));
  CHECK(contains(txt.out, "valid until " + a["valid_until"].get<std::string>()));
}

TEST_CASE("policy: tokens active too long without rotation, per user") {
  auto& w = world();
  const Story& s = w.story;
  auto now = runCmd(w.audit("policy --max-age 30"));
  CHECK(now.status == 0);
  CHECK(contains(now.out, "no token"));
  // A year later: k3 (rotation successor), bob's k4 and carol's are overdue; k1 was
  // rotated and k2 deactivated.
  auto later =
      runCmd(w.audit("policy --max-age 30 --now " + std::to_string(s.rotatedAtS + 365 * 86400)));
  CHECK(later.status == 1);
  CHECK(contains(later.out, "user alice:"));
  CHECK(contains(later.out, s.k3));
  CHECK(contains(later.out, s.k4));
  CHECK_FALSE(contains(later.out, s.k1));
  CHECK_FALSE(contains(later.out, s.k2));
  auto j = runCmd(w.audit("policy --max-age 30 --format json --now " +
                          std::to_string(s.rotatedAtS + 365 * 86400)));
  CHECK(lines(j.out).size() == 3);
}

TEST_CASE("rebuild and verify-projection: equal to the daemon's; a changed copy is named") {
  auto& w = world();
  std::string out = w.root + "/rebuilt";
  auto r = runCmd(w.audit("rebuild --out " + out));
  CHECK(r.status == 0);
  CHECK(contains(r.out, "events applied"));
  CHECK(runCmd(w.audit("rebuild --out " + out)).status == 2);  // refuses to overwrite
  auto same = runCmd(w.audit("verify-projection --projection " + w.data + "/projection"));
  CHECK(same.status == 0);
  CHECK(contains(same.out, "equals a replay"));
  CHECK(runCmd(w.audit("verify-projection --projection " + out)).status == 0);

  // Change the copy: k2 reactivated behind the log's back, and a token row deleted.
  {
    lmdb::Env env(out, lmdb::EnvOptions{1ull << 30, 8, 126, 0});
    auto txn = lmdb::Txn::write(env);
    MDB_dbi tokens = txn.openDb("tokens");
    std::string stored(*txn.get(tokens, w.story.k2));
    TokenRecord r = decodeTokenRecord(w.story.k2, stored);
    r.token.active = true;
    txn.put(tokens, w.story.k2, encodeToken(r.token) + std::string(r.history));
    CHECK(txn.del(tokens, w.story.k4));
    txn.commit();
  }
  auto diff = runCmd(w.audit("verify-projection --projection " + out));
  CHECK(diff.status == 1);
  CHECK(contains(diff.out, "tokens " + w.story.k2 + ": active: projection true, log false"));
  CHECK(contains(diff.out, "tokens " + w.story.k4 + ": missing from the projection"));
  CHECK(contains(diff.out, "2 differences"));
}

TEST_CASE("verify-log: an untouched log passes; the writer's sequence survived a restart") {
  auto& w = world();
  auto r = runCmd(w.audit("verify-log"));
  CHECK(r.status == 0);
  CHECK(contains(r.out, "OK"));
  CHECK(contains(r.out, ": 7 events, seq 1..7"));
  // The same through --keys with the key the daemon published over HTTP.
  auto keys = readFile(w.data + "/signing-keys.pub");
  CHECK(lines(keys).size() == 1);
  CHECK(runCmd(w.audit("verify-log --keys " + w.data + "/signing-keys.pub")).status == 0);
  // No private key material in the public file.
  CHECK_FALSE(contains(keys, "seed"));
}

TEST_CASE("verify-log catches forged, altered, missing, reordered and replayed events") {
  auto& w = world();
  SUBCASE("forged: signed by a key nobody trusts") {
    auto dir = copyOfLog("forged");
    RawLog log(dir);
    int64_t at = log.end();
    log.put(at, RawLog::pack("alice", foreignEvent("alice", w.story.k1, 8)));
    auto r = runCmd(w.audit("verify-log", dir));
    CHECK(r.status == 1);
    CHECK(firstBad(r.out) == "0:" + std::to_string(at));
    CHECK(contains(r.out, "forged"));
  }
  SUBCASE("altered: one byte of a description") {
    auto dir = copyOfLog("altered");
    RawLog log(dir);
    std::string raw = log.get(0);
    auto pos = raw.find("Receive leads");
    REQUIRE(pos != std::string::npos);
    raw[pos] = 'r';
    log.put(0, raw);
    auto r = runCmd(w.audit("verify-log", dir));
    CHECK(r.status == 1);
    CHECK(firstBad(r.out) == "0:0");
    CHECK(contains(r.out, "0:0  altered"));
    // The other commands still read it (the description is what the log says).
    CHECK(contains(runCmd(w.audit("history --user alice", dir)).out, "receive leads"));
  }
  SUBCASE("missing: a record deleted from the middle") {
    auto dir = copyOfLog("missing");
    RawLog log(dir);
    log.del(2);
    auto r = runCmd(w.audit("verify-log", dir));
    CHECK(r.status == 1);
    CHECK(firstBad(r.out) == "0:3");
    CHECK(contains(r.out, "missing"));
    CHECK(contains(r.out, "seq 3 (1 events) are not in the log; the next one, seq 4, is at 0:3"));
  }
  SUBCASE("missing, renumbered: a record deleted and the rest moved up") {
    auto dir = copyOfLog("renumbered");
    RawLog log(dir);
    int64_t end = log.end();
    for (int64_t i = 2; i + 1 < end; ++i) log.put(i, log.get(i + 1));
    log.del(end - 1);
    auto r = runCmd(w.audit("verify-log", dir));
    CHECK(r.status == 1);
    CHECK(firstBad(r.out) == "0:2");
    CHECK(contains(r.out, "missing"));
  }
  SUBCASE("reordered: two records swapped") {
    auto dir = copyOfLog("reordered");
    RawLog log(dir);
    std::string a = log.get(1), b = log.get(2);
    log.put(1, b);
    log.put(2, a);
    auto r = runCmd(w.audit("verify-log", dir));
    CHECK(r.status == 1);
    CHECK(firstBad(r.out) == "0:1");
    CHECK(contains(r.out, "reordered"));
  }
  SUBCASE("replayed: a genuine record copied to the end") {
    auto dir = copyOfLog("replayed");
    RawLog log(dir);
    int64_t end = log.end();
    log.put(end, log.get(1));
    auto r = runCmd(w.audit("verify-log", dir));
    CHECK(r.status == 1);
    CHECK(firstBad(r.out) == "0:" + std::to_string(end));
    CHECK(contains(r.out, "duplicate"));
  }
  SUBCASE("malformed: reported with its position, the replay goes on") {
    auto dir = copyOfLog("malformed");
    RawLog log(dir);
    log.put(log.end(), RawLog::pack("alice", "not an event"));
    auto r = runCmd(w.audit("verify-log", dir));
    CHECK(r.status == 1);
    CHECK(contains(r.out, "malformed"));
    auto h = runCmd(w.audit("history --user alice", dir));
    CHECK(h.status == 1);
    CHECK(contains(h.err, "malformed event at 0:7"));
    CHECK(contains(h.out, w.story.k3));  // the rest was read
  }
}

TEST_CASE("verify-log checkpoints: deleting the newest events passes alone, not with one") {
  auto& w = world();
  auto dir = copyOfLog("truncated");
  std::string cp = dir + "/checkpoint.json";
  CHECK(runCmd(w.audit("verify-log --checkpoint " + cp, dir)).status == 0);
  CHECK(fs::exists(cp));
  {
    RawLog log(dir);
    log.del(log.end() - 1);
  }
  // Undetectable without history of what was there...
  CHECK(runCmd(w.audit("verify-log", dir)).status == 0);
  // ...caught against the checkpoint, which then is not advanced.
  auto r = runCmd(w.audit("verify-log --checkpoint " + cp, dir));
  CHECK(r.status == 1);
  CHECK(contains(r.out, "newest"));
  CHECK(contains(r.out, "checkpoint not updated"));
}

TEST_CASE("ledger-audit changes nothing in the data directory: modes, files, contents") {
  auto& w = world();
  const Story& s = w.story;
  // Every command that reads the embedded log or a read model, each answering.
  auto auditAll = [&](const std::string& dir, bool withProjection) {
    CHECK(runCmd(w.audit("history --user alice", dir)).status == 0);
    CHECK(
        runCmd(w.audit("at --key " + s.k1 + " --time " + std::to_string(s.rotatedAtS + 1800), dir))
            .status == 0);
    CHECK(runCmd(w.audit("policy --max-age 30", dir)).status == 0);
    CHECK(runCmd(w.audit("verify-log", dir)).status == 0);
    std::string out = dir + "-rebuilt";
    fs::remove_all(out);
    CHECK(runCmd(w.audit("rebuild --out " + out, dir)).status == 0);
    if (withProjection)
      CHECK(runCmd(w.audit("verify-projection --projection " + dir + "/projection", dir)).status ==
            0);
    CHECK(runCmd(w.audit("verify-projection --projection " + out, dir)).status == 0);
  };
  auto open = fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
              fs::perms::others_read | fs::perms::others_exec;

  SUBCASE("a daemon's data directory, opened up to 0755 by its operator") {
    std::string dir = w.root + "/untouched";
    fs::remove_all(dir);
    fs::copy(w.data, dir, fs::copy_options::recursive);
    for (const auto& d : {dir, dir + "/log", dir + "/projection"}) fs::permissions(d, open);
    REQUIRE(fs::exists(dir + "/log/lock.mdb"));
    auto before = snapshot(dir);
    auditAll(dir, true);
    CHECK_MESSAGE(changes(before, snapshot(dir)).empty(), changes(before, snapshot(dir)));
  }
  SUBCASE("a copy of data.mdb alone: no lock.mdb is created") {
    std::string dir = copyOfLog("untouched-copy");
    for (const auto& d : {dir, dir + "/log"}) fs::permissions(d, open);
    auto before = snapshot(dir);
    auditAll(dir, false);
    CHECK_MESSAGE(changes(before, snapshot(dir)).empty(), changes(before, snapshot(dir)));
  }
  SUBCASE("no log directory: a clear error, and none is created") {
    std::string dir = w.root + "/no-log";
    fs::remove_all(dir);
    fs::create_directories(dir);
    auto before = snapshot(dir);
    auto r = runCmd(w.audit("history --user alice", dir));
    CHECK(r.status == 2);
    CHECK(contains(r.err, "no embedded event log in " + dir + "/log"));
    auto p = runCmd(w.audit("verify-projection --projection " + dir + "/projection"));
    CHECK(p.status == 2);
    CHECK(contains(p.err, "no read model in " + dir + "/projection"));
    CHECK_MESSAGE(changes(before, snapshot(dir)).empty(), changes(before, snapshot(dir)));
  }
}

TEST_CASE("long replays: progress on a terminal, quiet otherwise; Ctrl-C stops cleanly") {
  auto& w = world();
  auto dir = w.root + "/big";
  {
    auto log = openEmbeddedLog(dir + "/log", EmbeddedLogOptions{1ull << 30});
    std::vector<std::pair<std::string, std::string>> batch;
    for (int i = 0; i < 400000; ++i) {
      Event e;
      e.eventId = randomBytes(16);
      e.tokenKey = "tlk_" + std::to_string(i);
      e.owner = "user" + std::to_string(i % 100);
      e.actor = "operator";
      e.occurredAt = Timestamp{std::chrono::microseconds{1'700'000'000'000'000 + i}};
      Created c;
      c.description = "bulk";
      e.body = c;
      batch.emplace_back(e.owner, encodeEvent(e));
      if (batch.size() == 50000) {
        log->appendBatch(batch);
        batch.clear();
      }
    }
  }
  auto quiet = runCmd(w.audit("history --user user7 --format json", dir));
  CHECK(quiet.status == 0);
  CHECK(lines(quiet.out).size() == 4000);
  CHECK_FALSE(contains(quiet.err, "events/s"));  // stderr is not a terminal
  if (runCmd("command -v script").status == 0) {
    auto tty =
        runCmd("script -qec '" + w.audit("policy --max-age 1", dir) + " >/dev/null' /dev/null");
    CHECK(contains(tty.out, "events/s"));
    CHECK(contains(tty.out, "ETA"));
    auto q = runCmd("script -qec '" + w.audit("--quiet policy --max-age 1", dir) +
                    " >/dev/null' /dev/null");
    CHECK_FALSE(contains(q.out, "events/s"));
  }
  // Ctrl-C in the middle of a replay: exit 130 with a message.
  std::string err = w.root + "/int.err";
  std::string out = dir + "/rebuilt";
  pid_t pid = fork();
  if (pid == 0) {
    int fd = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(fd, 2);
    int null = ::open("/dev/null", O_WRONLY);
    dup2(null, 1);
    execl(kAudit.c_str(), kAudit.c_str(), "--data-dir", dir.c_str(), "rebuild", "--out",
          out.c_str(), nullptr);
    _exit(127);
  }
  // Where the partial read model's replay stands (0 until its first batch commits),
  // read beside the writing tool like any LMDB reader.
  auto applied = [&]() -> uint64_t {
    try {
      lmdb::Env env(
          out, lmdb::EnvOptions{
                   .mapSizeBytes = 1ull << 30, .maxDbs = 8, .maxReaders = 126, .readOnly = true});
      auto txn = lmdb::Txn::read(env);
      lmdb::Cursor c(txn, txn.openDb("positions"));
      return c.first() ? lmdb::decodeU64(c.value()) : 0;
    } catch (const std::exception&) {
      return 0;  // not created yet
    }
  };
  int status = 0;
  bool exited = false;
  uint64_t reached = 0;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while ((reached = applied()) == 0 && std::chrono::steady_clock::now() < deadline &&
         !(exited = waitpid(pid, &status, WNOHANG) == pid))
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  if (!exited) {
    // SIGINT only once events were applied and before all were: mid-replay.
    CHECK(reached > 0);
    CHECK(reached < 400000);
    ::kill(pid, SIGINT);
    waitpid(pid, &status, 0);
  }
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 130);
  CHECK(contains(readFile(err), "interrupted"));
  CHECK_FALSE(fs::exists(out));  // the partial read model is removed
}

TEST_CASE("an unreachable broker exits 2 within the timeout") {
  auto r = runCmd(kAudit + " --log kafka --kafka-brokers 127.0.0.1:1 --timeout 2 history --user a");
  CHECK(r.status == 2);
  CHECK(contains(r.err, "cannot reach Kafka at 127.0.0.1:1"));
  CHECK(r.seconds < 10);
  CHECK(runCmd(kAudit + " --log kafka history --user a").status == 2);
}

}  // namespace
