// The real tokenledgerd over a real socket: the API, every bad-input case of the
// core issue, read-your-writes, SIGTERM drain, kill -9 recovery, rebuild, the
// no-secret-anywhere check, connection floods and limits, and request framing.
#include <doctest/doctest.h>

#include <atomic>
#include <filesystem>
#include <mutex>
#include <optional>

#include "events/lmdb.h"
#include "projections/read_model.h"
#include "tests/service/service_fixture.h"

using namespace tltest;
using nlohmann::json;

TEST_CASE("create, list, get, verify, deactivate, activate, rotate, history") {
  Fixture f;
  auto health = f.daemon.call("GET", "/healthz");
  CHECK(health.status == 200);
  CHECK(health.headers.at("tokenledger-applied-position") == "0:0");
  CHECK(f.daemon.call("GET", "/readyz").status == 200);

  json t = f.create("alice", "  Receive leads from RD Station  ");
  std::string key = t["key"], token = t["token"];
  CHECK(t["description"] == "Receive leads from RD Station");  // trimmed
  CHECK(t["kind"] == "user");
  CHECK(t["status"] == "active");
  CHECK(t["owner"] == "alice");
  CHECK(t["position"] == "0:0");
  CHECK(key.rfind("tlk_", 0) == 0);
  CHECK(token.rfind("tls_", 0) == 0);

  auto dest = f.post("/v1/users/alice/tokens",
                     R"({"description":"Webhook","kind":"destination","destination_id":"dest-7"})");
  REQUIRE(dest.status == 201);
  CHECK(dest.json()["destination_id"] == "dest-7");

  auto v = f.verify(key, token);
  CHECK(v.status == 200);
  CHECK(v.json() == json{{"valid", true}, {"key", key}, {"owner", "alice"}, {"kind", "user"}});
  CHECK(v.headers.at("tokenledger-applied-position") == "0:2");
  auto vd = f.verify(dest.json()["key"], dest.json()["token"]);
  CHECK(vd.json()["kind"] == "destination");
  CHECK(vd.json()["destination_id"] == "dest-7");
  CHECK(
      f.daemon.call("GET", "/v1/verify", "", {"Authorization: Basic " + base64(key + ":" + token)})
          .status == 200);

  auto list = f.get("/v1/users/alice/tokens");
  REQUIRE(list.status == 200);
  auto tokens = list.json()["tokens"];
  REQUIRE(tokens.size() == 2);
  CHECK(tokens[0]["key"] == key);
  CHECK(tokens[1]["kind"] == "destination");
  CHECK(list.body.find("tls_") == std::string::npos);  // never a secret
  CHECK(f.get("/v1/users/bob/tokens").json()["tokens"].empty());

  auto one = f.get("/v1/users/alice/tokens/" + key);
  CHECK(one.status == 200);
  CHECK(one.json()["key"] == key);
  CHECK(!one.json().contains("token"));

  auto off = f.post("/v1/users/alice/tokens/" + key + "/deactivate", R"({"reason":"compromised"})");
  CHECK(off.status == 200);
  CHECK(off.json()["status"] == "inactive");
  CHECK(off.json()["changed"] == true);
  CHECK(off.json()["deactivation_reason"] == "compromised");
  auto v2 = f.verify(key, token);
  CHECK(v2.status == 401);
  CHECK(v2.json()["reason"] == "inactive");
  CHECK(v2.headers.count("www-authenticate") == 1);
  // Idempotent: a second deactivation changes nothing and is not an error.
  auto again = f.post("/v1/users/alice/tokens/" + key + "/deactivate");
  CHECK(again.status == 200);
  CHECK(again.json()["changed"] == false);
  // Deactivation touched no other token.
  CHECK(f.verify(dest.json()["key"], dest.json()["token"]).status == 200);

  auto on = f.post("/v1/users/alice/tokens/" + key + "/activate");
  CHECK(on.status == 200);
  CHECK(on.json()["changed"] == true);
  CHECK(f.verify(key, token).status == 200);
  CHECK(f.post("/v1/users/alice/tokens/" + key + "/activate").json()["changed"] == false);

  auto rot = f.post("/v1/users/alice/tokens/" + key + "/rotate", R"({"grace_seconds":0})");
  REQUIRE(rot.status == 200);
  std::string newKey = rot.json()["key"], newToken = rot.json()["token"];
  CHECK(rot.json()["replaces"] == key);
  CHECK(rot.json()["previous"]["replaced_by"] == newKey);
  CHECK(rot.json()["previous"]["status"] == "inactive");
  CHECK(f.verify(key, token).json()["reason"] == "inactive");
  CHECK(f.verify(newKey, newToken).status == 200);
  checkError(f.post("/v1/users/alice/tokens/" + key + "/rotate"), 409, "already_rotated");

  auto graced = f.post("/v1/users/alice/tokens/" + newKey + "/rotate", R"({"grace_seconds":3600})");
  REQUIRE(graced.status == 200);
  CHECK(graced.json()["previous"]["status"] == "active");
  CHECK(graced.json()["previous"].contains("deactivates_at"));
  CHECK(f.verify(newKey, newToken).status == 200);  // still valid during the grace period
  CHECK(f.verify(graced.json()["key"], graced.json()["token"]).status == 200);

  auto hist = f.get("/v1/users/alice/tokens/" + key + "/history");
  REQUIRE(hist.status == 200);
  auto events = hist.json()["events"];
  REQUIRE(events.size() == 4);
  CHECK(events[0]["type"] == "created");
  CHECK(events[1]["type"] == "deactivated");
  CHECK(events[1]["reason"] == "compromised");
  CHECK(events[2]["type"] == "activated");
  CHECK(events[3]["type"] == "deactivated");
  CHECK(events[3]["reason"] == "rotation");
  CHECK(events[0]["actor"] == "operator");
  CHECK(hist.json()["replaced_by"] == newKey);
  CHECK(f.daemon.terminate() == 0);
}

TEST_CASE("read-your-writes: a verify sent after deactivate returned fails") {
  Fixture f;
  for (int i = 0; i < 30; ++i) {
    json t = f.create("rw");
    CHECK(f.verify(t["key"], t["token"]).status == 200);
    auto r = f.post("/v1/users/rw/tokens/" + t["key"].get<std::string>() + "/deactivate");
    REQUIRE(r.status == 200);
    auto v = f.verify(t["key"], t["token"]);
    CHECK(v.status == 401);
    CHECK(v.json()["reason"] == "inactive");
  }
}

