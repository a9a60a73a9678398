// Failover on a real 3-node Kafka cluster (scripts/kafka.sh start --nodes 3, the
// `kafka_cluster` fixture of CMakeLists.txt: every node a KRaft controller and a
// broker, topics with 3 replicas and min.insync.replicas=2). Nodes are killed with
// SIGKILL and restarted under real daemons; every acknowledged response is recorded
// with its key and state, then checked against every replica, a fresh rebuild and
// ledger-audit:
//   - the broker that leads the most partitions dies under load;
//   - two brokers down (below min.insync.replicas), then back;
//   - a replica restarted while a broker is down catches up once it returns.
// Each test prints its figures (FIGURES lines): acknowledged, lost, the longest
// stall, the time until creates resumed.
#include <doctest/doctest.h>

#include <atomic>
#include <mutex>
#include <random>
#include <regex>
#include <set>
#include <thread>

#include "projections/read_model.h"
#include "tests/integration/replica_cluster.h"

using namespace tltest;
using namespace tokenledger;
using nlohmann::json;
namespace fs = std::filesystem;
using Steady = std::chrono::steady_clock;

namespace {

double msSince(Steady::time_point t0, Steady::time_point t = Steady::now()) {
  return std::chrono::duration<double, std::milli>(t - t0).count();
}

// The nodes of the fixture's cluster. Whatever a test kills is started again when
// it ends, so the next test has all three.
struct Nodes {
  std::string script = kSource + "/scripts/kafka.sh", dir = env("KAFKA_CLUSTER_DIR");
  std::set<int> down;

  void kill(int node) {
    auto r = runCmd("bash " + script + " stop --dir " + dir + " --node " + std::to_string(node) +
                    " --kill");
    REQUIRE_MESSAGE(r.status == 0, r.out << r.err);
    down.insert(node);
  }
  void start(int node) {
    auto r = runCmd("bash " + script + " start --dir " + dir + " --node " + std::to_string(node));
    REQUIRE_MESSAGE(r.status == 0, r.out << r.err);
    down.erase(node);
  }
  ~Nodes() {
    for (int n : std::set<int>(down)) {
      auto r = runCmd("bash " + script + " start --dir " + dir + " --node " + std::to_string(n));
      if (r.status != 0) MESSAGE("could not restart node ", n, ": ", r.out, r.err);
    }
  }

  // partition -> leader node of `topic`, from kcat (-1: none).
  std::map<int, int> leaders(const std::string& topic) const {
    auto r = runCmd("kcat -b " + brokers() + " -m 10 -L -t " + topic);
    REQUIRE_MESSAGE(r.status == 0, r.out << r.err);
    std::map<int, int> out;
    static const std::regex line(R"(partition (\d+), leader (-?\d+),)");
    for (std::sregex_iterator it(r.out.begin(), r.out.end(), line), end; it != end; ++it)
      out[std::stoi((*it)[1])] = std::stoi((*it)[2]);
    return out;
  }
};

// What a command answered, when, and about which token.
struct Outcome {
  std::string what;  // "create" or "deactivate"
  std::string user, key, token, position;
  int status = 0;
  std::string code;      // the error code of a non-2xx answer
  bool unknown = false;  // a 503 whose outcome is unknown
  double sentMs = 0, latencyMs = 0;
};

// Creates and deactivations from `clients` threads through the replicas given,
// round robin, until stopped; every answer is recorded.
class Load {
 public:
  Load(std::vector<Daemon*> replicas, std::vector<json> toDeactivate, int clients,
       Steady::time_point t0)
      : replicas_(std::move(replicas)), pool_(std::move(toDeactivate)), t0_(t0) {
    for (int i = 0; i < clients; ++i) threads_.emplace_back([this, i] { run(i); });
  }
  ~Load() { stop(); }

  void stop() {
    stopping_ = true;
    for (auto& t : threads_)
      if (t.joinable()) t.join();
  }
  std::vector<Outcome> outcomes() {
    std::lock_guard lock(mutex_);
    return outcomes_;
  }

