// Replicas you can trust (issue 14), against a real broker (the `kafka` fixture of
// CMakeLists.txt) and real daemons, each test case with its own topic, trust root
// (kafka_trust.h) and temp dir:
//   - two replicas rotate the same tokens at the same moment: one winner per token,
//     and every replica, a replica started afterwards and ledger-audit agree;
//   - three replicas deactivate, activate and rotate the same tokens at once: the
//     replicas end identical, and every acknowledged change is in the log's history;
//   - forged, uncertified and replayed records on the topic change nothing, and are
//     reported by the daemons and by ledger-audit verify-log with their positions;
//   - Idempotency-Key across replicas, and across a broker that stops answering;
//   - a replica refuses to start on Kafka without trust, saying what to do.
#include <doctest/doctest.h>

#include <array>
#include <atomic>
#include <barrier>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "events/certificate.h"
#include "events/event.h"
#include "events/kafka_log.h"
#include "events/secrets.h"
#include "events/signing.h"
#include "tests/integration/replica_cluster.h"

using namespace tltest;
using namespace tokenledger;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

// What ledger-audit history --format json says about one user's tokens.
struct AuditedToken {
  std::string status;  // "active" or "inactive", from the applied events in log order
  std::string replacedBy;
  std::string replaces;
};
struct AuditedEvent {
  std::string key, type, replaces;
  bool applied = true;
};
struct AuditHistory {
  std::map<std::string, AuditedToken> tokens;
  std::map<std::string, AuditedEvent> byPosition;  // "p:o"
  // Per token, in log order: (offset of an applied event, status after it).
  std::map<std::string, std::vector<std::pair<int64_t, std::string>>> states;

  // Whether `status` is the token's state right after the applied event at
  // `position`, or after one applied later (a response reads the state once its
  // own event is applied, when a concurrent command's may be applied too).
  bool statusFrom(const std::string& key, const std::string& position,
                  const std::string& status) const {
    auto p = parsePosition(position);
    auto it = states.find(key);
    if (!p || it == states.end()) return false;
    for (const auto& [offset, after] : it->second)
      if (offset >= p->offset.value && after == status) return true;
    return false;
  }
};
AuditHistory auditHistory(const Cluster& c, const std::string& user) {
  auto r = c.audit("history --user " + user + " --format json");
  CHECK_MESSAGE(r.status == 0, user << ": " << r.err);
  AuditHistory h;
  for (const auto& line : lines(r.out)) {
    if (line.empty()) continue;
    json j = json::parse(line);
    if (j["type"] == "rotation") {
      h.tokens[j["from"].get<std::string>()].replacedBy = j["to"].get<std::string>();
      continue;
    }
    if (j["type"] != "event") continue;
    AuditedEvent e{j["key"].get<std::string>(), j["event"].get<std::string>(),
                   j.value("replaces", ""), !j.contains("ignored")};
    h.byPosition[j["position"].get<std::string>()] = e;
    if (!e.applied) continue;
    AuditedToken& t = h.tokens[e.key];
    if (e.type == "created") {
      t.status = "active";
      t.replaces = e.replaces;
    } else if (e.type == "activated") {
      t.status = "active";
    } else if (e.type == "deactivated") {
      t.status = "inactive";  // every deactivation here takes effect at once
    }
    h.states[e.key].emplace_back(parsePosition(j["position"].get<std::string>())->offset.value,
                                 t.status);
  }
  return h;
}

// The tokens of a list, by key.
std::map<std::string, json> byKey(const json& tokens) {
  std::map<std::string, json> out;
  for (const auto& t : tokens) out[t["key"].get<std::string>()] = t;
  return out;
}

// A SIGSTOPped broker (scripts/kafka.sh pause), resumed however the test ends.
struct PausedBroker {
  std::string script = kSource + "/scripts/kafka.sh", dir = env("KAFKA_DIR");
  bool paused = false;
  PausedBroker() {
    auto r = runCmd("bash " + script + " pause --dir " + dir);
    REQUIRE_MESSAGE(r.status == 0, r.out << r.err);
    paused = true;
  }
  void resume() {
    if (!paused) return;
    auto r = runCmd("bash " + script + " resume --dir " + dir);
    CHECK_MESSAGE(r.status == 0, r.out << r.err);
    paused = false;
  }
  ~PausedBroker() { resume(); }
};

}  // namespace

