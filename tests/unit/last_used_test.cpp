// Last used (issue 17): the recorder's coalescing, minute truncation, the merge over
// replicas, the store and the flusher (service/last_used.h, events/usage_store.h).
#include <doctest/doctest.h>

#include <thread>
#include <vector>

#include "service/json.h"
#include "service/last_used.h"
#include "tests/unit/test_util.h"

namespace tokenledger {
namespace {

using std::chrono::minutes;
using std::chrono::seconds;

const Timestamp kT0 = Timestamp{minutes{29'400'000}};  // a whole minute (2025-11-22T08:00Z)

TEST_CASE("minutes truncate: 59.999 s past is the same minute, 60 s the next") {
  CHECK(minuteOf(kT0) == 29'400'000);
  CHECK(minuteOf(kT0 + std::chrono::milliseconds(59'999)) == 29'400'000);
  CHECK(minuteOf(kT0 + seconds(60)) == 29'400'001);
  CHECK(startOfMinute(minuteOf(kT0 + seconds(42))) == kT0);
  // Before the epoch rounds down, not toward zero.
  CHECK(minuteOf(Timestamp{} - seconds(1)) == -1);
}

TEST_CASE("accumulate: the same minute adds up, a later one replaces, an earlier one is dropped") {
  CHECK(accumulate({10, 3}, {10, 4}) == LastUse{10, 7});
  CHECK(accumulate({10, 3}, {11, 1}) == LastUse{11, 1});
  CHECK(accumulate({11, 1}, {10, 9}) == LastUse{11, 1});
}

TEST_CASE("mergeReplicas: the latest minute over replicas, counts of that minute summed") {
  CHECK(mergeReplicas({10, 3}, {10, 5}) == LastUse{10, 8});
  CHECK(mergeReplicas({9, 100}, {10, 5}) == LastUse{10, 5});
  CHECK(newerOf({10, 3}, {10, 5}) == LastUse{10, 5});
  CHECK(newerOf({11, 1}, {10, 5}) == LastUse{11, 1});
}

TEST_CASE("encoding round trip; other versions and sizes are refused") {
  LastUse u{29'400'123, 77};
  auto bytes = encodeLastUse(u);
  CHECK(bytes.size() == 17);
  CHECK(decodeLastUse(bytes) == u);
  CHECK_FALSE(decodeLastUse(bytes.substr(1)));
  bytes[0] = 2;
  CHECK_FALSE(decodeLastUse(bytes));
  auto row = usageRowKey("tl_abc", "r1");
  CHECK(row == std::string("tl_abc\0r1", 9));
  auto parts = splitUsageRowKey(row);
  REQUIRE(parts);
  CHECK(parts->first == "tl_abc");
  CHECK(parts->second == "r1");
}

TEST_CASE("the recorder coalesces per token across threads and empties on take") {
  UsageRecorder rec;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) rec.record("tl_a", kT0 + seconds(i % 60));
    });
  for (auto& t : threads) t.join();
  rec.record("tl_b", kT0);
  rec.record("tl_b", kT0 + minutes(1));  // a later minute: the earlier count goes
  CHECK(rec.pending() >= 2);
  auto taken = rec.take();
  REQUIRE(taken.size() == 2);
  CHECK(taken["tl_a"] == LastUse{minuteOf(kT0), 4000});
  CHECK(taken["tl_b"] == LastUse{minuteOf(kT0) + 1, 1});
  CHECK(rec.pending() == 0);
  CHECK(rec.take().empty());
}

TEST_CASE("the store: own flushes accumulate, rows of other replicas merge by the max") {
  test::TempDir dir;
  UsageStore store(dir.path() + "/usage");
  int64_t m = minuteOf(kT0);
  const std::string a = "tlk_a" + std::string(23, 'A'), b = "tlk_b" + std::string(23, 'B');
  const Timestamp now = kT0 + minutes(10);
  auto rows = store.addOwn({{a, {m, 2}}}, "A");
  rows = store.addOwn({{a, {m, 3}}}, "A");
  REQUIRE(rows.size() == 1);
  CHECK(decodeLastUse(rows[0].second) == LastUse{m, 5});
  {
    auto txn = store.reader();
    CHECK(store.lastUse(txn, a) == LastUse{m, 5});
    CHECK_FALSE(store.lastUse(txn, b));
    // A key that is a prefix of another must not see its rows.
    CHECK_FALSE(store.lastUse(txn, "tlk_a"));
  }
  // Replica B, same minute: summed; an older row of B replayed later changes nothing.
  CHECK(store.putRows({{usageRowKey(a, "B"), encodeLastUse({m, 4})}}, now) == 0);
  CHECK(store.putRows({{usageRowKey(a, "B"), encodeLastUse({m, 1})}, {"garbage", "x"}}, now) == 1);
  {
    auto txn = store.reader();
    CHECK(store.lastUse(txn, a) == LastUse{m, 9});
  }
  // B in a later minute: B's minute and count only.
  CHECK(store.putRows({{usageRowKey(a, "B"), encodeLastUse({m + 2, 1})}}, now) == 0);
  {
    auto txn = store.reader();
    CHECK(store.lastUse(txn, a) == LastUse{m + 2, 1});
  }
  // Rows the topic may carry but no replica writes: refused, and nothing changes.
  CHECK(store.putRows({{usageRowKey(a, "F"), encodeLastUse({minuteOf(now) + 60, 1})},
                       {usageRowKey("not-a-key", "F"), encodeLastUse({m + 3, 1})},
                       {usageRowKey(a, std::string(65, 'r')), encodeLastUse({m + 3, 1})}},
                      now) == 3);
  // A few minutes ahead (another replica's clock): stored.
  CHECK(store.putRows({{usageRowKey(b, "F"), encodeLastUse({minuteOf(now) + 5, 1})}}, now) == 0);
  CHECK(store.all().at(a) == LastUse{m + 2, 1});
  // A read-only opening (ledger-audit) sees the same.
  UsageStore ro(dir.path() + "/usage", true);
  CHECK(ro.all().at(a) == LastUse{m + 2, 1});
}

TEST_CASE("the flusher writes on its interval and once more when stopped") {
  test::TempDir dir;
  UsageStore store(dir.path() + "/usage");
  UsageRecorder rec;
  auto flusher = std::make_unique<LastUsedFlusher>(
      rec, store, nullptr, "A", std::chrono::milliseconds(100000), [](const std::string&) {});
  rec.record("tl_a", kT0);
  rec.record("tl_a", kT0 + seconds(5));
  {
    auto txn = store.reader();
    CHECK_FALSE(store.lastUse(txn, "tl_a"));  // not before the interval
  }
  flusher->stop();
  auto txn = store.reader();
  CHECK(store.lastUse(txn, "tl_a") == LastUse{minuteOf(kT0), 2});
}

TEST_CASE("tokenJson: last_used_at is the minute, last_used_count the count; absent unused") {
  Token t;
  t.key = "tl_a";
  t.createdAt = t.updatedAt = kT0;
  auto unused = tokenJson(t, kT0);
  CHECK_FALSE(unused.contains("last_used_at"));
  CHECK_FALSE(unused.contains("last_used_count"));
  auto used = tokenJson(t, kT0, LastUse{minuteOf(kT0 + minutes(3) + seconds(17)), 12});
  CHECK(used["last_used_at"] == formatTime(kT0 + minutes(3)));
  CHECK(used["last_used_count"] == 12);
}

}  // namespace
}  // namespace tokenledger
