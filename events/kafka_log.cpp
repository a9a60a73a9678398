#include "events/kafka_log.h"

#include "events/kafka_handles.h"
#include "events/kafka_health.h"

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <thread>

namespace tokenledger {
namespace {

// How long a new topic, and partitions whose leader moves, are waited for.
constexpr std::chrono::seconds kSettleTime{5};
// How many appends a writer keeps under way (EventLog::appendsInFlight).
constexpr size_t kAppendsInFlight = 4;

using kafka::KPtr;
using kafka::makeClient;
using kafka::makeConf;
using kafka::silentLog;

// One append: its records' delivery reports, counted down on librdkafka's poller
// thread; the last one runs `done`.
struct PendingAppend {
  std::mutex mutex;
  size_t remaining = 0;
  std::vector<Position> positions;
  std::string error;
  // Every record of the append is known not to be in the topic: refused before it
  // was queued, or reported by librdkafka as not persisted.
  bool nothingPersisted = true;
  std::string where;  // the log, for messages
  EventLog::AppendDone done;
};

// Counts `n` records of `p` as settled; the last one reports the append's outcome.
void settle(const std::shared_ptr<PendingAppend>& p, size_t n) {
  {
    std::lock_guard lock(p->mutex);
    p->remaining -= n;
    if (p->remaining > 0) return;
  }
  std::exception_ptr error;
  if (!p->error.empty()) {
    error = p->nothingPersisted ? std::make_exception_ptr(LogUnavailable(
                                      "Kafka refused the event (" + p->error + ") on " + p->where,
                                      LogUnavailable::Outcome::nothingRecorded))
                                : std::make_exception_ptr(LogUnavailable(
                                      "Kafka did not acknowledge the event (" + p->error + ") on " +
                                          p->where + "; the outcome is unknown",
                                      LogUnavailable::Outcome::unknown));
    p->positions.clear();
  }
  p->done(std::move(p->positions), error);
}

struct Slot {
  std::shared_ptr<PendingAppend> pending;
  size_t index;
};

void onDelivery(rd_kafka_t*, const rd_kafka_message_t* m, void*) {
  std::unique_ptr<Slot> slot(static_cast<Slot*>(m->_private));
  if (!slot) return;
  auto& p = *slot->pending;
  {
    std::lock_guard lock(p.mutex);
    if (m->err) {
      if (p.error.empty()) p.error = rd_kafka_err2str(m->err);
      if (rd_kafka_message_status(m) != RD_KAFKA_MSG_STATUS_NOT_PERSISTED)
        p.nothingPersisted = false;
    } else {
      p.nothingPersisted = false;
      p.positions[slot->index] = Position{Partition{m->partition}, Offset{m->offset}};
    }
  }
  settle(slot->pending, 1);
}

// The topic's high watermarks (next offset per partition), asked of each leader
// through `rk` (a consumer or a producer). Throws LogUnavailable.
Offsets endOffsetsOf(rd_kafka_t* rk, const std::string& topic, int32_t partitions,
                     const MonotonicClock& clock) {
  Offsets o;
  for (int32_t p = 0; p < partitions; ++p) {
    int64_t low = 0, high = 0;
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
    // Right after a topic is created or a broker restarted, leadership may still be
    // moving: retry those answers for a while.
    for (auto until = clock.now() + kSettleTime;;) {
      err = rd_kafka_query_watermark_offsets(rk, topic.c_str(), p, &low, &high, 10000);
      // (librdkafka's own "Local: Unknown partition" too: its metadata may lag a
      // broker that just came back.)
      if ((err != RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION &&
           err != RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE &&
           err != RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART &&
           err != RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION) ||
          clock.now() >= until)
        break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    if (err)
      throw LogUnavailable("cannot read the end of topic " + topic + ": " + rd_kafka_err2str(err));
    o.next.push_back(NextOffset{high});
  }
  return o;
}

class KafkaReader final : public LogReader {
 public:
  KafkaReader(const KafkaLogOptions& o, int32_t partitions, const Offsets& from)
      : topic_(o.topic), partitions_(partitions), clock_(*o.clock) {
    auto conf = makeConf({{"bootstrap.servers", o.brokers},
                          // Required by librdkafka's consumer; nothing is committed or joined.
                          {"group.id", "tokenledger-projection"},
                          {"enable.auto.commit", "false"},
                          {"enable.auto.offset.store", "false"},
                          {"enable.partition.eof", "false"},
                          {"auto.offset.reset", "earliest"},
                          {"fetch.wait.max.ms", "10"},
                          {"fetch.error.backoff.ms", "100"},
                          {"reconnect.backoff.max.ms", "1000"}});
    rd_kafka_conf_set_log_cb(conf.get(), silentLog);
    rk_ = makeClient(RD_KAFKA_CONSUMER, std::move(conf));
    KPtr<rd_kafka_topic_partition_list_t> list(rd_kafka_topic_partition_list_new(partitions));
    for (int32_t p = 0; p < partitions; ++p) {
      rd_kafka_topic_partition_list_add(list.get(), topic_.c_str(), p)->offset =
          from.of(Partition{p}).value;
    }
    rd_kafka_resp_err_t err = rd_kafka_assign(rk_.get(), list.get());
    if (err)
      throw std::runtime_error(std::string("cannot assign partitions: ") + rd_kafka_err2str(err));
  }

  ~KafkaReader() override { rd_kafka_consumer_close(rk_.get()); }

  std::vector<LogRecord> poll(size_t max, std::chrono::milliseconds wait) override {
    std::vector<LogRecord> out;
    std::string error;
    int timeout = static_cast<int>(wait.count());
    while (out.size() < max) {
      KPtr<rd_kafka_message_t> m(rd_kafka_consumer_poll(rk_.get(), out.empty() ? timeout : 0));
      if (!m) break;
      if (m->err) {
        // Transport errors are retried by librdkafka; remember the first for the caller.
        if (error.empty()) error = rd_kafka_message_errstr(m.get());
        if (out.empty()) break;
        continue;
      }
      LogRecord r;
      r.position = Position{Partition{m->partition}, Offset{m->offset}};
      if (m->key) r.key.assign(static_cast<const char*>(m->key), m->key_len);
      if (m->payload) r.value.assign(static_cast<const char*>(m->payload), m->len);
      out.push_back(std::move(r));
    }
    if (out.empty() && !error.empty())
      throw LogUnavailable("reading topic " + topic_ + " failed: " + error);
    return out;
  }

  Offsets endOffsets() override { return endOffsetsOf(rk_.get(), topic_, partitions_, clock_); }

 private:
  std::string topic_;
  int32_t partitions_;
  const MonotonicClock& clock_;
  KPtr<rd_kafka_t> rk_;
};

class KafkaLog final : public EventLog {
 public:
  explicit KafkaLog(const KafkaLogOptions& o) : options_(o) {
    if (o.brokers.empty()) throw std::runtime_error("--kafka-brokers is required with --log kafka");
    if (options_.minInsyncReplicas < 0 && options_.replicationFactor > 0)
      options_.minInsyncReplicas = options_.replicationFactor >= 3 ? 2 : 1;
    // Why each setting: docs/kafka.md, "Producer settings".
    auto conf =
        makeConf({{"bootstrap.servers", o.brokers},
                  // No duplicates or reordering when a request is retried
                  // (also implies retries without limit, at most 5 in flight).
                  {"enable.idempotence", "true"},
                  // Acknowledged = on every in-sync replica, at least
                  // min.insync.replicas of them: survives a broker's death.
                  {"acks", "all"},
                  // A command waits for its own event: send at once (batches
                  // still form while a request is in flight).
                  {"linger.ms", "0"},
                  {"partitioner", "murmur2_random"},
                  // Retries (across a leader election) stop here: the command
                  // then answers 503 log_unavailable, outcome unknown.
                  {"message.timeout.ms", std::to_string(o.appendTimeoutMs)},
                  {"request.timeout.ms", std::to_string(std::min(o.appendTimeoutMs, 30000))},
                  // A dead broker is retried at most once a second.
                  {"reconnect.backoff.max.ms", "1000"},
                  // A connection to every broker, and their states once a
                  // second: appends are refused at once while fewer brokers
                  // are reachable than the topic needs in sync.
                  {"enable.sparse.connections", "false"},
                  {"statistics.interval.ms", "1000"}});
    rd_kafka_conf_set_dr_msg_cb(conf.get(), onDelivery);
    rd_kafka_conf_set_stats_cb(conf.get(), onStats);
    rd_kafka_conf_set_opaque(conf.get(), this);
    rd_kafka_conf_set_log_cb(conf.get(), silentLog);
    producer_ = makeClient(RD_KAFKA_PRODUCER, std::move(conf));
    partitions_ = ensureTopic();
    poller_ = std::thread([this] {
      while (!stopping_) rd_kafka_poll(producer_.get(), 50);
    });
  }

  ~KafkaLog() override {
    rd_kafka_flush(producer_.get(), 5000);
    stopping_ = true;
    poller_.join();
  }

  static int onStats(rd_kafka_t*, char* json, size_t len, void* opaque) {
    auto* self = static_cast<KafkaLog*>(opaque);
    BrokersReachable b = brokersReachable(std::string_view(json, len));
    self->brokersUp_ = b.up;
    self->brokersKnown_ = b.known;
    return 0;  // librdkafka frees `json`
  }

  // An append cannot be acknowledged while fewer brokers are reachable than
  // min.insync.replicas: acks=all would wait out the append timeout, then report an
  // unknown outcome.
  std::optional<std::string> refusesAppends() const override {
    int known = brokersKnown_, up = brokersUp_;
    if (known == 0 || up >= minInsync_) return std::nullopt;
    return "only " + std::to_string(up) + " of " + std::to_string(known) +
           " Kafka brokers are reachable and the topic needs " + std::to_string(minInsync_) +
           " in sync (min.insync.replicas)";
  }

  std::vector<Position> append(std::string_view key,
                               const std::vector<std::string>& values) override {
    std::vector<std::pair<std::string_view, std::string_view>> records;
    for (const auto& v : values) records.emplace_back(key, v);
    return produceAll(records);
  }

  std::vector<Position> appendBatch(
      const std::vector<std::pair<std::string, std::string>>& batch) override {
    std::vector<std::pair<std::string_view, std::string_view>> records;
    for (const auto& [k, v] : batch) records.emplace_back(k, v);
    return produceAll(records);
  }

  void appendAsync(std::vector<std::pair<std::string, std::string>> batch,
                   AppendDone done) override {
    std::vector<std::pair<std::string_view, std::string_view>> records;
    for (const auto& [k, v] : batch) records.emplace_back(k, v);
    produce(records, std::move(done));  // the records are copied before it returns
  }

  // A writer's next group goes out while earlier ones wait for their
  // acknowledgements, so its rate is not bound to one group per round trip; the
  // idempotent producer keeps them in order per partition (up to 5 requests in
  // flight each). On 2 busy cores it neither helped nor hurt (bench/README.md).
  size_t appendsInFlight() const override { return kAppendsInFlight; }

  std::vector<Position> appendToPartition(Partition p,
                                          const std::vector<std::string>& values) override {
    if (p.value < 0 || p.value >= partitions_)
      throw std::invalid_argument("no partition " + std::to_string(p.value) + " in " + describe());
    std::vector<std::pair<std::string_view, std::string_view>> records;
    for (const auto& v : values) records.emplace_back(std::string_view(), v);
    return produceAll(records, p.value);
  }

  int32_t partitionCount() const override { return partitions_; }

  Offsets endOffsets() override {
    return endOffsetsOf(producer_.get(), options_.topic, partitions_, *options_.clock);
  }

  std::unique_ptr<LogReader> openReader(const Offsets& from) override {
    return std::make_unique<KafkaReader>(options_, partitions_, from);
  }

  std::string describe() const override {
    return "Kafka topic " + options_.topic + " on " + options_.brokers;
  }

 private:
  // Returns the partition count; creates the topic if missing; refuses a topic
  // that would not keep the ledger forever.
  int32_t ensureTopic() {
    int32_t n = topicPartitions();
    if (n == 0 && !topicExists()) createTopic();
    if (n == 0) {
      for (auto until = options_.clock->now() + kSettleTime;
           n == 0 && options_.clock->now() < until;) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        n = topicPartitions();
      }
      if (n == 0)
        throw std::runtime_error("topic " + options_.topic + " was created but does not show up");
    }
    checkTopicConfig();
    return n;
  }

  // Returns the partition count, or 0 while the topic is missing or some partition
  // has no leader; sets minReplicas_ to the fewest replicas of a partition.
  int32_t topicPartitions() {
    const rd_kafka_metadata_t* md = nullptr;
    rd_kafka_resp_err_t err =
        rd_kafka_metadata(producer_.get(), 1, nullptr, &md, options_.connectTimeoutMs);
    if (err)
      throw std::runtime_error("cannot reach Kafka at " + options_.brokers + ": " +
                               rd_kafka_err2str(err) +
                               "; check --kafka-brokers and that the broker runs");
    KPtr<const rd_kafka_metadata_t> guard(md);
    for (int i = 0; i < md->topic_cnt; ++i) {
      const auto& t = md->topics[i];
      if (options_.topic != t.topic || t.err != 0) continue;
      // Not usable until every partition has a leader (just after creation).
      minReplicas_ = t.partition_cnt > 0 ? t.partitions[0].replica_cnt : 0;
      for (int p = 0; p < t.partition_cnt; ++p) {
        if (t.partitions[p].leader < 0) return 0;
        minReplicas_ = std::min(minReplicas_, t.partitions[p].replica_cnt);
      }
      return t.partition_cnt;
    }
    return 0;
  }

  bool topicExists() {
    const rd_kafka_metadata_t* md = nullptr;
    if (rd_kafka_metadata(producer_.get(), 1, nullptr, &md, options_.connectTimeoutMs))
      return false;
    KPtr<const rd_kafka_metadata_t> guard(md);
    for (int i = 0; i < md->topic_cnt; ++i)
      if (options_.topic == md->topics[i].topic && md->topics[i].err == 0) return true;
    return false;
  }

  KPtr<rd_kafka_event_t> adminCall(const std::function<void(rd_kafka_queue_t*)>& start,
                                   const std::string& what) {
    KPtr<rd_kafka_queue_t> q(rd_kafka_queue_new(producer_.get()));
    start(q.get());
    KPtr<rd_kafka_event_t> ev(rd_kafka_queue_poll(q.get(), options_.connectTimeoutMs + 5000));
    if (!ev) throw std::runtime_error(what + ": no answer from Kafka");
    if (rd_kafka_event_error(ev.get()))
      throw std::runtime_error(what + ": " + rd_kafka_event_error_string(ev.get()));
    return ev;
  }

  void createTopic() {
    char err[512];
    KPtr<rd_kafka_NewTopic_t> topic(rd_kafka_NewTopic_new(
        options_.topic.c_str(), options_.partitions, options_.replicationFactor, err, sizeof err));
    if (!topic) throw std::runtime_error(std::string("cannot describe the new topic: ") + err);
    rd_kafka_NewTopic_set_config(topic.get(), "retention.ms", "-1");
    rd_kafka_NewTopic_set_config(topic.get(), "retention.bytes", "-1");
    rd_kafka_NewTopic_set_config(topic.get(), "cleanup.policy", "delete");
    std::string minInsync = std::to_string(options_.minInsyncReplicas);
    if (options_.minInsyncReplicas > 0)
      rd_kafka_NewTopic_set_config(topic.get(), "min.insync.replicas", minInsync.c_str());
    KPtr<rd_kafka_AdminOptions_t> opts(
        rd_kafka_AdminOptions_new(producer_.get(), RD_KAFKA_ADMIN_OP_CREATETOPICS));
    rd_kafka_AdminOptions_set_operation_timeout(opts.get(), options_.connectTimeoutMs, err,
                                                sizeof err);
    rd_kafka_NewTopic_t* topics[] = {topic.get()};
    auto ev = adminCall(
        [&](rd_kafka_queue_t* q) {
          rd_kafka_CreateTopics(producer_.get(), topics, 1, opts.get(), q);
        },
        "cannot create topic " + options_.topic);
    const auto* res = rd_kafka_event_CreateTopics_result(ev.get());
    size_t cnt = 0;
    const rd_kafka_topic_result_t** results = rd_kafka_CreateTopics_result_topics(res, &cnt);
    for (size_t i = 0; i < cnt; ++i) {
      rd_kafka_resp_err_t e = rd_kafka_topic_result_error(results[i]);
      // Another replica may have created it meanwhile: fine.
      if (e && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
        const char* msg = rd_kafka_topic_result_error_string(results[i]);
        throw std::runtime_error("cannot create topic " + options_.topic + ": " +
                                 (msg ? msg : rd_kafka_err2str(e)));
      }
    }
  }

  void checkTopicConfig() {
    char err[512];
    KPtr<rd_kafka_ConfigResource_t> res(
        rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, options_.topic.c_str()));
    KPtr<rd_kafka_AdminOptions_t> opts(
        rd_kafka_AdminOptions_new(producer_.get(), RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS));
    rd_kafka_AdminOptions_set_request_timeout(opts.get(), options_.connectTimeoutMs, err,
                                              sizeof err);
    rd_kafka_ConfigResource_t* list[] = {res.get()};
    auto ev = adminCall(
        [&](rd_kafka_queue_t* q) {
          rd_kafka_DescribeConfigs(producer_.get(), list, 1, opts.get(), q);
        },
        "cannot read the configuration of topic " + options_.topic);
    const auto* result = rd_kafka_event_DescribeConfigs_result(ev.get());
    size_t cnt = 0;
    const rd_kafka_ConfigResource_t** resources =
        rd_kafka_DescribeConfigs_result_resources(result, &cnt);
    std::map<std::string, std::string> config;
    for (size_t i = 0; i < cnt; ++i) {
      size_t n = 0;
      const rd_kafka_ConfigEntry_t** entries = rd_kafka_ConfigResource_configs(resources[i], &n);
      for (size_t k = 0; k < n; ++k) {
        const char* v = rd_kafka_ConfigEntry_value(entries[k]);
        config[rd_kafka_ConfigEntry_name(entries[k])] = v ? v : "";
      }
    }
    std::string fix =
        "; a ledger must keep every event: run `kafka-configs.sh --bootstrap-server " +
        options_.brokers + " --alter --entity-type topics --entity-name " + options_.topic +
        " --add-config retention.ms=-1,retention.bytes=-1," +
        "cleanup.policy=delete`, or use another --topic";
    if (config["cleanup.policy"].find("compact") != std::string::npos)
      throw std::runtime_error("topic " + options_.topic + " uses log compaction (cleanup.policy=" +
                               config["cleanup.policy"] + "), which would drop history" + fix);
    if (config.count("retention.ms") && config["retention.ms"] != "-1")
      throw std::runtime_error("topic " + options_.topic + " deletes events after retention.ms=" +
                               config["retention.ms"] + fix);
    if (config.count("retention.bytes") && config["retention.bytes"] != "-1")
      throw std::runtime_error(
          "topic " + options_.topic +
          " deletes events beyond retention.bytes=" + config["retention.bytes"] + fix);
    checkDurability(config["min.insync.replicas"]);
  }

