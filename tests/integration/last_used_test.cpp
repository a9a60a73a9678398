// Last used (issue 17) on Kafka, against a real broker (the `kafka` fixture) and two
// real replicas: uses verified on one replica show on both after the flush, the
// latest minute over replicas wins, the usage topic is compacted, the ledger topic
// gains no record from usage, and ledger-audit policy --unused-days reads the topic.
#include <doctest/doctest.h>

#include <map>
#include <set>

#include "events/kafka_handles.h"
#include "events/times.h"
#include "tests/integration/replica_cluster.h"

using namespace tltest;
using nlohmann::json;

namespace {

// One topic configuration value, as the broker describes it.
std::string topicConfig(const std::string& topic, const std::string& name) {
  using namespace tokenledger::kafka;
  auto rk = makeClient(RD_KAFKA_PRODUCER, makeConf({{"bootstrap.servers", brokers()}}));
  KPtr<rd_kafka_ConfigResource_t> res(
      rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topic.c_str()));
  KPtr<rd_kafka_AdminOptions_t> opts(
      rd_kafka_AdminOptions_new(rk.get(), RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS));
  KPtr<rd_kafka_queue_t> q(rd_kafka_queue_new(rk.get()));
  rd_kafka_ConfigResource_t* list[] = {res.get()};
  rd_kafka_DescribeConfigs(rk.get(), list, 1, opts.get(), q.get());
  KPtr<rd_kafka_event_t> ev(rd_kafka_queue_poll(q.get(), 15000));
  REQUIRE(ev);
  REQUIRE_MESSAGE(!rd_kafka_event_error(ev.get()), rd_kafka_event_error_string(ev.get()));
  size_t cnt = 0;
  const auto** resources = rd_kafka_DescribeConfigs_result_resources(
      rd_kafka_event_DescribeConfigs_result(ev.get()), &cnt);
  for (size_t i = 0; i < cnt; ++i) {
    size_t n = 0;
    const auto** entries = rd_kafka_ConfigResource_configs(resources[i], &n);
    for (size_t k = 0; k < n; ++k)
      if (name == rd_kafka_ConfigEntry_name(entries[k]))
        return rd_kafka_ConfigEntry_value(entries[k]) ? rd_kafka_ConfigEntry_value(entries[k]) : "";
  }
  return "(absent)";
}

json shown(Daemon& d, const std::string& user, const std::string& key) {
  auto r = d.call("GET", "/v1/users/" + user + "/tokens/" + key, "", operatorHeaders());
  REQUIRE_MESSAGE(r.status == 200, r.body);
  return r.json();
}

std::string minuteNow() {
  auto m = std::chrono::floor<std::chrono::minutes>(std::chrono::system_clock::now());
  return tokenledger::formatTime(tokenledger::Timestamp{m.time_since_epoch()});
}

// Sleeps into the next wall-clock minute.
void waitForNextMinute() {
  std::string now = minuteNow();
  while (minuteNow() == now) std::this_thread::sleep_for(std::chrono::milliseconds(200));
}

}  // namespace

TEST_CASE("two replicas: uses on one show on both, the latest minute wins, the topic compacts") {
  Cluster c("lastused");
  c.extraArgs = {"--last-used-flush-ms", "200"};
  Daemon& a = c.start("a");
  Daemon& b = c.start("b");
  auto created = post(a, "/v1/users/erin/tokens", R"({"description":"x"})");
  REQUIRE_MESSAGE(created.status == 201, created.body);
  std::string key = created.json()["key"], secret = created.json()["token"];
  tokenledger::Offsets ledgerEnd = c.end();
  REQUIRE(caughtUp(b, ledgerEnd));
  CHECK_FALSE(shown(b, "erin", key).contains("last_used_at"));

  // Three uses on A only (and a failed one, not counted).
  std::string before = minuteNow();
  for (int i = 0; i < 3; ++i) REQUIRE(verify(a, key, secret).status == 200);
  CHECK(verify(b, key, "tls_" + std::string(43, 'z')).status == 401);
  std::string after = minuteNow();
  json onA, onB;
  CHECK(eventually([&] {
    onA = shown(a, "erin", key);
    onB = shown(b, "erin", key);
    return onA.contains("last_used_at") && onB.contains("last_used_at") &&
           onA["last_used_count"] == onB["last_used_count"];
  }));
  CHECK(onA["last_used_at"] == onB["last_used_at"]);
  CHECK((onA["last_used_at"] == before || onA["last_used_at"] == after));
  if (before == after) CHECK(onB["last_used_count"] == 3);

  // A later minute on B: both show B's minute and B's count only.
  waitForNextMinute();
  std::string later = minuteNow();
  for (int i = 0; i < 2; ++i) REQUIRE(verify(b, key, secret).status == 200);
  CHECK(eventually([&] {
    onA = shown(a, "erin", key);
    onB = shown(b, "erin", key);
    return onA["last_used_at"] == later && onB["last_used_at"] == later &&
           onA["last_used_count"] == onB["last_used_count"];
  }));
  CHECK(onA["last_used_at"] == later);
  CHECK(onB["last_used_count"] == 2);
  // The same minute on A as well: the counts of both replicas add up.
  REQUIRE(verify(a, key, secret).status == 200);
  if (minuteNow() == later) {
    CHECK(eventually([&] {
      return shown(a, "erin", key)["last_used_count"] == 3 &&
             shown(b, "erin", key)["last_used_count"] == 3;
    }));
  }

  // The usage topic compacts; the ledger topic got nothing from usage.
  CHECK(topicConfig(c.topic + ".usage", "cleanup.policy") == "compact");
  CHECK(topicConfig(c.topic, "cleanup.policy") == "delete");
  CHECK(c.end().toString() == ledgerEnd.toString());

  // ledger-audit reads the uses from the usage topic.
  auto audit = c.audit("policy --unused-days 0 --format json");
  CHECK(audit.status == 1);
  auto rows = lines(audit.out);
  REQUIRE_MESSAGE(rows.size() == 1, (audit.out + audit.err));
  json row = json::parse(rows[0]);
  CHECK(row["key"] == key);
  CHECK(row["last_used_at"] == onA["last_used_at"]);
  c.stopAll();
}