 private:
  void run(int client) {
    std::mt19937 rng(static_cast<unsigned>(client) * 7919u + 17u);
    for (int n = 0; !stopping_; ++n) {
      Daemon& d = *replicas_[static_cast<size_t>(client + n) % replicas_.size()];
      Outcome o;
      json victim;
      if (rng() % 4 == 0) {
        std::lock_guard lock(mutex_);
        if (!pool_.empty()) {
          victim = pool_.back();
          pool_.pop_back();
        }
      }
      o.sentMs = msSince(t0_);
      auto sent = Steady::now();
      Response r;
      try {
        if (!victim.is_null()) {
          o.what = "deactivate";
          o.user = victim["owner"];
          o.key = victim["key"];
          o.token = victim["token"];
          r = post(d, tokenPath(o.user, o.key, "deactivate"), "{}");
        } else {
          o.what = "create";
          o.user = "fo-u" + std::to_string(rng() % 48);
          r = post(d, "/v1/users/" + o.user + "/tokens", R"({"description":"under failover"})");
        }
      } catch (const std::exception& e) {
        r.status = 0;
        r.body = e.what();
      }
      o.latencyMs = msSince(sent);
      o.status = r.status;
      if (r.status == 200 || r.status == 201) {
        json j = r.json();
        o.position = j.value("position", "");
        if (o.what == "create") {
          o.key = j["key"];
          o.token = j["token"];
        }
      } else {
        o.code = errorCode(r);
        o.unknown = r.body.find("outcome is unknown") != std::string::npos;
        if (o.status != 503) MESSAGE(o.what, " answered ", r.status, ": ", r.body);
      }
      std::lock_guard lock(mutex_);
      outcomes_.push_back(std::move(o));
    }
  }

  std::vector<Daemon*> replicas_;
  std::vector<json> pool_;
  Steady::time_point t0_;
  std::atomic<bool> stopping_{false};
  std::mutex mutex_;
  std::vector<Outcome> outcomes_;
  std::vector<std::thread> threads_;
};

// Verifies one token over and over through each replica, until stopped: every
// answer must be 200; records the slowest.
class Verifier {
 public:
  Verifier(std::vector<Daemon*> replicas, json token) : replicas_(std::move(replicas)) {
    thread_ = std::thread([this, token] {
      for (size_t n = 0; !stopping_; ++n) {
        auto start = Steady::now();
        int status = 0;
        try {
          status = verify(*replicas_[n % replicas_.size()], token["key"], token["token"]).status;
        } catch (const std::exception&) {
        }
        double ms = msSince(start);
        answered++;
        if (status != 200) failed++;
        slowestMs = std::max(slowestMs.load(), ms);
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      }
    });
  }
  ~Verifier() { stop(); }
  void stop() {
    stopping_ = true;
    if (thread_.joinable()) thread_.join();
  }
  std::atomic<int> answered{0}, failed{0};
  std::atomic<double> slowestMs{0};

