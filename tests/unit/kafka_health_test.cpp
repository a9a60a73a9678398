// brokersReachable() on the statistics of a real librdkafka client, connected to
// librdkafka's mock cluster (3 brokers) whose brokers are taken down and back.
// The real 3-broker cluster is in tests/integration/failover_test.cpp.
#include <doctest/doctest.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <chrono>
#include <mutex>
#include <string>
#include <thread>

#include "events/kafka_health.h"

using namespace tokenledger;

namespace {

struct Stats {
  std::mutex mutex;
  std::string last;
};

int onStats(rd_kafka_t*, char* json, size_t len, void* opaque) {
  auto* s = static_cast<Stats*>(opaque);
  std::lock_guard lock(s->mutex);
  s->last.assign(json, len);
  return 0;
}

}  // namespace

TEST_CASE("brokersReachable counts the brokers a client is connected to") {
  char err[512];
  // A client whose only job is to own the mock cluster.
  rd_kafka_conf_t* mconf = rd_kafka_conf_new();
  rd_kafka_t* owner = rd_kafka_new(RD_KAFKA_PRODUCER, mconf, err, sizeof err);
  REQUIRE(owner != nullptr);
  rd_kafka_mock_cluster_t* mc = rd_kafka_mock_cluster_new(owner, 3);
  REQUIRE(mc != nullptr);
  REQUIRE(rd_kafka_mock_topic_create(mc, "health", 6, 3) == RD_KAFKA_RESP_ERR_NO_ERROR);

  Stats stats;
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  for (auto [k, v] : {std::pair{"bootstrap.servers", rd_kafka_mock_cluster_bootstraps(mc)},
                      {"enable.sparse.connections", "false"},
                      {"statistics.interval.ms", "100"},
                      {"reconnect.backoff.ms", "50"},
                      {"reconnect.backoff.max.ms", "100"}})
    REQUIRE(rd_kafka_conf_set(conf, k, v, err, sizeof err) == RD_KAFKA_CONF_OK);
  rd_kafka_conf_set_stats_cb(conf, onStats);
  rd_kafka_conf_set_opaque(conf, &stats);
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  REQUIRE(rk != nullptr);
  const rd_kafka_metadata_t* md = nullptr;
  REQUIRE(rd_kafka_metadata(rk, 1, nullptr, &md, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR);
  rd_kafka_metadata_destroy(md);

  // Polls until the statistics show `up` of 3 brokers reachable.
  auto reaches = [&](int up) {
    BrokersReachable b;
    for (int i = 0; i < 100; ++i) {
      rd_kafka_poll(rk, 50);
      std::lock_guard lock(stats.mutex);
      b = brokersReachable(stats.last);
      if (b.known == 3 && b.up == up) return true;
    }
    MESSAGE("reachable " << b.up << " of " << b.known << ", wanted " << up << " of 3");
    return false;
  };
  CHECK(reaches(3));
  rd_kafka_mock_broker_set_down(mc, 2);
  CHECK(reaches(2));
  rd_kafka_mock_broker_set_down(mc, 3);
  CHECK(reaches(1));
  rd_kafka_mock_broker_set_up(mc, 2);
  rd_kafka_mock_broker_set_up(mc, 3);
  CHECK(reaches(3));

  rd_kafka_destroy(rk);
  rd_kafka_mock_cluster_destroy(mc);
  rd_kafka_destroy(owner);
}

TEST_CASE("brokersReachable: what is not statistics counts nothing") {
  for (const char* s : {"", "{", "[]", R"({"brokers":[]})", R"({"brokers":{"x":1}})",
                        R"({"brokers":{"x":{"nodeid":"1","state":"UP"}}})"}) {
    BrokersReachable b = brokersReachable(s);
    CHECK(b.up == 0);
    CHECK(b.known == 0);
  }
  BrokersReachable b = brokersReachable(
      R"({"brokers":{"h:1/bootstrap":{"nodeid":-1,"state":"UP"},"h:1/1":{"nodeid":1,"state":"UP"},)"
      R"("h:2/2":{"nodeid":2,"state":"DOWN"},"h:3/3":{"nodeid":3,"state":"UPDATE"},)"
      R"("h:4/4":{"nodeid":4,"state":7}}})");
  CHECK(b.known == 4);
  CHECK(b.up == 2);
}
