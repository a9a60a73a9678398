// kafka_ceiling: the reference for bench/kafka_create_rate. N "clients" that do
// nothing but produce one record and wait for its acknowledgement, then produce
// the next: the closed loop of N concurrent creates with everything but Kafka
// taken out (no HTTP, no signing, no read model). Same producer settings as the
// service's Kafka backend (idempotent, acks=all, linger.ms=0, the owner as the
// key), records of the size of a signed Created event. With --follow a consumer
// assigned to every partition also reads everything back, as each tokenledgerd's
// projector does. See bench/README.md, "Kafka benchmarks".
//
//   kafka_ceiling --brokers HOST:PORT --topic T [--in-flight N] [--duration S]
//                 [--warmup S] [--follow] [--users U] [--value-bytes B]
//
// The topic must exist (kafka_create_rate lets tokenledgerd create it). Prints
//   result in_flight=N rate=R cpu_s=C consumed=M
// where rate counts acknowledged records per second over the measured seconds,
// cpu_s is this process's CPU time (producer and consumer) in them, and consumed
// is how many records the follower read in them (0 without --follow).
#include <librdkafka/rdkafka.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "bench_args.h"
#include "bench_http.h"
#include "events/kafka_handles.h"

namespace {

[[noreturn]] void usage(int code) {
  std::cerr << "usage: kafka_ceiling --brokers HOST:PORT --topic T [--in-flight N] [--duration S]\n"
               "                     [--warmup S] [--follow] [--users U] [--value-bytes B]\n";
  std::exit(code);
}

using tokenledger::kafka::KPtr;

// A client with `settings`, and a delivery callback with its opaque (producers).
KPtr<rd_kafka_t> makeClient(rd_kafka_type_t type,
                            const std::map<std::string, std::string>& settings,
                            void (*onDelivery)(rd_kafka_t*, const rd_kafka_message_t*, void*),
                            void* opaque) {
  auto conf = tokenledger::kafka::makeConf(settings);
  if (onDelivery) rd_kafka_conf_set_dr_msg_cb(conf.get(), onDelivery);
  rd_kafka_conf_set_opaque(conf.get(), opaque);
  return tokenledger::kafka::makeClient(type, std::move(conf));
}

struct Loop {
  std::string topic;
  std::string value;
  int users = 1000;
  long next = 0;
  std::atomic<long> acked{0};
  std::atomic<long> failed{0};
  std::atomic<bool> stopping{false};
  std::string error;  // the first produce error; set on the polling thread only
  rd_kafka_t* rk = nullptr;

  // One client's next create: a fresh record for owner bench-<n mod users>. Never
  // throws: it also runs inside librdkafka's delivery callback.
  void produce() {
    std::string key = "bench-" + std::to_string(next++ % users);
    rd_kafka_resp_err_t err = rd_kafka_producev(
        rk, RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_KEY(key.data(), key.size()),
        RD_KAFKA_V_VALUE(value.data(), value.size()), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_END);
    if (err && error.empty()) error = std::string("produce: ") + rd_kafka_err2str(err);
  }
};

// Runs on the polling (main) thread: the client whose record was acknowledged
// sends its next one.
void onDelivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
  auto& loop = *static_cast<Loop*>(opaque);
  if (m->err) {
    loop.failed++;
    if (loop.error.empty()) loop.error = rd_kafka_err2str(m->err);
  } else {
    loop.acked++;
  }
  if (!loop.stopping) loop.produce();
}

}  // namespace