// Idle readers (an HTTP loop that served one verify, command threads between
// commands) must not pin old LMDB snapshots, or every commit takes fresh pages and
// the read model grows without bound.
TEST_CASE("the read model does not grow under churn") {
  Fixture f;
  json t = f.create("churn");
  std::string path = "/v1/users/churn/tokens/" + t["key"].get<std::string>();
  CHECK(f.verify(t["key"], t["token"]).status == 200);
  for (int i = 0; i < 1000; ++i) {
    REQUIRE(f.post(path + "/deactivate").status == 200);
    REQUIRE(f.post(path + "/activate").status == 200);
  }
  CHECK(f.verify(t["key"], t["token"]).status == 200);
  // 2,000 commits; each takes about 8 fresh pages (32 KiB) when a snapshot is
  // pinned. A clean stop cuts the file to the pages in use.
  CHECK(f.daemon.terminate() == 0);
  CHECK(std::filesystem::file_size(f.data + "/projection/data.mdb") < (8u << 20));
}

TEST_CASE("bad input gets a 4xx with one JSON error shape") {
  Fixture f;
  json t = f.create("alice");
  std::string key = t["key"], token = t["token"];
  const std::string tokens = "/v1/users/alice/tokens";

  SUBCASE("malformed JSON") {
    checkError(f.post(tokens, "{\"description\":"), 400, "invalid_json");
  }
  SUBCASE("not an object") {
    checkError(f.post(tokens, "[1,2]"), 400, "invalid_json");
  }
  SUBCASE("missing body") {
    checkError(f.post(tokens, ""), 400, "invalid_json");
  }
  SUBCASE("wrong types") {
    checkError(f.post(tokens, R"({"description":42})"), 400, "invalid_field");
    checkError(f.post(tokens, R"({"description":"x","kind":7})"), 400, "invalid_field");
    checkError(f.post(tokens, R"({"description":"x","kind":"admin"})"), 400, "invalid_field");
    checkError(f.post(tokens + "/" + key + "/rotate", R"({"grace_seconds":"10"})"), 400,
               "invalid_field");
    checkError(f.post(tokens + "/" + key + "/rotate", R"({"grace_seconds":-1})"), 400,
               "invalid_field");
    checkError(f.post(tokens + "/" + key + "/deactivate", R"({"reason":"bored"})"), 400,
               "invalid_field");
    checkError(f.post(tokens + "/" + key + "/deactivate", R"({"effective_at":"yesterday"})"), 400,
               "invalid_field");
  }
  SUBCASE("unknown fields") {
    auto r = f.post(tokens, R"({"description":"x","colour":"red"})");
    checkError(r, 400, "unknown_field");
    CHECK(r.json()["error"]["message"].get<std::string>().find("colour") != std::string::npos);
    checkError(f.post(tokens + "/" + key + "/activate", R"({"force":true})"), 400, "unknown_field");
  }
  SUBCASE("empty, blank and 201-character descriptions; 200 is fine") {
    checkError(f.post(tokens, R"({"description":""})"), 400, "invalid_description");
    checkError(f.post(tokens, R"({"description":"   "})"), 400, "invalid_description");
    checkError(f.post(tokens, json{{"description", std::string(201, 'a')}}.dump()), 400,
               "invalid_description");
    CHECK(f.post(tokens, json{{"description", std::string(200, 'a')}}.dump()).status == 201);
    // 200 characters of two bytes each is still 200 characters.
    std::string accents;
    for (int i = 0; i < 200; ++i) accents += "\xC3\xA9";
    CHECK(f.post(tokens, json{{"description", accents}}.dump()).status == 201);
    checkError(f.post(tokens, R"({"description":"line\nbreak"})"), 400, "invalid_description");
  }
  SUBCASE("invalid UTF-8") {
    checkError(f.post(tokens, "{\"description\":\"bad \xC3\x28 byte\"}"), 400, "invalid_json");
    checkError(f.post(tokens, "{\"description\":\"\xFF\xFE\"}"), 400, "invalid_json");
  }
  SUBCASE("destination rules") {
    checkError(f.post(tokens, R"({"description":"x","kind":"destination"})"), 400,
               "invalid_destination_id");
    checkError(f.post(tokens, R"({"description":"x","destination_id":"d1"})"), 400,
               "invalid_destination_id");
  }
  SUBCASE("body over 64 KiB is 413") {
    std::string big = R"({"description":")" + std::string(70 * 1024, 'a') + R"("})";
    checkError(f.post(tokens, big), 413, "payload_too_large");
  }
  SUBCASE("unsupported media type") {
    auto h = f.auth();
    h.push_back("Content-Type: multipart/form-data; boundary=x");
    checkError(f.daemon.call("POST", tokens, R"({"description":"x"})", h), 415,
               "unsupported_media_type");
  }
  SUBCASE("unknown token, unknown route, wrong method") {
    checkError(f.get(tokens + "/tlk_AAAAAAAAAAAAAAAAAAAAAAAA"), 404, "not_found");
    checkError(f.get(tokens + "/garbage"), 404, "not_found");
    checkError(f.post(tokens + "/tlk_AAAAAAAAAAAAAAAAAAAAAAAA/activate"), 404, "not_found");
    checkError(f.get("/v2/nothing"), 404, "not_found");
    checkError(f.get(tokens + "/" + key + "/explode"), 404, "not_found");
    checkError(f.get("/nothing-here"), 404, "not_found");
    CHECK(f.get("/").status == 200);  // the web page
    auto r = f.daemon.call("DELETE", tokens + "/" + key, "", f.auth());
    checkError(r, 405, "method_not_allowed");
    CHECK(r.headers.at("allow") == "GET, HEAD");
    checkError(f.get(tokens + "/" + key + "/activate"), 405, "method_not_allowed");
    checkError(f.daemon.call("PUT", "/v1/verify"), 405, "method_not_allowed");
    checkError(f.daemon.call("POST", "/healthz"), 405, "method_not_allowed");
  }
  SUBCASE("missing or wrong operator secret") {
    checkError(f.daemon.call("GET", tokens), 401, "unauthorized");
    checkError(f.daemon.call("GET", tokens, "", {"Authorization: Bearer wrong"}), 401,
               "unauthorized");
    checkError(
        f.daemon.call("GET", tokens, "", {"Authorization: Basic " + base64(key + ":" + token)}),
        401, "unauthorized");
    auto r = f.daemon.call("POST", tokens, R"({"description":"x"})",
                           {"Authorization: Bearer " + kOperator + "x"});
    checkError(r, 401, "unauthorized");
  }
  SUBCASE("invalid user id; percent-encoded ids are decoded") {
    checkError(f.get("/v1/users/al%20ice/tokens"), 400, "invalid_user");
    checkError(f.get("/v1/users/al%2Fice/tokens"), 400, "invalid_user");
    checkError(f.get("/v1/users/al%zzice/tokens"), 400, "invalid_path");
    CHECK(f.get("/v1/users/al%69ce/tokens").json()["tokens"].size() == 1);  // "alice"
  }
  SUBCASE("another user's token is not found") {
    checkError(f.get("/v1/users/bob/tokens/" + key), 404, "not_found");
    checkError(f.post("/v1/users/bob/tokens/" + key + "/deactivate"), 404, "not_found");
    checkError(f.post("/v1/users/bob/tokens/" + key + "/rotate"), 404, "not_found");
    checkError(f.get("/v1/users/bob/tokens/" + key + "/history"), 404, "not_found");
    CHECK(f.verify(key, token).status == 200);  // untouched
  }
  SUBCASE("malformed Basic headers and garbage tokens") {
    auto reason = [&](const std::vector<std::string>& h) {
      auto r = f.daemon.call("POST", "/v1/verify", "", h);
      CHECK(r.status == 401);
      return r.json()["reason"].get<std::string>();
    };
    CHECK(reason({}) == "malformed");
    CHECK(reason({"Authorization: Basic"}) == "malformed");
    CHECK(reason({"Authorization: Basic !!!notbase64"}) == "malformed");
    CHECK(reason({"Authorization: Bearer " + token}) == "malformed");
    CHECK(reason({"Authorization: Basic " + base64("no-colon")}) == "malformed");
    CHECK(reason({"Authorization: Basic " + base64(key + ":garbage")}) == "malformed");
    std::string flipped = token;
    flipped[10] = flipped[10] == 'a' ? 'b' : 'a';  // breaks the checksum
    CHECK(reason({"Authorization: Basic " + base64(key + ":" + flipped)}) == "malformed");
    auto other = f.create("alice");
    CHECK(reason({"Authorization: Basic " +
                  base64(key + ":" + other["token"].get<std::string>())}) == "bad_secret");
    CHECK(reason({"Authorization: Basic " + base64("tlk_AAAAAAAAAAAAAAAAAAAAAAAA:" + token)}) ==
          "unknown");
  }
  // Whatever happened above, the service is up and the token still verifies.
  CHECK(f.daemon.call("GET", "/healthz").status == 200);
  CHECK(f.verify(key, token).status == 200);
  CHECK(f.daemon.terminate() == 0);
}