 private:
  std::vector<Daemon*> replicas_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

bool running(const Daemon& d) {
  return d.pid() > 0 && ::kill(d.pid(), 0) == 0;
}

// Every acknowledged create verifies and every acknowledged deactivation holds, on
// each replica given; returns how many acknowledged changes were lost.
int lostOn(Daemon& d, const std::vector<Outcome>& outcomes) {
  int lost = 0;
  for (const auto& o : outcomes) {
    if (o.status != 200 && o.status != 201) continue;
    int want = o.what == "create" ? 200 : 401;
    int got = verify(d, o.key, o.token).status;
    if (got != want) {
      ++lost;
      if (lost <= 5) MESSAGE(o.what, " of ", o.key, " at ", o.position, ": verify ", got);
    }
  }
  return lost;
}

// The same tokens with the same state for every user, on every replica given.
void sameLists(std::vector<Daemon*> replicas, const std::set<std::string>& users) {
  for (const auto& user : users) {
    std::map<std::string, std::string> first;
    for (size_t i = 0; i < replicas.size(); ++i) {
      std::map<std::string, std::string> states;
      for (const auto& t : listOf(*replicas[i], user))
        states[t["key"].get<std::string>()] = t["status"].get<std::string>();
      if (i == 0)
        first = states;
      else
        CHECK_MESSAGE(states == first, user << ": replica " << i << " differs from replica 0");
    }
  }
}

// ledger-audit verify-log passes, or names only missing writer sequence numbers,
// no more than the commands that answered with an unknown outcome.
void verifyLogPasses(const Cluster& c, int unknownOutcomes) {
  auto v = c.audit("verify-log");
  if (v.status == 0) return;
  int missing = 0;
  static const std::regex finding(R"(^(\d+:\d+|-)  [a-z]+: )");  // "P:O  kind: message"
  for (const auto& line : lines(v.out)) {
    if (!std::regex_search(line, finding)) continue;  // the summary lines
    bool isMissing = line.find("  missing: writer ") != std::string::npos;
    CHECK_MESSAGE(isMissing, "verify-log: " << line);
    missing += isMissing;
  }
  CHECK_MESSAGE(missing > 0, v.out);
  CHECK_MESSAGE(missing <= unknownOutcomes, v.out);
}

struct Figures {
  int acknowledged = 0, refused = 0, unknown = 0, other = 0;
  int slow = 0;               // answers that took over a second
  double longestStallMs = 0;  // the slowest answer to any command
  double slowestSentMs = 0;   // when it was sent
};
Figures figuresOf(const std::vector<Outcome>& outcomes) {
  Figures f;
  for (const auto& o : outcomes) {
    if (o.status == 200 || o.status == 201)
      f.acknowledged++;
    else if (o.status == 503)
      (o.unknown ? f.unknown : f.refused)++;
    else
      f.other++;
    f.slow += o.latencyMs > 1000;
    if (o.latencyMs > f.longestStallMs) {
      f.longestStallMs = o.latencyMs;
      f.slowestSentMs = o.sentMs;
    }
  }
  return f;
}

std::vector<std::string> replicaArgs() {
  return {"--replication-factor", "3"};
}

}  // namespace

TEST_CASE("the broker leading the most partitions dies under load: nothing acknowledged is lost") {
  Nodes nodes;
  Cluster c("failover");
  c.extraArgs = replicaArgs();
  Daemon& a = c.start("a");
  Daemon& b = c.start("b");
  pid_t pidA = a.pid(), pidB = b.pid();

  // Tokens to deactivate under load, and one that verifies throughout.
  std::vector<json> pool;
  for (int i = 0; i < 300; ++i) {
    auto r = post(i % 2 ? a : b, "/v1/users/fo-d" + std::to_string(i % 24) + "/tokens",
                  R"({"description":"to deactivate"})");
    REQUIRE_MESSAGE(r.status == 201, r.body);
    pool.push_back(r.json());
  }
  auto sentinel = post(a, "/v1/users/fo-sentinel/tokens", R"({"description":"always valid"})");
  REQUIRE(sentinel.status == 201);
  REQUIRE(caughtUp(a, c.end()));
  REQUIRE(caughtUp(b, c.end()));

  auto t0 = Steady::now();
  Verifier verifier({&a, &b}, sentinel.json());
  Load load({&a, &b}, pool, 16, t0);
  std::this_thread::sleep_for(std::chrono::seconds(4));
  std::map<int, int> partitionsOf;  // node -> partitions it leads
  auto leaders = nodes.leaders(c.topic);
  for (auto [p, leader] : leaders) partitionsOf[leader]++;
  int victim = std::max_element(partitionsOf.begin(), partitionsOf.end(), [](auto x, auto y) {
                 return x.second < y.second;
               })->first;
  std::set<int> victimPartitions;
  for (auto [p, leader] : leaders)
    if (leader == victim) victimPartitions.insert(p);
  nodes.kill(victim);
  double killMs = msSince(t0);  // the script returns once the process is gone
  std::this_thread::sleep_for(std::chrono::seconds(16));
  load.stop();
  verifier.stop();
  auto outcomes = load.outcomes();
  Figures f = figuresOf(outcomes);

  // Creates resumed on the dead leader's partitions: the first one acknowledged there
  // among the commands sent after the kill.
  double resumeMs = -1;
  for (const auto& o : outcomes) {
    auto p = parsePosition(o.position);
    if (o.what != "create" || o.status != 201 || o.sentMs < killMs || !p ||
        !victimPartitions.count(p->partition.value))
      continue;
    double at = o.sentMs + o.latencyMs - killMs;
    if (resumeMs < 0 || at < resumeMs) resumeMs = at;
  }

  // Both daemons ran throughout: no restart.
  CHECK(running(a));
  CHECK(running(b));
  CHECK(a.pid() == pidA);
  CHECK(b.pid() == pidB);
  CHECK_MESSAGE(verifier.failed == 0, verifier.failed << " of " << verifier.answered);
  CHECK(verifier.answered > 100);
  CHECK_MESSAGE(verifier.slowestMs < 1000, "slowest verify " << verifier.slowestMs << " ms");
  CHECK(f.other == 0);
  CHECK(f.acknowledged > 200);
  CHECK(f.unknown == 0);
  CHECK(f.refused == 0);
  // A command waits at most for the new leader (the session timeout, 3 s here, plus
  // the election), well inside the append timeout: none answered "unknown".
  CHECK_MESSAGE(resumeMs >= 0, "no create acknowledged on the dead leader's partitions");
  CHECK_MESSAGE(resumeMs < 10000, "creates resumed after " << resumeMs << " ms");
  CHECK_MESSAGE(f.longestStallMs < 10000, "longest stall " << f.longestStallMs << " ms");

  // The node comes back; both replicas and a fresh one agree, and nothing
  // acknowledged is lost on any of them.
  nodes.start(victim);
  Offsets end = c.end();
  REQUIRE(caughtUp(a, end, 60000));
  REQUIRE(caughtUp(b, end, 60000));
  Daemon& fresh = c.start("fresh");
  REQUIRE(caughtUp(fresh, end, 60000));
  int lost = 0;
  for (Daemon* d : {&a, &b, &fresh}) lost += lostOn(*d, outcomes);
  CHECK(lost == 0);
  std::set<std::string> users{"fo-sentinel"};
  for (const auto& o : outcomes) users.insert(o.user);
  sameLists({&a, &b, &fresh}, users);
  verifyLogPasses(c, f.unknown);
  std::string leadersAfter;
  for (auto [p, leader] : nodes.leaders(c.topic))
    leadersAfter += " " + std::to_string(p) + ":" + std::to_string(leader);
  MESSAGE("FIGURES leader-dies: node ", victim, " led ", victimPartitions.size(),
          " of 6 partitions (partition:leader after:", leadersAfter, "); commands answered ",
          outcomes.size(), ", acknowledged ", f.acknowledged, ", lost ", lost,
          ", 503 nothing recorded ", f.refused, ", 503 outcome unknown ", f.unknown,
          "; longest stall ", f.longestStallMs, " ms (sent ", f.slowestSentMs - killMs,
          " ms after the kill), ", f.slow, " commands over 1 s; creates resumed ", resumeMs,
          " ms after the kill; verifications ", verifier.answered.load(), ", slowest ",
          verifier.slowestMs.load(), " ms");
  c.stopAll();

  // Byte for byte: the two replicas, the one started afterwards, and a rebuild.
  auto r = runCmd(kBinary + " --rebuild --data-dir " + c.root + "/rebuilt --log kafka " +
                  "--kafka-brokers " + brokers() + " --topic " + c.topic + " --trust-root " +
                  c.trust.pub());
  REQUIRE_MESSAGE(r.status == 0, r.out << r.err);
  ReadModelOptions options;
  options.trust = c.trust.policy();
  auto dumpOf = [&](const std::string& label) {
    return openReadModel(c.root + "/" + label + "/projection", options)->dump();
  };
  std::string rebuilt = dumpOf("rebuilt");
  for (const char* label : {"a", "b", "fresh"})
    CHECK_MESSAGE(dumpOf(label) == rebuilt, label << " differs from the rebuild");
}

TEST_CASE("two brokers down: commands refused fast with 503, verify answers; back: commands work") {
  Nodes nodes;
  Cluster c("belowisr");
  c.extraArgs = replicaArgs();
  Daemon& a = c.start("a");
  std::vector<json> before;
  for (int i = 0; i < 30; ++i) {
    auto r = post(a, "/v1/users/isr-u" + std::to_string(i % 6) + "/tokens",
                  R"({"description":"before"})");
    REQUIRE_MESSAGE(r.status == 201, r.body);
    before.push_back(r.json());
  }
  nodes.kill(2);
  auto down = Steady::now();  // the second kill starts: SIGKILL within ~0.1 s
  nodes.kill(3);
  // Once the daemon sees that one broker cannot satisfy min.insync.replicas=2 (its
  // client's broker states, refreshed every second), commands are refused at once.
  // A command every 100 ms for 5 s, each on its own connection: the ones sent in
  // that first second wait out the append timeout, the later ones do not.
  struct Probe {
    double sentMs = 0, latencyMs = 0;
    Response r;
  };
  std::vector<Probe> probes(50);
  std::vector<std::thread> probeThreads;
  for (size_t i = 0; i < probes.size(); ++i) {
    probeThreads.emplace_back([&, i] {
      probes[i].sentMs = msSince(down);
      auto sent = Steady::now();
      probes[i].r = post(a, "/v1/users/isr-u" + std::to_string(i % 6) + "/tokens",
                         R"({"description":"during"})");
      probes[i].latencyMs = msSince(sent);
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  for (auto& t : probeThreads) t.join();
  int unknown = 0;
  for (const auto& p : probes) {
    CHECK_MESSAGE(p.r.status == 503, p.r.body);
    CHECK(errorCode(p.r) == "log_unavailable");
    unknown += p.r.body.find("outcome is unknown") != std::string::npos;
  }
  double fastFromMs = -1;  // sent time of the first of the refusals that all came at once
  for (auto it = probes.rbegin(); it != probes.rend(); ++it) {
    bool fast = it->latencyMs < 100 && it->r.body.find("nothing was recorded") != std::string::npos;
    if (!fast) break;
    fastFromMs = it->sentMs;
  }
  CHECK_MESSAGE(fastFromMs >= 0, "commands never refused fast");
  CHECK_MESSAGE(fastFromMs < 3000, "refused fast only from " << fastFromMs << " ms");
  double slowestProbe = 0;
  for (const auto& p : probes) slowestProbe = std::max(slowestProbe, p.latencyMs);
  // From then on, every command is refused at once, saying why.
  double slowest = 0;
  std::string refusal;
  for (int i = 0; i < 50; ++i) {
    auto sent = Steady::now();
    auto r = post(a, "/v1/users/isr-u" + std::to_string(i % 6) + "/tokens",
                  R"({"description":"refused"})");
    slowest = std::max(slowest, msSince(sent));
    CHECK(r.status == 503);
    CHECK_MESSAGE(r.body.find(" of 3 Kafka brokers are reachable and the topic needs 2 in sync "
                              "(min.insync.replicas) on Kafka topic " +
                              c.topic) != std::string::npos,
                  r.body);
    if (i == 0) refusal = r.json()["error"]["message"];
  }
  CHECK_MESSAGE(slowest < 500, "slowest refusal " << slowest << " ms");
  for (const auto& t : before) CHECK(verify(a, t["key"], t["token"]).status == 200);

  nodes.start(2);
  nodes.start(3);
  auto back = Steady::now();
  Response again;
  CHECK(eventually(
      [&] {
        again = post(a, "/v1/users/isr-u1/tokens", R"({"description":"after"})");
        return again.status == 201;
      },
      60000));
  double resumedMs = msSince(back);
  CHECK(verify(a, again.json()["key"], again.json()["token"]).status == 200);
  for (const auto& t : before) CHECK(verify(a, t["key"], t["token"]).status == 200);
  verifyLogPasses(c, unknown);
  MESSAGE("FIGURES below-min-insync: every command sent from ", fastFromMs,
          " ms after the second kill began was refused at once (a command every 100 ms for 5 s; "
          "the slowest answer ",
          slowestProbe, " ms, ", unknown, " with an unknown outcome); then 50 refusals, slowest ",
          slowest, " ms; creates resumed ", resumedMs,
          " ms after both brokers answered again; lost 0 of ", before.size(),
          "; refusal: ", refusal);
  c.stopAll();
}

TEST_CASE("a replica restarted while a broker is down catches up once the broker returns") {
  Nodes nodes;
  Cluster c("rejoin");
  c.extraArgs = replicaArgs();
  Daemon& a = c.start("a");
  c.start("b");
  std::vector<json> tokens;
  auto create = [&](Daemon& d, const std::string& what) {
    for (int i = 0; i < 40; ++i) {
      auto r = post(d, "/v1/users/rj-u" + std::to_string(i % 8) + "/tokens",
                    R"({"description":")" + what + R"("})");
      REQUIRE_MESSAGE(r.status == 201, r.body);
      tokens.push_back(r.json());
    }
  };
  create(a, "before");
  REQUIRE(caughtUp(c["b"], c.end()));
  CHECK(c["b"].terminate() == 0);

  nodes.kill(1);
  // Writes go on through A on the two nodes left (after the new leaders' election).
  auto killed = Steady::now();
  Response r;
  CHECK(eventually(
      [&] {
        r = post(a, "/v1/users/rj-u0/tokens", R"({"description":"while down"})");
        return r.status == 201;
      },
      30000));
  tokens.push_back(r.json());
  double writableMs = msSince(killed);
  create(a, "while down");
  c.replicas.erase("b");
  Daemon& b = c.start("b");  // restarts on its data while node 1 is still down
  CHECK(caughtUp(b, c.end(), 60000));
  nodes.start(1);
  create(b, "after");
  Offsets end = c.end();
  REQUIRE(caughtUp(a, end, 60000));
  REQUIRE(caughtUp(b, end, 60000));
  int lost = 0;
  for (const auto& t : tokens)
    for (Daemon* d : {&a, &b}) lost += verify(*d, t["key"], t["token"]).status != 200;
  CHECK(lost == 0);
  std::set<std::string> users;
  for (int i = 0; i < 8; ++i) users.insert("rj-u" + std::to_string(i));
  sameLists({&a, &b}, users);
  // Node 1 is back in every partition's in-sync replicas.
  CHECK(eventually(
      [&] {
        auto out = runCmd("kcat -b " + brokers() + " -m 10 -L -t " + c.topic).out;
        return std::count(out.begin(), out.end(), '\n') > 0 &&
               out.find("isrs: ") != std::string::npos &&
               std::regex_search(out, std::regex(R"(isrs: (\d,)*1(,\d)*\n)")) &&
               !std::regex_search(out, std::regex(R"(isrs: [23](,[23])?\n)"));
      },
      60000));
  MESSAGE("FIGURES rejoin: writes through the survivors ", writableMs,
          " ms after node 1 died; replica restarted during the outage caught up; lost ", lost,
          " of ", tokens.size() * 2, " checks");
  c.stopAll();
}
