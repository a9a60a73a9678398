// The embedded LMDB event log: the shared EventLog contract plus what is specific
// to it, and the text forms of positions and offsets (events/event_log.h).
#include <doctest/doctest.h>

#include <string>

#include "events/event_log.h"
#include "events/log_format.h"
#include "tests/unit/event_log_contract.h"
#include "tests/unit/test_util.h"

namespace tokenledger {
namespace {

TEST_CASE("embedded log satisfies the EventLog contract") {
  test::runEventLogContract(
      [](const std::string& dir) { return openEmbeddedLog(dir, EmbeddedLogOptions{64ull << 20}); });
}

TEST_CASE("embedded log: one partition, numbered from 0, described by its directory") {
  test::TempDir dir;
  auto log = openEmbeddedLog(dir.sub("log"), EmbeddedLogOptions{64ull << 20});
  CHECK(log->partitionCount() == 1);
  CHECK(log->append("alice", {"a"}) == std::vector<Position>{test::pos(0, 0)});
  CHECK(log->append("bob", {"b", "c"}) == std::vector<Position>{test::pos(0, 1), test::pos(0, 2)});
  CHECK(log->describe().find(dir.sub("log")) != std::string::npos);
  auto reader = log->openReader(Offsets{});  // no offsets: from the start
  auto got = test::contract::readN(*reader, 3);
  REQUIRE(got.size() == 3);
  CHECK(got[1].key == "bob");
  CHECK(got[2].value == "c");
}

TEST_CASE("embedded log: a full disk budget is LogUnavailable and loses nothing") {
  test::TempDir dir;
  auto log = openEmbeddedLog(dir.sub("log"), EmbeddedLogOptions{32 * 4096});
  std::string value(1500, 'v');
  int64_t appended = 0;
  bool unavailable = false;
  for (int i = 0; i < 1000 && !unavailable; ++i) {
    try {
      auto pos = log->append("alice", {value + std::to_string(i)});
      CHECK(pos[0].offset.value == appended);
      ++appended;
    } catch (const LogUnavailable& e) {
      unavailable = true;
      CHECK(std::string(e.what()).find("--map-size-mb") != std::string::npos);
      CHECK(std::string(e.what()).find(dir.sub("log")) != std::string::npos);
    }
  }
  REQUIRE(unavailable);
  REQUIRE(appended > 0);
  auto reader = log->openReader(Offsets::of({0}));
  CHECK(reader->endOffsets() == Offsets::of({appended}));
  auto got = test::contract::readN(*reader, static_cast<size_t>(appended));
  REQUIRE(got.size() == static_cast<size_t>(appended));
  CHECK(got.back().value == value + std::to_string(appended - 1));
  // The failed append did not consume an offset: after a reopen with more room the
  // next record continues the numbering.
  log.reset();
  auto bigger = openEmbeddedLog(dir.sub("log"), EmbeddedLogOptions{64ull << 20});
  CHECK(bigger->append("alice", {"more"})[0] == test::pos(0, appended));
}

TEST_CASE("positions render as p:o and parse back") {
  CHECK(toString(test::pos(0, 42)) == "0:42");
  CHECK(toString(test::pos(3, 0)) == "3:0");
  CHECK(parsePosition("0:42") == test::pos(0, 42));
  CHECK(parsePosition("12:9000000000") == test::pos(12, 9'000'000'000));
  for (const char* bad : {"", ":", "0:", ":5", "a:1", "1:b", "-1:2", "1:-2", "1:2:3", " 1:2",
                          "1:2 ", "1;2", "99999999999999999999:1", "0:99999999999999999999"}) {
    CAPTURE(bad);
    CHECK_FALSE(parsePosition(bad).has_value());
  }
}

TEST_CASE("offsets render as p:o,p:o and parse back") {
  Offsets o = Offsets::of({42, 0, 7});
  CHECK(o.toString() == "0:42,1:0,2:7");
  CHECK(Offsets::parse("0:42,1:0,2:7") == o);
  CHECK(Offsets::parse("0:5") == Offsets::of({5}));
  for (const char* bad : {"", "0:1,", ",0:1", "1:5", "0:1,2:3", "0:1,0:2", "0:x", "0:1,,1:2"}) {
    CAPTURE(bad);
    CHECK_FALSE(Offsets::parse(bad).has_value());
  }
}

TEST_CASE("offsets cover positions strictly below the next offset") {
  Offsets o = Offsets::of({3, 0});
  CHECK(o.covers(test::pos(0, 0)));
  CHECK(o.covers(test::pos(0, 2)));
  CHECK_FALSE(o.covers(test::pos(0, 3)));
  CHECK_FALSE(o.covers(test::pos(1, 0)));
  CHECK_FALSE(o.covers(test::pos(2, 0)));   // unknown partition
  CHECK_FALSE(o.covers(test::pos(-1, 0)));  // nonsense partition
  CHECK_FALSE(Offsets{}.covers(test::pos(0, 0)));
}

}  // namespace
}  // namespace tokenledger

namespace tokenledger {
namespace {

// The embedded log's format (events/log_format.h) in literal bytes: a change here
// breaks every existing log, so it must fail this test first.
TEST_CASE("the embedded log's record format, in literal bytes") {
  using namespace std::string_literals;
  CHECK(logformat::recordKey(Offset{258}) == "\0\0\0\0\0\0\x01\x02"s);
  CHECK(logformat::offsetOf("\0\0\0\0\0\0\x01\x02"s) == Offset{258});
  CHECK_FALSE(logformat::offsetOf("\x01\x02"s));
  CHECK(logformat::packRecord("alice", "EV") ==
        "\0\0\0\x05"
        "aliceEV"s);
  auto r = logformat::unpackRecord(Offset{7},
                                   "\0\0\0\x05"
                                   "aliceEV"s);
  REQUIRE(r);
  CHECK(r->position == test::pos(0, 7));
  CHECK(r->key == "alice");
  CHECK(r->value == "EV");
  CHECK_FALSE(logformat::unpackRecord(Offset{7},
                                      "\0\0\0\x09"
                                      "alice"s));  // shorter than it says
  CHECK_FALSE(logformat::unpackRecord(Offset{7}, "\0\0"s));
  CHECK(std::string(logformat::kEventsDb) == "events");
}

}  // namespace
}  // namespace tokenledger
