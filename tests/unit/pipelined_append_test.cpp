// The signed appender with several appends under way (events/signed_appender.h):
// at most the log's appendsInFlight(), outcomes taken in signing order, each
// partition's order kept, and the writer chain intact (checked as ledger-audit
// verify-log checks it) whatever an append in the middle comes to.
#include <doctest/doctest.h>

#include <atomic>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "events/signed_appender.h"
#include "tests/unit/held_log.h"
#include "tests/unit/signing_vectors.h"
#include "tests/unit/test_util.h"
#include "tools/writer_chain.h"

namespace tokenledger {
namespace {

using Outcome = test::HeldLog::Outcome;

// Callers' results in the order their callbacks ran, and the writer's warnings.
struct Results {
  std::mutex mutex;
  std::vector<std::string> order;  // the owner of each finished append
  std::map<std::string, SignedAppender::Appended> byOwner;
  std::vector<std::string> warnings;

  SignedAppender::Done doneFor(const std::string& owner) {
    return [this, owner](SignedAppender::Appended& a) {
      std::lock_guard lock(mutex);
      order.push_back(owner);
      byOwner[owner] = std::move(a);
    };
  }
  size_t finished() {
    std::lock_guard lock(mutex);
    return order.size();
  }
  bool waitFor(size_t n) {
    for (int i = 0; i < 5000 && finished() < n; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    return finished() >= n;
  }
  const SignedAppender::Appended& of(const std::string& owner) {
    std::lock_guard lock(mutex);
    return byOwner.at(owner);
  }
};

struct Writer {
  test::HeldLog log;
  KeyRing ring;
  Results results;
  WriterState persisted;
  std::unique_ptr<SignedAppender> appender;

