// audit_replay: how fast ledger-audit replays a big log, next to the raw read.
//
// Generates N signed events (one writer, chained and signed like the service's
// SignedAppender writes them: each signing pass one group, --group events per pass,
// one Ed25519 signature per group; --group 0 signs every event alone, as builds
// before group signatures did), appends them with EventLog::appendBatch to an
// embedded log and, with --kafka-brokers, to a fresh Kafka topic; then times
// SignatureVerifier::check on one thread (µs per event, for the group form and for
// events signed alone) and the ledger-audit binary:
//   policy     replay + decode + state machine for every event
//   verify-log + every signature, order and completeness
//   rebuild    a read model through the projection's apply path, without and with
//              the trusted-writer checks
// and, for Kafka, kcat's raw read of the same topic (goal: policy >= 0.5x kcat).
//
//   audit_replay [--events N] [--group N] [--kafka-brokers B] [--partitions P] [--keep DIR]
//   audit_replay --quick      (20,000 events, embedded only: the CTest smoke run)
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "bench/signed_events.h"
#include "events/event.h"
#include "events/event_log.h"
#include "events/kafka_log.h"
#include "events/secrets.h"
#include "events/signing.h"

using namespace tokenledger;
namespace fs = std::filesystem;

namespace {

const std::string kAudit = LEDGER_AUDIT_PATH;

double secondsOf(const std::string& cmd, int* status = nullptr) {
  auto start = std::chrono::steady_clock::now();
  int rc = std::system(cmd.c_str());
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (status) *status = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  return s;
}

// N events of one writer: mostly creations, every fourth a deactivation of the
// token created just before it, signed in groups of `group` events (0: each alone).
// Calls `sink` with batches of (owner, envelope).
template <typename Sink>
void generate(size_t n, size_t group, const SigningKey& key, Sink&& sink) {
  tlbench::SignedChain chain(key, group);
  const size_t chunk = chain.chunk();
  std::string lastKey;
  SecretHash hash = hashSecret(generateSecret());
  for (size_t base = 0; base < n; base += chunk) {
    size_t m = std::min(chunk, n - base);
    std::vector<Event> events(m);
    for (size_t i = 0; i < m; ++i) {
      size_t k = base + i;
      Event& e = events[i];
      e.eventId = randomBytes(16);
      e.owner = "user" + std::to_string(k % 1000);
      e.actor = "operator";
      e.requestId = "bench-" + std::to_string(k);
      e.occurredAt = Timestamp{std::chrono::microseconds{1'700'000'000'000'000}} +
                     std::chrono::milliseconds{static_cast<int64_t>(k)};
      if (k % 4 == 3) {
        e.tokenKey = lastKey;
        e.owner = "user" + std::to_string((k - 1) % 1000);
        e.body = Deactivated{Reason::manual, e.occurredAt};
      } else {
        e.tokenKey = "tlk_bench" + std::to_string(k);
        Created c;
        c.description = "Receive leads from RD Station";
        c.secretHash = hash;
        e.body = c;
        lastKey = e.tokenKey;
      }
    }
    sink(chain.seal(events));
  }
}

// SignatureVerifier::check on one thread, in µs per event, over `envelopes` in order
// (`rounds` times, each with a fresh verifier). Exits 1 unless every one is valid.
double checkMicros(const std::vector<std::string>& envelopes, const KeyRing& ring, int rounds) {
  auto start = std::chrono::steady_clock::now();
  for (int r = 0; r < rounds; ++r) {
    SignatureVerifier verifier;
    for (const auto& e : envelopes)
      if (verifier.check(e, ring).status != SignatureStatus::valid) {
        std::cerr << "a generated event does not verify\n";
        std::exit(1);
      }
  }
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return s * 1e6 / static_cast<double>(envelopes.size() * static_cast<size_t>(rounds));
}

void report(const std::string& what, size_t n, double secs) {
  printf("  %-44s %8.2f s  %10.0f events/s\n", what.c_str(), secs, static_cast<double>(n) / secs);
}

}  // namespace

int main(int argc, char** argv) {
  size_t n = 1'000'000;
  size_t group = 64;
  std::string brokers, keep;
  int partitions = 6;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::cerr << a << " needs a value\n";
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--quick") {
      n = 20000;
    } else if (a == "--events") {
      n = std::stoul(value());
    } else if (a == "--group") {
      group = std::stoul(value());
    } else if (a == "--kafka-brokers") {
      brokers = value();
    } else if (a == "--partitions") {
      partitions = std::stoi(value());
    } else if (a == "--keep") {
      keep = value();
    } else {
      std::cerr << "usage: audit_replay [--quick] [--events N] [--group N (default 64; 0: each "
                   "event signed alone)] [--kafka-brokers B] [--partitions P] [--keep DIR]\n";
      return 2;
    }
  }
  initCrypto();
  std::string dir = keep;
  if (dir.empty()) {
    std::string pattern = (fs::temp_directory_path() / "audit-replay-XXXXXX").string();
    if (!mkdtemp(pattern.data())) return 2;
    dir = pattern;
  }
  fs::create_directories(dir);
  SigningKey key = SigningKey::generate();
  std::ofstream(dir + "/signing-keys.pub") << key.publicKeyLine() << "\n";

