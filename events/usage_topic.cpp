#include "events/usage_topic.h"

#include <chrono>
#include <functional>
#include <map>
#include <set>
#include <thread>
#include <vector>

#include "events/clock.h"
#include "events/kafka_handles.h"

namespace tokenledger {
namespace {

using kafka::KPtr;

// The partition count, or 0 while the topic is missing or a partition has no leader.
int32_t partitionsOf(rd_kafka_t* rk, const std::string& topic, int timeoutMs,
                     const std::string& brokers) {
  const rd_kafka_metadata_t* md = nullptr;
  if (auto err = rd_kafka_metadata(rk, 1, nullptr, &md, timeoutMs))
    throw std::runtime_error("cannot reach Kafka at " + brokers + ": " + rd_kafka_err2str(err) +
                             "; check --kafka-brokers and that the broker runs");
  KPtr<const rd_kafka_metadata_t> guard(md);
  for (int i = 0; i < md->topic_cnt; ++i) {
    const auto& t = md->topics[i];
    if (topic != t.topic || t.err != 0) continue;
    for (int p = 0; p < t.partition_cnt; ++p)
      if (t.partitions[p].leader < 0) return 0;
    return t.partition_cnt;
  }
  return 0;
}

KPtr<rd_kafka_event_t> adminCall(rd_kafka_t* rk, int timeoutMs,
                                 const std::function<void(rd_kafka_queue_t*)>& start,
                                 const std::string& what) {
  KPtr<rd_kafka_queue_t> q(rd_kafka_queue_new(rk));
  start(q.get());
  KPtr<rd_kafka_event_t> ev(rd_kafka_queue_poll(q.get(), timeoutMs + 5000));
  if (!ev) throw std::runtime_error(what + ": no answer from Kafka");
  if (rd_kafka_event_error(ev.get()))
    throw std::runtime_error(what + ": " + rd_kafka_event_error_string(ev.get()));
  return ev;
}

void createTopic(rd_kafka_t* rk, const UsageTopicOptions& o) {
  char err[512];
  KPtr<rd_kafka_NewTopic_t> topic(
      rd_kafka_NewTopic_new(o.topic.c_str(), o.partitions, o.replicationFactor, err, sizeof err));
  if (!topic) throw std::runtime_error(std::string("cannot describe the usage topic: ") + err);
  rd_kafka_NewTopic_set_config(topic.get(), "cleanup.policy", "compact");
  KPtr<rd_kafka_AdminOptions_t> opts(rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS));
  rd_kafka_AdminOptions_set_operation_timeout(opts.get(), o.connectTimeoutMs, err, sizeof err);
  rd_kafka_NewTopic_t* topics[] = {topic.get()};
  auto ev = adminCall(
      rk, o.connectTimeoutMs,
      [&](rd_kafka_queue_t* q) { rd_kafka_CreateTopics(rk, topics, 1, opts.get(), q); },
      "cannot create topic " + o.topic);
  size_t cnt = 0;
  const rd_kafka_topic_result_t** results =
      rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev.get()), &cnt);
  for (size_t i = 0; i < cnt; ++i) {
    rd_kafka_resp_err_t e = rd_kafka_topic_result_error(results[i]);
    if (e && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {  // another replica was first
      const char* msg = rd_kafka_topic_result_error_string(results[i]);
      throw std::runtime_error("cannot create topic " + o.topic + ": " +
                               (msg ? msg : rd_kafka_err2str(e)));
    }
  }
}