TEST_CASE("1,000 connections opened and dropped mid-request lose nothing") {
  Fixture f;
  std::vector<json> created;
  for (int i = 0; i < 5; ++i) created.push_back(f.create("drop"));
  const std::string body = json{{"description", "half sent"}}.dump();
  for (int i = 0; i < 1000; ++i) {
    Connection c(f.daemon.port());
    switch (i % 4) {
      case 0:
        break;  // connect and leave
      case 1:
        c.sendRaw("GET /v1/users/drop/tok");
        break;  // half a request line
      case 2:   // headers promise a body that never comes
        c.sendRaw("POST /v1/users/drop/tokens HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
                  kOperator + "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" +
                  body.substr(0, 5));
        break;
      case 3:  // a full command, then gone before the answer
        c.sendRaw("POST /v1/users/drop/tokens HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
                  kOperator + "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" +
                  body);
        break;
    }
  }
  CHECK(f.daemon.call("GET", "/healthz").status == 200);
  for (const auto& t : created) CHECK(f.verify(t["key"], t["token"]).status == 200);
  // The complete commands whose clients left still ran: read-your-writes for
  // them is the list, which grows to 5 + 250 once the executor drained.
  size_t listed = 0;
  for (int i = 0; i < 200 && listed < 255; ++i) {
    listed = f.get("/v1/users/drop/tokens?limit=1000").json()["tokens"].size();
    if (listed < 255) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  CHECK(listed == 255);
  CHECK(f.daemon.terminate() == 0);
}

// Bytes the daemon has not yet read from our connection `c` to it (the rx_queue
// of its end in /proc/net/tcp); nullopt while that end is not listed.
std::optional<long> unreadByDaemon(int daemonPort, const Connection& c) {
  sockaddr_in mine{};
  socklen_t len = sizeof mine;
  REQUIRE(::getsockname(c.fd(), reinterpret_cast<sockaddr*>(&mine), &len) == 0);
  int clientPort = ntohs(mine.sin_port);
  std::ifstream in("/proc/net/tcp");
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    // "sl local_address rem_address st tx_queue:rx_queue ...", ports in hex
    std::istringstream fields(line);
    std::string sl, local, remote, state, queues;
    fields >> sl >> local >> remote >> state >> queues;
    auto port = [](const std::string& a) {
      return std::stoi(a.substr(a.find(':') + 1), nullptr, 16);
    };
    if (port(local) == daemonPort && port(remote) == clientPort && state == "01")
      return std::stol(queues.substr(queues.find(':') + 1), nullptr, 16);
  }
  return std::nullopt;
}

bool readable(const Connection& c) {
  pollfd p{c.fd(), POLLIN, 0};
  return ::poll(&p, 1, 0) > 0;
}