int main(int argc, char** argv) {
  std::string brokers, topic;
  int inFlight = 64, users = 1000;
  size_t valueBytes = 330;  // a signed Created event with a short description
  double duration = 10, warmup = 2;
  bool follow = false;
  tlbench::Args args(argc, argv, usage);
  while (args.more()) {
    std::string_view a = args.next();
    if (a == "--brokers")
      brokers = args.text();
    else if (a == "--topic")
      topic = args.text();
    else if (a == "--in-flight")
      inFlight = args.number<int>();
    else if (a == "--duration")
      duration = args.number<double>();
    else if (a == "--warmup")
      warmup = args.number<double>();
    else if (a == "--follow")
      follow = true;
    else if (a == "--users")
      users = args.number<int>();
    else if (a == "--value-bytes")
      valueBytes = args.number<size_t>();
    else if (a == "--help" || a == "-h")
      usage(0);
    else
      usage(2);
  }
  if (brokers.empty() || topic.empty() || inFlight < 1 || users < 1 || duration <= 0) usage(2);
  try {
    Loop loop;
    loop.topic = topic;
    loop.users = users;
    loop.value.assign(valueBytes, 'v');
    auto producer = makeClient(RD_KAFKA_PRODUCER,
                               {{"bootstrap.servers", brokers},
                                {"enable.idempotence", "true"},
                                {"acks", "all"},
                                {"linger.ms", "0"},
                                {"partitioner", "murmur2_random"},
                                // An unreachable broker fails the run, not hangs it.
                                {"message.timeout.ms", "10000"}},
                               onDelivery, &loop);
    loop.rk = producer.get();

    // The follower: every partition from its end, like a caught-up projector.
    std::atomic<long> consumed{0};
    std::atomic<bool> stopFollower{false};
    std::thread follower;
    KPtr<rd_kafka_t> consumer;
    if (follow) {
      consumer = makeClient(RD_KAFKA_CONSUMER,
                            {{"bootstrap.servers", brokers},
                             {"group.id", "tlbench-ceiling"},
                             {"enable.auto.commit", "false"},
                             {"enable.auto.offset.store", "false"},
                             {"enable.partition.eof", "false"},
                             {"fetch.wait.max.ms", "10"}},
                            nullptr, nullptr);
      const rd_kafka_metadata_t* md = nullptr;
      KPtr<rd_kafka_topic_partition_list_t> list(rd_kafka_topic_partition_list_new(8));
      if (rd_kafka_metadata(consumer.get(), 1, nullptr, &md, 10000))
        throw std::runtime_error("cannot reach Kafka at " + brokers);
      for (int t = 0; t < md->topic_cnt; ++t)
        if (topic == md->topics[t].topic)
          for (int p = 0; p < md->topics[t].partition_cnt; ++p)
            rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), p)->offset =
                RD_KAFKA_OFFSET_END;
      rd_kafka_metadata_destroy(md);
      if (list->cnt == 0) throw std::runtime_error("topic " + topic + " does not exist");
      if (rd_kafka_assign(consumer.get(), list.get()))
        throw std::runtime_error("cannot assign partitions");
      follower = std::thread([&] {
        while (!stopFollower) {
          KPtr<rd_kafka_message_t> m(rd_kafka_consumer_poll(consumer.get(), 100));
          if (m && !m->err) consumed++;
        }
      });
    }

    for (int i = 0; i < inFlight; ++i) loop.produce();
    const int64_t start = tlbench::nowNs();
    const int64_t measureFrom = start + static_cast<int64_t>(warmup * 1e9);
    const int64_t end = measureFrom + static_cast<int64_t>(duration * 1e9);
    while (tlbench::nowNs() < measureFrom) rd_kafka_poll(producer.get(), 10);
    const long acked0 = loop.acked, consumed0 = consumed;
    const double cpu0 = tlbench::selfCpuSeconds();
    const int64_t t0 = tlbench::nowNs();
    while (tlbench::nowNs() < end) rd_kafka_poll(producer.get(), 10);
    const int64_t t1 = tlbench::nowNs();
    const long acked = loop.acked - acked0, got = consumed - consumed0;
    const double cpu = tlbench::selfCpuSeconds() - cpu0;
    loop.stopping = true;
    rd_kafka_flush(producer.get(), 10000);
    if (follow) {
      stopFollower = true;
      follower.join();
      rd_kafka_consumer_close(consumer.get());
    }
    if (loop.failed > 0 || !loop.error.empty() || acked == 0) {
      std::fprintf(stderr,
                   "kafka_ceiling: %ld records failed, %ld acknowledged in the measured time%s%s\n",
                   loop.failed.load(), acked,
                   loop.error.empty() ? "" : "; first error: ", loop.error.c_str());
      return 1;
    }
    const double seconds = static_cast<double>(t1 - t0) / 1e9;
    std::printf("result in_flight=%d rate=%.0f cpu_s=%.2f consumed=%ld\n", inFlight,
                static_cast<double>(acked) / seconds, cpu, got);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kafka_ceiling: %s\n", e.what());
    return 1;
  }
}
