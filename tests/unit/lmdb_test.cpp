// The RAII wrapper around LMDB (events/lmdb.h).
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "events/lmdb.h"
#include "tests/unit/test_util.h"

namespace tokenledger {
namespace {

using namespace tokenledger::lmdb;

constexpr uint64_t kSmallMap = 16ull << 20;

MDB_dbi createDb(Env& env, const char* name) {
  auto txn = Txn::write(env);
  MDB_dbi dbi = txn.openDb(name, 0, true);
  txn.commit();
  return dbi;
}

TEST_CASE("put, get and del in a write transaction") {
  test::TempDir dir;
  Env env(dir.path(), EnvOptions{kSmallMap});
  MDB_dbi dbi = createDb(env, "t");
  auto txn = Txn::write(env);
  txn.put(dbi, "alpha", "1");
  txn.put(dbi, "beta", std::string("two\0bytes", 9));
  CHECK(txn.get(dbi, "alpha") == std::optional<std::string_view>("1"));
  CHECK(txn.get(dbi, "beta") == std::optional<std::string_view>(std::string_view("two\0bytes", 9)));
  CHECK_FALSE(txn.get(dbi, "gamma").has_value());
  txn.put(dbi, "alpha", "overwritten");
  CHECK(txn.get(dbi, "alpha") == std::optional<std::string_view>("overwritten"));
  CHECK(txn.del(dbi, "alpha"));
  CHECK_FALSE(txn.get(dbi, "alpha").has_value());
  CHECK_FALSE(txn.del(dbi, "alpha"));
  txn.commit();

  auto r = Txn::read(env);
  CHECK_FALSE(r.get(dbi, "alpha").has_value());
  CHECK(r.get(dbi, "beta").has_value());
}

TEST_CASE("MDB_NOOVERWRITE surfaces as LmdbError with the MDB code") {
  test::TempDir dir;
  Env env(dir.path(), EnvOptions{kSmallMap});
  MDB_dbi dbi = createDb(env, "t");
  auto txn = Txn::write(env);
  txn.put(dbi, "k", "v");
  try {
    txn.put(dbi, "k", "w", MDB_NOOVERWRITE);
    FAIL("expected LmdbError");
  } catch (const LmdbError& e) {
    CHECK(e.code() == MDB_KEYEXIST);
    CHECK_FALSE(e.mapFull());
    CHECK(std::string(e.what()).find("mdb_put") != std::string::npos);
  }
  CHECK(txn.get(dbi, "k") == std::optional<std::string_view>("v"));
}

TEST_CASE("a write transaction left uncommitted is aborted by its destructor") {
  test::TempDir dir;
  Env env(dir.path(), EnvOptions{kSmallMap});
  MDB_dbi dbi = createDb(env, "t");
  {
    auto txn = Txn::write(env);
    txn.put(dbi, "ghost", "boo");
    REQUIRE(txn.get(dbi, "ghost").has_value());
  }
  {
    auto r = Txn::read(env);
    CHECK_FALSE(r.get(dbi, "ghost").has_value());
  }
  {
    auto txn = Txn::write(env);
    txn.put(dbi, "ghost", "boo");
    txn.abort();
    txn.abort();  // idempotent
  }
  auto r = Txn::read(env);
  CHECK_FALSE(r.get(dbi, "ghost").has_value());
  // The writer lock was released both times: another write transaction starts.
  auto w = Txn::write(env);
  w.put(dbi, "real", "x");
  w.commit();
}

TEST_CASE("a moved transaction is committed once, by its new owner") {
  test::TempDir dir;
  Env env(dir.path(), EnvOptions{kSmallMap});
  MDB_dbi dbi = createDb(env, "t");
  {
    auto a = Txn::write(env);
    a.put(dbi, "k", "v");
    Txn b = std::move(a);
    CHECK(a.get() == nullptr);
    CHECK(b.get() != nullptr);
    b.commit();
    CHECK(b.get() == nullptr);
  }
  auto r = Txn::read(env);
  CHECK(r.get(dbi, "k") == std::optional<std::string_view>("v"));
}

TEST_CASE("committed data survives closing and reopening the environment") {
  test::TempDir dir;
  {
    Env env(dir.path(), EnvOptions{kSmallMap});
    auto txn = Txn::write(env);
    MDB_dbi dbi = txn.openDb("persist", 0, true);
    txn.put(dbi, "answer", "42");
    txn.commit();
  }
  CHECK(std::filesystem::exists(dir.sub("data.mdb")));
  Env env(dir.path(), EnvOptions{kSmallMap});
  auto r = Txn::read(env);
  MDB_dbi dbi = r.openDb("persist");
  CHECK(r.get(dbi, "answer") == std::optional<std::string_view>("42"));
  // A database that was never created cannot be opened read-only.
  CHECK_THROWS_AS(r.openDb("missing"), LmdbError);
}

TEST_CASE("Env creates its directory and refuses a path that is a file") {
  test::TempDir dir;
  {
    Env env(dir.sub("a/b/c"), EnvOptions{kSmallMap});
    CHECK(env.path() == dir.sub("a/b/c"));
    CHECK(std::filesystem::is_directory(dir.sub("a/b/c")));
    auto perms = std::filesystem::status(dir.sub("a/b/c")).permissions();
    CHECK((perms & std::filesystem::perms::others_all) == std::filesystem::perms::none);
  }
  std::ofstream(dir.sub("file")) << "not a directory";
  CHECK_THROWS_AS(Env(dir.sub("file"), EnvOptions{kSmallMap}), std::runtime_error);
}

namespace fs = std::filesystem;

// The entries of a directory with their modes, sizes and mtimes.
std::string listing(const std::string& dir) {
  std::string out;
  std::vector<fs::path> paths{dir};
  for (const auto& e : fs::directory_iterator(dir)) paths.push_back(e.path());
  std::sort(paths.begin(), paths.end());
  for (const auto& p : paths) {
    auto st = fs::status(p);
    out += p.filename().string() + " " + std::to_string(static_cast<int>(st.permissions()));
    if (fs::is_regular_file(p)) out += " " + std::to_string(fs::file_size(p));
    if (p.filename() != "lock.mdb")  // readers register there: written by design
      out += " " + std::to_string(fs::last_write_time(p).time_since_epoch().count());
    out += "\n";
  }
  return out;
}

constexpr EnvOptions kReadOnly{.mapSizeBytes = kSmallMap, .readOnly = true};

TEST_CASE("a read-only Env creates and changes nothing, and refuses writes") {
  test::TempDir dir;
  {
    Env env(dir.path(), EnvOptions{kSmallMap});
    MDB_dbi dbi = createDb(env, "t");
    auto w = Txn::write(env);
    w.put(dbi, "k", "v");
    w.commit();
  }
  fs::permissions(dir.path(), fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                                  fs::perms::others_read | fs::perms::others_exec);

  SUBCASE("with lock.mdb: reads, keeps the mode, refuses writes") {
    REQUIRE(fs::exists(dir.sub("lock.mdb")));
    std::string before = listing(dir.path());
    {
      Env env(dir.path(), kReadOnly);
      auto r = Txn::read(env);
      CHECK(r.get(r.openDb("t"), "k") == std::optional<std::string_view>("v"));
      CHECK_THROWS_AS(Txn::write(env), LmdbError);
    }
    CHECK(listing(dir.path()) == before);
  }
  SUBCASE("without lock.mdb (a copy of data.mdb alone): reads, creates no lock file") {
    fs::remove(dir.sub("lock.mdb"));
    std::string before = listing(dir.path());
    {
      Env env(dir.path(), kReadOnly);
      auto r = Txn::read(env);
      CHECK(r.get(r.openDb("t"), "k") == std::optional<std::string_view>("v"));
    }
    CHECK(listing(dir.path()) == before);
  }
  SUBCASE("MDB_RDONLY in flags means the same") {
    std::string before = listing(dir.path());
    { Env env(dir.path(), EnvOptions{.mapSizeBytes = kSmallMap, .flags = MDB_RDONLY}); }
    CHECK(listing(dir.path()) == before);
  }
}

TEST_CASE("a read-only Env on a missing directory or data file throws and creates nothing") {
  test::TempDir dir;
  try {
    Env env(dir.sub("missing"), kReadOnly);
    FAIL("expected an error");
  } catch (const std::runtime_error& e) {
    CHECK(std::string(e.what()).find(dir.sub("missing")) != std::string::npos);
    CHECK(std::string(e.what()).find("not created") != std::string::npos);
  }
  CHECK_FALSE(fs::exists(dir.sub("missing")));
  fs::create_directory(dir.sub("empty"));
  CHECK_THROWS_WITH_AS(Env(dir.sub("empty"), kReadOnly), doctest::Contains("no data.mdb"),
                       std::runtime_error);
  CHECK(fs::is_empty(dir.sub("empty")));
}

TEST_CASE("a read-only Env's readers register in lock.mdb, so a writer keeps their pages") {
  test::TempDir dir;
  Env writer(dir.path(), EnvOptions{kSmallMap});
  MDB_dbi dbi = createDb(writer, "t");
  {
    auto w = Txn::write(writer);
    w.put(dbi, "k", "old");
    w.commit();
  }
  Env reader(dir.path(), kReadOnly);
  auto r = Txn::read(reader);
  MDB_dbi rdbi = r.openDb("t");
  CHECK(r.get(rdbi, "k") == std::optional<std::string_view>("old"));
  // The writer sees the reader in the shared reader table...
  std::string table;
  mdb_reader_list(
      writer.get(),
      [](const char* msg, void* ctx) {
        static_cast<std::string*>(ctx)->append(msg);
        return 0;
      },
      &table);
  CHECK(table.find(std::to_string(getpid())) != std::string::npos);
  // ...so many commits later, the reader's snapshot is intact.
  for (int i = 0; i < 50; ++i) {
    auto w = Txn::write(writer);
    w.put(dbi, "k", "new " + std::to_string(i) + std::string(500, 'x'));
    w.commit();
  }
  CHECK(r.get(rdbi, "k") == std::optional<std::string_view>("old"));
}

TEST_CASE("a read transaction is a snapshot until reset and renewed") {
  test::TempDir dir;
  Env env(dir.path(), EnvOptions{kSmallMap});
  MDB_dbi dbi = createDb(env, "t");
  auto r = Txn::read(env);
  CHECK_FALSE(r.get(dbi, "k").has_value());
  {
    auto w = Txn::write(env);
    w.put(dbi, "k", "v");
    w.commit();
  }
  CHECK_FALSE(r.get(dbi, "k").has_value());
  r.reset();
  r.renew();
  CHECK(r.get(dbi, "k") == std::optional<std::string_view>("v"));
}

TEST_CASE("writing in a read transaction fails") {
  test::TempDir dir;
  Env env(dir.path(), EnvOptions{kSmallMap});
  MDB_dbi dbi = createDb(env, "t");
  auto r = Txn::read(env);
  CHECK_THROWS_AS(r.put(dbi, "k", "v"), LmdbError);
}

TEST_CASE("cursors walk keys in byte order") {
  test::TempDir dir;
  Env env(dir.path(), EnvOptions{kSmallMap});
  MDB_dbi dbi = createDb(env, "t");
  std::vector<std::string> keys{"delta", "alpha", "charlie", "bravo", "echo", "alphabet"};
  {
    auto w = Txn::write(env);
    for (const auto& k : keys) w.put(dbi, k, "v-" + k);
    w.commit();
  }
  std::sort(keys.begin(), keys.end());
  auto r = Txn::read(env);
  Cursor c(r, dbi);

  std::vector<std::string> walked;
  for (bool ok = c.first(); ok; ok = c.next()) {
    walked.emplace_back(c.key());
    CHECK(c.value() == "v-" + std::string(c.key()));
  }
  CHECK(walked == keys);

  REQUIRE(c.seek("b"));
  CHECK(c.key() == "bravo");
  REQUIRE(c.seek("alpha"));
  CHECK(c.key() == "alpha");
  REQUIRE(c.next());
  CHECK(c.key() == "alphabet");
  REQUIRE(c.seek("charlie0"));
  CHECK(c.key() == "delta");
  CHECK_FALSE(c.seek("zulu"));
  REQUIRE(c.last());
  CHECK(c.key() == "echo");
  CHECK_FALSE(c.next());
}

TEST_CASE("cursors on an empty database find nothing") {
  test::TempDir dir;
  Env env(dir.path(), EnvOptions{kSmallMap});
  MDB_dbi dbi = createDb(env, "empty");
  auto r = Txn::read(env);
  Cursor c(r, dbi);
  CHECK_FALSE(c.first());
  CHECK_FALSE(c.last());
  CHECK_FALSE(c.seek("a"));
}

TEST_CASE("mapAddress finds the map that values are read from") {
  test::TempDir dir;
  Env env(dir.path(), EnvOptions{kSmallMap});
  MDB_dbi dbi = createDb(env, "m");
  {
    auto w = Txn::write(env);
    w.put(dbi, "k", std::string(100, 'v'));
    w.commit();
  }
  char* map = env.mapAddress();
  REQUIRE(map != nullptr);
  CHECK(env.mapAddress() == map);  // looked up once
  auto r = Txn::read(env);
  auto value = r.get(dbi, "k");
  REQUIRE(value);
  // Read transactions point into the map: the value lies inside it.
  CHECK(value->data() > map);
  CHECK(value->data() + value->size() <= map + kSmallMap);
  // And another environment's map is another address.
  test::TempDir other;
  Env second(other.path(), EnvOptions{kSmallMap});
  createDb(second, "m");
  REQUIRE(second.mapAddress() != nullptr);
  CHECK(second.mapAddress() != map);
}

TEST_CASE("encodeU64 sorts like the numbers") {
  std::vector<uint64_t> values{0,          1,
                               255,        256,
                               65535,      65536,
                               1ull << 32, (1ull << 32) + 1,
                               1ull << 56, UINT64_MAX - 1,
                               UINT64_MAX, 4242};
  for (uint64_t v : values) {
    CHECK(encodeU64(v).size() == 8);
    CHECK(decodeU64(encodeU64(v)) == v);
  }
  for (uint64_t a : values)
    for (uint64_t b : values) {
      CAPTURE(a);
      CAPTURE(b);
      CHECK((encodeU64(a) < encodeU64(b)) == (a < b));
    }
  CHECK(encodeU64(1) == std::string("\0\0\0\0\0\0\0\x01", 8));
  CHECK_THROWS_AS((void)decodeU64("short"), std::runtime_error);

  // And LMDB's default comparison agrees.
  test::TempDir dir;
  Env env(dir.path(), EnvOptions{kSmallMap});
  MDB_dbi dbi = createDb(env, "n");
  std::vector<uint64_t> shuffled = values;
  std::shuffle(shuffled.begin(), shuffled.end(), std::mt19937(7));
  {
    auto w = Txn::write(env);
    for (uint64_t v : shuffled) w.put(dbi, encodeU64(v), "");
    w.commit();
  }
  std::sort(values.begin(), values.end());
  std::vector<uint64_t> walked;
  auto r = Txn::read(env);
  Cursor c(r, dbi);
  for (bool ok = c.first(); ok; ok = c.next()) walked.push_back(decodeU64(c.key()));
  CHECK(walked == values);
}

TEST_CASE("a full map throws LmdbError that says what to do") {
  test::TempDir dir;
  Env env(dir.path(), EnvOptions{32 * 4096});
  MDB_dbi dbi = createDb(env, "t");
  std::string value(1000, 'x');
  int committed = 0;
  bool full = false;
  for (int i = 0; i < 10000 && !full; ++i) {
    try {
      auto w = Txn::write(env);
      w.put(dbi, encodeU64(static_cast<uint64_t>(i)), value);
      w.commit();
      ++committed;
    } catch (const LmdbError& e) {
      full = true;
      CHECK(e.mapFull());
      CHECK(e.code() == MDB_MAP_FULL);
      CHECK(std::string(e.what()).find("--map-size-mb") != std::string::npos);
    }
  }
  REQUIRE(full);
  CHECK(committed > 10);
  CHECK(committed < 200);
  // What was committed before is intact and readable.
  auto r = Txn::read(env);
  CHECK(r.get(dbi, encodeU64(0)) == std::optional<std::string_view>(value));
  CHECK(r.get(dbi, encodeU64(static_cast<uint64_t>(committed - 1))).has_value());
  CHECK_FALSE(r.get(dbi, encodeU64(static_cast<uint64_t>(committed))).has_value());
}

TEST_CASE("check() passes success and throws on failure") {
  CHECK_NOTHROW(check(MDB_SUCCESS, "ok"));
  try {
    check(MDB_NOTFOUND, "lookup");
    FAIL("expected LmdbError");
  } catch (const LmdbError& e) {
    CHECK(e.code() == MDB_NOTFOUND);
    CHECK(std::string(e.what()).rfind("lookup", 0) == 0);
    CHECK(std::string(e.what()).find("--map-size-mb") == std::string::npos);
  }
}

// A cursor that outlived its transaction used to be freed twice (LMDB frees a write
// transaction's cursors in commit), found with ASan; now the transaction takes its
// cursors with it, whatever order the code ends them in.
TEST_CASE("a cursor cannot outlive its transaction") {
  test::TempDir dir;
  Env env(dir.sub("env"), EnvOptions{64ull << 20});
  MDB_dbi dbi;
  {
    auto w = Txn::write(env);
    dbi = w.openDb("d", 0, true);
    w.put(dbi, "a", "1");
    Cursor c(w, dbi);  // still open at the commit
    CHECK(c.first());
    w.commit();
    CHECK_THROWS_AS(c.next(), std::logic_error);
  }  // the cursor's destructor runs after the commit: no double free (ASan checks)
  {
    auto w = Txn::write(env);
    auto c = std::make_unique<Cursor>(w, dbi);
    w.abort();
    CHECK_THROWS_AS(c->first(), std::logic_error);
  }
  {
    auto r = Txn::read(env);
    Cursor c(r, dbi);
    CHECK(c.first());
    r.reset();  // a reset snapshot takes its cursors too
    CHECK_THROWS_AS(c.first(), std::logic_error);
    r.renew();
    Cursor again(r, dbi);
    CHECK(again.first());
    Txn moved = std::move(r);  // cursors follow the transaction when it moves
    CHECK(again.next() == false);
  }
}

}  // namespace
}  // namespace tokenledger