// Polls `f` every 2 ms until it returns true or `ms` passed.
template <typename F>
bool eventually(F f, int ms = 15000) {
  auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (!f()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

TEST_CASE("SIGTERM finishes in-flight commands and exits 0") {
  Fixture f;
  f.create("term");
  auto createWith = [](const std::string& body) {
    return "POST /v1/users/term/tokens HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + kOperator +
           "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  };
  const std::string create = createWith(json{{"description", "in flight"}}.dump());
  // A create with an unknown field never reaches the log: 400 while the daemon
  // serves, 503 shutting_down once the drain began. Two connections it answered,
  // one to watch for the drain and one for a command that arrives after it began.
  const std::string invalid = createWith(R"({"bogus":1})");
  Connection probe(f.daemon.port()), late(f.daemon.port());
  for (auto* c : {&probe, &late}) {
    c->sendRaw(invalid);
    REQUIRE(c->readResponse().status == 400);
  }
  std::vector<std::unique_ptr<Connection>> inFlight;
  {
    // Holding the log's LMDB write lock (another process's writer, as far as
    // LMDB knows) keeps every create the daemon took in flight until released.
    tokenledger::lmdb::Env log(f.data + "/log", tokenledger::lmdb::EnvOptions{1ull << 30, 4});
    auto writeLock = tokenledger::lmdb::Txn::write(log);
    for (int i = 0; i < 16; ++i) {
      inFlight.push_back(std::make_unique<Connection>(f.daemon.port()));
      inFlight.back()->sendRaw(create);
    }
    // In flight: the daemon read each request (h2o hands a request to its handler
    // in the callback that reads it) and answered none.
    for (auto& c : inFlight)
      REQUIRE(eventually([&] { return unreadByDaemon(f.daemon.port(), *c) == 0L; }));
    for (auto& c : inFlight) REQUIRE_FALSE(readable(*c));

    ::kill(f.daemon.pid(), SIGTERM);
    // The drain began once the probe is turned away (or its idle connection closed).
    CHECK(eventually([&] {
      try {
        probe.sendRaw(invalid);
        auto r = probe.readResponse(5000);
        if (r.status == 400) return false;
        checkError(r, 503, "shutting_down");
        return true;
      } catch (const std::runtime_error& e) {
        CHECK_MESSAGE(std::string(e.what()).find("timed out") == std::string::npos,
                      std::string(e.what()));
        return true;
      }
    }));
    // A command arriving now is turned away at once, though the log is still locked.
    try {
      late.sendRaw(create);
      checkError(late.readResponse(5000), 503, "shutting_down");
    } catch (const std::runtime_error& e) {  // or its connection is closed
      CHECK_MESSAGE(std::string(e.what()).find("timed out") == std::string::npos,
                    std::string(e.what()));
    }
    // The in-flight commands are still waiting, and so is the daemon.
    for (auto& c : inFlight) CHECK_FALSE(readable(*c));
    siginfo_t info{};
    REQUIRE(::waitid(P_PID, static_cast<id_t>(f.daemon.pid()), &info,
                     WEXITED | WNOHANG | WNOWAIT) == 0);
    CHECK(info.si_pid == 0);
  }  // the write lock is released here
  std::vector<json> created;
  for (auto& c : inFlight) {
    auto r = c->readResponse();
    CHECK_MESSAGE(r.status == 201, r.body);
    if (r.status == 201) created.push_back(r.json());
  }
  CHECK(f.daemon.waitExit(15000) == 0);
  // Every in-flight command is in the log: there after a restart, and verifies.
  Daemon again(kBinary, f.data, f.root, kOperator);
  auto list = again.call("GET", "/v1/users/term/tokens?limit=1000", "", f.auth());
  CHECK(list.json()["tokens"].size() == inFlight.size() + 1);
  for (const auto& t : created) {
    auto v = again.call("POST", "/v1/verify", "",
                        {"Authorization: Basic " + base64(t["key"].get<std::string>() + ":" +
                                                          t["token"].get<std::string>())});
    CHECK_MESSAGE(v.status == 200, t["key"].get<std::string>());
  }
  CHECK(again.terminate() == 0);
}

TEST_CASE(
    "kill -9 during a stream of creates: acknowledged tokens survive; read model equals a "
    "rebuild") {
  std::string root = tempDir("kill9");
  std::string data = root + "/data";
  std::vector<std::pair<std::string, std::string>> acked;
  std::mutex mutex;
  {
    Daemon d(kBinary, data, root, kOperator);
    std::atomic<bool> stop{false};
    std::vector<std::thread> clients;
    for (int c = 0; c < 4; ++c) {
      clients.emplace_back([&, c] {
        try {
          Connection conn(d.port());
          for (int i = 0; !stop; ++i) {
            auto r = conn.request("POST", "/v1/users/k" + std::to_string(c) + "/tokens",
                                  json{{"description", "stream " + std::to_string(i)}}.dump(),
                                  {"Authorization: Bearer " + kOperator});
            if (r.status != 201) break;
            std::lock_guard lock(mutex);
            acked.emplace_back(r.json()["key"], r.json()["token"]);
          }
        } catch (const std::exception&) {
          // the daemon died mid-request: that request was never acknowledged
        }
      });
    }
    // Killed mid-stream: once the clients have had enough creates acknowledged,
    // while they keep sending. (No REQUIRE before the joins: the threads must end.)
    auto ackedCount = [&] {
      std::lock_guard lock(mutex);
      return acked.size();
    };
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (ackedCount() < 200 && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    d.kill9();
    stop = true;
    for (auto& t : clients) t.join();
  }
  REQUIRE(acked.size() >= 200);
  {
    Daemon d(kBinary, data, root, kOperator);
    for (const auto& [key, token] : acked) {
      auto r =
          d.call("POST", "/v1/verify", "", {"Authorization: Basic " + base64(key + ":" + token)});
      CHECK_MESSAGE(r.status == 200, key);
    }
    CHECK(d.terminate() == 0);
  }
  // Rebuild a copy from the log with the daemon's own --rebuild and compare.
  std::string copy = root + "/copy";
  std::filesystem::copy(data, copy, std::filesystem::copy_options::recursive);
  std::string cmd = kBinary + " --rebuild --data-dir " + copy + " > " + root + "/rebuild.out 2>&1";
  REQUIRE(std::system(cmd.c_str()) == 0);
  CHECK(readFile(root + "/rebuild.out").find("rebuilt the read model") != std::string::npos);
  std::string live = tokenledger::openReadModel(data + "/projection")->dump();
  std::string rebuilt = tokenledger::openReadModel(copy + "/projection")->dump();
  CHECK(!live.empty());
  CHECK(live == rebuilt);
  std::filesystem::remove_all(root);
}

TEST_CASE("rebuild: delete the read model, rebuild, identical state") {
  Fixture f;
  std::vector<json> tokens;
  for (int i = 0; i < 5; ++i) tokens.push_back(f.create("reb"));
  f.post("/v1/users/reb/tokens/" + tokens[1]["key"].get<std::string>() + "/deactivate");
  f.post("/v1/users/reb/tokens/" + tokens[2]["key"].get<std::string>() + "/rotate",
         R"({"grace_seconds":60})");
  REQUIRE(f.daemon.terminate() == 0);
  std::string before = tokenledger::openReadModel(f.data + "/projection")->dump();
  std::filesystem::remove_all(f.data + "/projection");
  std::string cmd = kBinary + " --rebuild --data-dir " + f.data + " > /dev/null 2>&1";
  REQUIRE(std::system(cmd.c_str()) == 0);
  std::string after = tokenledger::openReadModel(f.data + "/projection")->dump();
  CHECK(before == after);
  // The service answers from the rebuilt model.
  Daemon d(kBinary, f.data, f.root, kOperator);
  auto v = d.call("POST", "/v1/verify", "",
                  {"Authorization: Basic " + base64(tokens[0]["key"].get<std::string>() + ":" +
                                                    tokens[0]["token"].get<std::string>())});
  CHECK(v.status == 200);
  auto v1 = d.call("POST", "/v1/verify", "",
                   {"Authorization: Basic " + base64(tokens[1]["key"].get<std::string>() + ":" +
                                                     tokens[1]["token"].get<std::string>())});
  CHECK(v1.json()["reason"] == "inactive");
  CHECK(d.terminate() == 0);
}

TEST_CASE("no secret in the data directory, the log output or the events") {
  // Case 1: operator secret from the environment: it must be nowhere on disk.
  // Case 2: generated operator secret: only in DATA_DIR/operator-secret (0600).
  for (bool fromEnv : {true, false}) {
    CAPTURE(fromEnv);
    std::string root = tempDir("secrets");
    std::string data = root + "/data";
    std::vector<std::string> secrets;
    std::string operatorSecret;
    {
      Daemon d(kBinary, data, root, fromEnv ? kOperator : "");
      operatorSecret = fromEnv ? kOperator : readFile(data + "/operator-secret");
      while (!operatorSecret.empty() && operatorSecret.back() == '\n') operatorSecret.pop_back();
      REQUIRE(operatorSecret.size() >= 16);
      CHECK(d.stdoutText().find(operatorSecret) == std::string::npos);
      std::vector<std::string> h{"Authorization: Bearer " + operatorSecret};
      for (int i = 0; i < 5; ++i) {
        auto r = d.call("POST", "/v1/users/sec/tokens", R"({"description":"secret test"})", h);
        REQUIRE(r.status == 201);
        secrets.push_back(r.json()["token"]);
        std::string key = r.json()["key"];
        d.call("POST", "/v1/verify", "",
               {"Authorization: Basic " + base64(key + ":" + secrets.back())});
        d.call("POST", "/v1/verify", "",
               {"Authorization: Basic " + base64(key + ":" + secrets.back() + "x")});
        if (i == 3) d.call("POST", "/v1/users/sec/tokens/" + key + "/deactivate", "", h);
        if (i == 4) {
          auto rot = d.call("POST", "/v1/users/sec/tokens/" + key + "/rotate", "", h);
          secrets.push_back(rot.json()["token"]);
        }
      }
      // Bad requests whose error messages could echo input.
      d.call("GET", "/v1/users/sec/tokens/" + secrets[0], "", h);
      d.call("POST", "/v1/users/sec/tokens", "{\"description\":\"" + secrets[0] + "\",\"x\":1}", h);
      REQUIRE(d.terminate() == 0);
      secrets.push_back(operatorSecret);
      std::string logs = d.stdoutText() + d.stderrText();
      for (const auto& s : secrets)
        CHECK_MESSAGE(logs.find(s) == std::string::npos, "secret in log output");
    }
    size_t files = 0;
    for (const auto& entry : std::filesystem::recursive_directory_iterator(data)) {
      if (!entry.is_regular_file()) continue;
      files++;
      std::string content = readFile(entry.path());
      for (const auto& s : secrets) {
        bool isOperatorFile = entry.path().filename() == "operator-secret";
        if (s == operatorSecret && isOperatorFile && !fromEnv) continue;
        CHECK_MESSAGE(content.find(s) == std::string::npos,
                      "a secret appears in " << entry.path().string());
      }
    }
    CHECK(files >= 4);  // log and projection data.mdb/lock.mdb at least
    if (!fromEnv) {
      auto perms = std::filesystem::status(data + "/operator-secret").permissions();
      CHECK((perms & std::filesystem::perms::group_all) == std::filesystem::perms::none);
      CHECK((perms & std::filesystem::perms::others_all) == std::filesystem::perms::none);
    } else {
      CHECK(!std::filesystem::exists(data + "/operator-secret"));
    }
    std::filesystem::remove_all(root);
  }
}

TEST_CASE("start-up errors are clear") {
  Fixture f;
  // A second daemon on the same data directory refuses to start.
  CHECK_THROWS_WITH_AS(Daemon(kBinary, f.data, f.root, kOperator),
                       doctest::Contains("in use by another tokenledgerd"), std::runtime_error);
  std::string cmd = kBinary + " --listen nonsense > /dev/null 2>&1";
  CHECK(WEXITSTATUS(std::system(cmd.c_str())) == 2);
  cmd = kBinary + " --bogus > /dev/null 2>&1";
  CHECK(WEXITSTATUS(std::system(cmd.c_str())) == 2);
  CHECK(f.daemon.call("GET", "/healthz").status == 200);
}

TEST_CASE("after an OS restart with unsynced read-model commits, the daemon rebuilds it") {
  std::string root = tempDir("reboot");
  std::string data = root + "/data";
  json t;
  {
    Daemon d(kBinary, data, root, kOperator);
    auto r = d.call("POST", "/v1/users/ann/tokens", R"({"description":"survives"})",
                    {"Authorization: Bearer " + kOperator});
    REQUIRE(r.status == 201);
    t = r.json();
    d.kill9();  // no clean close: the unsynced marker stays
  }
  REQUIRE(std::filesystem::exists(data + "/projection/unsynced-boot"));
  {
    // Same boot: the page cache kept every commit, nothing to rebuild.
    Daemon d(kBinary, data, root, kOperator);
    CHECK(d.stderrText().find("rebuilding") == std::string::npos);
    d.kill9();
  }
  // Pretend the machine restarted since.
  std::ofstream(data + "/projection/unsynced-boot", std::ios::trunc) << "another-boot\n";
  Daemon d(kBinary, data, root, kOperator);
  CHECK(d.stderrText().find("rebuilding it from the log") != std::string::npos);
  auto v = d.call("POST", "/v1/verify", "",
                  {"Authorization: Basic " +
                   base64(t["key"].get<std::string>() + ":" + t["token"].get<std::string>())});
  CHECK(v.status == 200);
  CHECK(d.terminate() == 0);
  CHECK(!std::filesystem::exists(data + "/projection/unsynced-boot"));  // clean close
  std::filesystem::remove_all(root);
}

namespace {

std::vector<std::unique_ptr<Connection>> idleConnections(int port, int n) {
  std::vector<std::unique_ptr<Connection>> conns;
  for (int i = 0; i < n; ++i) conns.push_back(std::make_unique<Connection>(port));
  return conns;
}

size_t closedByPeer(std::vector<std::unique_ptr<Connection>>& conns) {
  size_t closed = 0;
  for (auto& c : conns) closed += c->peerClosed() ? 1 : 0;
  return closed;
}

// Waits until the daemon has closed at least `expected` of `conns` (or `timeoutMs`
// passed); returns how many it closed.
size_t waitClosedByPeer(std::vector<std::unique_ptr<Connection>>& conns, size_t expected,
                        int timeoutMs) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeoutMs);
  size_t closed = closedByPeer(conns);
  while (closed < expected && std::chrono::steady_clock::now() < deadline) {
    std::vector<pollfd> fds;
    for (auto& c : conns)
      if (!c->peerClosed()) fds.push_back({c->fd(), POLLIN, 0});
    ::poll(fds.data(), fds.size(), 100);
    closed = closedByPeer(conns);
  }
  return closed;
}

// The daemon's CPU use (in cores) over `ms` of wall time.
double cpuCores(pid_t pid, int ms) {
  double before = cpuSeconds(pid);
  auto start = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));  // the measuring window
  double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return (cpuSeconds(pid) - before) / wall;
}

// Sends `count` GET /healthz on `c` one after another; returns how many answered
// 200 within `limitMs` each.
int promptHealthz(Connection& c, int count, int limitMs) {
  int prompt = 0;
  for (int i = 0; i < count; ++i) {
    auto start = std::chrono::steady_clock::now();
    try {
      c.sendRaw("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
      auto r = c.readResponse(limitMs);
      auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::steady_clock::now() - start)
                    .count();
      if (r.status == 200 && ms < limitMs) prompt++;
    } catch (const std::exception&) {
      return prompt;  // timed out or closed: the rest cannot answer either
    }
  }
  return prompt;
}

// Polls GET /healthz on fresh connections until one answers 200 or `timeoutMs`.
bool freshHealthzWithin(int port, int timeoutMs) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeoutMs);
  while (std::chrono::steady_clock::now() < deadline) {
    try {
      Connection c(port);
      c.sendRaw("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
      if (c.readResponse(1000).status == 200) return true;
    } catch (const std::exception&) {
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // between attempts
  }
  return false;
}

// A connection the daemon refused: one 503 too_many_connections, then closed.
void checkRefused(Connection& c) {
  CHECK(c.peerClosed());
  Response r;
  REQUIRE_NOTHROW(r = c.readResponse(1000));
  CHECK(r.status == 503);
  json j = json::parse(r.body, nullptr, false);
  CHECK(j["error"]["code"] == "too_many_connections");
  CHECK(j["error"]["message"].get<std::string>().find("--max-connections") != std::string::npos);
}

bool waitForLog(Daemon& d, const std::string& text, int timeoutMs) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeoutMs);
  while (d.stderrText().find(text) == std::string::npos) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

}  // namespace