// Without compaction the topic would grow by a row per token and replica every flush.
void checkCompacted(rd_kafka_t* rk, const UsageTopicOptions& o) {
  char err[512];
  KPtr<rd_kafka_ConfigResource_t> res(
      rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, o.topic.c_str()));
  KPtr<rd_kafka_AdminOptions_t> opts(
      rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS));
  rd_kafka_AdminOptions_set_request_timeout(opts.get(), o.connectTimeoutMs, err, sizeof err);
  rd_kafka_ConfigResource_t* list[] = {res.get()};
  auto ev = adminCall(
      rk, o.connectTimeoutMs,
      [&](rd_kafka_queue_t* q) { rd_kafka_DescribeConfigs(rk, list, 1, opts.get(), q); },
      "cannot read the configuration of topic " + o.topic);
  size_t cnt = 0;
  const rd_kafka_ConfigResource_t** resources = rd_kafka_DescribeConfigs_result_resources(
      rd_kafka_event_DescribeConfigs_result(ev.get()), &cnt);
  std::string policy;
  for (size_t i = 0; i < cnt; ++i) {
    size_t n = 0;
    const rd_kafka_ConfigEntry_t** entries = rd_kafka_ConfigResource_configs(resources[i], &n);
    for (size_t k = 0; k < n; ++k)
      if (std::string_view(rd_kafka_ConfigEntry_name(entries[k])) == "cleanup.policy")
        policy =
            rd_kafka_ConfigEntry_value(entries[k]) ? rd_kafka_ConfigEntry_value(entries[k]) : "";
  }
  if (policy.find("compact") == std::string::npos)
    throw std::runtime_error("usage topic " + o.topic + " does not compact (cleanup.policy=" +
                             policy + "); run `kafka-configs.sh --bootstrap-server " + o.brokers +
                             " --alter --entity-type topics --entity-name " + o.topic +
                             " --add-config cleanup.policy=compact`, or pick another "
                             "--usage-topic");
}

KPtr<rd_kafka_t> makeConsumer(const std::string& brokers, bool partitionEof) {
  auto conf = kafka::makeConf({{"bootstrap.servers", brokers},
                               // Required by librdkafka; nothing is joined or committed.
                               {"group.id", "tokenledger-usage"},
                               {"enable.auto.commit", "false"},
                               {"enable.auto.offset.store", "false"},
                               {"enable.partition.eof", partitionEof ? "true" : "false"},
                               {"fetch.wait.max.ms", "100"},
                               {"reconnect.backoff.max.ms", "1000"}});
  rd_kafka_conf_set_log_cb(conf.get(), kafka::silentLog);
  return kafka::makeClient(RD_KAFKA_CONSUMER, std::move(conf));
}

void assignFromStart(rd_kafka_t* rk, const std::string& topic, int32_t partitions) {
  KPtr<rd_kafka_topic_partition_list_t> list(rd_kafka_topic_partition_list_new(partitions));
  for (int32_t p = 0; p < partitions; ++p)
    rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), p)->offset =
        RD_KAFKA_OFFSET_BEGINNING;
  if (auto err = rd_kafka_assign(rk, list.get()))
    throw std::runtime_error("cannot read topic " + topic + ": " + rd_kafka_err2str(err));
}

void addRow(UsageStore::Rows& rows, const rd_kafka_message_t* m) {
  if (!m->key || !m->payload) return;
  rows.emplace_back(std::string(static_cast<const char*>(m->key), m->key_len),
                    std::string(static_cast<const char*>(m->payload), m->len));
}

void onDelivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
  if (m->err) static_cast<std::atomic<int>*>(opaque)->fetch_add(1);
}

}  // namespace

struct UsageTopic::Impl {
  UsageTopicOptions options;
  OnRows onRows;
  std::atomic<int> failed{0};  // delivery reports with an error
  KPtr<rd_kafka_t> producer;
  KPtr<rd_kafka_t> consumer;
  std::atomic<bool> stopping{false};
  std::thread reader;

  void read() {
    while (!stopping) {
      UsageStore::Rows rows;
      for (int i = 0; i < 10000; ++i) {
        KPtr<rd_kafka_message_t> m(rd_kafka_consumer_poll(consumer.get(), rows.empty() ? 200 : 0));
        if (!m) break;
        if (!m->err) addRow(rows, m.get());  // transport errors: librdkafka retries
      }
      if (!rows.empty()) onRows(rows);
    }
  }
};

