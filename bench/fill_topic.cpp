// fill_topic: fills a Kafka topic with N valid `Created` events, fast, through
// the service's own Kafka backend (EventLog::appendBatch: idempotent producer,
// acks=all, the owner as the key). For bench/kafka_rebuild. See bench/README.md.
//
//   fill_topic --brokers HOST:PORT --topic T [--events N] [--batch B]
//              [--users U] [--partitions P]
//
// The topic is created (P partitions, default 6, as tokenledgerd does) if missing.
// Each event is a token creation for owner "fill-<i mod U>" with a fresh token key
// and event id; the secret hash is one of 64 precomputed ones (the read model
// stores it, nobody verifies these tokens). Prints
//   result events=N seconds=T rate=R bytes=TOTAL_VALUE_BYTES
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <utility>
#include <vector>

#include "bench_args.h"
#include "bench_http.h"
#include "events/event.h"
#include "events/kafka_log.h"
#include "events/secrets.h"

using namespace tokenledger;

namespace {
[[noreturn]] void usage(int code) {
  std::cerr << "usage: fill_topic --brokers HOST:PORT --topic T [--events N] [--batch B]\n"
               "                  [--users U] [--partitions P]\n";
  std::exit(code);
}
}  // namespace

int main(int argc, char** argv) {
  KafkaLogOptions k;
  k.topic.clear();
  long events = 200000;
  size_t batch = 20000;
  int users = 1000;
  tlbench::Args args(argc, argv, usage);
  while (args.more()) {
    std::string_view a = args.next();
    if (a == "--brokers")
      k.brokers = args.text();
    else if (a == "--topic")
      k.topic = args.text();
    else if (a == "--events")
      events = args.number<long>();
    else if (a == "--batch")
      batch = args.number<size_t>();
    else if (a == "--users")
      users = args.number<int>();
    else if (a == "--partitions")
      k.partitions = args.number<int>();
    else if (a == "--help" || a == "-h")
      usage(0);
    else
      usage(2);
  }
  if (k.brokers.empty() || k.topic.empty() || events < 1 || batch < 1 || users < 1) usage(2);
  try {
    initCrypto();
    k.appendTimeoutMs = 120000;
    auto log = openKafkaLog(k);
    std::vector<SecretHash> hashes;
    for (int i = 0; i < 64; ++i) hashes.push_back(hashSecret(generateSecret()));
    int64_t start = tlbench::nowNs();
    long done = 0;
    size_t bytes = 0;
    while (done < events) {
      std::vector<std::pair<std::string, std::string>> records;
      for (long i = done; i < events && records.size() < batch; ++i) {
        Event e;
        e.eventId = randomBytes(16);
        e.tokenKey = generateTokenKey();
        e.owner = "fill-" + std::to_string(i % users);
        e.actor = "operator";
        e.requestId = "fill-" + std::to_string(i);
        e.occurredAt = Timestamp{std::chrono::microseconds{(start / 1000) + i}};
        Created c;
        c.description = "fill_topic event " + std::to_string(i);
        c.secretHash = hashes[static_cast<size_t>(i) % hashes.size()];
        e.body = c;
        records.emplace_back(e.owner, encodeEvent(e));
        bytes += records.back().second.size();
      }
      done += static_cast<long>(records.size());
      log->appendBatch(records);
    }
    double seconds = static_cast<double>(tlbench::nowNs() - start) / 1e9;
    std::printf("result events=%ld seconds=%.2f rate=%.0f bytes=%zu partitions=%d\n", done, seconds,
                static_cast<double>(done) / seconds, bytes, log->partitionCount());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fill_topic: %s\n", e.what());
    return 1;
  }
}
