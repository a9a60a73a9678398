// ledger-audit's log readers: the embedded LMDB log (read-only) and a Kafka topic
// (a plain consumer that assigns every partition; no group, no commits, no topic
// creation).
#include <librdkafka/rdkafka.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "events/lmdb.h"
#include "events/log_format.h"
#include "tools/ledger_audit.h"

namespace tokenledger::audit {
namespace {

// The flags were right; what they name cannot be read (no pointer to --help).
constexpr auto kNoHint = UsageError::Hint::none;

class EmbeddedSource final : public LogSource {
 public:
  EmbeddedSource(const std::string& dataDir, const std::optional<Offsets>& limit)
      : dir_(dataDir + "/log") {
    if (::access((dir_ + "/data.mdb").c_str(), R_OK) != 0)
      throw UsageError(
          "no embedded event log in " + dir_ + " (is --data-dir the daemon's data directory?)",
          kNoHint);
    // Read-only: the operator's files keep their modes, and nothing is created.
    env_ = std::make_unique<lmdb::Env>(
        dir_, lmdb::EnvOptions{
                  .mapSizeBytes = 64ull << 30, .maxDbs = 4, .maxReaders = 126, .readOnly = true});
    txn_ = std::make_unique<lmdb::Txn>(lmdb::Txn::read(*env_));
    try {
      dbi_ = txn_->openDb(logformat::kEventsDb);
    } catch (const lmdb::LmdbError& e) {
      if (e.code() != MDB_NOTFOUND) throw;
      empty_ = true;
    }
    Offset first{0}, last{-1};
    if (!empty_) {
      cursor_ = std::make_unique<lmdb::Cursor>(*txn_, dbi_);
      if (cursor_->last()) last = logformat::offsetOf(cursor_->key()).value_or(Offset{-1});
      if (cursor_->first()) first = logformat::offsetOf(cursor_->key()).value_or(Offset{0});
      positioned_ = last.value >= 0;
    }
    // Where a reader starts: at the oldest record (its offset is the next to read).
    start_ = Offsets{{NextOffset{first.value}}};
    end_ = Offsets{{after(last)}};
    if (limit && !limit->next.empty() && limit->next[0] < end_.next[0])
      end_.next[0] = limit->next[0];
  }

  std::string describe() const override { return "embedded log in " + dir_; }
  int32_t partitions() const override { return 1; }
  Offsets start() const override { return start_; }
  Offsets end() const override { return end_; }
  bool denseOffsets() const override { return true; }

  bool next(std::vector<LogRecord>& out, size_t max) override {
    if (empty_ || !positioned_) return false;
    size_t n = 0;
    while (positioned_ && n < max) {
      Offset offset = logformat::offsetOf(cursor_->key()).value_or(Offset{-1});
      if (!end_.next[0].covers(offset)) {
        positioned_ = false;
        break;
      }
      out.push_back(unpack(offset, cursor_->value()));
      ++n;
      positioned_ = cursor_->next();
    }
    return n > 0 || positioned_;
  }

 private:
  // A damaged record (too short for the key length it declares) yields an empty
  // value, which the caller reports as malformed at its position.
  static LogRecord unpack(Offset offset, std::string_view raw) {
    if (auto r = logformat::unpackRecord(offset, raw)) return std::move(*r);
    return LogRecord{Position{Partition{0}, offset}, "", ""};
  }