UsageTopic::UsageTopic(const UsageTopicOptions& o, OnRows onRows)
    : impl_(std::make_unique<Impl>()) {
  impl_->options = o;
  impl_->onRows = std::move(onRows);
  auto conf = kafka::makeConf({{"bootstrap.servers", o.brokers},
                               {"acks", "all"},
                               {"linger.ms", "50"},
                               {"message.timeout.ms", std::to_string(o.publishTimeoutMs)},
                               {"reconnect.backoff.max.ms", "1000"}});
  rd_kafka_conf_set_dr_msg_cb(conf.get(), onDelivery);
  rd_kafka_conf_set_opaque(conf.get(), &impl_->failed);
  rd_kafka_conf_set_log_cb(conf.get(), kafka::silentLog);
  impl_->producer = kafka::makeClient(RD_KAFKA_PRODUCER, std::move(conf));
  rd_kafka_t* rk = impl_->producer.get();
  int32_t n = partitionsOf(rk, o.topic, o.connectTimeoutMs, o.brokers);
  if (n == 0) {
    createTopic(rk, o);
    for (auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
         n == 0 && std::chrono::steady_clock::now() < until;) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      n = partitionsOf(rk, o.topic, o.connectTimeoutMs, o.brokers);
    }
    if (n == 0) throw std::runtime_error("topic " + o.topic + " was created but does not show up");
  }
  checkCompacted(rk, o);
  impl_->consumer = makeConsumer(o.brokers, false);
  assignFromStart(impl_->consumer.get(), o.topic, n);
  impl_->reader = std::thread([impl = impl_.get()] { impl->read(); });
}

UsageTopic::~UsageTopic() {
  impl_->stopping = true;
  impl_->reader.join();
  rd_kafka_consumer_close(impl_->consumer.get());
  rd_kafka_flush(impl_->producer.get(), 5000);
}

void UsageTopic::publish(const UsageStore::Rows& rows) {
  rd_kafka_t* rk = impl_->producer.get();
  impl_->failed = 0;
  for (const auto& [key, value] : rows) {
    rd_kafka_resp_err_t err;
    while ((err = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(impl_->options.topic.c_str()),
                                    RD_KAFKA_V_KEY(const_cast<char*>(key.data()), key.size()),
                                    RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
                                    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END)) ==
           RD_KAFKA_RESP_ERR__QUEUE_FULL)
      rd_kafka_poll(rk, 10);
    if (err)
      throw std::runtime_error("cannot produce to " + describe() + ": " + rd_kafka_err2str(err));
  }
  if (rd_kafka_flush(rk, impl_->options.publishTimeoutMs) != RD_KAFKA_RESP_ERR_NO_ERROR ||
      impl_->failed > 0)
    throw std::runtime_error("Kafka did not acknowledge every usage row on " + describe() +
                             "; they go out again with the next flush");
}

std::string UsageTopic::describe() const {
  return "Kafka topic " + impl_->options.topic + " on " + impl_->options.brokers;
}

std::map<std::string, LastUse, std::less<>> readUsageTopic(const std::string& brokers,
                                                           const std::string& topic,
                                                           int timeoutMs) {
  auto consumer = makeConsumer(brokers, true);
  int32_t n = partitionsOf(consumer.get(), topic, timeoutMs, brokers);
  std::map<std::string, LastUse, std::less<>> out;
  if (n == 0) return out;  // no usage topic: nothing was ever used
  assignFromStart(consumer.get(), topic, n);
  // Each replica's newest row per token, then merged over replicas.
  std::map<std::string, LastUse, std::less<>> rows;
  std::set<int32_t> done;
  const Timestamp now = SystemClock().now();
  auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeoutMs);
  while (static_cast<int32_t>(done.size()) < n) {
    if (std::chrono::steady_clock::now() > until)
      throw std::runtime_error("reading usage topic " + topic + " timed out");
    KPtr<rd_kafka_message_t> m(rd_kafka_consumer_poll(consumer.get(), 200));
    if (!m) continue;
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      done.insert(m->partition);
      continue;
    }
    if (m->err || !m->key || !m->payload) continue;
    std::string row(static_cast<const char*>(m->key), m->key_len);
    auto use = decodeLastUse(std::string_view(static_cast<const char*>(m->payload), m->len));
    if (!use || usageRowProblem(row, *use, now)) continue;
    auto [it, fresh] = rows.try_emplace(row, *use);
    if (!fresh) it->second = newerOf(it->second, *use);
  }
  rd_kafka_consumer_close(consumer.get());
  for (const auto& [row, use] : rows) {
    std::string key(splitUsageRowKey(row)->first);
    auto [it, fresh] = out.try_emplace(key, use);
    if (!fresh) it->second = mergeReplicas(it->second, use);
  }
  return out;
}

}  // namespace tokenledger