TEST_CASE("two replicas rotate the same tokens at the same moment: one winner each, all agree") {
  Cluster c("rotrace");
  Daemon& a = c.start("a");
  Daemon& b = c.start("b");
  constexpr int kTokens = 150, kUsers = 10;
  struct Tok {
    std::string user, key;
  };
  std::vector<Tok> toks;
  std::string last;
  for (int i = 0; i < kTokens; ++i) {
    std::string user = "rot-u" + std::to_string(i % kUsers);
    auto r = post(a, "/v1/users/" + user + "/tokens", R"({"description":"race me"})");
    REQUIRE_MESSAGE(r.status == 201, r.body);
    toks.push_back({user, r.json()["key"]});
  }
  REQUIRE(caughtUp(b, c.end()));

  // Both replicas get a rotate of the same token at the same moment, token by token.
  std::vector<std::array<Response, 2>> results(kTokens);
  std::barrier sync(2);
  auto side = [&](Daemon& d, int s) {
    for (int i = 0; i < kTokens; ++i) {
      sync.arrive_and_wait();
      try {
        results[i][s] = post(d, tokenPath(toks[i].user, toks[i].key, "rotate"));
      } catch (const std::exception& e) {
        results[i][s].body = e.what();  // status 0: checked below
      }
    }
  };
  std::thread ta(side, std::ref(a), 0), tb(side, std::ref(b), 1);
  ta.join();
  tb.join();

  std::map<std::string, std::string> winnerOf;  // old key -> successor
  std::map<std::string, int> codes;
  for (int i = 0; i < kTokens; ++i) {
    const auto& [ra, rb] = results[i];
    CHECK_MESSAGE(
        ((ra.status == 200 && rb.status == 409) || (ra.status == 409 && rb.status == 200)),
        toks[i].key << ": A " << ra.status << " " << ra.body << " / B " << rb.status << " "
                    << rb.body);
    const Response& won = ra.status == 200 ? ra : rb;
    const Response& lost = ra.status == 200 ? rb : ra;
    if (won.status != 200 || lost.status != 409) continue;
    std::string code = errorCode(lost);
    codes[code]++;
    CHECK_MESSAGE((code == "already_rotated" || code == "conflict"), lost.body);
    json w = won.json();
    CHECK(w["previous"]["key"] == toks[i].key);
    CHECK(w.contains("token"));
    winnerOf[toks[i].key] = w["key"].get<std::string>();
    // The winner's successor verifies on both replicas.
    CHECK(verify(a, w["key"], w["token"], w["position"]).status == 200);
    CHECK(verify(b, w["key"], w["token"], w["position"]).status == 200);
  }
  REQUIRE(winnerOf.size() == static_cast<size_t>(kTokens));
  REQUIRE(caughtUp(a, c.end()));
  REQUIRE(caughtUp(b, c.end()));

  // The losers' successors: on the topic when the loser appended before it knew,
  // never in any response. None exists on any replica.
  std::set<std::string> losers;
  for (const auto& rec : c.records()) {
    auto decoded = decodeEvent(rec.value);
    auto* e = std::get_if<Event>(&decoded);
    if (!e) continue;
    auto* created = std::get_if<Created>(&e->body);
    if (!created || created->replaces.empty()) continue;
    auto w = winnerOf.find(created->replaces);
    REQUIRE(w != winnerOf.end());
    if (e->tokenKey != w->second) losers.insert(e->tokenKey);
  }
  MESSAGE("rotation races: losers' codes ", json(codes).dump(), "; ", losers.size(),
          " losers had appended their successor before losing");
  for (const auto& key : losers) {
    for (Daemon* d : {&a, &b}) {
      auto v = verify(*d, key, generateSecret());
      CHECK(v.status == 401);
      CHECK_MESSAGE(v.json()["reason"] == "unknown", key << " " << v.body);
    }
  }

  // Each old token has exactly one successor, the winner's, in lists and histories.
  std::set<std::string> users;
  for (const auto& t : toks) users.insert(t.user);
  for (Daemon* d : {&a, &b}) {
    for (const auto& user : users) {
      auto list = byKey(listOf(*d, user));
      std::map<std::string, int> successors;
      for (const auto& [key, t] : list) {
        CHECK_MESSAGE(!losers.count(key), "a loser's successor is listed: " << key);
        if (t.contains("replaces")) successors[t["replaces"].get<std::string>()]++;
      }
      for (const auto& t : toks) {
        if (t.user != user) continue;
        CHECK_MESSAGE(successors[t.key] == 1, t.key);
        CHECK(list[t.key]["replaced_by"] == winnerOf[t.key]);
        CHECK(list[t.key]["status"] == "inactive");
        CHECK(list[winnerOf[t.key]]["replaces"] == t.key);
      }
    }
  }
  for (size_t i = 0; i < toks.size(); ++i) {
    for (Daemon* d : {&a, &b}) {
      json h = historyOf(*d, toks[i].user, toks[i].key);
      CHECK(h["replaced_by"] == winnerOf[toks[i].key]);
      int deactivations = 0;
      for (const auto& e : h["events"]) deactivations += e["type"] == "deactivated";
      CHECK(deactivations == 1);
    }
  }

  // A replica started now catches up from the topic; A, B, C and ledger-audit agree.
  Daemon& fresh = c.start("c");
  REQUIRE(caughtUp(fresh, c.end(), 30000));
  for (const auto& user : users) {
    json la = listOf(a, user), lb = listOf(b, user), lc = listOf(fresh, user);
    CHECK_MESSAGE(la == lb, user);
    CHECK_MESSAGE(la == lc, user);
    AuditHistory audited = auditHistory(c, user);
    auto list = byKey(la);
    CHECK(audited.tokens.size() == list.size());
    for (const auto& [key, t] : list) {
      REQUIRE_MESSAGE(audited.tokens.count(key), key);
      CHECK_MESSAGE(audited.tokens[key].status == t["status"].get<std::string>(), key);
      CHECK_MESSAGE(audited.tokens[key].replacedBy == t.value("replaced_by", ""), key);
    }
  }
  c.stopAll();
}