  Writer(int32_t partitions, size_t inFlight) : log(partitions, inFlight) {
    SigningKey key = SigningKey::generate();
    ring = test::ringOf(key);
    appender = std::make_unique<SignedAppender>(
        log, std::move(key), WriterState{}, [this](const WriterState& st) { persisted = st; },
        [this](const std::string& w) {
          std::lock_guard lock(results.mutex);
          results.warnings.push_back(w);
        });
  }
  // One created event of `owner` ("P-name": partition P).
  void queue(const std::string& owner) {
    appender->appendAsync(
        owner,
        {test::makeEvent(generateTokenKey(), owner, test::timeUs(1), test::makeCreated("s"))},
        results.doneFor(owner));
  }
  // Queues `owner` and waits until the writer started the log append holding it.
  void started(const std::string& owner) {
    size_t before = log.calls();
    queue(owner);
    REQUIRE(log.waitForCalls(before + 1));
  }
  uint64_t seqOf(const std::string& owner) { return results.of(owner).events.at(0).writerSeq; }
  bool nothingRecorded(const std::string& owner) {
    try {
      std::rethrow_exception(results.of(owner).error);
    } catch (const LogUnavailable& e) {
      return e.nothingRecorded();
    } catch (...) {
    }
    return false;
  }
  bool warned(const std::string& text) {
    std::lock_guard lock(results.mutex);
    for (const auto& w : results.warnings)
      if (w.find(text) != std::string::npos) return true;
    return false;
  }
  // verify-log's chain findings over every partition, in partition order.
  std::vector<audit::Finding> chainFindings() {
    audit::WriterChainChecker checker;
    for (int32_t p = 0; p < log.partitionCount(); ++p)
      for (const auto& r : log.partition(p)) {
        SignatureCheck c = checkSignature(r.value, ring);
        REQUIRE(c.status == SignatureStatus::valid);
        checker.add(r.position, c);
      }
    checker.finish();
    return checker.findings();
  }
};

std::string kinds(const std::vector<audit::Finding>& findings) {
  std::string out;
  for (const auto& f : findings) out += f.kind + ": " + f.message + "\n";
  return out;
}

TEST_CASE("several appends are under way at once, at most appendsInFlight; outcomes in order") {
  test::ensureCrypto();
  Writer w(3, 3);
  w.started("0-a");
  w.started("1-b");
  w.started("2-c");
  // A fourth waits for room: three are under way.
  w.queue("0-d");
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  CHECK(w.log.calls() == 3);
  // The log acknowledges the later ones first (other partitions): their callers
  // hear only once everything signed before them is settled.
  w.log.settle(2, Outcome::ok);
  w.log.settle(1, Outcome::ok);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  CHECK(w.results.finished() == 0);
  w.log.settle(0, Outcome::ok);
  REQUIRE(w.log.waitForCalls(4));  // room again
  REQUIRE(w.results.waitFor(3));
  w.log.settle(3, Outcome::ok);
  REQUIRE(w.results.waitFor(4));
  CHECK(w.results.order == std::vector<std::string>{"0-a", "1-b", "2-c", "0-d"});
  CHECK(w.log.maxHeld() == 3);
  for (const auto& [owner, seq] : std::vector<std::pair<std::string, uint64_t>>{
           {"0-a", 1}, {"1-b", 2}, {"2-c", 3}, {"0-d", 4}}) {
    CAPTURE(owner);
    CHECK_FALSE(w.results.of(owner).error);
    CHECK(w.seqOf(owner) == seq);
    REQUIRE(w.results.of(owner).positions.size() == 1);
  }
  CHECK(w.results.of("0-d").positions[0] == Position{Partition{0}, Offset{1}});
  CHECK(w.chainFindings().empty());
  w.appender.reset();  // persists the last state
  CHECK(w.persisted.lastSeq == 4);
  CHECK(w.persisted.scanFrom == Offsets::of({2, 1, 1}));
}

TEST_CASE("many writers' appends in flight: each partition in signing order, the chain intact") {
  test::ensureCrypto();
  Writer w(4, 5);
  std::atomic<bool> stop{false};
  // The log settles what it holds in a random order that never lets a call overtake
  // an earlier one in its partition (the promise Kafka's idempotent producer keeps).
  std::thread settler([&] {
    std::mt19937 rng(7);
    size_t settled = 0;
    std::vector<bool> done;
    while (!stop || settled < w.log.calls()) {
      size_t n = w.log.calls();
      done.resize(n, false);
      std::vector<size_t> ready;
      std::set<int32_t> blocked;
      for (size_t i = 0; i < n; ++i) {
        if (done[i]) continue;
        auto parts = w.log.partitionsOf(i);
        bool free = true;
        for (int32_t p : parts) free = free && !blocked.count(p);
        if (free) ready.push_back(i);
        blocked.insert(parts.begin(), parts.end());
      }
      if (ready.empty()) {
        std::this_thread::sleep_for(std::chrono::microseconds(200));
        continue;
      }
      size_t pick = ready[rng() % ready.size()];
      w.log.settle(pick, Outcome::ok);
      done[pick] = true;
      settled++;
    }
  });
  std::vector<std::thread> clients;
  for (int t = 0; t < 8; ++t)
    clients.emplace_back([&, t] {
      for (int i = 0; i < 40; ++i) {
        std::string owner = std::to_string((t + i) % 4) + "-user" + std::to_string(t);
        std::vector<Event> events{
            test::makeEvent(generateTokenKey(), owner, test::timeUs(i), test::makeCreated("s"))};
        if (i % 7 == 0)
          events.push_back(
              test::makeEvent(events[0].tokenKey, owner, test::timeUs(i), Activated{}));
        auto pos = w.appender->append(owner, events);
        REQUIRE(pos.size() == events.size());
        if (pos.size() == 2) CHECK(pos[1].offset == pos[0].offset + 1);
      }
    });
  for (auto& c : clients) c.join();
  stop = true;
  settler.join();
  size_t total = 0;
  for (int32_t p = 0; p < 4; ++p) {
    uint64_t last = 0;
    for (const auto& r : w.log.partition(p)) {
      uint64_t seq = checkSignature(r.value, w.ring).writerSeq;
      CHECK(seq > last);  // within a partition the sequence only grows
      last = seq;
      total++;
    }
  }
  CHECK(total == 8 * 40 + 8 * 6);
  auto findings = w.chainFindings();
  CHECK_MESSAGE(findings.empty(), kinds(findings));
}

TEST_CASE("an append in the middle that recorded nothing, and nothing after it did either") {
  test::ensureCrypto();
  Writer w(3, 4);
  w.started("0-a");
  w.started("1-b");
  w.started("2-c");
  w.log.settle(1, Outcome::nothing);
  // Signed on b's chain: it does not start while b's numbers may be given back.
  w.queue("0-d");
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  CHECK(w.log.calls() == 3);
  w.log.settle(2, Outcome::nothing);
  w.log.settle(0, Outcome::ok);
  REQUIRE(w.results.waitFor(4));
  CHECK(w.results.order == std::vector<std::string>{"0-a", "1-b", "2-c", "0-d"});
  CHECK_FALSE(w.results.of("0-a").error);
  // b, c and d (signed after them) fail, nothing of them recorded; their numbers
  // are given back.
  CHECK(w.nothingRecorded("1-b"));
  CHECK(w.nothingRecorded("2-c"));
  CHECK(w.nothingRecorded("0-d"));
  CHECK(w.warned("writer sequence 2-3 recorded nothing; the sequence continues at 2"));
  CHECK(w.log.calls() == 3);  // d was never appended
  w.started("1-e");
  w.log.settle(3, Outcome::ok);
  REQUIRE(w.results.waitFor(5));
  CHECK_FALSE(w.results.of("1-e").error);
  CHECK(w.seqOf("1-e") == 2);
  auto findings = w.chainFindings();
  CHECK_MESSAGE(findings.empty(), kinds(findings));
  w.appender.reset();
  CHECK(w.persisted.lastSeq == 2);
}

TEST_CASE("an append in the middle that recorded nothing, with a later one chained on it landing") {
  test::ensureCrypto();
  Writer w(3, 4);
  w.started("0-a");
  w.started("1-b");
  w.started("2-c");
  Outcome middle = Outcome::nothing;
  std::string warning = "writer sequence 2-2 recorded nothing, but appends chained on it";
  SUBCASE("refused, nothing recorded") {}
  SUBCASE("unknown outcome, lost") {
    middle = Outcome::unknownLost;
    warning = "writer sequence 2-2 failed with an unknown outcome";
  }
  w.log.settle(1, middle);
  w.log.settle(2, Outcome::ok);
  w.log.settle(0, Outcome::ok);
  REQUIRE(w.results.waitFor(3));
  CHECK_FALSE(w.results.of("0-a").error);
  CHECK(w.results.of("1-b").error);
  CHECK(w.nothingRecorded("1-b") == (middle == Outcome::nothing));
  CHECK_FALSE(w.results.of("2-c").error);  // c landed: its caller hears so
  CHECK(w.warned(warning));
  // b's number stays spent (c chained on it): the next one goes on after c.
  w.started("1-e");
  w.log.settle(3, Outcome::ok);
  REQUIRE(w.results.waitFor(4));
  CHECK(w.seqOf("1-e") == 4);
  auto findings = w.chainFindings();
  REQUIRE_MESSAGE(findings.size() == 1, kinds(findings));
  CHECK(findings[0].kind == "missing");
  CHECK(findings[0].message.find("seq 2 (1 events) are not in the log") != std::string::npos);
  w.appender.reset();
  CHECK(w.persisted.lastSeq == 4);
}

TEST_CASE("an append of unknown outcome that landed after all: the chain is whole") {
  test::ensureCrypto();
  Writer w(2, 3);
  w.started("0-a");
  w.started("1-b");
  w.log.settle(0, Outcome::unknownLanded);
  w.log.settle(1, Outcome::ok);
  REQUIRE(w.results.waitFor(2));
  CHECK(w.results.of("0-a").error);
  CHECK_FALSE(w.nothingRecorded("0-a"));
  CHECK_FALSE(w.results.of("1-b").error);
  CHECK(w.seqOf("1-b") == 2);
  auto findings = w.chainFindings();
  CHECK_MESSAGE(findings.empty(), kinds(findings));
}

}  // namespace
}  // namespace tokenledger
