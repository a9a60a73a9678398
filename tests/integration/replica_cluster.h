// Replicas of tokenledgerd on a real Kafka topic, for the integration suites
// (replicas_test.cpp, failover_test.cpp): each test case gets its own temp dir,
// topic and trust root (kafka_trust.h), and starts daemons on the brokers of
// KAFKA_BROKERS. Helpers for the HTTP calls the suites make.
#pragma once

#include <doctest/doctest.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "events/kafka_log.h"
#include "events/secrets.h"
#include "tests/integration/kafka_trust.h"
#include "tests/service/daemon_process.h"

namespace tltest {

using nlohmann::json;
using tokenledger::EventLog;
using tokenledger::LogRecord;
using tokenledger::LogUnavailable;
using tokenledger::Offsets;

inline const std::string kBinary = TOKENLEDGERD_PATH;
inline const std::string kAudit = LEDGER_AUDIT_PATH;
inline const std::string kSource = TL_SOURCE_DIR;
inline const std::string kOperator = "replicas-operator-secret-0123456789";

// Polls `f` every 20 ms until it returns true or `ms` passed.
template <typename F>
inline bool eventually(F f, int ms = 10000) {
  auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (std::chrono::steady_clock::now() < end) {
    if (f()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return f();
}

inline std::vector<std::string> operatorHeaders(const std::string& idempotencyKey = "") {
  std::vector<std::string> h{"Authorization: Bearer " + kOperator};
  if (!idempotencyKey.empty()) h.push_back("Idempotency-Key: " + idempotencyKey);
  return h;
}

inline Response post(Daemon& d, const std::string& path, const std::string& body = "",
                     const std::string& idempotencyKey = "") {
  return d.call("POST", path, body, operatorHeaders(idempotencyKey));
}

inline Response verify(Daemon& d, const std::string& key, const std::string& token,
                       const std::string& minPosition = "") {
  std::vector<std::string> h{"Authorization: Basic " + base64(key + ":" + token)};
  if (!minPosition.empty()) h.push_back("Tokenledger-Min-Position: " + minPosition);
  return d.call("POST", "/v1/verify", "", h);
}

// GET /v1/users/{user}/tokens, every page: the tokens.
inline json listOf(Daemon& d, const std::string& user) {
  json all = json::array();
  std::string cursor;
  do {
    auto r = d.call(
        "GET",
        "/v1/users/" + user + "/tokens?limit=1000" + (cursor.empty() ? "" : "&cursor=" + cursor),
        "", operatorHeaders());
    REQUIRE_MESSAGE(r.status == 200, r.body);
    json page = r.json();
    for (auto& t : page["tokens"]) all.push_back(std::move(t));
    cursor = page["next_cursor"].is_string() ? page["next_cursor"].get<std::string>() : "";
  } while (!cursor.empty());
  return all;
}

inline json historyOf(Daemon& d, const std::string& user, const std::string& key) {
  auto r =
      d.call("GET", "/v1/users/" + user + "/tokens/" + key + "/history", "", operatorHeaders());
  REQUIRE_MESSAGE(r.status == 200, r.body);
  return r.json();
}

inline std::string tokenPath(const std::string& user, const std::string& key,
                             const std::string& what) {
  return "/v1/users/" + user + "/tokens/" + key + "/" + what;
}

inline std::string errorCode(const Response& r) {
  try {
    return r.json()["error"]["code"].get<std::string>();
  } catch (...) {
    return "(no error code: " + r.body + ")";
  }
}

// One test case's world: temp dir, topic, trust root, replicas.
struct Cluster {
  std::string root, topic;
  TrustRoot trust;
  std::map<std::string, std::unique_ptr<Daemon>> replicas;
  std::vector<std::string> extraArgs;  // given to every replica started

  explicit Cluster(const std::string& name)
      : root(tempDir(name)), topic(name + "-" + tokenledger::randomBase62(8)), trust(root) {}
  ~Cluster() {
    replicas.clear();
    std::filesystem::remove_all(root);
  }

  Daemon& start(const std::string& label) {
    std::string dir = root + "/" + label;
    auto args =
        trust.daemonArgs(dir, {"--log", "kafka", "--kafka-brokers", brokers(), "--topic", topic});
    args.insert(args.end(), extraArgs.begin(), extraArgs.end());
    auto d = std::make_unique<Daemon>(kBinary, dir, root, kOperator, args);
    Daemon& ref = *d;
    replicas[label] = std::move(d);
    return ref;
  }
  Daemon& operator[](const std::string& label) { return *replicas.at(label); }

  // Stops every replica; each must exit 0.
  void stopAll() {
    for (auto& [label, d] : replicas) CHECK_MESSAGE(d->terminate() == 0, label);
    replicas.clear();
  }

  std::unique_ptr<EventLog> log() const {
    tokenledger::KafkaLogOptions o;
    o.brokers = brokers();
    o.topic = topic;
    return tokenledger::openKafkaLog(o);
  }

  // The topic's end. Retried: right after the broker resumed, a new client's first
  // watermark query can fail with "Local: Unknown partition" (its metadata is not
  // loaded yet), which events/kafka_log.cpp does not retry.
  Offsets end() const {
    for (int attempt = 1;; ++attempt) {
      try {
        return log()->openReader(Offsets{})->endOffsets();
      } catch (const LogUnavailable& e) {
        if (attempt == 20) throw;
        MESSAGE("retrying the topic's end: ", e.what());
        std::this_thread::sleep_for(std::chrono::milliseconds(500));
      }
    }
  }

  // Every record of the topic, in order per partition.
  std::vector<LogRecord> records() const {
    auto l = log();
    auto reader = l->openReader(Offsets::atStart(l->partitionCount()));
    Offsets end = reader->endOffsets(), seen = Offsets::atStart(l->partitionCount());
    std::vector<LogRecord> out;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (!seen.covers(end) && std::chrono::steady_clock::now() < deadline)
      for (auto& r : reader->poll(10000, std::chrono::milliseconds(200))) {
        seen.advancePast(r.position.partition, r.position.offset);
        out.push_back(std::move(r));
      }
    REQUIRE_MESSAGE(seen.covers(end), "could not read the topic to its end " << end.toString());
    return out;
  }

  // ledger-audit on the topic, trusting the root the replicas trust.
  Run audit(const std::string& args) const {
    return runCmd(kAudit + " --log kafka --kafka-brokers " + brokers() + " --topic " + topic +
                  trust.auditFlags() + " --quiet " + args);
  }
};

// Waits until `d` applied everything up to `end`.
inline bool caughtUp(Daemon& d, const Offsets& end, int ms = 20000) {
  return eventually(
      [&] {
        auto p = Offsets::parse(d.call("GET", "/healthz").headers["tokenledger-applied-position"]);
        return p && p->covers(end);
      },
      ms);
}

}  // namespace tltest