TEST_CASE("three replicas change the same tokens at once: identical, nothing acknowledged lost") {
  Cluster c("mix");
  Daemon& a = c.start("a");
  Daemon& b = c.start("b");
  Daemon& d3 = c.start("c");
  std::vector<Daemon*> all{&a, &b, &d3};
  constexpr int kTokens = 100, kUsers = 8, kRounds = 2;
  struct Tok {
    std::string user, key;
  };
  std::vector<Tok> toks;
  for (int i = 0; i < kTokens; ++i) {
    std::string user = "mix-u" + std::to_string(i % kUsers);
    auto r = post(*all[i % 3], "/v1/users/" + user + "/tokens", R"({"description":"mixed"})");
    REQUIRE_MESSAGE(r.status == 201, r.body);
    toks.push_back({user, r.json()["key"]});
  }
  for (Daemon* d : all) REQUIRE(caughtUp(*d, c.end()));

  struct Outcome {
    int token;
    std::string op;
    Response r;
  };
  std::vector<std::vector<Outcome>> outcomes(3);
  const unsigned seed = std::random_device{}();
  MESSAGE("seed ", seed);
  std::barrier sync(3);
  auto side = [&](int s) {
    std::mt19937 rng(seed + s);
    const char* ops[] = {"deactivate", "activate", "rotate"};
    for (int round = 0; round < kRounds; ++round)
      for (int i = 0; i < kTokens; ++i) {
        std::string op = ops[rng() % 3];
        sync.arrive_and_wait();
        Outcome o{i, op, {}};
        try {
          o.r = post(*all[s], tokenPath(toks[i].user, toks[i].key, op),
                     op == "rotate" ? R"({"grace_seconds":0})" : "");
        } catch (const std::exception& e) {
          o.r.body = e.what();
        }
        outcomes[s].push_back(std::move(o));
      }
  };
  std::vector<std::thread> threads;
  for (int s = 0; s < 3; ++s) threads.emplace_back(side, s);
  for (auto& t : threads) t.join();

  Offsets end = c.end();
  for (Daemon* d : all) REQUIRE(caughtUp(*d, end));
  std::set<std::string> users;
  for (const auto& t : toks) users.insert(t.user);

  // The three replicas hold the same tokens, field for field.
  std::map<std::string, json> lists;  // user -> A's list
  for (const auto& user : users) {
    lists[user] = listOf(a, user);
    CHECK_MESSAGE(lists[user] == listOf(b, user), user);
    CHECK_MESSAGE(lists[user] == listOf(d3, user), user);
  }

  // Every acknowledged change is an applied event of the log, every applied change
  // was acknowledged, and the replicas' final state is what those events make.
  std::map<std::string, AuditHistory> audited;
  for (const auto& user : users) audited[user] = auditHistory(c, user);
  std::set<std::string> acknowledged;  // positions of acknowledged changes
  std::set<std::string> successors;    // keys created by acknowledged rotations
  std::map<std::string, int> tally;    // "op status[/code]" -> count
  int statesAfter = 0;                 // changes answered with a later command's state
  for (int s = 0; s < 3; ++s) {
    for (const auto& o : outcomes[s]) {
      const Tok& t = toks[o.token];
      std::string what = o.op + " " + std::to_string(o.r.status);
      if (o.r.status == 409) {
        std::string code = errorCode(o.r);
        what += "/" + code;
        CHECK_MESSAGE((code == "already_rotated" || code == "expired" || code == "conflict"),
                      o.r.body);
      }
      tally[what]++;
      CHECK_MESSAGE((o.r.status == 200 || o.r.status == 409),
                    o.op << " " << t.key << ": " << o.r.status << " " << o.r.body);
      if (o.r.status != 200) continue;
      json j = o.r.json();
      AuditHistory& h = audited[t.user];
      if (o.op == "rotate") {
        std::string w = j["key"];
        CHECK(j["previous"]["key"] == t.key);
        successors.insert(w);
        REQUIRE(j.contains("position"));
        std::string pos = j["position"];
        acknowledged.insert(pos);
        const AuditedEvent& at = h.byPosition[pos];
        CHECK_MESSAGE(at.applied, j["position"]);
        CHECK(((at.key == t.key && at.type == "deactivated") ||
               (at.key == w && at.type == "created")));
        // The successor exists everywhere and names its predecessor, which names it.
        auto list = byKey(lists[t.user]);
        REQUIRE_MESSAGE(list.count(w), "acknowledged successor " << w << " is missing");
        CHECK(list[w]["replaces"] == t.key);
        CHECK(list[t.key]["replaced_by"] == w);
        CHECK(h.tokens[t.key].replacedBy == w);
        continue;
      }
      std::string expected = o.op == "activate" ? "active" : "inactive";
      if (!j["changed"].get<bool>()) {
        // Nothing to change: the token was in that state when the command was decided.
        CHECK_MESSAGE(j["status"] == expected, o.op << ": " << o.r.body);
        CHECK(!j.contains("position"));
        continue;
      }
      REQUIRE(j.contains("position"));
      std::string pos = j["position"];
      acknowledged.insert(pos);
      const AuditedEvent& at = h.byPosition[pos];
      CHECK_MESSAGE(at.applied, o.op << " at " << j["position"]);
      CHECK(at.key == t.key);
      CHECK(at.type == (o.op == "activate" ? "activated" : "deactivated"));
      // The state it answered with: its own event's, or that of one applied after it.
      if (j["status"] != expected) statesAfter++;
      CHECK_MESSAGE(h.statusFrom(t.key, pos, j["status"]), o.op << ": " << o.r.body);
    }
  }
  MESSAGE("outcomes: ", json(tally).dump(), "; ", statesAfter,
          " changes answered with the state a concurrent command left");
  for (const auto& [user, h] : audited) {
    for (const auto& [pos, e] : h.byPosition) {
      if (!e.applied) continue;
      bool original = e.type == "created" && e.replaces.empty();
      bool successorCreated = e.type == "created" && successors.count(e.key);
      // A rotation's created event lies just before its acknowledged deactivation.
      CHECK_MESSAGE(
          (original || successorCreated || acknowledged.count(pos)),
          "applied but never acknowledged: " << e.type << " of " << e.key << " at " << pos);
    }
    auto list = byKey(lists[user]);
    CHECK(list.size() == h.tokens.size());
    for (const auto& [key, t] : h.tokens) {
      REQUIRE_MESSAGE(list.count(key), key);
      CHECK_MESSAGE(list[key]["status"] == t.status, key);
      CHECK(list[key].value("replaced_by", "") == t.replacedBy);
    }
  }
  c.stopAll();
}

