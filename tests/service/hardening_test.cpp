// The holes an adversarial pass found in the real daemon (issue 12), each driven
// over real sockets: waiting verifications that hold no thread, rotation that keeps
// policy, events that break the contract, and the small API rules.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>

#include "events/event.h"
#include "events/event_log.h"
#include "events/secrets.h"
#include "events/signing.h"
#include "tests/service/service_fixture.h"

using namespace tltest;
using namespace tokenledger;
using nlohmann::json;
using Ms = std::chrono::milliseconds;

namespace {

double msSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
      .count();
}

// Reads everything until the peer closes (or 5 s pass).
std::string readToClose(Connection& c) {
  std::string out;
  char buf[4096];
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{c.fd(), POLLIN, 0};
    if (::poll(&p, 1, 200) <= 0) continue;
    ssize_t n = ::recv(c.fd(), buf, sizeof buf, 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

}  // namespace

TEST_CASE("a flood of unauthenticated min_position verifies does not slow down commands") {
  Fixture f;
  json t = f.create("alice");
  std::string path = "/v1/users/alice/tokens/" + t["key"].get<std::string>();

  // 300 clients without any credential, each asking for a position far ahead, again
  // and again (each wait ends with 503 after 2 s). Before, each held a command thread
  // for those 2 s, so commands queued behind them.
  constexpr int kFlood = 300;
  std::atomic<bool> stop{false};
  std::atomic<int> sent{0}, answered{0}, unexpected{0};
  std::vector<std::thread> flood;
  for (int w = 0; w < 4; ++w) {
    flood.emplace_back([&, w] {
      try {
        std::vector<std::unique_ptr<Connection>> conns;
        for (int i = w; i < kFlood; i += 4)
          conns.push_back(std::make_unique<Connection>(f.daemon.port()));
        while (!stop) {
          for (auto& c : conns) {
            c->sendRaw("GET /v1/verify?min_position=0:999999999 HTTP/1.1\r\nHost: x\r\n\r\n");
            sent++;
          }
          for (auto& c : conns) {
            auto r = c->readResponse(10000);
            answered++;
            json j = json::parse(r.body, nullptr, false);
            std::string code =
                j.is_object() && j.contains("error") ? j["error"].value("code", "") : "";
            if (r.status != 503 || (code != "position_not_reached" && code != "too_many_waiters"))
              unexpected++;
          }
        }
      } catch (const std::exception&) {
        unexpected++;
        sent = kFlood;  // let the main thread go on and fail
      }
    });
  }
  while (sent < kFlood) std::this_thread::yield();

  // Commands while the flood waits: each answers at once.
  std::vector<double> took;
  auto start = std::chrono::steady_clock::now();
  std::string failure;
  try {
    while (msSince(start) < 1500) {
      auto t0 = std::chrono::steady_clock::now();
      auto r = f.post(path + (took.size() % 2 == 0 ? "/deactivate" : "/activate"));
      took.push_back(msSince(t0));
      CHECK(r.status == 200);
      CHECK(r.json()["changed"] == true);
    }
  } catch (const std::exception& e) {
    failure = e.what();  // e.g. a command that did not answer within 15 s
  }
  stop = true;
  for (auto& th : flood) th.join();
  REQUIRE_MESSAGE(failure.empty(), failure);
  REQUIRE(took.size() >= 5);
  std::sort(took.begin(), took.end());
  MESSAGE("commands during the flood: " << took.size() << ", median " << took[took.size() / 2]
                                        << " ms, max " << took.back() << " ms");
  CHECK(took[took.size() / 2] < 100);
  CHECK(took.back() < 1000);
  CHECK(answered == sent);
  CHECK(unexpected == 0);
  // The token ended in the state of the last command, and verification still works.
  CHECK(f.verify(t["key"], t["token"]).status == (took.size() % 2 == 0 ? 200 : 401));
}

TEST_CASE("waiting verifications are capped: past the cap, 503 at once") {
  Fixture f({"--max-position-waiters", "20"});
  constexpr int kClients = 50;
  std::vector<std::unique_ptr<Connection>> conns;
  for (int i = 0; i < kClients; ++i) conns.push_back(std::make_unique<Connection>(f.daemon.port()));
  auto start = std::chrono::steady_clock::now();
  for (auto& c : conns)
    c->sendRaw("GET /v1/verify?min_position=0:999999999 HTTP/1.1\r\nHost: x\r\n\r\n");
  int refused = 0, timedOut = 0;
  for (auto& c : conns) {
    auto r = c->readResponse(10000);
    REQUIRE(r.status == 503);
    std::string code = r.json()["error"]["code"];
    if (code == "too_many_waiters") {
      refused++;
    } else {
      CHECK(code == "position_not_reached");
      timedOut++;
    }
  }
  CHECK(refused == kClients - 20);
  CHECK(timedOut == 20);
  CHECK(msSince(start) >= 1900);  // the 20 admitted ones did wait
  // Once they are done, waiting works again, and a reachable position answers at once.
  auto r = f.daemon.call("GET", "/v1/verify?min_position=0:999999999");
  CHECK(r.json()["error"]["code"] == "position_not_reached");
  json t = f.create("alice");
  auto ok = f.daemon.call("GET", "/v1/verify?min_position=" + t["position"].get<std::string>(), "",
                          {"Authorization: Basic " + base64(t["key"].get<std::string>() + ":" +
                                                            t["token"].get<std::string>())});
  CHECK(ok.status == 200);
}

TEST_CASE("rotation keeps policy") {
  Fixture f;
  const std::string tokens = "/v1/users/alice/tokens/";
  SUBCASE("the successor keeps the old expiry unless the request sets one") {
    auto r =
        f.post("/v1/users/alice/tokens",
               json{{"description", "expiring"}, {"expires_at", "2099-01-01T00:00:00Z"}}.dump());
    REQUIRE(r.status == 201);
    auto rotated = f.post(tokens + r.json()["key"].get<std::string>() + "/rotate");
    REQUIRE(rotated.status == 200);
    CHECK(rotated.json()["expires_at"] == "2099-01-01T00:00:00.000Z");
    auto renewed = f.post(tokens + rotated.json()["key"].get<std::string>() + "/rotate",
                          json{{"expires_at", "2100-06-01T00:00:00Z"}}.dump());
    REQUIRE(renewed.status == 200);
    CHECK(renewed.json()["expires_at"] == "2100-06-01T00:00:00.000Z");
    checkError(f.post(tokens + renewed.json()["key"].get<std::string>() + "/rotate",
                      json{{"expires_at", "2001-01-01T00:00:00Z"}}.dump()),
               400, "invalid_expires_at");
    // A token without expiry rotates into one without expiry.
    json plain = f.create("alice");
    auto plainRotated = f.post(tokens + plain["key"].get<std::string>() + "/rotate");
    CHECK_FALSE(plainRotated.json().contains("expires_at"));
  }
  SUBCASE("an expired token cannot be rotated") {
    auto now = std::chrono::system_clock::now().time_since_epoch();
    int64_t soon = std::chrono::duration_cast<std::chrono::seconds>(now).count() + 2;
    auto r = f.post("/v1/users/alice/tokens",
                    json{{"description", "short-lived"}, {"expires_at", soon}}.dump());
    REQUIRE(r.status == 201);
    std::string key = r.json()["key"];
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (f.get(tokens + key).json()["status"] != "expired" &&
           std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(Ms(100));
    REQUIRE(f.get(tokens + key).json()["status"] == "expired");
    checkError(f.post(tokens + key + "/rotate"), 409, "expired");
    CHECK(f.get("/v1/users/alice/tokens").json()["tokens"].size() == 1);  // no successor
  }
  SUBCASE("effective_at 0 is an invalid time like any other") {
    json t = f.create("alice");
    std::string key = t["key"];
    checkError(f.post(tokens + key + "/deactivate", R"({"effective_at":0})"), 400, "invalid_field");
    checkError(f.post(tokens + key + "/deactivate", R"({"effective_at":"1970-01-01T00:00:00Z"})"),
               400, "invalid_field");
    CHECK(f.get(tokens + key).json()["status"] == "active");
    // A past time is fine, and is reported.
    auto r = f.post(tokens + key + "/deactivate",
                    R"({"effective_at":"2020-01-01T00:00:00Z","reason":"compromised"})");
    REQUIRE(r.status == 200);
    CHECK(r.json()["deactivated_at"] == "2020-01-01T00:00:00.000Z");
    CHECK(r.json()["deactivation_reason"] == "compromised");
  }
}

TEST_CASE("small API rules") {
  Fixture f;
  SUBCASE("media types are case-insensitive") {
    auto h = f.auth();
    h.push_back("Content-Type: Application/JSON; Charset=UTF-8");
    auto r = f.daemon.call("POST", "/v1/users/alice/tokens", R"({"description":"d"})", h);
    CHECK(r.status == 201);
    h.back() = "Content-Type: TEXT/HTML";
    checkError(f.daemon.call("POST", "/v1/users/alice/tokens", R"({"description":"d"})", h), 415,
               "unsupported_media_type");
  }
  SUBCASE("HEAD answers like GET without a body") {
    for (std::string path : {"/healthz", "/readyz", "/", "/v1/keys"}) {
      Connection c(f.daemon.port());
      c.sendRaw("HEAD " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
      std::string raw = readToClose(c);
      CAPTURE(path);
      CHECK(raw.starts_with("HTTP/1.1 200"));
      auto end = raw.find("\r\n\r\n");
      REQUIRE(end != std::string::npos);
      CHECK(raw.size() == end + 4);  // no body
      CHECK(f.daemon.call("GET", path).status == 200);
    }
    Connection c(f.daemon.port());
    c.sendRaw(
        "HEAD /v1/users/alice/tokens HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        "Authorization: Bearer " +
        kOperator + "\r\n\r\n");
    CHECK(readToClose(c).starts_with("HTTP/1.1 200"));
    auto r = f.daemon.call("DELETE", "/healthz");
    CHECK(r.headers.at("allow") == "GET, HEAD");
  }
  SUBCASE("the Bearer scheme name is case-insensitive, as Basic is") {
    for (std::string scheme : {"bearer", "BEARER", "bEaReR"}) {
      auto r = f.daemon.call("GET", "/v1/users/alice/tokens", "",
                             {"Authorization: " + scheme + " " + kOperator});
      CHECK(r.status == 200);
    }
    checkError(
        f.daemon.call("GET", "/v1/users/alice/tokens", "", {"Authorization: Bearerx " + kOperator}),
        401, "unauthorized");
    checkError(
        f.daemon.call("GET", "/v1/users/alice/tokens", "", {"Authorization: Basic " + kOperator}),
        401, "unauthorized");
  }
  SUBCASE("a field twice is invalid JSON") {
    checkError(f.post("/v1/users/alice/tokens", R"({"description":"a","description":"b"})"), 400,
               "invalid_json");
    json t = f.create("alice");
    checkError(f.post("/v1/users/alice/tokens/" + t["key"].get<std::string>() + "/deactivate",
                      R"({"reason":"manual","reason":"compromised"})"),
               400, "invalid_json");
    CHECK(f.get("/v1/users/alice/tokens").json()["tokens"].size() == 1);
  }
  SUBCASE("user ids . and .. are refused") {
    for (std::string user : {".", "..", "%2E", "%2e%2E"}) {
      CAPTURE(user);
      checkError(f.post("/v1/users/" + user + "/tokens", R"({"description":"d"})"), 400,
                 "invalid_user");
      checkError(f.get("/v1/users/" + user + "/tokens"), 400, "invalid_user");
    }
    CHECK(f.create("...")["owner"] == "...");  // three dots are just a name
  }
}

TEST_CASE("an event that breaks the contract is skipped and reported, never half-applied") {
  initCrypto();
  std::string root = tempDir("contract");
  std::string data = root + "/data";
  std::string secret = generateSecret();
  std::string key = generateTokenKey(), goodKey = generateTokenKey();
  {
    Daemon d(kBinary, data, root, kOperator);  // creates the data directory and the log
    CHECK(d.terminate() == 0);
  }
  {
    // Another producer writes straight to the log: a 300-byte owner (the read model
    // kept an owner's length in one byte, so verify answered with a wrong, 44-byte
    // owner), then a valid token.
    // Signed with the daemon's own key: a trusted writer that breaks the contract.
    auto signer = parseSigningKeyFile(readFile(data + "/signing-key"));
    REQUIRE(signer);
    auto log = openEmbeddedLog(data + "/log");
    auto created = [&](const std::string& k, const std::string& owner) {
      Event e;
      e.eventId = randomBytes(16);
      e.tokenKey = k;
      e.owner = owner;
      e.actor = "someone";
      e.occurredAt = Timestamp{std::chrono::microseconds{1'800'000'000'000'000}};
      Created c;
      c.description = "from another producer";
      c.secretHash = hashSecret(secret);
      e.body = c;
      signEvent(e, *signer);
      log->append(owner, {encodeEvent(e)});
    };
    created(key, std::string(300, 'o'));
    created(goodKey, "bob");
  }
  Daemon d(kBinary, data, root, kOperator);
  auto ready = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (d.call("GET", "/readyz").status != 200 && std::chrono::steady_clock::now() < ready)
    std::this_thread::sleep_for(Ms(20));
  auto verify = [&](const std::string& k) {
    return d.call("POST", "/v1/verify", "", {"Authorization: Basic " + base64(k + ":" + secret)});
  };
  auto bad = verify(key);
  CHECK(bad.status == 401);
  CHECK(bad.json()["reason"] == "unknown");
  auto good = verify(goodKey);  // the events after it still apply
  CHECK(good.status == 200);
  CHECK(good.json()["owner"] == "bob");
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (d.stderrText().find("skipped event at 0:0") == std::string::npos &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(Ms(20));
  std::string log = d.stderrText();
  CHECK(log.find("skipped event at 0:0") != std::string::npos);
  CHECK(log.find("owner: user id must be") != std::string::npos);
  CHECK(d.terminate() == 0);
  std::filesystem::remove_all(root);
}

namespace {

// Creates tokens from `clients` connections at once until the daemon refuses;
// returns the acknowledged ones (key, secret) and each refusal's code.
struct Filled {
  std::vector<std::pair<std::string, std::string>> tokens;
  std::vector<std::string> refusals;
};

Filled createUntilRefused(Daemon& d, int clients, int atMost) {
  Filled out;
  std::mutex mutex;
  std::atomic<bool> refused{false};
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      try {
        Connection conn(d.port());
        for (int i = 0; i < atMost && !refused; ++i) {
          auto r = conn.request("POST", "/v1/users/user" + std::to_string(c) + "/tokens",
                                json{{"description", "token " + std::to_string(i) + " of client " +
                                                         std::to_string(c)}}
                                    .dump(),
                                {"Authorization: Bearer " + kOperator});
          std::lock_guard lock(mutex);
          if (r.status == 201) {
            out.tokens.emplace_back(r.json()["key"], r.json()["token"]);
          } else {
            json j = json::parse(r.body, nullptr, false);
            out.refusals.push_back(r.status == 503 && j.is_object() && j.contains("error")
                                       ? j["error"].value("code", "?")
                                       : std::to_string(r.status));
            refused = true;
          }
        }
      } catch (const std::exception& e) {
        std::lock_guard lock(mutex);
        out.refusals.push_back(std::string("exception: ") + e.what());
        refused = true;
      }
    });
  }
  for (auto& t : threads) t.join();
  return out;
}

// Then one at a time until ten in a row are refused (in-flight claims no longer
// hold room back): each refusal must say that nothing was recorded.
void createUntilFull(Daemon& d, Filled& filled) {
  for (int inARow = 0, i = 0; inARow < 10 && i < 2000; ++i) {
    auto r = d.call("POST", "/v1/users/late/tokens", R"({"description":"one more"})",
                    {"Authorization: Bearer " + kOperator});
    if (r.status == 201) {
      filled.tokens.emplace_back(r.json()["key"], r.json()["token"]);
      inARow = 0;
      continue;
    }
    ++inARow;
    CHECK(r.status == 503);
    filled.refusals.push_back(r.json()["error"]["code"]);
    CHECK_MESSAGE(r.body.find("nothing was recorded") != std::string::npos, r.body);
  }
}

size_t logEvents(const std::string& logDir) {
  auto log = openEmbeddedLog(logDir);
  auto reader = log->openReader(Offsets::of({0}));
  return static_cast<size_t>(reader->endOffsets().next.at(0).value);
}

}  // namespace

TEST_CASE("a read model at its size limit refuses commands before anything is recorded") {
  // The read model used to hit MDB_MAP_FULL after about 450 tokens: a deactivate was
  // then appended, answered 503 projection_lagging, and the token went on verifying.
  Fixture f({"--map-size-mb", "1"}, "full");
  Filled filled = createUntilRefused(f.daemon, 8, 5000);
  MESSAGE(filled.tokens.size() << " tokens created at a 1 MB limit; refusals: "
                               << filled.refusals.size());
  CHECK(filled.tokens.size() > 50);
  createUntilFull(f.daemon, filled);
  REQUIRE_FALSE(filled.refusals.empty());
  for (const auto& code : filled.refusals) CHECK_MESSAGE(code == "read_model_full", code);
  // Every acknowledged token is in the read model.
  for (const auto& [key, secret] : filled.tokens) REQUIRE(f.verify(key, secret).status == 200);
  // A deactivation now is refused up front: not recorded, so nothing is left unenforced.
  checkError(f.daemon.call("GET", "/readyz"), 503, "read_model_full");
  std::string applied = f.daemon.call("GET", "/healthz").headers.at("tokenledger-applied-position");
  const auto& [key, secret] = filled.tokens.front();
  std::string path = "/v1/users/" + f.verify(key, secret).json()["owner"].get<std::string>() +
                     "/tokens/" + key + "/deactivate";
  auto d = f.post(path);
  checkError(d, 503, "read_model_full");
  CHECK(d.json()["error"]["message"].get<std::string>().find("--map-size-mb") != std::string::npos);
  CHECK(f.daemon.call("GET", "/healthz").headers.at("tokenledger-applied-position") == applied);
  CHECK(f.daemon.call("GET", "/healthz").status == 200);
  CHECK(f.verify(key, secret).status == 200);  // verification answers from what was applied
  CHECK(f.daemon.terminate() == 0);
  // The log holds exactly the acknowledged events: the refusals recorded nothing.
  CHECK(logEvents(f.data + "/log") == filled.tokens.size());
  // With a larger limit the same data takes commands again.
  Daemon bigger(kBinary, f.data, f.root, kOperator, {"--map-size-mb", "64"});
  auto again = bigger.call("POST", path, "", f.auth());
  CHECK(again.status == 200);
  CHECK(bigger.call("GET", "/readyz").status == 200);
}

TEST_CASE("on an 8 MB disk tokens are created until it is full, then refused up front") {
  // The projector used to insist on a 128 MB reservation: no token could ever be
  // created, and each create was recorded anyway, then answered 503 after 10 s.
  std::string root = tempDir("smalldisk");
  std::string disk = root + "/disk";
  std::filesystem::create_directories(disk);
  Daemon d(kBinary, disk + "/data", root, kOperator, {}, std::nullopt, SmallDisk{disk, "8m"});
  auto start = std::chrono::steady_clock::now();
  Filled filled = createUntilRefused(d, 4, 20000);
  MESSAGE(filled.tokens.size() << " tokens on an 8 MB disk in " << msSince(start)
                               << " ms; first refusal: " << filled.refusals.front());
  CHECK(filled.tokens.size() > 1000);
  // Whichever runs out first, the log or the read model's reserve, a refusal comes
  // before anything is recorded.
  createUntilFull(d, filled);
  for (const auto& code : filled.refusals)
    CHECK_MESSAGE((code == "disk_full" || code == "log_unavailable"), code);
  for (const auto& [key, secret] : filled.tokens)
    REQUIRE(d.call("POST", "/v1/verify", "", {"Authorization: Basic " + base64(key + ":" + secret)})
                .status == 200);
  auto ready = d.call("GET", "/readyz");
  CHECK(ready.status == 503);
  CHECK_MESSAGE(ready.body.find("full") != std::string::npos, ready.body);
  // The writer's chain in the log has no gap: a refused append spent no number.
  std::string dataDir = "/proc/" + std::to_string(d.pid()) + "/root" + disk + "/data";
  KeyRing ring;
  REQUIRE_FALSE(ring.addLines(readFile(dataDir + "/signing-keys.pub"), "signing-keys.pub"));
  auto log = openEmbeddedLog(dataDir + "/log");
  auto reader = log->openReader(Offsets::of({0}));
  uint64_t seq = 0;
  for (auto batch = reader->poll(4096, Ms(100)); !batch.empty();
       batch = reader->poll(4096, Ms(100)))
    for (const auto& r : batch) {
      auto c = checkSignature(r.value, ring);
      REQUIRE((c.status == SignatureStatus::valid));
      REQUIRE(c.writerSeq == ++seq);
    }
  CHECK(seq == filled.tokens.size());
  CHECK(d.terminate() == 0);
  std::filesystem::remove_all(root);
}
