// The EventLog contract (events/event_log.h), shared by every backend.
//
// A backend's suite calls runEventLogContract() from one TEST_CASE with a factory
// that opens (or reopens) the log identified by a directory name:
//
//   TEST_CASE("kafka log satisfies the EventLog contract") {
//     runEventLogContract([](const std::string& dir) { return openKafkaLog(... dir ...); });
//   }
//
// Each case is a doctest SUBCASE and gets a fresh directory; calling the factory
// twice with the same directory must give the same log (reopen). Nothing here
// assumes a partition count or a starting offset of 0 beyond "a fresh log is empty".
#pragma once

#include <doctest/doctest.h>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "events/event_log.h"
#include "tests/unit/test_util.h"

namespace tokenledger::test {

using LogFactory = std::function<std::unique_ptr<EventLog>(const std::string& dir)>;

namespace contract {

inline Offsets zeros(const EventLog& log) {
  return Offsets::atStart(log.partitionCount());
}

// Whether thread `tid` of this process is asleep (state S in /proc: blocked in a
// wait, not running or runnable).
inline bool asleep(pid_t tid) {
  std::ifstream in("/proc/self/task/" + std::to_string(tid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto name = stat.rfind(')');  // the state follows the command name "(...)"
  return name != std::string::npos && name + 2 < stat.size() && stat[name + 2] == 'S';
}

// Polls until `n` records arrived or `deadline` passed.
inline std::vector<LogRecord> readN(LogReader& reader, size_t n,
                                    std::chrono::milliseconds deadline = std::chrono::seconds(10)) {
  std::vector<LogRecord> out;
  auto start = std::chrono::steady_clock::now();
  while (out.size() < n && std::chrono::steady_clock::now() - start < deadline) {
    auto batch = reader.poll(n - out.size(), std::chrono::milliseconds(200));
    out.insert(out.end(), batch.begin(), batch.end());
  }
  return out;
}

// Records of one partition, from a reader that started at `from`.
inline std::vector<LogRecord> inPartition(const std::vector<LogRecord>& records, Partition p) {
  std::vector<LogRecord> out;
  for (const auto& r : records)
    if (r.position.partition == p) out.push_back(r);
  return out;
}

// Values that exercise binary safety: NUL bytes, high bytes, a larger payload.
inline std::vector<std::string> sampleValues() {
  return {std::string("first"), std::string("with\0nul\0bytes", 14),
          std::string("\xff\xfe\x80\x00\x01", 5), std::string(10000, 'L'), std::string("last")};
}

}  // namespace contract

inline void runEventLogContract(const LogFactory& open) {
  using namespace std::chrono_literals;
  using contract::readN;
  ensureCrypto();
  TempDir dir;
  const std::string where = dir.sub("log");

  SUBCASE("a fresh log is empty") {
    auto log = open(where);
    REQUIRE(log->partitionCount() >= 1);
    auto reader = log->openReader(contract::zeros(*log));
    CHECK(reader->endOffsets() == contract::zeros(*log));
    CHECK(reader->poll(10, 50ms).empty());
    CHECK_FALSE(log->describe().empty());
  }

  SUBCASE("append returns consecutive positions in one partition per key") {
    auto log = open(where);
    auto first = log->append("alice", {"a0"});
    REQUIRE(first.size() == 1);
    Partition p = first[0].partition;
    CHECK(p.value >= 0);
    CHECK(p.value < log->partitionCount());
    Offset o = first[0].offset;
    for (int64_t i = 1; i <= 5; ++i) {
      auto next = log->append("alice", {"a" + std::to_string(i)});
      REQUIRE(next.size() == 1);
      CHECK(next[0] == Position{p, o + i});
    }
  }

  SUBCASE("a reader from the start reads every record in order, key and value intact") {
    auto log = open(where);
    auto values = contract::sampleValues();
    std::vector<Position> positions;
    for (const auto& v : values) positions.push_back(log->append("alice", {v}).at(0));
    auto reader = log->openReader(contract::zeros(*log));
    auto got = contract::inPartition(readN(*reader, values.size()), positions[0].partition);
    REQUIRE(got.size() == values.size());
    for (size_t i = 0; i < values.size(); ++i) {
      CAPTURE(i);
      CHECK(got[i].position == positions[i]);
      CHECK(got[i].key == "alice");
      CHECK(got[i].value == values[i]);
    }
    CHECK(reader->poll(10, 50ms).empty());
  }

  SUBCASE("a reader from offset N starts at N") {
    auto log = open(where);
    std::vector<Position> positions;
    for (int i = 0; i < 6; ++i)
      positions.push_back(log->append("bob", {"v" + std::to_string(i)})[0]);
    Offsets from = contract::zeros(*log);
    from.next[positions[3].partition.index()] = before(positions[3].offset);
    auto reader = log->openReader(from);
    auto got = readN(*reader, 3);
    REQUIRE(got.size() == 3);
    CHECK(got[0].position == positions[3]);
    CHECK(got[0].value == "v3");
    CHECK(got[2].value == "v5");
    CHECK(reader->poll(10, 50ms).empty());
  }

  SUBCASE("poll returns at most max records and continues where it stopped") {
    auto log = open(where);
    for (int i = 0; i < 10; ++i) log->append("carol", {"c" + std::to_string(i)});
    auto reader = log->openReader(contract::zeros(*log));
    auto first = readN(*reader, 3);
    REQUIRE(first.size() == 3);
    CHECK(first[0].value == "c0");
    auto rest = readN(*reader, 7);
    REQUIRE(rest.size() == 7);
    CHECK(rest[0].value == "c3");
    CHECK(rest[6].value == "c9");
  }

  SUBCASE("poll returns empty when nothing is new, waiting or not") {
    auto log = open(where);
    log->append("dave", {"only"});
    auto reader = log->openReader(contract::zeros(*log));
    REQUIRE(readN(*reader, 1).size() == 1);
    CHECK(reader->poll(10, 0ms).empty());
    CHECK(reader->poll(10, 300ms).empty());
    log->append("dave", {"next"});  // and the reader is still where it was
    auto next = readN(*reader, 1);
    REQUIRE(next.size() == 1);
    CHECK(next[0].value == "next");
  }

  SUBCASE("a reader blocked in poll is woken by a concurrent append") {
    auto log = open(where);
    auto reader = log->openReader(contract::zeros(*log));
    // The append waits until this thread is seen asleep inside poll, so it is
    // the append that must end the wait.
    pid_t self = ::gettid();
    std::atomic<bool> polling{false};
    bool sawAsleep = false;
    std::thread writer([&] {
      auto deadline = std::chrono::steady_clock::now() + 10s;
      while (!(sawAsleep = polling && contract::asleep(self)) &&
             std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(1ms);
      log->append("erin", {"wake up"});
    });
    auto start = std::chrono::steady_clock::now();
    polling = true;
    auto got = reader->poll(10, 20000ms);
    auto took = msSince(start);
    writer.join();
    CHECK(sawAsleep);
    if (got.empty()) got = readN(*reader, 1);  // a backend may return before the record lands
    REQUIRE(got.size() == 1);
    CHECK(got[0].value == "wake up");
    CHECK(took < 10000);  // woken, not timed out
  }

  SUBCASE("endOffsets follows appends") {
    auto log = open(where);
    auto reader = log->openReader(contract::zeros(*log));
    auto pos = log->append("frank", {"x", "y", "z"});
    REQUIRE(pos.size() == 3);
    Offsets end = reader->endOffsets();
    REQUIRE(end.next.size() == static_cast<size_t>(log->partitionCount()));
    CHECK(end.next[pos[0].partition.index()] == after(pos[2].offset));
    CHECK(end.covers(pos[2]));
    CHECK_FALSE(end.covers(Position{pos[2].partition, pos[2].offset + 1}));
    // A reader opened later sees the same end.
    CHECK(log->openReader(end)->endOffsets() == end);
  }

  SUBCASE("reopening the log keeps the records and continues numbering") {
    std::vector<Position> before;
    {
      auto log = open(where);
      for (int i = 0; i < 3; ++i)
        before.push_back(log->append("gina", {"old" + std::to_string(i)})[0]);
    }
    auto log = open(where);
    auto reader = log->openReader(contract::zeros(*log));
    CHECK(reader->endOffsets().next[before[0].partition.index()] == after(before[2].offset));
    auto after = log->append("gina", {"new"});
    REQUIRE(after.size() == 1);
    CHECK(after[0] == Position{before[0].partition, before[2].offset + 1});
    auto got = contract::inPartition(readN(*reader, 4), before[0].partition);
    REQUIRE(got.size() == 4);
    CHECK(got[0].value == "old0");
    CHECK(got[2].value == "old2");
    CHECK(got[3].value == "new");
    CHECK(got[3].position == after[0]);
  }

  SUBCASE("a multi-value append is contiguous") {
    auto log = open(where);
    log->append("hank", {"before"});
    auto batch = log->append("hank", {"b0", "b1", "b2", "b3"});
    log->append("hank", {"after"});
    REQUIRE(batch.size() == 4);
    for (size_t i = 1; i < batch.size(); ++i) {
      CHECK(batch[i].partition == batch[0].partition);
      CHECK(batch[i].offset == batch[0].offset + static_cast<int64_t>(i));
    }
    auto reader = log->openReader(contract::zeros(*log));
    auto got = contract::inPartition(readN(*reader, 6), batch[0].partition);
    REQUIRE(got.size() == 6);
    CHECK(got[0].value == "before");
    for (size_t i = 0; i < 4; ++i) CHECK(got[i + 1].value == "b" + std::to_string(i));
    CHECK(got[5].value == "after");
  }

  SUBCASE("concurrent appends from 4 threads leave no gaps or duplicates") {
    auto log = open(where);
    constexpr int kThreads = 4, kAppends = 25;
    std::vector<std::vector<Position>> got(kThreads);
    std::atomic<bool> failed{false};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        try {
          for (int i = 0; i < kAppends; ++i) {
            std::string base = "t" + std::to_string(t) + "-" + std::to_string(i);
            // Every third append carries two values, which must stay adjacent.
            std::vector<std::string> values{base};
            if (i % 3 == 0) values.push_back(base + "b");
            auto pos = log->append("same-owner", values);
            got[t].insert(got[t].end(), pos.begin(), pos.end());
          }
        } catch (...) {
          failed = true;
        }
      });
    }
    for (auto& th : threads) th.join();
    REQUIRE_FALSE(failed.load());

    std::set<Offset> offsets;
    size_t total = 0;
    Partition partition = got[0].at(0).partition;
    for (const auto& v : got) {
      total += v.size();
      for (const auto& p : v) {
        CHECK(p.partition == partition);
        offsets.insert(p.offset);
      }
    }
    CHECK(total == static_cast<size_t>(kThreads * (kAppends + (kAppends + 2) / 3)));
    REQUIRE(offsets.size() == total);  // no duplicates
    CHECK(*offsets.rbegin() - *offsets.begin() + 1 == static_cast<int64_t>(total));  // no gaps

    auto reader = log->openReader(contract::zeros(*log));
    auto records = contract::inPartition(readN(*reader, total), partition);
    REQUIRE(records.size() == total);
    std::map<std::string, Offset> at;
    for (size_t i = 0; i < records.size(); ++i) {
      if (i > 0) CHECK(records[i].position.offset == records[i - 1].position.offset + 1);
      at[records[i].value] = records[i].position.offset;
    }
    for (int t = 0; t < kThreads; ++t)
      for (int i = 0; i < kAppends; ++i) {
        std::string base = "t" + std::to_string(t) + "-" + std::to_string(i);
        REQUIRE(at.count(base) == 1);
        if (i % 3 == 0) CHECK(at[base + "b"] == at[base] + 1);
        if (i > 0) CHECK(at[base] > at["t" + std::to_string(t) + "-" + std::to_string(i - 1)]);
      }
  }
}

}  // namespace tokenledger::test