TEST_CASE("two replicas deactivate all of a user's tokens at the same moment, beside toggles") {
  Cluster c("bulkrace");
  Daemon& a = c.start("a");
  Daemon& b = c.start("b");
  // 1,100 tokens (three batches each way), created through both replicas; one token
  // of another user, which neither call may touch.
  std::vector<std::pair<std::string, std::string>> made;  // key, secret
  std::mutex mutex;
  std::vector<std::thread> creators;
  for (int t = 0; t < 8; ++t)
    creators.emplace_back([&, t] {
      Daemon& d = t % 2 ? b : a;
      for (int i = t; i < 1100; i += 8) {
        auto r = post(d, "/v1/users/bulk/tokens", R"({"description":"many"})");
        REQUIRE_MESSAGE(r.status == 201, r.body);
        std::lock_guard lock(mutex);
        made.emplace_back(r.json()["key"], r.json()["token"]);
      }
    });
  for (auto& t : creators) t.join();
  auto other = post(a, "/v1/users/bulk-other/tokens", R"({"description":"bystander"})").json();
  REQUIRE(caughtUp(a, c.end()));
  REQUIRE(caughtUp(b, c.end()));

  // Both replicas get the same bulk deactivation at once, while a third client
  // activates tokens and deactivates them again, each command racing the batches.
  std::array<Response, 2> results;
  std::barrier sync(3);
  auto bulk = [&](Daemon& d, int s) {
    sync.arrive_and_wait();
    results[s] = post(d, "/v1/users/bulk/tokens/deactivate", R"({"reason":"compromised"})");
  };
  std::thread ta(bulk, std::ref(a), 0), tb(bulk, std::ref(b), 1);
  int toggles = 0;
  sync.arrive_and_wait();
  for (size_t i = 0; i < made.size() && toggles < 60; i += 17, ++toggles) {
    post(i % 2 ? a : b, tokenPath("bulk", made[i].first, "deactivate"));
    post(i % 2 ? b : a, tokenPath("bulk", made[i].first, "activate"));
  }
  ta.join();
  tb.join();

  // Both answered 200, or one 409 conflict after its walks (the other then won).
  int ok = 0;
  size_t deactivated = 0;
  for (const auto& r : results) {
    CHECK_MESSAGE((r.status == 200 || errorCode(r) == "conflict"), r.body);
    if (r.status != 200) continue;
    ++ok;
    deactivated += r.json()["deactivated"].get<size_t>();
  }
  CHECK(ok >= 1);
  MESSAGE("two bulk calls deactivated ", deactivated, " tokens between them (", made.size(),
          " made, ", toggles, " toggled meanwhile)");
  // No token counted twice: each deactivation that applied is one event.
  CHECK(deactivated <= made.size() + static_cast<size_t>(toggles));
  // A third call puts an end to what the toggles reactivated after both walks.
  auto last = post(a, "/v1/users/bulk/tokens/deactivate", R"({"reason":"compromised"})");
  REQUIRE_MESSAGE(last.status == 200, last.body);
  REQUIRE(caughtUp(a, c.end()));
  REQUIRE(caughtUp(b, c.end()));
  for (const auto& [key, secret] : made) {
    CHECK_MESSAGE(verify(a, key, secret).status == 401, key);
    CHECK_MESSAGE(verify(b, key, secret).status == 401, key);
  }
  CHECK(verify(a, other["key"], other["token"]).status == 200);
  CHECK(verify(b, other["key"], other["token"]).status == 200);
  CHECK(listOf(a, "bulk") == listOf(b, "bulk"));
  c.stopAll();
}

