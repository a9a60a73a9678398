// RAII owners of librdkafka handles and the client set-up that the event log
// (kafka_log.cpp) and the usage topic (usage_topic.cpp) share.
#pragma once

#include <librdkafka/rdkafka.h>

#include <cstdio>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>

namespace tokenledger::kafka {

struct KafkaDeleter {
  void operator()(rd_kafka_t* p) const { rd_kafka_destroy(p); }
  void operator()(rd_kafka_conf_t* p) const { rd_kafka_conf_destroy(p); }
  void operator()(rd_kafka_topic_partition_list_t* p) const {
    rd_kafka_topic_partition_list_destroy(p);
  }
  void operator()(rd_kafka_queue_t* p) const { rd_kafka_queue_destroy(p); }
  void operator()(rd_kafka_event_t* p) const { rd_kafka_event_destroy(p); }
  void operator()(rd_kafka_AdminOptions_t* p) const { rd_kafka_AdminOptions_destroy(p); }
  void operator()(rd_kafka_NewTopic_t* p) const { rd_kafka_NewTopic_destroy(p); }
  void operator()(rd_kafka_ConfigResource_t* p) const { rd_kafka_ConfigResource_destroy(p); }
  void operator()(const rd_kafka_metadata_t* p) const { rd_kafka_metadata_destroy(p); }
  void operator()(rd_kafka_message_t* p) const { rd_kafka_message_destroy(p); }
};
template <typename T>
using KPtr = std::unique_ptr<T, KafkaDeleter>;

inline KPtr<rd_kafka_conf_t> makeConf(const std::map<std::string, std::string>& settings) {
  KPtr<rd_kafka_conf_t> conf(rd_kafka_conf_new());
  char err[512];
  for (const auto& [k, v] : settings) {
    if (rd_kafka_conf_set(conf.get(), k.c_str(), v.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK)
      throw std::runtime_error("librdkafka setting " + k + "=" + v + ": " + err);
  }
  return conf;
}

inline KPtr<rd_kafka_t> makeClient(rd_kafka_type_t type, KPtr<rd_kafka_conf_t> conf) {
  char err[512];
  rd_kafka_t* rk = rd_kafka_new(type, conf.get(), err, sizeof err);
  if (rk == nullptr) throw std::runtime_error(std::string("cannot create Kafka client: ") + err);
  conf.release();  // owned by rk now
  return KPtr<rd_kafka_t>(rk);
}

// librdkafka logs every failed reconnect at level 3 (once a second per broker
// during an outage); the service reports outages itself, so pass on only worse.
inline void silentLog(const rd_kafka_t*, int level, const char* fac, const char* buf) {
  if (level <= 2) fprintf(stderr, "librdkafka %s: %s\n", fac, buf);
}

}  // namespace tokenledger::kafka