  // An existing topic must be at least as durable as asked for, and writable.
  void checkDurability(const std::string& minInsyncValue) {
    int minInsync = 1;
    try {
      minInsync = std::max(1, std::stoi(minInsyncValue));
    } catch (...) {
    }
    minInsync_ = minInsync;
    const std::string& t = options_.topic;
    int rf = options_.replicationFactor;
    if (rf > 0 && minReplicas_ < rf)
      throw std::runtime_error(
          "topic " + t + " has " + std::to_string(minReplicas_) +
          " replica(s) per partition, fewer than --replication-factor " + std::to_string(rf) +
          ": add replicas with kafka-reassign-partitions.sh --bootstrap-server " +
          options_.brokers +
          " --execute --reassignment-json-file FILE (one entry per partition listing " +
          std::to_string(rf) + " broker ids), or use another --topic");
    if (options_.minInsyncReplicas > 0 && minInsync < options_.minInsyncReplicas)
      throw std::runtime_error(
          "topic " + t +
          " acknowledges an event on min.insync.replicas=" + std::to_string(minInsync) +
          " replica(s), fewer than the " + std::to_string(options_.minInsyncReplicas) +
          " asked for (--min-insync-replicas, or --replication-factor): run "
          "`kafka-configs.sh --bootstrap-server " +
          options_.brokers + " --alter --entity-type topics --entity-name " + t +
          " --add-config min.insync.replicas=" + std::to_string(options_.minInsyncReplicas) +
          "`, or use another --topic");
    if (minInsync > minReplicas_)
      throw std::runtime_error(
          "topic " + t + " needs min.insync.replicas=" + std::to_string(minInsync) +
          " in-sync replicas but has only " + std::to_string(minReplicas_) +
          " replica(s) per partition: every event would be refused. Lower it with "
          "`kafka-configs.sh --bootstrap-server " +
          options_.brokers + " --alter --entity-type topics --entity-name " + t +
          " --add-config min.insync.replicas=" + std::to_string(minReplicas_) +
          "`, or add replicas");
  }