TEST_CASE("forged, uncertified and replayed records change nothing and are reported") {
  Cluster c("forged");
  Daemon& a = c.start("a");
  Daemon& b = c.start("b");
  const std::string user = "victor";
  auto create = [&](const std::string& description) {
    auto r = post(a, "/v1/users/" + user + "/tokens", json{{"description", description}}.dump());
    REQUIRE_MESSAGE(r.status == 201, r.body);
    return r.json();
  };
  json t1 = create("genuine one"), t2 = create("genuine two");
  auto off = post(a, tokenPath(user, t2["key"], "deactivate"));
  REQUIRE(off.status == 200);
  auto on = post(a, tokenPath(user, t2["key"], "activate"));
  REQUIRE(on.status == 200);
  REQUIRE(caughtUp(b, c.end()));

  // The genuine records to copy byte for byte: t2's creation and deactivation.
  std::string createdCopy, deactivatedCopy;
  int32_t partition = -1;
  for (const auto& rec : c.records()) {
    if (toString(rec.position) == t2["position"].get<std::string>()) createdCopy = rec.value;
    if (toString(rec.position) == off.json()["position"].get<std::string>()) {
      deactivatedCopy = rec.value;
      partition = rec.position.partition.value;
    }
  }
  REQUIRE(!createdCopy.empty());
  REQUIRE(!deactivatedCopy.empty());

  auto now = [] {
    return std::chrono::time_point_cast<std::chrono::microseconds>(
        std::chrono::system_clock::now());
  };
  // A well-formed creation of `key` with the test's own secret.
  auto forgedCreated = [&](const std::string& key, const std::string& secret) {
    Event e;
    e.eventId = randomBytes(16);
    e.tokenKey = key;
    e.owner = user;
    e.actor = "mallory";
    e.requestId = "forged";
    e.occurredAt = now();
    Created body;
    body.description = "minted by mallory";
    body.secretHash = hashSecret(secret);
    e.body = body;
    return e;
  };
  struct Forgery {
    std::string what, position, key, secret;
  };
  std::vector<Forgery> forgeries;
  // Written with kcat, as anyone who can write to the topic could: one file, one
  // message, keyed by the owner, into the owner's partition. Nothing else writes
  // to the topic meanwhile, so the record lands at the partition's end.
  int files = 0;
  auto kcatAppend = [&](const std::string& bytes) {
    const Partition p{partition};
    NextOffset before = c.end().of(p);
    std::string file = c.root + "/forged-" + std::to_string(files++) + ".bin";
    {
      std::ofstream out(file, std::ios::binary);
      out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    }
    auto r = runCmd("kcat -P -b " + brokers() + " -t " + c.topic + " -p " +
                    std::to_string(partition) + " -k " + user + " " + file);
    REQUIRE_MESSAGE(r.status == 0, r.err);
    REQUIRE(eventually([&] { return before < c.end().of(p); }));
    return toString(Position{p, before.first()});
  };
  auto append = [&](const std::string& what, const std::string& bytes, const std::string& key = "",
                    const std::string& secret = "") {
    forgeries.push_back({what, kcatAppend(bytes), key, secret});
  };

  // (1) Unsigned.
  std::string k1 = generateTokenKey(), s1 = generateSecret();
  append("unsigned", encodeEvent(forgedCreated(k1, s1)), k1, s1);
  // (2) Signed by a fresh key that no root certified.
  std::string k2 = generateTokenKey(), s2 = generateSecret();
  {
    Event e = forgedCreated(k2, s2);
    e.writerSeq = 1;
    signEvent(e, SigningKey::generate());
    append("uncertified key", encodeEvent(e), k2, s2);
  }
  // (3) Genuine records copied again: t2's creation and its deactivation (t2 was
  // activated since; the replay must not deactivate it again).
  append("replayed created", createdCopy);
  append("replayed deactivated", deactivatedCopy);
  // (4) A certificate by another root, for a key that then signs a creation.
  std::string k4 = generateTokenKey(), s4 = generateSecret();
  {
    SigningKey otherRoot = SigningKey::generate(), writer = SigningKey::generate();
    Event cert;
    cert.eventId = randomBytes(16);
    cert.actor = "writer " + writer.keyId();
    cert.occurredAt = now();
    cert.body = certifyWriter(otherRoot, writer.publicKey(), now().time_since_epoch().count());
    forgeries.push_back({"certificate by another root", kcatAppend(encodeEvent(cert)), "", ""});
    Event e = forgedCreated(k4, s4);
    e.writerSeq = 1;
    signEvent(e, writer);
    append("key certified by another root", encodeEvent(e), k4, s4);
  }
  Offsets end = c.end();
  REQUIRE(caughtUp(a, end));
  REQUIRE(caughtUp(b, end));

  for (Daemon* d : {&a, &b}) {
    // Verify answers as before: the forged keys are unknown, t2 is still active.
    for (const auto& f : forgeries) {
      if (f.key.empty()) continue;
      auto v = verify(*d, f.key, f.secret);
      CHECK_MESSAGE(v.status == 401, f.what);
      CHECK_MESSAGE(v.json()["reason"] == "unknown", f.what << ": " << v.body);
    }
    CHECK(verify(*d, t1["key"], t1["token"]).status == 200);
    CHECK(verify(*d, t2["key"], t2["token"]).status == 200);
    // Nothing forged is listed; t2's history has its three genuine events only.
    std::set<std::string> listed;
    for (const auto& t : listOf(*d, user)) listed.insert(t["key"].get<std::string>());
    CHECK(listed ==
          std::set<std::string>{t1["key"].get<std::string>(), t2["key"].get<std::string>()});
    CHECK(historyOf(*d, user, t2["key"])["events"].size() == 3);
    // Each is reported on stderr with its position and why.
    std::string err = d->stderrText();
    for (const auto& f : forgeries) {
      std::string why = f.what.starts_with("replayed") ? ": duplicate" : ": untrusted";
      CHECK_MESSAGE(contains(err, "skipped event at " + f.position + why),
                    f.what << " at " << f.position << " not reported as" << why << "; stderr:\n"
                           << err);
    }
    // Counted since the start in GET /readyz: the four untrusted records (the
    // foreign certificate among them) and the two copies.
    json ready = d->call("GET", "/readyz").json();
    REQUIRE_MESSAGE(ready.contains("events"), ready.dump());
    CHECK_MESSAGE(ready["events"]["untrusted"] == 4, ready.dump());
    CHECK_MESSAGE(ready["events"]["duplicates"] == 2, ready.dump());
  }

  // ledger-audit verify-log names every one of them.
  auto v = c.audit("verify-log");
  CHECK(v.status == 1);
  for (const auto& f : forgeries)
    CHECK_MESSAGE(contains(v.out, "\n" + f.position + "  "), f.what << " at " << f.position
                                                                    << " not named:\n"
                                                                    << v.out);
  c.stopAll();
}

