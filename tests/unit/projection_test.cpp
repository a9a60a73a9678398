// The LMDB read model and the projector (projections/).
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <sys/mount.h>

#include <cerrno>
#include <cstring>

#include "events/lmdb.h"
#include "projections/memory_budget.h"
#include "projections/projector.h"
#include "projections/read_model.h"
#include "projections/read_model_layout.h"
#include "tests/unit/future_event.h"
#include "tests/unit/test_util.h"

namespace tokenledger {
namespace {

using namespace std::chrono_literals;
using test::makeEvent;
using test::record;

constexpr Timestamp kT{1'764'300'000'000'000us};  // 2025-11-28
constexpr std::chrono::microseconds kSec = 1s;
constexpr uint64_t kMap = 64ull << 20;

// Collects what a SkipReporter is told.
struct Skips {
  std::vector<std::pair<Position, std::string>> seen;
  SkipReporter reporter() {
    return [this](const Position& p, const std::string& why) { seen.emplace_back(p, why); };
  }
};

// Builds a log of records at consecutive offsets of partition 0.
struct Script {
  std::vector<LogRecord> records;
  int64_t next = 0;

  Event create(const std::string& key, const std::string& owner, Timestamp at,
               const std::string& replaces = "") {
    Created c = test::makeCreated(generateSecret());
    c.replaces = replaces;
    Event e = makeEvent(key, owner, at, c);
    records.push_back(record(next++, e));
    return e;
  }
  Event deactivate(const std::string& key, const std::string& owner, Timestamp at,
                   std::optional<Timestamp> effective, Reason r = Reason::manual) {
    Event e = makeEvent(key, owner, at, Deactivated{r, effective});
    records.push_back(record(next++, e));
    return e;
  }
  Event activate(const std::string& key, const std::string& owner, Timestamp at) {
    Event e = makeEvent(key, owner, at, Activated{});
    records.push_back(record(next++, e));
    return e;
  }
  void raw(const std::string& owner, std::string bytes) {
    records.push_back(LogRecord{test::pos(0, next++), owner, std::move(bytes)});
  }
};

struct ModelFixture {
  ModelFixture() {
    test::ensureCrypto();
    model = openReadModel(dir.sub("model"), ReadModelOptions{kMap});
  }
  test::TempDir dir;
  std::unique_ptr<ReadModel> model;
  Skips skips;
};

std::vector<std::string> keysOf(const std::vector<Token>& tokens) {
  std::vector<std::string> out;
  for (const auto& t : tokens) out.push_back(t.key);
  return out;
}

TEST_CASE_FIXTURE(ModelFixture, "created, deactivated and activated events are applied") {
  Script s;
  std::string key = generateTokenKey();
  s.create(key, "alice", kT);
  auto r1 = model->apply(s.records, skips.reporter());
  CHECK(r1.applied == 1);
  auto reader = model->reader();
  auto t = reader->token(key);
  REQUIRE(t.has_value());
  CHECK(t->owner == "alice");
  CHECK(t->active);
  CHECK(t->eventCount == 1);

  s.records.clear();
  s.deactivate(key, "alice", kT + kSec, kT + kSec, Reason::compromised);
  CHECK(model->apply(s.records, skips.reporter()).applied == 1);
  t = reader->token(key);
  REQUIRE(t.has_value());
  CHECK_FALSE(t->active);
  CHECK(t->deactivationReason == Reason::compromised);
  CHECK(t->eventCount == 2);

  VerifyView v;
  REQUIRE(reader->verifyView(key, v));
  CHECK_FALSE(v.active);
  CHECK(v.owner == "alice");
  CHECK(v.statusAt(kT + 2 * kSec) == Status::inactive);

  s.records.clear();
  s.activate(key, "alice", kT + 2 * kSec);
  CHECK(model->apply(s.records, skips.reporter()).applied == 1);
  CHECK(reader->token(key)->active);
  REQUIRE(reader->verifyView(key, v));
  CHECK(v.statusAt(kT + 3 * kSec) == Status::active);
  CHECK(v.secretHash == reader->token(key)->secretHash);

  CHECK_FALSE(reader->token(generateTokenKey()).has_value());
  CHECK_FALSE(reader->verifyView(generateTokenKey(), v));
  CHECK(skips.seen.empty());
}

TEST_CASE_FIXTURE(ModelFixture, "tokensOf lists an owner's tokens in creation order") {
  Script s;
  // Keys sort differently from creation time, so byte order alone would be wrong.
  std::string k1 = "tlk_C" + randomBase62(23), k2 = "tlk_A" + randomBase62(23),
              k3 = "tlk_B" + randomBase62(23);
  s.create(k1, "alice", kT + 1us);
  s.create(generateTokenKey(), "bob", kT + 2us);
  s.create(k2, "alice", kT + 3us);
  s.create(generateTokenKey(), "alice2", kT + 4us);
  s.create(generateTokenKey(), "al", kT + 5us);
  s.create(k3, "alice", kT + 6us);
  s.deactivate(k2, "alice", kT + 7us, kT + 7us);
  model->apply(s.records, skips.reporter());
  auto reader = model->reader();
  auto tokens = reader->tokensOf("alice");
  CHECK(keysOf(tokens) == std::vector<std::string>{k1, k2, k3});
  REQUIRE(tokens.size() == 3);
  CHECK_FALSE(tokens[1].active);  // inactive tokens are listed too
  CHECK(reader->tokensOf("bob").size() == 1);
  CHECK(reader->tokensOf("al").size() == 1);
  CHECK(reader->tokensOf("nobody").empty());
  CHECK(reader->tokensOf("").empty());
}

TEST_CASE_FIXTURE(ModelFixture,
                  "tokensPage pages with a cursor and bounds what a filter examines") {
  Script s;
  std::vector<std::string> keys;
  // Created in two batches, the second's keys interleaved with the first's in
  // byte order: pages follow creation time, not key order or batch.
  for (int i = 0; i < 30; ++i) {
    keys.push_back(generateTokenKey());
    s.create(keys.back(), "alice", kT + std::chrono::microseconds(i));
    if (i == 14) {
      model->apply(s.records, skips.reporter());
      s.records.clear();
    }
  }
  for (int i = 0; i < 30; i += 3) s.deactivate(keys[i], "alice", kT + 1s, kT + 1s);
  model->apply(s.records, skips.reporter());
  auto reader = model->reader();

  PageRequest req;
  req.limit = 7;
  std::vector<std::string> walked;
  std::string next;
  int pages = 0;
  do {
    req.after = next;
    TokenPage page = reader->tokensPage("alice", req);
    CHECK(page.tokens.size() <= 7);
    for (auto& k : keysOf(page.tokens)) walked.push_back(k);
    next = page.next;
    ++pages;
  } while (!next.empty());
  CHECK(walked == keys);
  CHECK(pages == 5);  // 7 + 7 + 7 + 7 + 2

  // A filter that accepts every third token, examining at most 6 per page: pages
  // hold 2 tokens each, their `next` the last examined (not returned) token.
  req.limit = 100;
  req.maxExamined = 6;
  req.keep = [](const Token& t) { return !t.active; };
  req.after = "";
  TokenPage first = reader->tokensPage("alice", req);
  CHECK(keysOf(first.tokens) == std::vector<std::string>{keys[0], keys[3]});
  CHECK(first.next == keys[5]);
  req.after = keys[27];
  TokenPage last = reader->tokensPage("alice", req);
  CHECK(last.tokens.empty());
  CHECK(last.next.empty());

  req.after = "tlk_unknown";
  CHECK(reader->tokensPage("alice", req).unknownAfter);
  req.after = keys[0];
  CHECK(reader->tokensPage("bob", req).unknownAfter);  // another owner's token
}

TEST_CASE_FIXTURE(ModelFixture, "history returns a token's events in log order") {
  Script s;
  // Keys that share a prefix, as history's "key \0 seq" layout must keep apart.
  std::string key = "tlk_k1" + std::string(22, 'a'), other = "tlk_k10" + std::string(21, 'a');
  Event a = s.create(key, "alice", kT);
  s.create(other, "alice", kT + 1us);
  Event b = s.deactivate(key, "alice", kT + 2us, kT + 2us);
  s.deactivate(other, "alice", kT + 3us, kT + 3us);
  Event c = s.activate(key, "alice", kT + 4us);
  Event d = s.deactivate(key, "alice", kT + 5us, kT + 60 * kSec, Reason::rotation);
  model->apply(s.records, skips.reporter());
  auto h = model->reader()->history(key);
  REQUIRE(h.size() == 4);
  CHECK(h[0].eventId == a.eventId);
  CHECK(h[0].typeName() == "created");
  CHECK(h[1].eventId == b.eventId);
  CHECK(h[2].eventId == c.eventId);
  CHECK(h[2].typeName() == "activated");
  CHECK(h[3].eventId == d.eventId);
  CHECK(std::get<Deactivated>(h[3].body).effectiveAt == kT + 60 * kSec);
  CHECK(h[3].requestId == d.requestId);
  CHECK(model->reader()->history(other).size() == 2);
  CHECK(model->reader()->history("tlk_k").empty());
  CHECK(model->reader()->history(generateTokenKey()).empty());
}

// A token's record holds its first layout::kInlineHistory entries; the rest go to
// the history database, so that toggling a token never makes every later write of
// its record bigger. Applied one event per batch and all in one batch, the
// history reads the same, and so do the two read models.
TEST_CASE_FIXTURE(ModelFixture,
                  "a token toggled many times keeps a small record and all its history") {
  Script s;
  std::string key = generateTokenKey();
  std::vector<Event> events{s.create(key, "alice", kT)};
  for (int i = 1; i < 300; ++i)
    events.push_back(i % 2 ? s.deactivate(key, "alice", kT + i * 1us, std::nullopt)
                           : s.activate(key, "alice", kT + i * 1us));
  auto whole = openReadModel(dir.sub("whole"), ReadModelOptions{kMap});
  whole->apply(s.records, skips.reporter());
  for (const auto& rec : s.records) model->apply({rec}, skips.reporter());
  CHECK(model->dump() == whole->dump());
  for (ReadModel* m : {model.get(), whole.get()}) {
    auto h = m->reader()->history(key);
    REQUIRE(h.size() == events.size());
    for (size_t i = 0; i < h.size(); ++i) {
      CAPTURE(i);
      CHECK(h[i].eventId == events[i].eventId);
      CHECK(h[i].occurredAt == events[i].occurredAt);
      CHECK(h[i].requestId == events[i].requestId);
      CHECK(h[i].typeName() == events[i].typeName());
    }
    CHECK(m->reader()->token(key)->eventCount == 300);
  }
  // The record: its state and kInlineHistory entries, whatever the event count.
  std::string dump = model->dump();
  size_t recordBytes = 0, historyEntries = 0;
  for (size_t at = 0, end; at < dump.size(); at = end + 1) {
    end = dump.find('\n', at);
    std::string_view line(dump.data() + at, end - at);
    if (line.starts_with("tokens ")) recordBytes = (line.size() - line.rfind(' ') - 1) / 2;
    if (line.starts_with("history ")) historyEntries++;
  }
  CHECK(historyEntries == 300 - layout::kInlineHistory);
  CHECK(recordBytes < 200 + layout::kInlineHistory * 60);
}

// Room::boundFor estimates what a transaction adds; events with every field at its
// largest add more than it allows per event. LMDB's MDB_MAP_FULL then grows the
// map and the batch is applied again (nothing of the failed attempt stays), rather
// than failing a rebuild (found at 2M tokens, where a second big transaction
// outgrew the estimate).
TEST_CASE("a batch bigger than the room estimate grows the map and is applied") {
  test::ensureCrypto();
  test::TempDir dir;
  ReadModelOptions lazy{8ull << 30};
  lazy.syncEachCommit = false;
  lazy.syncAtClose = false;
  auto model = openReadModel(dir.sub("model"), lazy);
  Script s;
  std::string description;
  for (int i = 0; i < 200; ++i) description += "\xF0\x9F\x94\x91";
  const std::string owner(128, 'o'), destination(128, 'd');
  Skips skips;
  for (int i = 0; i < 30'000; ++i) {
    Created c = test::makeCreated(generateSecret(), TokenKind::destination, destination);
    c.description = description;
    Event e = makeEvent(generateTokenKey(), owner + std::to_string(i % 10), kT + i * 1us, c);
    e.owner.resize(128);
    e.idempotencyKey = std::string(250, 'i') + std::to_string(i);
    e.requestDigest = std::string(32, 'r');
    e.requestId = std::string(64, 'q');
    s.records.push_back(record(s.next++, e));
  }
  ApplyReport r;
  REQUIRE_NOTHROW(r = model->apply(s.records, skips.reporter()));
  CHECK(r.applied == 30'000);
  CHECK(skips.seen.empty());
  CHECK(model->applied(1) == Offsets::of({30'000}));
}

TEST_CASE_FIXTURE(ModelFixture, "rotation links predecessor and successor") {
  Script s;
  std::string oldKey = generateTokenKey(), newKey = generateTokenKey();
  s.create(oldKey, "alice", kT);
  s.create(newKey, "alice", kT + kSec, oldKey);
  s.deactivate(oldKey, "alice", kT + kSec, kT + 61 * kSec, Reason::rotation);
  // Another owner cannot claim alice's token as its predecessor.
  std::string mallorys = generateTokenKey();
  s.create(mallorys, "mallory", kT + 2 * kSec, newKey);
  model->apply(s.records, skips.reporter());
  auto reader = model->reader();
  auto oldT = reader->token(oldKey), newT = reader->token(newKey);
  REQUIRE(oldT.has_value());
  REQUIRE(newT.has_value());
  CHECK(newT->replaces == oldKey);
  CHECK(oldT->replacedBy == newKey);
  CHECK(newT->replacedBy.empty());
  CHECK(oldT->active);
  CHECK(oldT->deactivateAt == kT + 61 * kSec);
  CHECK(oldT->deactivationReason == Reason::rotation);
  CHECK(statusAt(*oldT, kT + 61 * kSec) == Status::inactive);
  CHECK(reader->token(mallorys)->replaces == newKey);  // recorded as sent
}

TEST_CASE_FIXTURE(ModelFixture, "applying the same records twice changes nothing (exactly once)") {
  Script s;
  std::string key = generateTokenKey();
  s.create(key, "alice", kT);
  s.deactivate(key, "alice", kT + 1us, kT + 1us);
  s.create(generateTokenKey(), "bob", kT + 2us);
  auto first = model->apply(s.records, skips.reporter());
  CHECK(first.applied == 3);
  std::string before = model->dump();
  uint64_t gen = model->generation();

  auto again = model->apply(s.records, skips.reporter());
  CHECK(again.applied == 0);
  CHECK(again.duplicates == 3);
  CHECK(again.skipped == 0);
  CHECK(model->dump() == before);
  CHECK(model->reader()->token(key)->eventCount == 2);
  CHECK(model->generation() > gen);
}

TEST_CASE_FIXTURE(ModelFixture, "an overlapping batch applies only the new part") {
  Script s;
  std::string key = generateTokenKey();
  s.create(key, "alice", kT);
  s.deactivate(key, "alice", kT + 1us, kT + 1us);
  model->apply({s.records[0]}, skips.reporter());
  auto r = model->apply(s.records, skips.reporter());
  CHECK(r.duplicates == 1);
  CHECK(r.applied == 1);
  CHECK(model->reader()->token(key)->eventCount == 2);
}

TEST_CASE_FIXTURE(ModelFixture, "the same event id at a new position is applied once") {
  Script s;
  std::string key = generateTokenKey();
  s.create(key, "alice", kT);
  Event off = s.deactivate(key, "alice", kT + 1us, kT + 1us);
  model->apply(s.records, skips.reporter());
  // A producer retry wrote the deactivation again, at offset 2.
  auto r = model->apply({record(2, off)}, skips.reporter());
  CHECK(r.duplicates == 1);
  CHECK(r.applied == 0);
  auto t = model->reader()->token(key);
  CHECK(t->eventCount == 2);
  CHECK(model->reader()->history(key).size() == 2);
  CHECK(model->applied(1) == Offsets::of({3}));  // the position is consumed all the same
}

// apply() reads, applies and writes a batch in three passes (key order, log order,
// key order): one big batch must give exactly what one record at a time gives.
TEST_CASE_FIXTURE(ModelFixture, "an event that breaks the contract is skipped and reported") {
  // The verify record keeps the owner's length in one byte: a 300-byte owner from
  // another producer used to verify as a wrong, 44-byte owner.
  Script s;
  std::string key = generateTokenKey(), after = generateTokenKey();
  s.create(key, std::string(300, 'o'), kT);
  s.create(after, "bob", kT + 1us);
  ApplyReport r = model->apply(s.records, skips.reporter());
  CHECK(r.applied == 1);
  CHECK(r.skipped == 1);
  REQUIRE(skips.seen.size() == 1);
  CHECK(skips.seen[0].first == test::pos(0, 0));
  CHECK(skips.seen[0].second.find("owner") != std::string::npos);
  auto reader = model->reader();
  VerifyView v;
  CHECK_FALSE(reader->verifyView(key, v));
  CHECK_FALSE(reader->token(key).has_value());
  CHECK(reader->verifyView(after, v));
  CHECK(v.owner == "bob");
}

TEST_CASE("a batch applies exactly like its records one at a time") {
  test::ensureCrypto();
  Script s;
  std::vector<std::string> keys;
  std::mt19937 rng(7);
  Timestamp at = kT;
  // Enough records that the batch, and each half below, takes the two-thread path
  // (4,096 records and up).
  for (int i = 0; i < 10000; ++i) {
    std::string owner = "user" + std::to_string(rng() % 40);
    // Another producer's owners may hold NULs, which the by_owner keys use as
    // separator: such events break the contract and are skipped (checkEvent).
    if (rng() % 16 == 0) owner += std::string("\0!", 2);
    int pick = keys.empty() ? 0 : static_cast<int>(rng() % 10);
    if (pick < 4) {
      keys.push_back(generateTokenKey());
      s.create(keys.back(), owner, ++at);
    } else if (pick < 6) {
      const std::string& k = keys[rng() % keys.size()];
      ++at;
      s.deactivate(k, owner, at, at);  // a wrong owner or a repeat: does not apply
    } else if (pick < 7) {
      s.activate(keys[rng() % keys.size()], owner, ++at);
    } else if (pick < 8) {
      keys.push_back(generateTokenKey());  // a rotation: successor names predecessor
      s.create(keys.back(), owner, ++at, keys[rng() % (keys.size() - 1)]);
    } else if (pick < 9) {
      // The same event again at a later offset (inside this batch): applied once.
      const LogRecord& earlier = s.records[rng() % s.records.size()];
      s.records.push_back(LogRecord{test::pos(0, s.next++), earlier.key, earlier.value});
    } else {
      s.raw(owner, "garbage " + std::to_string(i));
    }
  }
  test::TempDir dir;
  auto batched = openReadModel(dir.sub("batched"), ReadModelOptions{kMap, false});
  auto single = openReadModel(dir.sub("single"), ReadModelOptions{kMap, false});
  Skips batchedSkips, singleSkips;
  ApplyReport a = batched->apply(s.records, batchedSkips.reporter());
  ApplyReport b;
  for (const auto& r : s.records) {
    auto one = single->apply({r}, singleSkips.reporter());
    b.applied += one.applied;
    b.duplicates += one.duplicates;
    b.skipped += one.skipped;
  }
  CHECK(a.applied == b.applied);
  CHECK(a.duplicates == b.duplicates);
  CHECK(a.skipped == b.skipped);
  CHECK(a.applied > 4000);
  CHECK(a.duplicates > 300);
  CHECK(batchedSkips.seen == singleSkips.seen);
  CHECK(batched->dump() == single->dump());
  // And in two halves, on top of what the first half stored.
  auto halves = openReadModel(dir.sub("halves"), ReadModelOptions{kMap, false});
  size_t mid = s.records.size() / 2;
  halves->apply({s.records.begin(), s.records.begin() + mid}, nullptr);
  halves->apply({s.records.begin() + mid, s.records.end()}, nullptr);
  CHECK(halves->dump() == single->dump());
}

TEST_CASE_FIXTURE(ModelFixture,
                  "malformed and unknown records are reported, skipped, and do not block") {
  Script s;
  std::string key = generateTokenKey();
  s.create(key, "alice", kT);
  s.raw("alice", "this is not an event");
  s.raw("alice", test::encodeRevoked(randomBytes(16), key, "alice", kT + 1us));
  s.activate(generateTokenKey(), "alice", kT + 2us);  // unknown key: does not apply
  s.deactivate(key, "alice", kT + 3us, kT + 3us);
  auto r = model->apply(s.records, skips.reporter());
  CHECK(r.applied == 2);
  CHECK(r.skipped == 3);
  REQUIRE(skips.seen.size() == 3);
  CHECK(skips.seen[0].first == test::pos(0, 1));
  CHECK(skips.seen[1].first == test::pos(0, 2));
  CHECK(skips.seen[1].second.find("unknown event type") != std::string::npos);
  CHECK(skips.seen[2].first == test::pos(0, 3));
  CHECK(skips.seen[2].second.find("does not apply") != std::string::npos);
  for (const auto& [p, why] : skips.seen) CHECK_FALSE(why.empty());
  CHECK_FALSE(model->reader()->token(key)->active);
  CHECK(model->applied(1) == Offsets::of({5}));
  // Skipping works without a reporter too.
  Script more;
  more.next = 5;
  more.raw("alice", "garbage again!!!");
  CHECK(model->apply(more.records, nullptr).skipped == 1);
}

TEST_CASE_FIXTURE(ModelFixture, "applied offsets advance per partition") {
  CHECK(model->applied(1) == Offsets::of({0}));
  CHECK(model->applied(3) == Offsets::of({0, 0, 0}));
  Script s;
  s.create(generateTokenKey(), "alice", kT);
  s.create(generateTokenKey(), "alice", kT + 1us);
  model->apply(s.records, skips.reporter());
  CHECK(model->applied(1) == Offsets::of({2}));
  Event e = makeEvent(generateTokenKey(), "bob", kT + 2us, test::makeCreated(generateSecret()));
  model->apply({record(7, e, 1)}, skips.reporter());
  CHECK(model->applied(2) == Offsets::of({2, 8}));
  CHECK(model->applied(3) == Offsets::of({2, 8, 0}));
  CHECK(model->reader()->applied() == Offsets::of({2, 8}));
}

TEST_CASE_FIXTURE(ModelFixture, "a reader's snapshot follows later applies") {
  auto reader = model->reader();
  std::string key = generateTokenKey();
  CHECK_FALSE(reader->token(key).has_value());
  uint64_t gen = model->generation();
  Script s;
  s.create(key, "alice", kT);
  model->apply(s.records, skips.reporter());
  CHECK(model->generation() > gen);
  CHECK(reader->token(key).has_value());
  CHECK(reader->tokensOf("alice").size() == 1);
  CHECK(reader->applied() == Offsets::of({1}));
}

// LMDB reuses a freed page only once no snapshot older than the free is open: a
// reader that keeps its snapshot while idle makes every later commit take new pages.
TEST_CASE_FIXTURE(ModelFixture, "a released reader does not make the file grow") {
  namespace fs = std::filesystem;
  std::string key = generateTokenKey();
  Script s;
  s.create(key, "alice", kT);
  model->apply(s.records, skips.reporter());
  auto churn = [&](int commits) {
    for (int i = 0; i < commits; ++i) {
      Script one;
      one.next = s.next++;
      if (i % 2 == 0)
        one.deactivate(key, "alice", kT + i * 1us, kT + i * 1us);
      else
        one.activate(key, "alice", kT + i * 1us);
      model->apply(one.records, skips.reporter());
    }
  };
  const auto file = fs::path(dir.sub("model")) / "data.mdb";
  auto idle = model->reader();
  REQUIRE(idle->token(key).has_value());

  idle->release();
  churn(2000);
  auto released = fs::file_size(file);
  CHECK(released < 2u << 20);
  CHECK(idle->token(key).has_value());  // a released reader still answers, fresh

  // The control: the same churn while the snapshot is held grows the file.
  churn(500);
  CHECK(fs::file_size(file) > released + (4u << 20));

  // A reader that has not read yet holds no snapshot either (the daemon makes one
  // per command thread at start; idle ones pinned the first snapshot for good).
  auto unused = model->reader();
  idle->release();
  auto before = fs::file_size(file);
  churn(2000);
  CHECK(fs::file_size(file) < before + (2u << 20));
  CHECK(unused->token(key).has_value());
}

// The daemon's read model writes through a writable memory map; on a full disk a
// write into the map would be SIGBUS, so apply() reserves blocks first and fails
// with a clear error instead. Needs a small file system: a 4 MiB tmpfs (root only).
TEST_CASE("a small disk fills up; then events are refused up front, not a crash") {
  // A 4 MB disk, injected: reservations past it fail as fallocate does on a full
  // disk (no root, no mount needed). The daemon's test mounts a real tmpfs.
  test::TempDir dir;
  auto smallDisk = [](int, uint64_t bytes) { return bytes > (4u << 20) ? ENOSPC : 0; };
  auto model = openReadModel(dir.sub("model"), ReadModelOptions{kMap, false}, {nullptr, smallDisk});
  Script s;
  Skips skips;
  size_t applied = 0;
  std::optional<RoomProblem> refused;
  // What claimRoom() admits always fits: each admitted batch applies.
  for (int round = 0; round < 1000 && !(refused = model->claimRoom(20)); ++round) {
    size_t from = s.records.size();
    for (int i = 0; i < 20; ++i) s.create(generateTokenKey(), "alice", kT + (round * 20 + i) * 1us);
    applied += model->apply({s.records.begin() + from, s.records.end()}, skips.reporter()).applied;
  }
  REQUIRE(refused.has_value());
  CHECK_MESSAGE(refused->code == "disk_full", refused->message);
  CHECK(refused->message.find("Free disk space") != std::string::npos);
  CHECK(applied >= 100);  // a 4 MB disk holds tokens (it held none when 128 MB were reserved)
  // A batch past the room is refused whole, with a clear error and nothing applied.
  Offsets before = model->applied(1);
  size_t from = s.records.size();
  for (int i = 0; i < 2000; ++i) s.create(generateTokenKey(), "alice", kT + 100000us + i * 1us);
  try {
    model->apply({s.records.begin() + from, s.records.end()}, skips.reporter());
    FAIL("apply beyond the disk's room did not throw");
  } catch (const RoomExhausted& e) {
    CHECK(e.problem().code == "disk_full");
  }
  CHECK(model->applied(1) == before);
  auto readiness = model->roomFor(20);  // what /readyz says, reserving nothing
  REQUIRE(readiness.has_value());
  CHECK(readiness->code == "disk_full");
  // What was applied still reads.
  CHECK(model->reader()->tokensOf("alice").size() == applied);
}

TEST_CASE_FIXTURE(ModelFixture, "a batch that does not fit under the size limit is refused whole") {
  test::TempDir small;
  auto tiny = openReadModel(small.sub("model"), ReadModelOptions{96 * 4096});
  Script s;
  for (int i = 0; i < 1000; ++i) s.create(generateTokenKey(), "alice", kT + i * 1us);
  REQUIRE(tiny->roomFor(1000).has_value());
  CHECK(tiny->roomFor(1000)->code == "read_model_full");
  CHECK_THROWS_AS(tiny->apply(s.records, skips.reporter()), RoomExhausted);
  CHECK(tiny->applied(1) == Offsets::of({0}));
  CHECK(tiny->reader()->tokensOf("alice").empty());
  // A batch that fits still applies afterwards.
  CHECK_FALSE(tiny->roomFor(1).has_value());
  CHECK(tiny->apply({s.records[0]}, skips.reporter()).applied == 1);
}

TEST_CASE("a burst of commands beyond the disk reserved ahead is admitted, not refused") {
  // Disk is reserved ahead for about 64 events in flight; 250 concurrent creates
  // used to get 503 busy. A claim now reserves what it needs.
  test::TempDir dir;
  auto model = openReadModel(dir.sub("model"), ReadModelOptions{kMap, false});
  CHECK_FALSE(model->claimRoom(2000).has_value());
  Script s;
  for (int i = 0; i < 2000; ++i) s.create(generateTokenKey(), "alice", kT + i * 1us);
  Skips skips;
  CHECK(model->apply(s.records, skips.reporter()).applied == 2000);
  CHECK(model->claimRoom(2000 * 1000)->code == "read_model_full");  // past the 64 MB limit
}

TEST_CASE("the map grows on demand up to the limit, with readers open") {
  test::TempDir dir;
  std::vector<std::string> logged;
  auto model = openReadModel(dir.sub("model"), ReadModelOptions{256ull << 20, false},
                             {[&](const std::string& line) { logged.push_back(line); }, nullptr});
  auto reader = model->reader();  // an idle reader must not block growth for good
  std::atomic<bool> stop{false};
  std::atomic<int> reads{0};
  auto busy = model->reader();
  std::thread verifier([&] {
    VerifyView v;
    while (!stop) {
      busy->verifyView("tlk_AAAAAAAAAAAAAAAAAAAAAAAA", v);
      reads++;
      if (reads % 64 == 0) busy->releaseIfStale();  // as the HTTP loops do when idle
    }
  });
  Script s;
  Skips skips;
  for (int round = 0; round < 40; ++round) {
    size_t from = s.records.size();
    for (int i = 0; i < 2000; ++i)
      s.create(generateTokenKey(), "alice", kT + (round * 2000 + i) * 1us);
    reader->release();
    try {
      model->apply({s.records.begin() + from, s.records.end()}, skips.reporter());
    } catch (const std::exception& e) {
      stop = true;
      verifier.join();
      FAIL(std::string(e.what()));
    }
  }
  stop = true;
  verifier.join();
  CHECK(reads > 0);
  bool grew = false;
  for (const auto& line : logged) grew = grew || line.find("map grown to") != std::string::npos;
  CHECK_MESSAGE(grew, "no growth logged");
  CHECK(model->reader()->tokensOf("alice").size() == 80000);
}

TEST_CASE_FIXTURE(ModelFixture, "reopening the read model keeps its state") {
  Script s;
  std::string key = generateTokenKey();
  s.create(key, "alice", kT);
  model->apply(s.records, skips.reporter());
  std::string before = model->dump();
  model.reset();
  model = openReadModel(dir.sub("model"), ReadModelOptions{kMap});
  CHECK(model->dump() == before);
  CHECK(model->applied(1) == Offsets::of({1}));
  CHECK(before.find("meta ") != std::string::npos);
}

// Appends a realistic history to `log`: several owners, a rotation, a malformed
// record, repeated deactivation, and an unknown future event.
std::vector<Position> writeHistory(EventLog& log) {
  std::vector<Position> out;
  auto put = [&](const Event& e) {
    auto p = log.append(e.owner, {encodeEvent(e)});
    out.insert(out.end(), p.begin(), p.end());
  };
  std::string a = generateTokenKey(), b = generateTokenKey(), c = generateTokenKey();
  put(makeEvent(a, "alice", kT, test::makeCreated(generateSecret())));
  put(makeEvent(b, "bob", kT + 1us,
                test::makeCreated(generateSecret(), TokenKind::destination, "dest-1")));
  Created succ = test::makeCreated(generateSecret());
  succ.replaces = a;
  Event rotated = makeEvent(c, "alice", kT + 2us, succ);
  Event off = makeEvent(a, "alice", kT + 2us, Deactivated{Reason::rotation, kT + 60 * kSec});
  auto p = log.append("alice", {encodeEvent(rotated), encodeEvent(off)});
  out.insert(out.end(), p.begin(), p.end());
  out.push_back(log.append("alice", {"\x01\x02 corrupt record"})[0]);
  put(makeEvent(b, "bob", kT + 3us, Deactivated{Reason::compromised, kT}));
  put(makeEvent(b, "bob", kT + 4us, Activated{}));
  out.push_back(log.append("bob", {test::encodeRevoked(randomBytes(16), b, "bob", kT + 5us)})[0]);
  put(makeEvent(c, "alice", kT + 6us, Deactivated{Reason::manual, kT + 6us}));
  return out;
}

TEST_CASE("rebuilding from the log gives the same read model as live projection") {
  test::ensureCrypto();
  test::TempDir dir;
  auto log = openEmbeddedLog(dir.sub("log"), EmbeddedLogOptions{kMap});
  auto live = openReadModel(dir.sub("live"), ReadModelOptions{kMap});
  std::mutex m;
  std::vector<std::string> warnings;
  auto projector = startProjector(*log, *live, [&](const std::string& w) {
    std::lock_guard lock(m);
    warnings.push_back(w);
  });
  auto positions = writeHistory(*log);
  REQUIRE(projector->waitFor(positions.back(), 5s));
  projector->stop();
  {
    std::lock_guard lock(m);
    CHECK(warnings.size() == 2);  // the corrupt record and the unknown event
  }

  Skips skips;
  auto report =
      rebuildReadModel(*log, dir.sub("rebuilt"), skips.reporter(), ReadModelOptions{kMap});
  CHECK(report.skipped == 2);
  CHECK(report.applied == positions.size() - 2);
  REQUIRE(skips.seen.size() == 2);
  CHECK(skips.seen[0].first == positions[4]);
  auto rebuilt = openReadModel(dir.sub("rebuilt"), ReadModelOptions{kMap});
  std::string liveDump = live->dump();
  CHECK(rebuilt->dump() == liveDump);
  CHECK(liveDump.find("tokens ") != std::string::npos);
  CHECK(rebuilt->applied(1) == Offsets::of({static_cast<int64_t>(positions.size())}));
}

// A rebuild of several transactions ends with a compacting copy: the same entries
// in fewer pages, and a model that opens and goes on applying.
TEST_CASE("compacting a read model keeps every entry and drops the free pages") {
  namespace fs = std::filesystem;
  test::ensureCrypto();
  test::TempDir dir;
  Skips skips;
  Script s;
  std::vector<std::string> keys;
  for (int i = 0; i < 3000; ++i) keys.push_back(generateTokenKey());
  for (int i = 0; i < 3000; ++i) s.create(keys[i], "user" + std::to_string(i % 7), kT + i * 1us);
  for (int i = 0; i < 3000; i += 3)
    s.deactivate(keys[i], "user" + std::to_string(i % 7), kT + 1s, std::nullopt);
  std::string before;
  {
    auto model = openReadModel(dir.sub("model"), ReadModelOptions{kMap});
    // In slices, as a rebuild's later transactions insert among the earlier ones.
    for (size_t from = 0; from < s.records.size(); from += 500) {
      std::vector<LogRecord> slice(s.records.begin() + from,
                                   s.records.begin() + std::min(from + 500, s.records.size()));
      model->apply(slice, skips.reporter());
    }
    before = model->dump();
  }
  const auto file = fs::path(dir.sub("model")) / "data.mdb";
  const auto sizeBefore = fs::file_size(file);
  compactReadModel(dir.sub("model"));
  CHECK(fs::file_size(file) < sizeBefore);
  CHECK_FALSE(fs::exists(dir.sub("model") + "/compacting"));
  auto model = openReadModel(dir.sub("model"), ReadModelOptions{kMap});
  CHECK(model->dump() == before);
  Script more;
  more.next = s.next;
  more.activate(keys[0], "user0", kT + 2s);
  CHECK(model->apply(more.records, skips.reporter()).applied == 1);
  CHECK(model->reader()->token(keys[0])->active);
  CHECK(skips.seen.empty());
}

TEST_CASE("rebuilding refuses a directory that already holds a read model") {
  test::ensureCrypto();
  test::TempDir dir;
  auto log = openEmbeddedLog(dir.sub("log"), EmbeddedLogOptions{kMap});
  log->append("alice", {encodeEvent(makeEvent(generateTokenKey(), "alice", kT,
                                              test::makeCreated(generateSecret())))});
  { openReadModel(dir.sub("existing"), ReadModelOptions{kMap}); }
  Skips skips;
  CHECK_THROWS_AS(
      rebuildReadModel(*log, dir.sub("existing"), skips.reporter(), ReadModelOptions{kMap}),
      std::runtime_error);
  // It did not touch the existing model.
  CHECK(openReadModel(dir.sub("existing"), ReadModelOptions{kMap})->applied(1) == Offsets::of({0}));
  // An empty log rebuilds into an empty model.
  auto empty = openEmbeddedLog(dir.sub("empty-log"), EmbeddedLogOptions{kMap});
  auto r = rebuildReadModel(*empty, dir.sub("fresh"), skips.reporter(), ReadModelOptions{kMap});
  CHECK(r.applied == 0);
}

// A projector on a fresh embedded log and read model.
struct ProjectorFixture {
  ProjectorFixture() { test::ensureCrypto(); }
  test::TempDir dir;
  std::unique_ptr<EventLog> log = openEmbeddedLog(dir.sub("log"), EmbeddedLogOptions{kMap});
  std::unique_ptr<ReadModel> model = openReadModel(dir.sub("model"), ReadModelOptions{kMap});
  test::ManualClock clock;  // deadlines move only when the test moves it
  std::unique_ptr<Projector> projector = startProjector(
      *log, *model, [](const std::string&) {}, clock);  // stopped first
};

TEST_CASE_FIXTURE(ProjectorFixture, "projector: waitFor, applied and ready") {
  std::string key = generateTokenKey();
  auto p = log->append(
      "alice", {encodeEvent(makeEvent(key, "alice", kT, test::makeCreated(generateSecret())))});
  CHECK(projector->waitFor(p[0], 5s));
  CHECK(projector->applied() == Offsets::of({1}));
  CHECK(projector->waitFor(Offsets::of({1}), 1s));
  CHECK(model->reader()->token(key).has_value());

  // A position never applied: false once the projector's clock passed the deadline
  // (waitFor waits as whenApplied does; "not before" is checked there, below).
  auto timedOut = [&](auto wanted) {
    auto answer = std::async(std::launch::async, [&] { return projector->waitFor(wanted, 300ms); });
    while (answer.wait_for(10ms) != std::future_status::ready) clock.advance(300ms);
    return !answer.get();
  };
  CHECK(timedOut(test::pos(0, 5)));
  CHECK(timedOut(test::pos(1, 0)));  // no such partition
  CHECK(timedOut(Offsets::of({6})));

  // ready() once caught up with the log as found at start.
  test::waitUntil([&] { return projector->ready(); });
  CHECK(projector->ready());
  projector->stop();
  projector->stop();  // idempotent
  // After stop, waitFor does not wait for what will never come.
  CHECK_FALSE(projector->waitFor(test::pos(0, 9), 2s));
}

TEST_CASE_FIXTURE(ProjectorFixture, "projector: whenApplied calls back without blocking") {
  struct Result {
    std::promise<bool> applied;
    std::thread::id thread;
  };
  auto await = [](Result& r) {
    auto f = r.applied.get_future();
    REQUIRE(f.wait_for(5s) == std::future_status::ready);
    return f.get();
  };
  auto callback = [](Result& r) {
    return [&r](bool applied) {
      r.thread = std::this_thread::get_id();
      r.applied.set_value(applied);
    };
  };
  auto appendOne = [&] {
    return log->append("alice", {encodeEvent(makeEvent(generateTokenKey(), "alice", kT,
                                                       test::makeCreated(generateSecret())))})[0];
  };

  // Not yet appended: called back from the projector's thread once applied.
  Result later;
  projector->whenApplied(test::pos(0, 0), 5s, callback(later));
  appendOne();
  CHECK(await(later));
  CHECK(later.thread != std::this_thread::get_id());

  // Covered already: at once, on the caller's thread.
  Result now;
  projector->whenApplied(test::pos(0, 0), 5s, callback(now));
  CHECK(await(now));
  CHECK(now.thread == std::this_thread::get_id());

  // Never applied: false once the time is up, not before. The projector checks
  // deadlines whenever it applies a batch: a batch applied after the clock moved to
  // just before the deadline leaves the callback pending.
  Result late;
  auto lateAnswer = late.applied.get_future();
  projector->whenApplied(test::pos(0, 7), 300ms, [&late](bool ok) { late.applied.set_value(ok); });
  clock.advance(299ms);
  Result nextBatch;
  projector->whenApplied(appendOne(), 5s, callback(nextBatch));
  CHECK(await(nextBatch));
  CHECK(lateAnswer.wait_for(0s) == std::future_status::timeout);
  clock.advance(1ms);
  REQUIRE(lateAnswer.wait_for(5s) == std::future_status::ready);
  CHECK_FALSE(lateAnswer.get());

  // Stopping answers every pending callback with false.
  Result pending;
  projector->whenApplied(test::pos(0, 9), 60s, callback(pending));
  projector->stop();
  CHECK_FALSE(await(pending));
  Result afterStop;
  projector->whenApplied(test::pos(0, 9), 60s, callback(afterStop));
  CHECK_FALSE(await(afterStop));
}

TEST_CASE("projector resumes after the stored positions") {
  test::ensureCrypto();
  test::TempDir dir;
  auto log = openEmbeddedLog(dir.sub("log"), EmbeddedLogOptions{kMap});
  std::string key = generateTokenKey();
  {
    auto model = openReadModel(dir.sub("model"), ReadModelOptions{kMap});
    auto projector = startProjector(*log, *model, [](const std::string&) {});
    auto p = log->append(
        "alice", {encodeEvent(makeEvent(key, "alice", kT, test::makeCreated(generateSecret())))});
    REQUIRE(projector->waitFor(p[0], 5s));
  }
  // Written while no projector ran.
  auto p = log->append(
      "alice",
      {encodeEvent(makeEvent(key, "alice", kT + 1us, Deactivated{Reason::manual, kT + 1us}))});
  auto model = openReadModel(dir.sub("model"), ReadModelOptions{kMap});
  std::atomic<int> warnings{0};
  auto projector = startProjector(*log, *model, [&](const std::string&) { warnings++; });
  REQUIRE(projector->waitFor(p[0], 5s));
  auto t = model->reader()->token(key);
  REQUIRE(t.has_value());
  CHECK(t->eventCount == 2);
  CHECK_FALSE(t->active);
  CHECK(warnings.load() == 0);
  projector->stop();

  Skips skips;
  rebuildReadModel(*log, dir.sub("rebuilt"), skips.reporter(), ReadModelOptions{kMap});
  CHECK(openReadModel(dir.sub("rebuilt"), ReadModelOptions{kMap})->dump() == model->dump());
}

}  // namespace
}  // namespace tokenledger

namespace tokenledger {
namespace {

// A fake /proc and /sys under a temporary root.
struct FakeRoot {
  test::TempDir dir;
  void write(const std::string& path, const std::string& content) {
    std::filesystem::path p = dir.path() + path;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p) << content;
  }
  // The process's groups (/proc/self/cgroup), and in `dir` the memory controller's
  // limit and usage files (version 2 or 1 names).
  void group(const std::string& groups, const std::string& dir, bool v2, const std::string& limit,
             const std::string& usage) {
    write("/proc/self/cgroup", groups);
    write(dir + (v2 ? "/memory.max" : "/memory.limit_in_bytes"), limit);
    write(dir + (v2 ? "/memory.current" : "/memory.usage_in_bytes"), usage);
  }
};

constexpr uint64_t kGiB = 1ull << 30;

TEST_CASE("available memory: MemAvailable, or a smaller cgroup headroom") {
  FakeRoot root;
  root.write("/proc/meminfo",
             "MemTotal:       25165824 kB\nMemFree:        1000 kB\nMemAvailable:   16777216 kB\n");
  SUBCASE("no cgroup files: MemAvailable") {
    CHECK(availableMemoryBytes(root.dir.path()) == 16 * kGiB);
  }
  SUBCASE("cgroup v2 group with a limit below it") {
    root.group("0::/app.slice/tl.service\n", "/sys/fs/cgroup/app.slice/tl.service", true,
               std::to_string(2 * kGiB) + "\n", std::to_string(kGiB / 2));
    CHECK(availableMemoryBytes(root.dir.path()) == kGiB + kGiB / 2);
  }
  SUBCASE("cgroup v2 without a limit") {
    root.group("0::/\n", "/sys/fs/cgroup", true, "max\n", "1000\n");
    CHECK(availableMemoryBytes(root.dir.path()) == 16 * kGiB);
  }
  SUBCASE("cgroup v1 in a container: the hierarchy's root is the container's group") {
    root.group("4:memory:/docker/abc\n0::/\n", "/sys/fs/cgroup/memory", false, std::to_string(kGiB),
               std::to_string(kGiB + 1));
    CHECK(availableMemoryBytes(root.dir.path()) == 0);  // over its limit already
  }
  SUBCASE("cgroup v1 without a limit (the kernel writes a huge number)") {
    root.group("4:memory:/\n", "/sys/fs/cgroup/memory", false, "9223372036854771712\n", "1000\n");
    CHECK(availableMemoryBytes(root.dir.path()) == 16 * kGiB);
  }
}

TEST_CASE("available memory unknown without /proc") {
  test::TempDir empty;
  CHECK_FALSE(availableMemoryBytes(empty.path()).has_value());
}

TEST_CASE("rebuild transactions: a quarter of the available memory, within bounds") {
  CHECK(rebuildChunkRecords(std::nullopt) == 262'144);
  CHECK(rebuildChunkRecords(0) == 65'536);
  CHECK(rebuildChunkRecords(kGiB) == 174'762);  // 1 GiB / 4 / 1.5 KiB
  CHECK(rebuildChunkRecords(64 * kGiB) == 1'048'576);
}

}  // namespace
}  // namespace tokenledger

namespace tokenledger {
namespace {

// The read model's layout (projections/read_model_layout.h) in literal bytes: a
// change here must bump kLayoutVersion (existing read models are then rebuilt).
TEST_CASE("the read model's layout, in literal bytes") {
  using namespace std::string_literals;
  std::string buf;
  CHECK(layout::ownerKey(buf, "alice", Timestamp{258us}, "tlk_K") ==
        "alice\0\0\0\0\0\0\0\x01\x02tlk_K"s);
  CHECK(layout::splitOwnerKey("alice\0\0\0\0\0\0\0\x01\x02tlk_K"s)->key == "tlk_K");
  CHECK(layout::splitOwnerKey("alice\0\0\0\0\0\0\0\x01\x02tlk_K"s)->createdAt == Timestamp{258us});
  CHECK_FALSE(layout::splitOwnerKey("alice\0tlk"s));
  CHECK(layout::partitionKey(Partition{3}) == "\0\0\0\x03"s);
  CHECK(layout::nextOffsetValue(NextOffset{258}) == "\0\0\0\0\0\0\x01\x02"s);
  CHECK(layout::nextOffsetOf("\0\0\0\0\0\0\x01\x02"s) == NextOffset{258});
  layout::VerifyRecord r;
  r.secretHash.fill(0xAB);
  r.active = true;
  r.kind = 1;
  r.expiresAt = Timestamp{1us};
  r.deactivateAt = Timestamp{2us};
  r.owner = "al";
  r.destinationId = "d";
  std::string expected = std::string(32, '\xAB') + "\x01\x01"s + "\0\0\0\0\0\0\0\x01"s +
                         "\0\0\0\0\0\0\0\x02"s +
                         "\x02"
                         "al"
                         "d"s;
  CHECK(layout::encodeVerifyRecord(buf, r) == expected);
  auto back = layout::decodeVerifyRecord(expected);
  REQUIRE(back);
  CHECK(back->owner == "al");
  CHECK(back->destinationId == "d");
  CHECK(back->expiresAt == Timestamp{1us});
  CHECK(back->deactivateAt == Timestamp{2us});
  CHECK_FALSE(layout::decodeVerifyRecord(expected.substr(0, 52)));  // cut inside the owner
  CHECK(layout::kLayoutVersion == 4);
  CHECK(std::string(layout::kDatabases[0]) == "tokens");
}

}  // namespace
}  // namespace tokenledger