TEST_CASE("the daemon raises its open-files soft limit to the hard limit") {
  std::string root = tempDir("nofile");
  Daemon d(kBinary, root + "/data", root, kOperator, {}, OpenFilesLimit{1024, 4096});
  std::string log = d.stderrText();
  CHECK_MESSAGE(log.find("open files: soft limit raised from 1024 to 4096") != std::string::npos,
                log);
  // The default cap leaves 128 descriptors for the logs, LMDB and Kafka.
  CHECK_MESSAGE(log.find("at most 3968 connections") != std::string::npos, log);
  std::string limits = readFile("/proc/" + std::to_string(d.pid()) + "/limits");
  CHECK(limits.find("Max open files            4096                 4096") != std::string::npos);
  CHECK(d.terminate() == 0);
  std::filesystem::remove_all(root);
}

TEST_CASE("past --max-connections new connections get a prompt 503; established ones are served") {
  needOpenFiles(1500);
  std::string root = tempDir("maxconn");
  Daemon d(kBinary, root + "/data", root, kOperator, {"--max-connections", "200"});
  CHECK(d.stderrText().find("at most 200 connections") != std::string::npos);
  Connection probe(d.port());
  REQUIRE(promptHealthz(probe, 1, 2000) == 1);

  auto flood = idleConnections(d.port(), 1000);
  // The probe holds one of the 200 slots: 199 of the flood are admitted, the rest
  // refused at once.
  CHECK(waitClosedByPeer(flood, 801, 5000) == 801);
  checkRefused(*flood.back());
  CHECK(promptHealthz(probe, 15, 500) == 15);
  CHECK(cpuCores(d.pid(), 1000) < 0.2);
  CHECK(closedByPeer(flood) == 801);  // the admitted ones stay open
  CHECK(waitForLog(d, "refused", 2000));

  flood.clear();
  CHECK(freshHealthzWithin(d.port(), 10000));
  CHECK(promptHealthz(probe, 1, 2000) == 1);
  CHECK(d.terminate() == 0);
  std::filesystem::remove_all(root);
}