TEST_CASE("Idempotency-Key across replicas, and across a broker that stops answering") {
  Cluster c("idem");
  Daemon& a = c.start("a");
  Daemon& b = c.start("b");
  const std::string user = "ida", path = "/v1/users/ida/tokens";
  const std::string body = R"({"description":"once only"})";

  auto first = post(a, path, body, "k1");
  REQUIRE_MESSAGE(first.status == 201, first.body);
  json created = first.json();
  CHECK(created.contains("token"));
  auto again = post(b, path, body, "k1");
  CHECK_MESSAGE(again.status == 200, again.body);
  json replay = again.json();
  CHECK(replay["replayed"] == true);
  CHECK(replay["key"] == created["key"]);
  CHECK(!replay.contains("token"));
  auto reused = post(b, path, R"({"description":"something else"})", "k1");
  CHECK(reused.status == 422);
  CHECK(errorCode(reused) == "idempotency_key_reused");
  auto invalid = post(b, path, body, std::string(300, 'x'));
  CHECK(invalid.status == 400);
  CHECK(errorCode(invalid) == "invalid_idempotency_key");

  auto rot = post(a, tokenPath(user, created["key"], "rotate"), "", "rot-1");
  REQUIRE_MESSAGE(rot.status == 200, rot.body);
  CHECK(rot.json().contains("token"));
  auto rotAgain = post(b, tokenPath(user, created["key"], "rotate"), "", "rot-1");
  CHECK_MESSAGE(rotAgain.status == 200, rotAgain.body);
  CHECK(rotAgain.json()["key"] == rot.json()["key"]);
  CHECK(rotAgain.json()["replayed"] == true);
  CHECK(!rotAgain.json().contains("token"));
  CHECK(verify(b, rot.json()["key"], rot.json()["token"]).status == 200);

  // The broker stops answering while A creates with k2: 503 after A's append
  // timeout (10 s), whether or not the record reached the broker. Retried through B
  // once the broker is back: in the end there is exactly one token for k2.
  const std::string body2 = R"({"description":"through an outage"})";
  {
    PausedBroker paused;
    auto start = std::chrono::steady_clock::now();
    auto during = post(a, path, body2, "k2");
    auto took = std::chrono::steady_clock::now() - start;
    CHECK_MESSAGE(during.status == 503, during.body);
    CHECK(errorCode(during) == "log_unavailable");
    CHECK(took < std::chrono::seconds(20));
    paused.resume();
  }
  Response retried;
  CHECK(eventually(
      [&] {
        retried = post(b, path, body2, "k2");
        return retried.status == 200 || retried.status == 201;
      },
      60000));
  MESSAGE("retry of k2 through B answered ", retried.status, " ", retried.body);
  REQUIRE((retried.status == 200 || retried.status == 201));
  // A works again without a restart, and says the same.
  Response onA;
  CHECK(eventually(
      [&] {
        onA = post(a, path, body2, "k2");
        return onA.status == 200;
      },
      60000));
  CHECK(onA.json()["key"] == retried.json()["key"]);
  Offsets end = c.end();
  for (Daemon* d : {&a, &b}) {
    REQUIRE(caughtUp(*d, end, 30000));
    int withK2 = 0, described = 0;
    for (const auto& t : listOf(*d, user)) {
      withK2 += t.value("idempotency_key", "") == "k2";
      described += t["description"] == "through an outage";
    }
    CHECK(withK2 == 1);
    CHECK(described == 1);
  }
  c.stopAll();
}