  // Produces every record and returns; `done` runs once every delivery report is
  // in (on the poller thread), or at once when nothing could be queued. Keyed
  // records go where the partitioner puts them; with `partition` set, all go there
  // (records about no owner, keys empty). While refusesAppends(), refuses the
  // append before producing anything: nothing is recorded.
  void produce(const std::vector<std::pair<std::string_view, std::string_view>>& records,
               AppendDone done, int32_t partition = RD_KAFKA_PARTITION_UA) {
    if (auto why = refusesAppends()) {
      done({}, std::make_exception_ptr(LogUnavailable(*why + " on " + describe(),
                                                      LogUnavailable::Outcome::nothingRecorded)));
      return;
    }
    if (records.empty()) {
      done({}, nullptr);
      return;
    }
    auto pending = std::make_shared<PendingAppend>();
    pending->remaining = records.size();
    pending->positions.resize(records.size());
    pending->where = describe();
    pending->done = std::move(done);
    // Enqueued together, one append's records are contiguous in their partition,
    // and appends made one after the other stay in that order there: the
    // idempotent producer keeps each partition's queue order, retries included.
    std::unique_lock enqueueLock(enqueueMutex_);
    for (size_t i = 0; i < records.size(); ++i) {
      const auto& [key, value] = records[i];
      auto* slot = new Slot{pending, i};
      rd_kafka_resp_err_t err;
      while (true) {
        err = rd_kafka_producev(
            producer_.get(), RD_KAFKA_V_TOPIC(options_.topic.c_str()),
            RD_KAFKA_V_PARTITION(partition),
            RD_KAFKA_V_KEY(key.empty() ? nullptr : const_cast<char*>(key.data()), key.size()),
            RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_OPAQUE(slot), RD_KAFKA_V_END);
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) break;
        // Bulk copies outrun the local queue: wait for deliveries to free it.
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
      if (err) {
        delete slot;
        {
          std::lock_guard lock(pending->mutex);
          if (pending->error.empty()) pending->error = rd_kafka_err2str(err);
        }
        enqueueLock.unlock();
        settle(pending, records.size() - i);
        return;
      }
    }
  }

  // produce() and wait for its outcome. Throws LogUnavailable.
  std::vector<Position> produceAll(
      const std::vector<std::pair<std::string_view, std::string_view>>& records,
      int32_t partition = RD_KAFKA_PARTITION_UA) {
    std::promise<std::vector<Position>> outcome;
    produce(
        records,
        [&](std::vector<Position> positions, std::exception_ptr error) {
          if (error)
            outcome.set_exception(error);
          else
            outcome.set_value(std::move(positions));
        },
        partition);
    return outcome.get_future().get();
  }

  std::mutex enqueueMutex_;
  KafkaLogOptions options_;
  KPtr<rd_kafka_t> producer_;
  int32_t partitions_ = 0;
  int minReplicas_ = 0;            // fewest replicas of a partition, from the last metadata
  std::atomic<int> minInsync_{1};  // the topic's min.insync.replicas
  std::atomic<int> brokersUp_{0}, brokersKnown_{0};  // from the last statistics
  std::atomic<bool> stopping_{false};
  std::thread poller_;
};

}  // namespace

std::unique_ptr<EventLog> openKafkaLog(const KafkaLogOptions& options) {
  return std::make_unique<KafkaLog>(options);
}

}  // namespace tokenledger