TEST_CASE("2000 idle connections at a soft open-files limit of 1024 leave /healthz served") {
  // The measured failure: accept() hit EMFILE at the soft limit, the listener stayed
  // readable, the loop spun and fresh clients went unanswered. Raised to the hard
  // limit, the daemon holds them all.
  needOpenFiles(2500);
  std::string root = tempDir("soft");
  Daemon d(kBinary, root + "/data", root, kOperator, {}, OpenFilesLimit{1024, 4096});
  auto flood = idleConnections(d.port(), 2000);
  int served = 0;
  for (int i = 0; i < 15; ++i) {
    Connection fresh(d.port());
    served += promptHealthz(fresh, 1, 500);
  }
  CHECK(served == 15);
  CHECK(closedByPeer(flood) == 0);
  CHECK(cpuCores(d.pid(), 1000) < 0.2);
  flood.clear();
  CHECK(d.terminate() == 0);
  std::filesystem::remove_all(root);
}

TEST_CASE("2000 idle connections at an open-files limit of 1024 neither spin nor starve") {
  // The limit cannot be raised (soft = hard): the default cap keeps accept() from
  // reaching EMFILE.
  needOpenFiles(2500);
  std::string root = tempDir("flood");
  Daemon d(kBinary, root + "/data", root, kOperator, {}, OpenFilesLimit{1024, 1024});
  Connection probe(d.port());
  REQUIRE(promptHealthz(probe, 1, 2000) == 1);

  auto flood = idleConnections(d.port(), 2000);
  // Default cap: 1024 - 128 = 896 connections, the probe included.
  CHECK(waitClosedByPeer(flood, 2000 - 895, 5000) == 2000 - 895);
  CHECK(promptHealthz(probe, 15, 500) == 15);
  CHECK(cpuCores(d.pid(), 1000) < 0.2);
  {
    Connection fresh(d.port());
    CHECK(fresh.waitPeerClosed(2000));  // refused at once, not left waiting
    checkRefused(fresh);
  }
  flood.clear();
  CHECK(freshHealthzWithin(d.port(), 10000));
  CHECK(d.terminate() == 0);
  std::filesystem::remove_all(root);
}

