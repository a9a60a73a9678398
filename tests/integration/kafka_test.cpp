// Kafka as the event log, against a real broker (scripts/kafka.sh, fixture in
// CMakeLists.txt): the EventLog contract, the daemon in Kafka mode, replicas and
// consistency tokens, faults, migration, and what other consumers see on the topic.
#include <doctest/doctest.h>
#include <librdkafka/rdkafka.h>

#include <atomic>
#include <mutex>
#include <set>

#include "events/event.h"
#include "events/kafka_log.h"
#include "projections/read_model.h"
#include "tests/integration/kafka_trust.h"
#include "tests/service/daemon_process.h"
#include "tests/unit/event_log_contract.h"
#include "tests/unit/future_event.h"

using namespace tltest;
using namespace tokenledger;
using nlohmann::json;

namespace {

const std::string kBinary = TOKENLEDGERD_PATH;
const std::string kMigrate = MIGRATE_PATH;
const std::string kSource = TL_SOURCE_DIR;
const std::string kOperator = "kafka-operator-secret-0123456789";

std::string uniqueTopic(const std::string& prefix) {
  initCrypto();
  return prefix + "-" + randomBase62(8);
}

std::string run(const std::string& cmd, int* status = nullptr) {
  std::string out;
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int rc = pclose(p);
  if (status) *status = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  return out;
}

std::vector<std::string> kafkaArgs(const std::string& topic) {
  return {"--log", "kafka", "--kafka-brokers", brokers(), "--topic", topic};
}

// A Kafka daemon's flags for data dir `dir`, certified by `trust` first (a replica
// refuses to start on Kafka without a trust root: tests/integration/kafka_trust.h).
std::vector<std::string> kafkaArgs(const TrustRoot& trust, const std::string& dir,
                                   const std::string& topic) {
  return trust.daemonArgs(dir, kafkaArgs(topic));
}

struct Client {
  Daemon& d;
  std::vector<std::string> auth() const { return {"Authorization: Bearer " + kOperator}; }
  json create(const std::string& user, const std::string& description = "via kafka") {
    auto r = d.call("POST", "/v1/users/" + user + "/tokens",
                    json{{"description", description}}.dump(), auth());
    REQUIRE_MESSAGE(r.status == 201, r.body);
    return r.json();
  }
  Response post(const std::string& path, const std::string& body = "") {
    return d.call("POST", path, body, auth());
  }
  Response verify(const std::string& key, const std::string& token, const std::string& min = "") {
    std::vector<std::string> h{"Authorization: Basic " + base64(key + ":" + token)};
    if (!min.empty()) h.push_back("Tokenledger-Min-Position: " + min);
    return d.call("POST", "/v1/verify", "", h);
  }
};

// Polls `f` every 10 ms until it returns true or `ms` passed.
template <typename F>
bool eventually(F f, int ms = 10000) {
  auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (std::chrono::steady_clock::now() < end) {
    if (f()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return f();
}

// Every message of a topic, raw, read with kcat (a producer and consumer that
// knows nothing of tokenledger). %R = 4-byte big-endian payload length.
struct RawMessage {
  int partition;
  long offset;
  std::string key, value;
};
std::vector<RawMessage> kcatDump(const std::string& topic, const std::string& dir) {
  std::string file = dir + "/dump.bin";
  int status = 0;
  std::string out = run("kcat -C -b " + brokers() + " -t " + topic +
                            " -o beginning -e -q -f '%p %o %K %k%R%s' > " + file,
                        &status);
  REQUIRE_MESSAGE(status == 0, out);
  std::string data = readFile(file);
  std::vector<RawMessage> msgs;
  size_t i = 0;
  while (i < data.size()) {
    RawMessage m;
    size_t sp1 = data.find(' ', i), sp2 = data.find(' ', sp1 + 1), sp3 = data.find(' ', sp2 + 1);
    m.partition = std::stoi(data.substr(i, sp1 - i));
    m.offset = std::stol(data.substr(sp1 + 1, sp2 - sp1 - 1));
    long keyLen = std::stol(data.substr(sp2 + 1, sp3 - sp2 - 1));
    i = sp3 + 1;
    if (keyLen > 0) {
      m.key = data.substr(i, keyLen);
      i += keyLen;
    }
    uint32_t len = 0;
    for (int k = 0; k < 4; ++k) len = (len << 8) | static_cast<unsigned char>(data[i + k]);
    i += 4;
    m.value = data.substr(i, len);
    i += len;
    msgs.push_back(std::move(m));
  }
  return msgs;
}

Offsets topicEnd(const std::string& topic) {
  KafkaLogOptions o;
  o.brokers = brokers();
  o.topic = topic;
  auto log = openKafkaLog(o);
  return log->openReader(Offsets{})->endOffsets();
}

}  // namespace

TEST_CASE("kafka log satisfies the EventLog contract") {
  std::string run = randomBase62(6);
  test::runEventLogContract([run](const std::string& dir) {
    KafkaLogOptions o;
    o.brokers = brokers();
    o.topic = "contract-" + run + "-" + toHex(std::string_view(dir)).substr(dir.size() * 2 - 12);
    return openKafkaLog(o);
  });
}

TEST_CASE("a topic that compacts or expires events is refused with a fix") {
  std::string topic = uniqueTopic("compacted");
  int status = 0;
  // Create it with compaction through librdkafka's admin API, as an operator might.
  {
    char err[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", brokers().c_str(), err, sizeof err);
    rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    rd_kafka_NewTopic_t* nt = rd_kafka_NewTopic_new(topic.c_str(), 1, 1, err, sizeof err);
    rd_kafka_NewTopic_set_config(nt, "cleanup.policy", "compact");
    rd_kafka_queue_t* q = rd_kafka_queue_new(rk);
    rd_kafka_CreateTopics(rk, &nt, 1, nullptr, q);
    rd_kafka_event_t* ev = rd_kafka_queue_poll(q, 20000);
    REQUIRE(ev != nullptr);
    CHECK(rd_kafka_event_error(ev) == 0);
    rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_NewTopic_destroy(nt);
    rd_kafka_destroy(rk);
  }
  std::string root = tempDir("compact");
  TrustRoot trust(root);
  trust.certify(root + "/d");
  std::string out =
      run(kBinary + " --data-dir " + root + "/d --listen 127.0.0.1:0 --log kafka " +
              "--kafka-brokers " + brokers() + " --topic " + topic + " --trust-root " + trust.pub(),
          &status);
  CHECK(status == 1);
  CHECK(out.find("log compaction") != std::string::npos);
  CHECK(out.find("cleanup.policy=delete") != std::string::npos);  // says how to fix it
  std::filesystem::remove_all(root);
}

TEST_CASE("a topic less durable than asked for is refused with a fix") {
  std::string topic = uniqueTopic("weak");
  KafkaLogOptions o;
  o.brokers = brokers();
  o.topic = topic;
  openKafkaLog(o);  // created with the broker's defaults: 1 replica, min.insync.replicas=1
  auto refusal = [&](KafkaLogOptions asked) {
    try {
      openKafkaLog(asked);
    } catch (const std::runtime_error& e) {
      return std::string(e.what());
    }
    return std::string("(accepted)");
  };
  o.replicationFactor = 3;
  std::string why = refusal(o);
  CHECK_MESSAGE(why.find("1 replica(s) per partition, fewer than --replication-factor 3") !=
                    std::string::npos,
                why);
  CHECK_MESSAGE(why.find("kafka-reassign-partitions.sh") != std::string::npos, why);
  o.replicationFactor = -1;
  o.minInsyncReplicas = 2;
  why = refusal(o);
  CHECK_MESSAGE(why.find("min.insync.replicas=1") != std::string::npos, why);
  CHECK_MESSAGE(why.find("--add-config min.insync.replicas=2") != std::string::npos, why);
  o.minInsyncReplicas = 1;
  CHECK(refusal(o) == "(accepted)");
  // A new topic with more replicas than there are brokers: Kafka's own reason.
  o.topic = uniqueTopic("toomany");
  o.replicationFactor = 3;
  why = refusal(o);
  CHECK_MESSAGE(why.find("cannot create topic " + o.topic) != std::string::npos, why);
  CHECK_MESSAGE(why.find("3 time(s)") != std::string::npos, why);  // Kafka 4.4's words

  // The daemon says the same and exits 1; flags that contradict each other are usage
  // errors (exit 2).
  std::string root = tempDir("weak");
  TrustRoot trust(root);
  trust.certify(root + "/d");
  int status = 0;
  std::string daemon = kBinary + " --data-dir " + root + "/d --listen 127.0.0.1:0 ";
  std::string out = run(daemon + "--log kafka --kafka-brokers " + brokers() + " --topic " + topic +
                            " --trust-root " + trust.pub() + " --replication-factor 3",
                        &status);
  CHECK(status == 1);
  CHECK_MESSAGE(out.find("fewer than --replication-factor 3") != std::string::npos, out);
  out = run(daemon + "--log kafka --kafka-brokers " + brokers() +
                " --replication-factor 2 --min-insync-replicas 3",
            &status);
  CHECK(status == 2);
  CHECK_MESSAGE(out.find("every event would be refused") != std::string::npos, out);
  out = run(daemon + "--replication-factor 3", &status);
  CHECK(status == 2);
  CHECK_MESSAGE(out.find("--replication-factor needs --log kafka") != std::string::npos, out);
  std::filesystem::remove_all(root);
}

TEST_CASE("the daemon on Kafka: commands, read-your-writes, restart, and the topic contract") {
  std::string root = tempDir("kafka-daemon");
  std::string topic = uniqueTopic("events");
  TrustRoot trust(root);
  std::vector<std::string> secrets;
  std::string key;
  {
    Daemon d(kBinary, root + "/a", root, kOperator, kafkaArgs(trust, root + "/a", topic));
    Client c{d};
    json t = c.create("alice", "Receive leads");
    key = t["key"];
    secrets.push_back(t["token"]);
    CHECK(c.verify(key, t["token"]).status == 200);
    for (int i = 0; i < 10; ++i) {
      auto off = c.post("/v1/users/alice/tokens/" + key + "/deactivate");
      REQUIRE(off.status == 200);
      CHECK(c.verify(key, t["token"]).status == 401);  // at once, no waiting
      REQUIRE(c.post("/v1/users/alice/tokens/" + key + "/activate").status == 200);
      CHECK(c.verify(key, t["token"]).status == 200);
    }
    auto dest =
        d.call("POST", "/v1/users/bob/tokens",
               R"({"description":"hook","kind":"destination","destination_id":"d-1"})", c.auth());
    REQUIRE(dest.status == 201);
    secrets.push_back(dest.json()["token"]);
    auto rot = c.post("/v1/users/alice/tokens/" + key + "/rotate", R"({"grace_seconds":0})");
    REQUIRE(rot.status == 200);
    secrets.push_back(rot.json()["token"]);
    CHECK(c.verify(key, t["token"]).status == 401);
    CHECK(c.verify(rot.json()["key"], rot.json()["token"]).status == 200);
    CHECK(d.terminate() == 0);
  }
  // Restart on the same data dir: resumes from its stored offsets, state intact.
  {
    Daemon d(kBinary, root + "/a", root, kOperator, kafkaArgs(trust, root + "/a", topic));
    Client c{d};
    auto hist = d.call("GET", "/v1/users/alice/tokens/" + key + "/history", "", c.auth());
    CHECK(hist.json()["events"].size() == 22);  // created + 10 × (off, on) + rotation
    CHECK(d.terminate() == 0);
  }
  // What another consumer sees: kcat reads raw messages keyed by owner; capnp
  // decode with nothing but schemas/ decodes every one; no secret anywhere. Each
  // start also put the writer's certificate (no key) on every partition.
  auto msgs = kcatDump(topic, root);
  size_t certificates = 0;
  for (const auto& m : msgs) certificates += m.key.empty();
  CHECK(certificates == 12);                // 2 starts x 6 partitions
  CHECK(msgs.size() - certificates == 24);  // 22 for alice's first token + bob's + the successor
  std::set<int> alicePartitions;
  for (size_t i = 0; i < msgs.size(); ++i) {
    const auto& m = msgs[i];
    if (m.key.empty()) {
      std::string file = root + "/cert" + std::to_string(i) + ".bin";
      std::ofstream(file, std::ios::binary) << m.value;
      int status = 0;
      std::string text =
          run("capnp decode " + kSource + "/schemas/tokenledger.capnp Envelope < " + file, &status);
      CHECK_MESSAGE(status == 0, text);
      CHECK_MESSAGE(text.find("writerCertified = ") != std::string::npos, text);
      continue;
    }
    CHECK((m.key == "alice" || m.key == "bob"));
    if (m.key == "alice") alicePartitions.insert(m.partition);
    for (const auto& s : secrets) CHECK(m.value.find(s) == std::string::npos);
    std::string file = root + "/msg" + std::to_string(i) + ".bin";
    std::ofstream(file, std::ios::binary) << m.value;
    int status = 0;
    std::string text =
        run("capnp decode " + kSource + "/schemas/tokenledger.capnp Envelope < " + file, &status);
    CHECK_MESSAGE(status == 0, text);
    CHECK(text.find("tokenKey = \"tlk_") != std::string::npos);
    CHECK(text.find("owner = \"" + m.key + "\"") != std::string::npos);
    CHECK((text.find("created = ") != std::string::npos ||
           text.find("activated = ") != std::string::npos ||
           text.find("deactivated = ") != std::string::npos));
  }
  CHECK(alicePartitions.size() == 1);  // one owner, one partition: ordered history
  std::filesystem::remove_all(root);
}

TEST_CASE("replicas: a deactivation through one is seen by the other; consistency tokens") {
  std::string root = tempDir("replicas");
  std::string topic = uniqueTopic("replicas");
  TrustRoot trust(root);
  Daemon a(kBinary, root + "/a", root, kOperator, kafkaArgs(trust, root + "/a", topic));
  Daemon b(kBinary, root + "/b", root, kOperator, kafkaArgs(trust, root + "/b", topic));
  Client ca{a}, cb{b};
  json t = ca.create("carol");
  std::string key = t["key"], token = t["token"], pos = t["position"];
  // With the creation's position as consistency token, B answers correctly at once.
  CHECK(cb.verify(key, token, pos).status == 200);
  auto off = ca.post("/v1/users/carol/tokens/" + key + "/deactivate");
  REQUIRE(off.status == 200);
  auto v = cb.verify(key, token, off.json()["position"]);
  CHECK(v.status == 401);
  CHECK(v.json()["reason"] == "inactive");
  // Without a token, B converges quickly.
  auto on = ca.post("/v1/users/carol/tokens/" + key + "/activate");
  REQUIRE(on.status == 200);
  CHECK(eventually([&] { return cb.verify(key, token).status == 200; }, 5000));
  // A position this replica cannot reach: 503 after the short wait, clear reason.
  auto far = cb.verify(key, token, "0:99999999");
  CHECK(far.status == 503);
  CHECK(far.json()["error"]["code"] == "position_not_reached");
  CHECK(cb.verify(key, token, "bogus").status == 400);
  // Commands through B work too, and A sees them.
  auto rot = cb.post("/v1/users/carol/tokens/" + key + "/rotate");
  REQUIRE(rot.status == 200);
  CHECK(ca.verify(rot.json()["key"], rot.json()["token"], rot.json()["position"]).status == 200);
  CHECK(ca.verify(key, token, rot.json()["position"]).status == 401);
  CHECK(a.terminate() == 0);
  CHECK(b.terminate() == 0);
  std::filesystem::remove_all(root);
}

TEST_CASE("malformed and future events on the topic are reported, skipped, not fatal") {
  std::string root = tempDir("poison");
  std::string topic = uniqueTopic("poison");
  TrustRoot trust(root);
  Daemon d(kBinary, root + "/a", root, kOperator, kafkaArgs(trust, root + "/a", topic));
  Client c{d};
  json before = c.create("dave");
  // Another producer writes garbage into partition 0, and an event of a type this
  // build does not know.
  Offsets end = topicEnd(topic);
  int status = 0;
  std::string out =
      run("printf 'not an event' | kcat -P -b " + brokers() + " -t " + topic + " -p 0 -k dave",
          &status);
  REQUIRE_MESSAGE(status == 0, out);
  {
    KafkaLogOptions o;
    o.brokers = brokers();
    o.topic = topic;
    openKafkaLog(o)->append(
        "dave", {test::encodeRevoked(randomBytes(16), "tlk_AAAAAAAAAAAAAAAAAAAAAAAA", "dave",
                                     test::timeUs(1))});
  }
  json after = c.create("dave");
  CHECK(c.verify(before["key"], before["token"]).status == 200);
  CHECK(c.verify(after["key"], after["token"]).status == 200);
  std::string expected = "skipped event at 0:" + std::to_string(end.next[0].value);
  CHECK(eventually([&] { return d.stderrText().find(expected) != std::string::npos; }, 5000));
  CHECK(eventually([&] { return d.stderrText().find("unknown event type") != std::string::npos; },
                   5000));
  CHECK(d.call("GET", "/readyz").status == 200);
  CHECK(d.terminate() == 0);
  std::filesystem::remove_all(root);
}

TEST_CASE("a replica killed with -9 mid-stream catches up and equals a fresh rebuild") {
  std::string root = tempDir("kill9k");
  std::string topic = uniqueTopic("kill9");
  std::vector<std::pair<std::string, std::string>> acked;
  std::mutex mutex;
  TrustRoot trust(root);
  Daemon writer(kBinary, root + "/w", root, kOperator, kafkaArgs(trust, root + "/w", topic));
  {
    auto replica = std::make_unique<Daemon>(kBinary, root + "/r", root, kOperator,
                                            kafkaArgs(trust, root + "/r", topic));
    std::atomic<bool> stop{false};
    std::thread client([&] {
      Connection conn(writer.port());
      for (int i = 0; !stop; ++i) {
        auto r = conn.request("POST", "/v1/users/erin" + std::to_string(i % 5) + "/tokens",
                              json{{"description", "stream " + std::to_string(i)}}.dump(),
                              {"Authorization: Bearer " + kOperator});
        if (r.status != 201) break;
        std::lock_guard lock(mutex);
        acked.emplace_back(r.json()["key"], r.json()["token"]);
      }
    });
    auto ackedCount = [&] {
      std::lock_guard lock(mutex);
      return acked.size();
    };
    // Events the replica applied (all partitions), from its applied-position header.
    auto replicaApplied = [&] {
      auto p =
          Offsets::parse(replica->call("GET", "/healthz").headers["tokenledger-applied-position"]);
      int64_t n = 0;
      if (p)
        for (NextOffset next : p->next) n += next.value;
      return n;
    };
    // Killed mid-stream: the replica is applying the writer's events and the
    // stream goes on...
    // (CHECK, not REQUIRE: the client thread must be joined either way.)
    CHECK(eventually([&] { return ackedCount() >= 50 && replicaApplied() >= 20; }, 30000));
    replica->kill9();
    // ...and continues while it is down, so it has events to catch up on.
    size_t atKill = ackedCount();
    CHECK(eventually([&] { return ackedCount() >= atKill + 50; }, 30000));
    stop = true;
    client.join();
  }
  REQUIRE(acked.size() >= 100);
  CHECK(writer.terminate() == 0);
  {
    Daemon replica(kBinary, root + "/r", root, kOperator, kafkaArgs(trust, root + "/r", topic));
    // The end after the replica's start: it published its certificate again.
    Offsets end = topicEnd(topic);
    CHECK(eventually(
        [&] {
          return replica.call("GET", "/healthz").headers["tokenledger-applied-position"] ==
                 end.toString();
        },
        20000));
    Client c{replica};
    for (const auto& [key, token] : acked) CHECK_MESSAGE(c.verify(key, token).status == 200, key);
    CHECK(replica.terminate() == 0);
  }
  int status = 0;
  // The same trust as the replica, or the rebuild would refuse every event.
  std::string out =
      run(kBinary + " --rebuild --data-dir " + root + "/fresh --log kafka --kafka-brokers " +
              brokers() + " --topic " + topic + " --trust-root " + trust.pub(),
          &status);
  REQUIRE_MESSAGE(status == 0, out);
  ReadModelOptions options;
  options.trust = trust.policy();  // a read model opens only under the policy it was built with
  CHECK(openReadModel(root + "/r/projection", options)->dump() ==
        openReadModel(root + "/fresh/projection", options)->dump());
  std::filesystem::remove_all(root);
}

TEST_CASE(
    "broker stopped: verify keeps answering, commands fail fast with 503; broker back: commands "
    "work") {
  std::string root = tempDir("outage");
  std::string topic = uniqueTopic("outage");
  std::string script = kSource + "/scripts/kafka.sh";
  std::string dir = env("KAFKA_DIR"), port = env("KAFKA_PORT");
  TrustRoot trust(root);
  Daemon d(kBinary, root + "/a", root, kOperator, kafkaArgs(trust, root + "/a", topic));
  Client c{d};
  json t = c.create("frank");
  int status = 0;
  std::string out = run("bash " + script + " stop --keep --dir " + dir, &status);
  REQUIRE_MESSAGE(status == 0, out);
  // Verification is served from LMDB.
  for (int i = 0; i < 20; ++i) CHECK(c.verify(t["key"], t["token"]).status == 200);
  // A command fails within 15 s with a clear 503.
  auto start = std::chrono::steady_clock::now();
  auto r = d.call("POST", "/v1/users/frank/tokens", R"({"description":"during outage"})", c.auth());
  auto took = std::chrono::steady_clock::now() - start;
  CHECK(r.status == 503);
  CHECK(r.json()["error"]["code"] == "log_unavailable");
  CHECK(took < std::chrono::seconds(15));
  CHECK(d.call("GET", "/healthz").status == 200);
  out = run("bash " + script + " start --dir " + dir + " --port " + port, &status);
  REQUIRE_MESSAGE(status == 0, out);
  // Without restarting the service, commands work again.
  Response again;
  CHECK(eventually(
      [&] {
        again =
            d.call("POST", "/v1/users/frank/tokens", R"({"description":"after outage"})", c.auth());
        return again.status == 201;
      },
      60000));
  CHECK(c.verify(again.json()["key"], again.json()["token"]).status == 200);
  CHECK(c.verify(t["key"], t["token"]).status == 200);  // nothing acknowledged was lost
  CHECK(d.terminate() == 0);
  std::filesystem::remove_all(root);
}

TEST_CASE("migration: an embedded log copied into Kafka verifies the same") {
  std::string root = tempDir("migrate");
  std::string topic = uniqueTopic("migrated");
  std::vector<json> tokens;
  {
    Daemon d(kBinary, root + "/embedded", root, kOperator);
    Client c{d};
    for (int i = 0; i < 12; ++i) tokens.push_back(c.create("user" + std::to_string(i % 3)));
    c.post("/v1/users/user0/tokens/" + tokens[0]["key"].get<std::string>() + "/deactivate");
    auto rot = c.post("/v1/users/user1/tokens/" + tokens[1]["key"].get<std::string>() + "/rotate");
    REQUIRE(rot.status == 200);
    tokens.push_back(rot.json());
    CHECK(d.terminate() == 0);
  }
  auto migrate = [&] {
    int status = 0;
    std::string out = run(kMigrate + " --data-dir " + root + "/embedded --kafka-brokers " +
                              brokers() + " --topic " + topic,
                          &status);
    CHECK_MESSAGE(status == 0, out);
    return out;
  };
  std::string first = migrate();
  CHECK(first.find("copied 15") != std::string::npos);  // 12 created + 1 off + rotation (2)
  CHECK(first.find("verified") != std::string::npos);
  std::string second = migrate();  // safe to re-run
  CHECK(second.find("copied 0, skipped 15") != std::string::npos);

  // The migrated events are signed by the embedded writer's key: trusted with
  // --trust-keys (no certificate of theirs is on the topic); the Kafka replica's own
  // key is certified by a root, as for any Kafka writer.
  TrustRoot trust(root);
  auto args = kafkaArgs(trust, root + "/kafka", topic);
  args.push_back("--trust-keys");
  args.push_back(root + "/embedded/signing-keys.pub");
  Daemon k(kBinary, root + "/kafka", root, kOperator, args);
  Client c{k};
  CHECK(eventually([&] { return k.call("GET", "/readyz").status == 200; }));
  for (size_t i = 0; i < tokens.size(); ++i) {
    auto v = c.verify(tokens[i]["key"], tokens[i]["token"]);
    int expected = (i == 0 || i == 1) ? 401 : 200;  // deactivated, rotated out
    CHECK_MESSAGE(v.status == expected, i);
  }
  // Same events, same ids: the history matches the embedded one.
  auto hist =
      k.call("GET", "/v1/users/user1/tokens/" + tokens[1]["key"].get<std::string>() + "/history",
             "", c.auth());
  CHECK(hist.json()["replaced_by"] == tokens.back()["key"]);
  CHECK(k.terminate() == 0);
  // Without --trust-keys the migrated events are nobody's it trusts: none applies.
  Daemon strict(kBinary, root + "/strict", root, kOperator,
                kafkaArgs(trust, root + "/strict", topic));
  Client cs{strict};
  CHECK(eventually([&] { return strict.call("GET", "/readyz").status == 200; }));
  auto unknown = cs.verify(tokens[2]["key"], tokens[2]["token"]);
  CHECK(unknown.status == 401);
  CHECK(unknown.json()["reason"] == "unknown");
  CHECK(strict.stderrText().find("untrusted: signed by key") != std::string::npos);
  CHECK(strict.terminate() == 0);
  std::filesystem::remove_all(root);
}