  std::string dir_;
  std::unique_ptr<lmdb::Env> env_;
  std::unique_ptr<lmdb::Txn> txn_;
  MDB_dbi dbi_ = 0;
  std::unique_ptr<lmdb::Cursor> cursor_;
  bool empty_ = false;
  bool positioned_ = false;
  Offsets start_, end_;
};

struct KafkaDeleter {
  void operator()(rd_kafka_t* p) const {
    rd_kafka_consumer_close(p);
    rd_kafka_destroy(p);
  }
  void operator()(const rd_kafka_metadata_t* p) const { rd_kafka_metadata_destroy(p); }
  void operator()(rd_kafka_topic_partition_list_t* p) const {
    rd_kafka_topic_partition_list_destroy(p);
  }
  void operator()(rd_kafka_message_t* p) const { rd_kafka_message_destroy(p); }
  void operator()(rd_kafka_conf_t* p) const { rd_kafka_conf_destroy(p); }
};

void quietLog(const rd_kafka_t*, int level, const char* fac, const char* buf) {
  if (level <= 2) fprintf(stderr, "librdkafka %s: %s\n", fac, buf);
}

class KafkaSource final : public LogSource {
 public:
  KafkaSource(const KafkaSourceOptions& o, const std::optional<Offsets>& limit) : options_(o) {
    if (o.brokers.empty()) throw UsageError("--log kafka needs --kafka-brokers HOST:PORT", kNoHint);
    // Ours until rd_kafka_new succeeds: it takes the configuration only then.
    std::unique_ptr<rd_kafka_conf_t, KafkaDeleter> conf(rd_kafka_conf_new());
    char err[512];
    auto set = [&](const char* k, const std::string& v) {
      if (rd_kafka_conf_set(conf.get(), k, v.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK)
        throw UsageError(std::string("librdkafka setting ") + k + ": " + err, kNoHint);
    };
    set("bootstrap.servers", o.brokers);
    set("group.id", "ledger-audit");  // required by the consumer API; never joined
    set("enable.auto.commit", "false");
    set("enable.auto.offset.store", "false");
    set("enable.partition.eof", "false");
    set("auto.offset.reset", "earliest");
    set("fetch.wait.max.ms", "10");
    set("queued.min.messages", "1000000");
    set("fetch.message.max.bytes", "4194304");
    set("reconnect.backoff.max.ms", "1000");
    set("socket.timeout.ms", std::to_string(std::max(o.timeoutMs, 1000)));
    rd_kafka_conf_set_log_cb(conf.get(), quietLog);
    rk_.reset(rd_kafka_new(RD_KAFKA_CONSUMER, conf.get(), err, sizeof err));
    if (!rk_) throw UsageError(std::string("cannot create a Kafka consumer: ") + err, kNoHint);
    conf.release();  // rd_kafka_new owns it now

    const rd_kafka_metadata_t* md = nullptr;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk_.get(), 1, nullptr, &md, o.timeoutMs);
    if (e)
      throw UsageError("cannot reach Kafka at " + o.brokers + " within " +
                           std::to_string(o.timeoutMs / 1000) + " s: " + rd_kafka_err2str(e) +
                           "; check --kafka-brokers and that the broker runs",
                       kNoHint);
    std::unique_ptr<const rd_kafka_metadata_t, KafkaDeleter> guard(md);
    int32_t count = -1;
    for (int i = 0; i < md->topic_cnt; ++i)
      if (o.topic == md->topics[i].topic && md->topics[i].err == 0)
        count = md->topics[i].partition_cnt;
    if (count <= 0)
      throw UsageError("topic " + o.topic + " does not exist on " + o.brokers + " (check --topic)",
                       kNoHint);
    partitions_ = count;
    for (int32_t p = 0; p < count; ++p) {
      int64_t low = 0, high = 0;
      e = rd_kafka_query_watermark_offsets(rk_.get(), o.topic.c_str(), p, &low, &high, o.timeoutMs);
      if (e)
        throw UsageError("cannot read the offsets of " + o.topic + " partition " +
                             std::to_string(p) + ": " + rd_kafka_err2str(e),
                         kNoHint);
      start_.next.push_back(NextOffset{low});
      NextOffset stop{high};
      if (limit && static_cast<size_t>(p) < limit->next.size())
        stop = std::min(stop, limit->next[p]);
      end_.next.push_back(stop);
    }
    seen_ = start_;
    std::unique_ptr<rd_kafka_topic_partition_list_t, KafkaDeleter> list(
        rd_kafka_topic_partition_list_new(count));
    for (int32_t p = 0; p < count; ++p)
      rd_kafka_topic_partition_list_add(list.get(), o.topic.c_str(), p)->offset =
          start_.next[p].value;
    e = rd_kafka_assign(rk_.get(), list.get());
    if (e)
      throw UsageError(std::string("cannot assign partitions: ") + rd_kafka_err2str(e), kNoHint);
  }

  std::string describe() const override {
    return "Kafka topic " + options_.topic + " on " + options_.brokers;
  }
  int32_t partitions() const override { return partitions_; }
  Offsets start() const override { return start_; }
  Offsets end() const override { return end_; }
  bool denseOffsets() const override { return false; }

  bool next(std::vector<LogRecord>& out, size_t max) override {
    size_t n = 0;
    auto lastProgress = std::chrono::steady_clock::now();
    while (n < max && !done()) {
      std::unique_ptr<rd_kafka_message_t, KafkaDeleter> m(
          rd_kafka_consumer_poll(rk_.get(), n == 0 ? 200 : 0));
      if (!m) {
        if (n > 0) break;
        if (std::chrono::steady_clock::now() - lastProgress >
            std::chrono::milliseconds(options_.timeoutMs * 3))
          throw std::runtime_error("no records from " + describe() + " for " +
                                   std::to_string(options_.timeoutMs * 3 / 1000) +
                                   " s although the end is not reached");
        continue;
      }
      if (m->err) {
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) continue;
        // Transport errors are retried by librdkafka; give up only when nothing moves.
        if (std::chrono::steady_clock::now() - lastProgress >
            std::chrono::milliseconds(options_.timeoutMs * 3))
          throw std::runtime_error("reading " + describe() +
                                   " failed: " + rd_kafka_message_errstr(m.get()));
        continue;
      }
      Position at{Partition{m->partition}, Offset{m->offset}};
      if (!end_.covers(at)) continue;  // beyond the snapshot
      seen_.advancePast(at.partition, at.offset);
      LogRecord r;
      r.position = at;
      if (m->key) r.key.assign(static_cast<const char*>(m->key), m->key_len);
      if (m->payload) r.value.assign(static_cast<const char*>(m->payload), m->len);
      out.push_back(std::move(r));
      ++n;
      lastProgress = std::chrono::steady_clock::now();
    }
    return n > 0 || !done();
  }

 private:
  bool done() const { return seen_.covers(end_); }

  KafkaSourceOptions options_;
  std::unique_ptr<rd_kafka_t, KafkaDeleter> rk_;
  int32_t partitions_ = 0;
  Offsets start_, end_;
  Offsets seen_;
};

}  // namespace

std::unique_ptr<LogSource> openEmbeddedSource(const std::string& dataDir,
                                              const std::optional<Offsets>& limit) {
  return std::make_unique<EmbeddedSource>(dataDir, limit);
}

std::unique_ptr<LogSource> openKafkaSource(const KafkaSourceOptions& options,
                                           const std::optional<Offsets>& limit) {
  return std::make_unique<KafkaSource>(options, limit);
}

std::unique_ptr<LogSource> openSource(const Options& options, const std::optional<Offsets>& limit) {
  if (options.log == "kafka") return openKafkaSource(options.kafka, limit);
  return openEmbeddedSource(options.dataDir, limit);
}

}  // namespace tokenledger::audit