TEST_CASE("accept() failing with EMFILE pauses accepting instead of spinning") {
  // --max-connections above what the limit allows: accept() runs out of descriptors.
  needOpenFiles(2500);
  std::string root = tempDir("emfile");
  Daemon d(kBinary, root + "/data", root, kOperator, {"--max-connections", "5000"},
           OpenFilesLimit{1024, 1024});
  CHECK(d.stderrText().find("above what the open-files limit") != std::string::npos);
  Connection probe(d.port());
  REQUIRE(promptHealthz(probe, 1, 2000) == 1);

  auto flood = idleConnections(d.port(), 2000);
  CHECK(waitForLog(d, "cannot accept connections: Too many open files", 5000));
  CHECK(promptHealthz(probe, 15, 500) == 15);
  CHECK(cpuCores(d.pid(), 1000) < 0.2);
  flood.clear();
  CHECK(freshHealthzWithin(d.port(), 10000));
  CHECK(d.terminate() == 0);
  std::filesystem::remove_all(root);
}

namespace {

// A create request with the given framing header lines, body as is.
std::string rawCreate(const std::string& user, const std::vector<std::string>& framing,
                      const std::string& body) {
  std::string req = "POST /v1/users/" + user +
                    "/tokens HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + kOperator +
                    "\r\nContent-Type: application/json\r\n";
  for (const auto& h : framing) req += h + "\r\n";
  return req + "\r\n" + body;
}

std::string chunked(const std::string& body) {
  char size[32];
  snprintf(size, sizeof size, "%zx", body.size());
  return std::string(size) + "\r\n" + body + "\r\n0\r\n\r\n";
}

const std::string kHealthz = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";

// Sends an ambiguous request with another pipelined behind it: only the first may
// be answered, with 400, and the connection must close.
Response checkRefusedFraming(int port, const std::string& raw) {
  Connection c(port);
  c.sendRaw(raw);
  Response r;
  REQUIRE_NOTHROW(r = c.readResponse(5000));
  CHECK(r.status == 400);
  CHECK_MESSAGE(c.waitPeerClosed(2000), "the connection stayed open");
  CHECK_MESSAGE(c.unread().empty(), "the pipelined request was answered: " << c.unread());
  return r;
}

}  // namespace