  if (group == 0)
    printf("audit_replay: %zu events, each signed alone (v1), %u cores\n", n,
           std::thread::hardware_concurrency());
  else
    printf("audit_replay: %zu events, signed in groups of %zu, %u cores\n", n, group,
           std::thread::hardware_concurrency());
  std::unique_ptr<EventLog> kafka;
  std::string topic = "audit-replay-" + randomBase62(6);
  if (!brokers.empty()) {
    KafkaLogOptions o;
    o.brokers = brokers;
    o.topic = topic;
    o.partitions = partitions;
    o.appendTimeoutMs = 120000;
    kafka = openKafkaLog(o);
  }
  {
    auto log = openEmbeddedLog(dir + "/log", EmbeddedLogOptions{64ull << 30});
    auto start = std::chrono::steady_clock::now();
    std::vector<std::string> sample;  // the first events, for the verifier's cost
    generate(n, group, key, [&](const std::vector<std::pair<std::string, std::string>>& batch) {
      log->appendBatch(batch);
      if (kafka) kafka->appendBatch(batch);
      for (size_t i = 0; i < batch.size() && sample.size() < 20000; ++i)
        sample.push_back(batch[i].second);
    });
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    printf("generated and appended in %.1f s%s\n", s, kafka ? " (embedded and Kafka)" : "");
    // The verifier alone, on one thread: these events, and as many signed alone.
    KeyRing ring;
    ring.add(key.publicKey());
    std::vector<std::string> alone;
    generate(std::min<size_t>(n, 2000), 0, key,
             [&](const std::vector<std::pair<std::string, std::string>>& batch) {
               for (const auto& r : batch) alone.push_back(r.second);
             });
    printf(
        "SignatureVerifier::check, one thread: %.2f µs/event (%s), %.2f µs/event (signed "
        "alone)\n",
        checkMicros(sample, ring, 3),
        group == 0 ? "signed alone" : ("groups of " + std::to_string(group)).c_str(),
        checkMicros(alone, ring, 3));
  }
  int failures = 0;
  auto time = [&](const std::string& label, const std::string& cmd, int wantStatus) {
    int status = -1;
    double s = secondsOf(cmd + " > /dev/null", &status);
    if (status != wantStatus) {
      printf("  %s: exit status %d, expected %d (%s)\n", label.c_str(), status, wantStatus,
             cmd.c_str());
      failures++;
    }
    report(label, n, s);
    return s;
  };
  std::string embedded = kAudit + " --quiet --data-dir " + dir;
  printf("embedded log (%s):\n", (dir + "/log").c_str());
  time("ledger-audit policy (replay, decode, apply)", embedded + " policy --max-age 36500", 0);
  time("ledger-audit history --user user8", embedded + " history --user user8 --format json", 0);
  time("ledger-audit verify-log (+ signatures)", embedded + " verify-log", 0);
  // The projection's apply path, without and with the trust checks a Kafka replica
  // makes (--keys: every event's signature checked before it applies).
  const std::string trusted = embedded + " --keys " + dir + "/signing-keys.pub";
  time("ledger-audit policy, trusted writers only", trusted + " policy --max-age 36500", 0);
  fs::remove_all(dir + "/rebuilt");
  time("ledger-audit rebuild (read model)", embedded + " rebuild --out " + dir + "/rebuilt", 0);
  fs::remove_all(dir + "/rebuilt");
  time("ledger-audit rebuild, trusted writers only", trusted + " rebuild --out " + dir + "/rebuilt",
       0);
  fs::remove_all(dir + "/rebuilt");
  if (kafka) {
    kafka.reset();
    printf("Kafka topic %s on %s (%d partitions):\n", topic.c_str(), brokers.c_str(), partitions);
    std::string k = kAudit + " --quiet --log kafka --kafka-brokers " + brokers + " --topic " +
                    topic + " --keys " + dir + "/signing-keys.pub";
    double raw =
        time("kcat raw read (-C -e -q -f '%o')",
             "kcat -C -b " + brokers + " -t " + topic + " -o beginning -e -q -f '%o\\n'", 0);
    double history =
        time("ledger-audit history --user user8", k + " history --user user8 --format json", 0);
    double replay =
        time("ledger-audit policy (replay, decode, apply)", k + " policy --max-age 36500", 0);
    time("ledger-audit verify-log (+ signatures)", k + " verify-log", 0);
    printf("  speed relative to kcat: history %.2fx, policy %.2fx (goal >= 0.5x)\n", raw / history,
           raw / replay);
  }
  if (keep.empty()) fs::remove_all(dir);
  return failures == 0 ? 0 : 1;
}