TEST_CASE("a Kafka replica refuses to start without trust, and says what to do") {
  Cluster c("notrust");
  std::string base = kBinary + " --listen 127.0.0.1:0 --log kafka --kafka-brokers " + brokers() +
                     " --topic " + c.topic + " --data-dir " + c.root;
  // No root at all: how to make one, hand it out and certify this writer.
  auto none = runCmd(base + "/none");
  CHECK(none.status == 1);
  CHECK_MESSAGE(contains(none.err, "ledger-audit keys new-root"), none.err);
  CHECK(contains(none.err, "--trust-root"));
  CHECK(contains(none.err, "ledger-audit keys certify"));
  CHECK(contains(none.err, c.trust.writerKeyLine(c.root + "/none")));
  // A root, but this writer is not certified.
  auto uncertified = runCmd(base + "/uncertified --trust-root " + c.trust.pub());
  CHECK(uncertified.status == 1);
  CHECK_MESSAGE(contains(uncertified.err, "not certified"), uncertified.err);
  CHECK(contains(uncertified.err, "ledger-audit keys certify"));
  // Certified by another root than the one it trusts.
  TrustRoot other(c.root + "/other");
  other.certify(c.root + "/foreign");
  auto foreign = runCmd(base + "/foreign --trust-root " + c.trust.pub());
  CHECK(foreign.status == 1);
  CHECK_MESSAGE(contains(foreign.err, "does not trust"), foreign.err);
}