TEST_CASE("ambiguous request framing is a 400 that closes the connection") {
  Fixture f;
  const std::string body = json{{"description", "smuggled"}}.dump();
  const std::string len = "Content-Length: " + std::to_string(body.size());
  auto tokensOf = [&](const std::string& user) {
    return f.get("/v1/users/" + user + "/tokens").json()["tokens"].size();
  };

  SUBCASE("two Content-Length values, the create pipelined behind them not served") {
    std::string second = rawCreate("smuggle-b", {len}, body);
    auto r = checkRefusedFraming(f.daemon.port(),
                                 rawCreate("smuggle-a", {len, "Content-Length: 0"}, body) + second);
    checkError(r, 400, "invalid_framing");
    CHECK(r.json()["error"]["message"].get<std::string>().find("Content-Length") !=
          std::string::npos);
    // libh2o frames by the first Content-Length (0) and would serve the create as the
    // next request, where a proxy that used the last one saw it as this one's body.
    std::string smuggled = rawCreate("smuggle-c", {len}, body);
    r = checkRefusedFraming(f.daemon.port(),
                            "GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
                            "Content-Length: " +
                                std::to_string(smuggled.size()) + "\r\n\r\n" + smuggled);
    checkError(r, 400, "invalid_framing");
    CHECK(tokensOf("smuggle-a") == 0);
    CHECK(tokensOf("smuggle-b") == 0);
    CHECK(tokensOf("smuggle-c") == 0);
  }
  SUBCASE("Transfer-Encoding: chunked with Content-Length, either order") {
    for (bool teFirst : {true, false}) {
      CAPTURE(teFirst);
      std::vector<std::string> framing{"Transfer-Encoding: chunked", "Content-Length: 4"};
      if (!teFirst) std::swap(framing[0], framing[1]);
      auto r = checkRefusedFraming(f.daemon.port(),
                                   rawCreate("smuggle-d", framing, chunked(body)) + kHealthz);
      checkError(r, 400, "invalid_framing");
      CHECK(r.json()["error"]["message"].get<std::string>().find("Transfer-Encoding") !=
            std::string::npos);
    }
    CHECK(tokensOf("smuggle-d") == 0);
  }
  SUBCASE("the same Content-Length twice") {
    checkError(
        checkRefusedFraming(f.daemon.port(), rawCreate("smuggle-e", {len, len}, body) + kHealthz),
        400, "invalid_framing");
    CHECK(tokensOf("smuggle-e") == 0);
  }
  SUBCASE("two Transfer-Encoding headers") {
    checkError(checkRefusedFraming(
                   f.daemon.port(),
                   rawCreate("smuggle-f", {"Transfer-Encoding: gzip", "Transfer-Encoding: chunked"},
                             chunked(body)) +
                       kHealthz),
               400, "invalid_framing");
    CHECK(tokensOf("smuggle-f") == 0);
  }
  SUBCASE("a folded line after Content-Length") {
    checkError(
        checkRefusedFraming(f.daemon.port(), rawCreate("smuggle-g", {len, " 0"}, body) + kHealthz),
        400, "invalid_framing");
    CHECK(tokensOf("smuggle-g") == 0);
  }
  SUBCASE("Content-Length values libh2o refuses itself") {
    for (std::string v : {"5, 5", "+5", "-5", "5 ", "0x5", "5;", "five"}) {
      CAPTURE(v);
      checkRefusedFraming(f.daemon.port(),
                          rawCreate("smuggle-h", {"Content-Length: " + v}, "12345") + kHealthz);
    }
    // Whitespace before the colon: the request does not parse.
    checkRefusedFraming(f.daemon.port(),
                        rawCreate("smuggle-h", {"Content-Length : 5"}, "12345") + kHealthz);
    checkRefusedFraming(
        f.daemon.port(),
        rawCreate("smuggle-h", {"Transfer-Encoding : chunked"}, chunked(body)) + kHealthz);
    CHECK(tokensOf("smuggle-h") == 0);
  }
  SUBCASE("Transfer-Encoding values other than chunked, refused by libh2o itself") {
    for (std::string v : {"gzip", "gzip, chunked", "chunked, gzip", "identity", "chunked "}) {
      CAPTURE(v);
      checkRefusedFraming(
          f.daemon.port(),
          rawCreate("smuggle-i", {"Transfer-Encoding: " + v}, chunked(body)) + kHealthz);
    }
    CHECK(tokensOf("smuggle-i") == 0);
  }
  SUBCASE("unambiguous pipelined requests are both served") {
    Connection c(f.daemon.port());
    c.sendRaw(rawCreate("plain", {"Transfer-Encoding: chunked"}, chunked(body)) +
              rawCreate("plain", {len}, body) + kHealthz);
    CHECK(c.readResponse(5000).status == 201);
    CHECK(c.readResponse(5000).status == 201);
    CHECK(c.readResponse(5000).status == 200);
    CHECK(tokensOf("plain") == 2);
  }
  CHECK(f.daemon.call("GET", "/healthz").status == 200);
}

// Retry-safe commands (docs/api.md, "Idempotency-Key"), over real sockets.
TEST_CASE("Idempotency-Key: a repeat returns the original result, never the secret twice") {
  Fixture f;
  auto send = [&](const std::string& path, const std::string& body, const std::string& key) {
    auto h = f.auth();
    h.push_back("Content-Type: application/json");
    if (!key.empty()) h.push_back("Idempotency-Key: " + key);
    return f.daemon.call("POST", path, body, h);
  };
  const std::string create = R"({"description":"Receive leads"})";
  auto first = send("/v1/users/alice/tokens", create, "req-1");
  REQUIRE(first.status == 201);
  const std::string key = first.json()["key"];
  const std::string secret = first.json()["token"];
  CHECK(first.json()["idempotency_key"] == "req-1");

  SUBCASE("create") {
    auto again = send("/v1/users/alice/tokens", create, "req-1");
    CHECK(again.status == 200);
    CHECK(again.json()["key"] == key);
    CHECK(again.json()["replayed"] == true);
    CHECK_FALSE(again.json().contains("token"));
    CHECK(again.body.find(secret) == std::string::npos);
    // One token only, and the first secret still verifies.
    CHECK(f.get("/v1/users/alice/tokens").json()["tokens"].size() == 1);
    CHECK(f.verify(key, secret).status == 200);
    // The same key with another body.
    checkError(send("/v1/users/alice/tokens", R"({"description":"Other"})", "req-1"), 422,
               "idempotency_key_reused");
    // Scoped to the user: bob's req-1 is his own.
    CHECK(send("/v1/users/bob/tokens", create, "req-1").status == 201);
    // Without a key, every create is a new token.
    CHECK(send("/v1/users/alice/tokens", create, "").status == 201);
    CHECK(f.get("/v1/users/alice/tokens").json()["tokens"].size() == 2);
  }
  SUBCASE("rotate, deactivate, activate") {
    const std::string path = "/v1/users/alice/tokens/" + key;
    auto rotated = send(path + "/rotate", "", "rot-1");
    REQUIRE(rotated.status == 200);
    const std::string successor = rotated.json()["key"];
    auto again = send(path + "/rotate", "", "rot-1");
    CHECK(again.status == 200);
    CHECK(again.json()["key"] == successor);
    CHECK(again.json()["replayed"] == true);
    CHECK_FALSE(again.json().contains("token"));
    CHECK(again.json()["previous"]["key"] == key);
    // Without the key, a second rotation is refused: the token was rotated.
    checkError(send(path + "/rotate", "", ""), 409, "already_rotated");
    checkError(send(path + "/rotate", R"({"grace_seconds":60})", "rot-1"), 422,
               "idempotency_key_reused");

    const std::string spath = "/v1/users/alice/tokens/" + successor;
    auto off = send(spath + "/deactivate", R"({"reason":"compromised"})", "off-1");
    REQUIRE(off.status == 200);
    CHECK(off.json()["changed"] == true);
    CHECK(send(spath + "/activate", "", "on-1").status == 200);
    // Repeating the deactivation returns its result and does not deactivate again.
    auto offAgain = send(spath + "/deactivate", R"({"reason":"compromised"})", "off-1");
    CHECK(offAgain.status == 200);
    CHECK(offAgain.json()["replayed"] == true);
    CHECK(f.get(spath).json()["status"] == "active");
    CHECK(f.verify(successor, rotated.json()["token"]).status == 200);
  }
  SUBCASE("invalid keys are a 400") {
    for (std::string bad :
         {std::string(256, 'k'), std::string("has space"), std::string("caf\xc3\xa9")}) {
      CAPTURE(bad);
      checkError(send("/v1/users/alice/tokens", create, bad), 400, "invalid_idempotency_key");
    }
  }
}
