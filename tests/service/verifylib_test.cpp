// libtokenledger_verify against a real tokenledgerd running as another process: the
// same answers as /v1/verify, deactivations seen at once, many threads, a daemon
// restart, a rebuild and a deleted read model under one open handle, the errors, the
// file permissions (--reader-group), and that it never writes the data file.
#include <grp.h>
#include <sys/stat.h>

#include <atomic>
#include <ctime>
#include <memory>
#include <optional>
#include <thread>

#include "events/lmdb.h"
#include "events/secrets.h"
#include "projections/read_model_layout.h"
#include "tests/service/service_fixture.h"
#include "verifylib/tokenledger_verify.h"

using namespace tltest;
using json = nlohmann::json;

namespace {

struct Handle {
  tokenledger_verifier* v = nullptr;
  explicit Handle(const std::string& dir) {
    int rc = tokenledger_verify_open(dir.c_str(), &v);
    REQUIRE_MESSAGE(rc == TOKENLEDGER_VERIFY_OK, tokenledger_verify_last_error());
  }
  ~Handle() { tokenledger_verify_close(v); }

  tokenledger_verify_result verify(const std::string& key, const std::string& secret) {
    tokenledger_verify_result r{};
    int rc = tokenledger_verify(v, key.data(), key.size(), secret.data(), secret.size(), &r);
    REQUIRE_MESSAGE(rc == TOKENLEDGER_VERIFY_OK, tokenledger_verify_last_error());
    return r;
  }
  int status(const std::string& key, const std::string& secret) {
    tokenledger_verify_result r{};
    return tokenledger_verify(v, key.data(), key.size(), secret.data(), secret.size(), &r);
  }
  tokenledger_verify_stats stats() {
    tokenledger_verify_stats s{};
    REQUIRE(tokenledger_verify_get_stats(v, &s) == TOKENLEDGER_VERIFY_OK);
    return s;
  }
};

std::string reasonOf(const tokenledger_verify_result& r) {
  return r.valid ? "ok" : r.reason_text;
}

// What /v1/verify answers, as a reason ("ok" when valid).
std::string httpReason(Daemon& d, const std::string& key, const std::string& secret) {
  auto r = d.call("POST", "/v1/verify", "", {"Authorization: Basic " + base64(key + ":" + secret)});
  auto j = r.json();
  return j["valid"].get<bool>() ? "ok" : j["reason"].get<std::string>();
}

json createToken(Daemon& d, const std::string& user, const json& body) {
  auto r = d.call("POST", "/v1/users/" + user + "/tokens", body.dump(),
                  {"Authorization: Bearer " + kOperator, "Content-Type: application/json"});
  REQUIRE_MESSAGE(r.status == 201, r.body);
  return r.json();
}

void command(Daemon& d, const std::string& user, const std::string& key, const std::string& what) {
  auto r = d.call("POST", "/v1/users/" + user + "/tokens/" + key + "/" + what, "",
                  {"Authorization: Bearer " + kOperator});
  REQUIRE_MESSAGE(r.status == 200, r.body);
}

void waitReady(Daemon& d) {
  for (int i = 0; i < 500; ++i) {
    if (d.call("GET", "/readyz").status == 200) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  FAIL("the daemon did not get ready");
}

std::string rfc3339(std::time_t t) {
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// Runs `argv` to its end; its exit status (-1 when it did not exit normally).
int runProcess(std::vector<std::string> args) {
  pid_t pid = fork();
  if (pid == 0) {
    int devnull = ::open("/dev/null", O_WRONLY);
    dup2(devnull, 1);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// The library's descriptor of DATA_DIR/projection/data.mdb is read-only, and so is
// its mapping of the file.
void checkOpenedReadOnly(const std::string& dataDir) {
  std::string target = std::filesystem::canonical(dataDir + "/projection/data.mdb").string();
  bool sawFd = false;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    auto to = std::filesystem::read_symlink(e.path(), ec);
    if (ec || to.string() != target) continue;
    sawFd = true;
    std::string info = readFile("/proc/self/fdinfo/" + e.path().filename().string());
    auto at = info.find("flags:");
    REQUIRE(at != std::string::npos);
    int flags = std::stoi(info.substr(at + 6), nullptr, 8);
    CHECK((flags & O_ACCMODE) == O_RDONLY);
  }
  CHECK(sawFd);
  std::istringstream maps(readFile("/proc/self/maps"));
  bool sawMap = false;
  for (std::string line; std::getline(maps, line);) {
    if (line.size() < target.size() || line.substr(line.size() - target.size()) != target) continue;
    sawMap = true;
    std::istringstream fields(line);
    std::string range, perms;
    fields >> range >> perms;
    CHECK(perms == "r--s");
  }
  CHECK(sawMap);
}

struct FileState {
  struct timespec mtime;
  off_t size;
  std::string content;
  bool operator==(const FileState& o) const {
    return mtime.tv_sec == o.mtime.tv_sec && mtime.tv_nsec == o.mtime.tv_nsec && size == o.size &&
           content == o.content;
  }
};
FileState fileState(const std::string& path) {
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return FileState{st.st_mtim, st.st_size, readFile(path)};
}

}  // namespace

TEST_CASE("the library answers what /v1/verify answers, and sees a deactivation at once") {
  Fixture f({}, "vlib");
  auto user = createToken(f.daemon, "alice", {{"description", "Receive leads"}});
  auto dest = createToken(
      f.daemon, "alice",
      {{"description", "CRM webhook"}, {"kind", "destination"}, {"destination_id", "crm-1"}});
  auto soon = createToken(
      f.daemon, "bob",
      {{"description", "expires soon"}, {"expires_at", rfc3339(std::time(nullptr) + 3)}});
  const std::string key = user["key"], secret = user["token"];
  const std::string dkey = dest["key"], dsecret = dest["token"];
  Handle lib(f.data);

  auto ok = lib.verify(key, secret);
  CHECK(ok.valid == 1);
  CHECK(ok.reason == TOKENLEDGER_VERIFY_REASON_OK);
  CHECK(std::string(ok.key) == key);
  CHECK(std::string(ok.owner) == "alice");
  CHECK(ok.kind == TOKENLEDGER_VERIFY_KIND_USER);
  CHECK(std::string(ok.kind_text) == "user");
  CHECK(std::string(ok.destination_id).empty());
  CHECK(ok.expires_at_us == 0);
  auto d = lib.verify(dkey, dsecret);
  CHECK(d.valid == 1);
  CHECK(std::string(d.kind_text) == "destination");
  CHECK(std::string(d.destination_id) == "crm-1");
  auto s = lib.verify(soon["key"], soon["token"]);
  CHECK(s.valid == 1);
  CHECK(s.expires_at_us > 0);
  CHECK(std::string(s.owner) == "bob");

  const std::string unknownKey = tokenledger::generateTokenKey();
  const std::string unknownSecret = tokenledger::generateSecret();
  struct Case {
    std::string key, secret, reason;
  };
  std::vector<Case> cases = {
      {key, secret, "ok"},
      {dkey, dsecret, "ok"},
      {unknownKey, unknownSecret, "unknown"},
      {key, dsecret, "bad_secret"},
      {key, "tls_not-a-token", "malformed"},
      {"nope", secret, "malformed"},
      {"", "", "malformed"},
      {key + ":" + secret, "", "malformed"},
      {key, secret.substr(0, secret.size() - 1) + (secret.back() == 'a' ? "b" : "a"), "malformed"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.reason);
    CHECK(reasonOf(lib.verify(c.key, c.secret)) == c.reason);
    CHECK(httpReason(f.daemon, c.key, c.secret) == c.reason);
  }
  // "key:token" and the Authorization header, as /v1/verify reads them.
  tokenledger_verify_result r{};
  std::string creds = key + ":" + secret;
  REQUIRE(tokenledger_verify_credentials(lib.v, creds.data(), creds.size(), &r) == 0);
  CHECK(r.valid == 1);
  std::string basic = "Basic " + base64(creds);
  REQUIRE(tokenledger_verify_authorization(lib.v, basic.data(), basic.size(), &r) == 0);
  CHECK(r.valid == 1);
  std::string bearer = "Bearer " + creds;
  REQUIRE(tokenledger_verify_authorization(lib.v, bearer.data(), bearer.size(), &r) == 0);
  CHECK(std::string(r.reason_text) == "malformed");
  CHECK(tokenledger_verify(lib.v, key.data(), key.size(), secret.data(), secret.size(), nullptr) ==
        TOKENLEDGER_VERIFY_E_INVALID_ARGUMENT);

  SUBCASE("deactivations are seen at once, from many threads") {
    std::vector<json> tokens;
    for (int i = 0; i < 12; ++i)
      tokens.push_back(createToken(f.daemon, "carol", {{"description", "t" + std::to_string(i)}}));
    // Threads verify all the while: the valid token, and wrong secrets.
    std::atomic<bool> stop{false};
    std::atomic<uint64_t> calls{0}, wrong{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t)
      threads.emplace_back([&, t] {
        // Handles of their own, opened and closed all the while: closing one must not
        // disturb the others (one LMDB environment per file per process).
        std::optional<Handle> mine(std::in_place, f.data);
        uint64_t n = 0;
        while (!stop.load()) {
          if (++n % 5000 == 0) {
            mine.reset();
            mine.emplace(f.data);
          }
          tokenledger_verify_result a{};
          int rc = t % 2 == 0 ? tokenledger_verify(lib.v, key.data(), key.size(), secret.data(),
                                                   secret.size(), &a)
                              : tokenledger_verify(mine->v, key.data(), key.size(), dsecret.data(),
                                                   dsecret.size(), &a);
          bool right = rc == 0 && (t % 2 == 0 ? a.valid == 1 && std::string(a.owner) == "alice"
                                              : a.reason == TOKENLEDGER_VERIFY_REASON_BAD_SECRET);
          if (!right && wrong++ == 0)
            MESSAGE("thread " << t << ": status " << rc << " ("
                              << std::string(tokenledger_verify_last_error()) << "), reason "
                              << std::string(rc == 0 ? a.reason_text : "-"));
          calls++;
        }
      });
    for (const auto& t : tokens) {
      CHECK(lib.verify(t["key"], t["token"]).valid == 1);
      command(f.daemon, "carol", t["key"], "deactivate");
      // Immediately after the call returned: no wait, no retry.
      CHECK(reasonOf(lib.verify(t["key"], t["token"])) == "inactive");
      CHECK(httpReason(f.daemon, t["key"], t["token"]) == "inactive");
      command(f.daemon, "carol", t["key"], "activate");
      CHECK(lib.verify(t["key"], t["token"]).valid == 1);
    }
    stop = true;
    for (auto& t : threads) t.join();
    CHECK(wrong.load() == 0);
    CHECK(calls.load() > 1000);
    MESSAGE(calls.load() << " verifications on 8 threads during " << tokens.size()
                         << " deactivations");
  }

  SUBCASE("expired") {
    while (lib.verify(soon["key"], soon["token"]).valid == 1)
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    CHECK(reasonOf(lib.verify(soon["key"], soon["token"])) == "expired");
    CHECK(httpReason(f.daemon, soon["key"], soon["token"]) == "expired");
  }

  SUBCASE("read-only: the data file is opened and mapped read-only") {
    checkOpenedReadOnly(f.data);
  }
}

TEST_CASE("one handle survives a daemon restart, a rebuild and a deleted read model") {
  std::string root = tempDir("vlib-restart");
  std::string data = root + "/data";
  struct Cleanup {
    std::string root;
    ~Cleanup() { std::filesystem::remove_all(root); }
  } cleanup{root};
  auto daemon = std::make_unique<Daemon>(kBinary, data, root, kOperator);
  std::vector<json> t;
  for (int i = 0; i < 4; ++i)
    t.push_back(createToken(*daemon, "dave", {{"description", "r" + std::to_string(i)}}));
  auto key = [&](int i) { return t[i]["key"].get<std::string>(); };
  auto secret = [&](int i) { return t[i]["token"].get<std::string>(); };
  Handle lib(data);
  CHECK(lib.verify(key(0), secret(0)).valid == 1);
  CHECK(lib.stats().reopens == 1);
  const uint64_t firstIno = lib.stats().data_ino;

  // Stopped: the library still answers from the same file, and never writes it.
  REQUIRE(daemon->terminate() == 0);
  const std::string dataFile = data + "/projection/data.mdb";
  FileState before = fileState(dataFile);
  for (int i = 0; i < 5000; ++i) CHECK(lib.verify(key(i % 4), secret(i % 4)).valid == 1);
  CHECK(fileState(dataFile) == before);
  checkOpenedReadOnly(data);

  // Restarted on the same files: no reopen, and its deactivation is seen at once.
  daemon = std::make_unique<Daemon>(kBinary, data, root, kOperator);
  command(*daemon, "dave", key(0), "deactivate");
  CHECK(reasonOf(lib.verify(key(0), secret(0))) == "inactive");
  CHECK(lib.stats().reopens == 1);
  CHECK(lib.stats().data_ino == firstIno);

  // Rebuilt (projection.rebuilding renamed into place) while the handle is open.
  REQUIRE(daemon->terminate() == 0);
  REQUIRE(runProcess({kBinary, "--data-dir", data, "--rebuild"}) == 0);
  // The watcher thread flags the replacement; every answer meanwhile is right too.
  for (int i = 0; i < 400 && lib.stats().reopens < 2; ++i) {
    CHECK(reasonOf(lib.verify(key(0), secret(0))) == "inactive");
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  CHECK(lib.stats().reopens == 2);
  CHECK(lib.stats().data_ino != firstIno);
  CHECK(reasonOf(lib.verify(key(0), secret(0))) == "inactive");
  CHECK(lib.verify(key(1), secret(1)).valid == 1);
  daemon = std::make_unique<Daemon>(kBinary, data, root, kOperator);
  command(*daemon, "dave", key(1), "deactivate");
  CHECK(reasonOf(lib.verify(key(1), secret(1))) == "inactive");  // the new file, at once

  // Deleted: no answers (they would come from a file nobody updates), a clear error;
  // the daemon makes a new one from the log at start, and the handle follows.
  REQUIRE(daemon->terminate() == 0);
  std::filesystem::remove_all(data + "/projection");
  int rc = TOKENLEDGER_VERIFY_OK;
  for (int i = 0; i < 400 && rc == TOKENLEDGER_VERIFY_OK; ++i) {
    rc = lib.status(key(2), secret(2));
    if (rc == TOKENLEDGER_VERIFY_OK) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  CHECK(rc == TOKENLEDGER_VERIFY_E_NO_READ_MODEL);
  CHECK(std::string(tokenledger_verify_last_error()).find("no read model") != std::string::npos);
  CHECK(lib.stats().open == 0);
  daemon = std::make_unique<Daemon>(kBinary, data, root, kOperator);
  waitReady(*daemon);
  CHECK(lib.verify(key(2), secret(2)).valid == 1);
  CHECK(reasonOf(lib.verify(key(0), secret(0))) == "inactive");
  command(*daemon, "dave", key(2), "deactivate");
  CHECK(reasonOf(lib.verify(key(2), secret(2))) == "inactive");
  CHECK(lib.stats().reopens == 3);
}

TEST_CASE("clear errors: no data directory, no read model yet, another layout version") {
  std::string root = tempDir("vlib-errors");
  struct Cleanup {
    std::string root;
    ~Cleanup() { std::filesystem::remove_all(root); }
  } cleanup{root};
  tokenledger_verifier* v = nullptr;
  CHECK(tokenledger_verify_open((root + "/missing").c_str(), &v) ==
        TOKENLEDGER_VERIFY_E_NO_READ_MODEL);
  CHECK(v == nullptr);
  CHECK(std::string(tokenledger_verify_last_error()).find("no data directory") !=
        std::string::npos);
  CHECK(tokenledger_verify_open(root.c_str(), &v) == TOKENLEDGER_VERIFY_E_NO_READ_MODEL);
  CHECK(std::string(tokenledger_verify_last_error()).find("no read model in") != std::string::npos);
  CHECK(std::string(tokenledger_verify_status_name(TOKENLEDGER_VERIFY_E_NO_READ_MODEL)) ==
        "no_read_model");

  // A read model of another layout version (written here with the project's wrapper).
  const std::string other = std::to_string(tokenledger::layout::kLayoutVersion + 1);
  {
    tokenledger::lmdb::Env env(root + "/projection", tokenledger::lmdb::EnvOptions{64 << 20});
    auto txn = tokenledger::lmdb::Txn::write(env);
    MDB_dbi meta = txn.openDb(tokenledger::layout::kMeta, 0, true);
    txn.openDb(tokenledger::layout::kVerify, 0, true);
    txn.put(meta, tokenledger::layout::kSchemaVersionKey, other);
    txn.commit();
  }
  CHECK(tokenledger_verify_open(root.c_str(), &v) == TOKENLEDGER_VERIFY_E_LAYOUT);
  std::string why = tokenledger_verify_last_error();
  CHECK(why.find("layout version " + other) != std::string::npos);
  CHECK(why.find("reads " + std::to_string(tokenledger::layout::kLayoutVersion)) !=
        std::string::npos);
  // Without lock.mdb (never opened by a daemon) it refuses rather than create one.
  std::filesystem::remove(root + "/projection/lock.mdb");
  CHECK(tokenledger_verify_open(root.c_str(), &v) == TOKENLEDGER_VERIFY_E_NO_READ_MODEL);
  CHECK(std::string(tokenledger_verify_last_error()).find("lock.mdb") != std::string::npos);
  CHECK(!std::filesystem::exists(root + "/projection/lock.mdb"));
}

namespace {

// Runs the C client as uid 65534 with the given groups, "key:token" on its stdin;
// its exit status and output.
std::pair<int, std::string> verifyAs(const std::string& binDir, const std::string& data,
                                     std::vector<gid_t> groups, const std::string& creds) {
  int in[2], out[2];
  REQUIRE(pipe(in) == 0);
  REQUIRE(pipe(out) == 0);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(in[0], 0);
    dup2(out[1], 1);
    dup2(out[1], 2);
    ::close(in[1]);
    ::close(out[0]);
    gid_t primary = groups.empty() ? 65534 : groups[0];
    if (setgroups(groups.size(), groups.data()) != 0 || setgid(primary) != 0 || setuid(65534) != 0)
      _exit(120);
    setenv("LD_LIBRARY_PATH", binDir.c_str(), 1);
    std::string bin = binDir + "/tokenledger-verify";
    execl(bin.c_str(), bin.c_str(), data.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  ::close(in[0]);
  ::close(out[1]);
  std::string line = creds + "\n";
  (void)!::write(in[1], line.data(), line.size());
  ::close(in[1]);
  std::string text;
  char buf[4096];
  for (ssize_t n; (n = ::read(out[0], buf, sizeof buf)) > 0;) text.append(buf, n);
  ::close(out[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, text};
}

mode_t modeOf(const std::string& path) {
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return st.st_mode & 07777;
}
gid_t groupOf(const std::string& path) {
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return st.st_gid;
}

}  // namespace

TEST_CASE("--reader-group lets that group's users verify, and keeps everyone else out") {
  if (geteuid() != 0) {
    MESSAGE("skipped: needs root to run the client as another user");
    return;
  }
  const gid_t kGroup = 4242;  // no name needed: a numeric gid
  std::string root = tempDir("vlib-perm");
  struct Cleanup {
    std::string root;
    ~Cleanup() { std::filesystem::remove_all(root); }
  } cleanup{root};
  REQUIRE(::chmod(root.c_str(), 0711) == 0);  // the other user must reach DATA_DIR
  // The client and the library, where uid 65534 may run them.
  std::string bin = root + "/bin";
  std::filesystem::create_directories(bin);
  std::filesystem::copy_file(TOKENLEDGER_VERIFY_CLI, bin + "/tokenledger-verify");
  std::filesystem::copy_file(TOKENLEDGER_VERIFY_LIB, bin + "/libtokenledger_verify.so.1");
  REQUIRE(::chmod(bin.c_str(), 0755) == 0);
  REQUIRE(::chmod((bin + "/tokenledger-verify").c_str(), 0755) == 0);
  REQUIRE(::chmod((bin + "/libtokenledger_verify.so.1").c_str(), 0755) == 0);

  std::string data = root + "/data";
  auto daemon = std::make_unique<Daemon>(kBinary, data, root, kOperator,
                                         std::vector<std::string>{"--reader-group", "4242"});
  auto tok = createToken(*daemon, "erin", {{"description", "gateway"}});
  std::string creds = tok["key"].get<std::string>() + ":" + tok["token"].get<std::string>();
  auto checkShared = [&] {
    CHECK(modeOf(data) == 0710);
    CHECK(groupOf(data) == kGroup);
    CHECK(modeOf(data + "/projection") == 0710);
    CHECK(groupOf(data + "/projection") == kGroup);
    CHECK(modeOf(data + "/projection/data.mdb") == 0640);
    CHECK(groupOf(data + "/projection/data.mdb") == kGroup);
    CHECK(modeOf(data + "/projection/lock.mdb") == 0660);
    CHECK(groupOf(data + "/projection/lock.mdb") == kGroup);
    // Everything else stays the daemon's alone.
    CHECK(modeOf(data + "/signing-key") == 0600);
    CHECK(modeOf(data + "/log") == 0700);
  };
  checkShared();
  auto [inGroup, inText] = verifyAs(bin, data, {kGroup}, creds);
  CHECK_MESSAGE(inGroup == 0, inText);
  CHECK(inText.find("valid owner=erin kind=user") != std::string::npos);
  auto [outside, outText] = verifyAs(bin, data, {}, creds);
  CHECK(outside == 2);
  CHECK(outText.find("permission") != std::string::npos);
  CHECK(outText.find(tok["token"].get<std::string>()) == std::string::npos);
  // Nor can the group read the daemon's secrets.
  auto [list, listText] = verifyAs(bin, data + "/signing-key", {kGroup}, creds);
  CHECK(list == 2);

  // A rebuild keeps the group's access (the new directory is shared before it is
  // renamed into place).
  REQUIRE(daemon->terminate() == 0);
  REQUIRE(runProcess({kBinary, "--data-dir", data, "--rebuild", "--reader-group", "4242"}) == 0);
  checkShared();
  CHECK(verifyAs(bin, data, {kGroup}, creds).first == 0);

  // Started without the flag: private again.
  daemon = std::make_unique<Daemon>(kBinary, data, root, kOperator);
  CHECK(modeOf(data) == 0700);
  CHECK(modeOf(data + "/projection") == 0700);
  CHECK(modeOf(data + "/projection/data.mdb") == 0600);
  CHECK(modeOf(data + "/projection/lock.mdb") == 0600);
  CHECK(verifyAs(bin, data, {kGroup}, creds).first == 2);
}
