// Lists in pages and bulk deactivation (issue 17), against the real daemon: a user
// with 5,000 tokens paged with a cursor that stays valid while tokens change, the
// filters, every bad query, and deactivating all of a user's tokens in batches,
// including a call interrupted by kill -9 and finished by a second one.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "tests/service/service_fixture.h"

using namespace tltest;
using nlohmann::json;

namespace {

struct Credential {
  std::string key, token;
};

// `n` tokens of `user` created by 8 clients at once: (key, secret) in no order.
std::vector<Credential> createMany(Daemon& d, const std::string& user, int n,
                                   const std::string& body = R"({"description":"load"})") {
  std::vector<Credential> out;
  std::mutex mutex;
  std::atomic<int> next{0}, failed{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < 8; ++c)
    clients.emplace_back([&] {
      Connection conn(d.port());
      while (next++ < n) {
        auto r = conn.request("POST", "/v1/users/" + user + "/tokens", body,
                              {"Authorization: Bearer " + kOperator});
        if (r.status != 201) {
          ++failed;
          continue;
        }
        std::lock_guard lock(mutex);
        out.push_back({r.json()["key"], r.json()["token"]});
      }
    });
  for (auto& t : clients) t.join();
  REQUIRE(failed == 0);
  REQUIRE(out.size() == static_cast<size_t>(n));
  return out;
}

// Every page of `path` (which holds a query) from the first, or from `cursor`: its
// tokens, in order.
std::vector<json> allPages(Fixture& f, const std::string& path, int* pages = nullptr,
                           std::string cursor = "") {
  std::vector<json> out;
  int n = 0;
  do {
    auto r = f.get(path + (cursor.empty() ? "" : "&cursor=" + cursor));
    REQUIRE_MESSAGE(r.status == 200, r.body);
    json j = r.json();
    for (auto& t : j["tokens"]) out.push_back(t);
    cursor = j["next_cursor"].is_null() ? "" : j["next_cursor"].get<std::string>();
    REQUIRE(++n < 10000);
  } while (!cursor.empty());
  if (pages) *pages = n;
  return out;
}

std::vector<std::string> keysOf(const std::vector<json>& tokens) {
  std::vector<std::string> out;
  for (const auto& t : tokens) out.push_back(t["key"]);
  return out;
}

}  // namespace

TEST_CASE("a user with 5,000 tokens pages in creation order with a stable cursor") {
  Fixture f({}, "pages");
  auto made = createMany(f.daemon, "big", 5000);
  // A user whose id extends this one's: none of its tokens may show up.
  f.create("big2");
  for (int i = 0; i < 3; ++i)
    REQUIRE(f.post("/v1/users/big/tokens",
                   R"({"description":"hook","kind":"destination","destination_id":"d)" +
                       std::to_string(i) + R"("})")
                .status == 201);

  // The default page is 100 tokens with a cursor to the next.
  auto first = f.get("/v1/users/big/tokens");
  REQUIRE(first.status == 200);
  CHECK(first.json()["tokens"].size() == 100);
  CHECK(first.json()["next_cursor"].is_string());

  int pages = 0;
  auto all = allPages(f, "/v1/users/big/tokens?limit=1000", &pages);
  CHECK(pages == 6);
  REQUIRE(all.size() == 5003);
  auto keys = keysOf(all);
  CHECK(std::set<std::string>(keys.begin(), keys.end()).size() == 5003);
  std::set<std::string> created;
  for (const auto& c : made) created.insert(c.key);
  size_t ours = 0;
  for (const auto& k : keys) ours += created.count(k);
  CHECK(ours == 5000);
  CHECK(std::is_sorted(all.begin(), all.end(), [](const json& a, const json& b) {
    return a["created_at"].get<std::string>() < b["created_at"].get<std::string>();
  }));
  for (const auto& t : all) CHECK(t["owner"] == "big");
  // Smaller pages walk the same list.
  CHECK(keysOf(allPages(f, "/v1/users/big/tokens?limit=777")) == keys);

  // The cursor stays valid while tokens change: one page read, then a token of
  // the next page deactivated and two created; the walk goes on without repeating
  // or skipping anything, and the new tokens come last.
  auto p1 = f.get("/v1/users/big/tokens?limit=500").json();
  std::string cursor = p1["next_cursor"];
  CHECK(cursor == keys[499]);
  REQUIRE(f.post("/v1/users/big/tokens/" + keys[600] + "/deactivate").status == 200);
  std::string late1 = f.create("big")["key"], late2 = f.create("big")["key"];
  auto rest = allPages(f, "/v1/users/big/tokens?limit=500", nullptr, cursor);
  std::vector<std::string> walked = keysOf(p1["tokens"]);
  for (const auto& k : keysOf(rest)) walked.push_back(k);
  std::vector<std::string> expected = keys;
  expected.push_back(late1);
  expected.push_back(late2);
  CHECK(walked == expected);
  CHECK(rest[100]["status"] == "inactive");

  // Filters.
  int destPages = 0;
  auto dest = allPages(f, "/v1/users/big/tokens?kind=destination&limit=2", &destPages);
  CHECK(dest.size() == 3);
  CHECK(destPages == 2);
  for (const auto& t : dest) CHECK(t["kind"] == "destination");
  CHECK(allPages(f, "/v1/users/big/tokens?kind=user&limit=1000").size() == 5002);
  auto inactive = allPages(f, "/v1/users/big/tokens?status=inactive");
  REQUIRE(inactive.size() == 1);
  CHECK(inactive[0]["key"] == keys[600]);
  CHECK(allPages(f, "/v1/users/big/tokens?status=active&kind=destination").size() == 3);
  CHECK(allPages(f, "/v1/users/big/tokens?status=expired").empty());
  CHECK(allPages(f, "/v1/users/nobody/tokens").empty());
  // URL-encoded parameters are decoded.
  CHECK(f.get("/v1/users/big/tokens?kind=d%65stination").json()["tokens"].size() == 3);

  // Bad queries: a clear 400 each.
  for (std::string q : {"limit=0", "limit=1001", "limit=-1", "limit=ten", "limit=5x", "limit=%zz"})
    checkError(f.get("/v1/users/big/tokens?" + q), 400, "invalid_limit");
  std::string bigTwoKey = f.get("/v1/users/big2/tokens").json()["tokens"][0]["key"];
  for (const std::string& q :
       std::vector<std::string>{"cursor=nonsense", "cursor=tlk_" + std::string(40, 'A'),
                                "cursor=" + bigTwoKey, "cursor=%ff"})
    checkError(f.get("/v1/users/big/tokens?" + q), 400, "invalid_cursor");
  for (std::string q : {"kind=admin", "status=revoked", "status=ACTIVE"})
    checkError(f.get("/v1/users/big/tokens?" + q), 400, "invalid_filter");
  CHECK(f.daemon.terminate() == 0);
}

TEST_CASE("deactivate all: dry run, by kind, in batches, read-your-writes, bad input") {
  Fixture f({}, "bulk");
  auto users = createMany(f.daemon, "bulk", 1200);  // three batches
  std::vector<Credential> hooks;
  for (int i = 0; i < 5; ++i) {
    auto r = f.post("/v1/users/bulk/tokens",
                    R"({"description":"hook","kind":"destination","destination_id":"d)" +
                        std::to_string(i) + R"("})");
    REQUIRE(r.status == 201);
    hooks.push_back({r.json()["key"], r.json()["token"]});
  }
  json other = f.create("bulk-other");
  // One already off: not counted.
  REQUIRE(f.post("/v1/users/bulk/tokens/" + users[0].key + "/deactivate").status == 200);

  const std::string path = "/v1/users/bulk/tokens/deactivate";
  checkError(f.post(path), 400, "invalid_json");
  checkError(f.post(path, "{}"), 400, "invalid_field");
  checkError(f.post(path, R"({"reason":"manual"})"), 400, "invalid_field");
  checkError(f.post(path, R"({"reason":"bulk","kind":"robot"})"), 400, "invalid_field");
  checkError(f.post(path, R"({"reason":"bulk","dry_run":"yes"})"), 400, "invalid_field");
  checkError(f.post(path, R"({"reason":"bulk","effective_at":"soon"})"), 400, "invalid_field");
  checkError(f.post(path, R"({"reason":"bulk","all":true})"), 400, "unknown_field");
  checkError(f.daemon.call("POST", path, R"({"reason":"bulk"})"), 401, "unauthorized");

  auto dry = f.post(path, R"({"reason":"compromised","kind":"user","dry_run":true})");
  REQUIRE(dry.status == 200);
  CHECK(dry.json() == json{{"user", "bulk"}, {"dry_run", true}, {"matching", 1199}});
  CHECK(f.verify(users[1].key, users[1].token).status == 200);  // nothing changed

  auto done = f.post(path, R"({"reason":"compromised","kind":"user"})");
  REQUIRE_MESSAGE(done.status == 200, done.body);
  CHECK(done.json()["matching"] == 1199);
  CHECK(done.json()["deactivated"] == 1199);
  CHECK(done.json()["dry_run"] == false);
  CHECK(done.json()["position"].is_string());
  // Answered only once every one of them fails verification.
  for (size_t i = 1; i < users.size(); ++i) {
    auto v = f.verify(users[i].key, users[i].token);
    CHECK_MESSAGE(v.status == 401, users[i].key);
    CHECK(v.json()["reason"] == "inactive");
  }
  auto one = f.get("/v1/users/bulk/tokens/" + users[7].key).json();
  CHECK(one["deactivation_reason"] == "compromised");
  // Touched no token of another kind or user.
  for (const auto& h : hooks) CHECK(f.verify(h.key, h.token).status == 200);
  CHECK(f.verify(other["key"], other["token"]).status == 200);
  // Again: nothing left to do.
  auto again = f.post(path, R"({"reason":"compromised","kind":"user"})");
  CHECK(again.json() ==
        json{{"user", "bulk"}, {"dry_run", false}, {"matching", 0}, {"deactivated", 0}});

  // Scheduled: the tokens stay valid until effective_at, then fail.
  auto later = f.post(path, R"({"reason":"bulk","effective_at":"2100-01-01T00:00:00Z"})");
  REQUIRE(later.status == 200);
  CHECK(later.json()["deactivated"] == 5);
  for (const auto& h : hooks) CHECK(f.verify(h.key, h.token).status == 200);
  auto scheduled = f.get("/v1/users/bulk/tokens/" + hooks[0].key).json();
  CHECK(scheduled["deactivates_at"] == "2100-01-01T00:00:00.000Z");
  CHECK(f.post(path, R"({"reason":"bulk","effective_at":"2100-01-01T00:00:00Z"})")
            .json()["deactivated"] == 0);
  // An earlier time supersedes it; no body field means now.
  CHECK(f.post(path, R"({"reason":"bulk"})").json()["deactivated"] == 5);
  for (const auto& h : hooks) CHECK(f.verify(h.key, h.token).status == 401);
  CHECK(f.daemon.terminate() == 0);
}

TEST_CASE("deactivate all interrupted by kill -9: a second call finishes it") {
  std::string root = tempDir("bulkkill");
  std::string data = root + "/data";
  std::vector<Credential> made;
  json interrupted;
  {
    Daemon d(kBinary, data, root, kOperator);
    made = createMany(d, "victim", 5000);
    std::atomic<bool> answered{false};
    std::thread call([&] {
      try {
        auto r = d.call("POST", "/v1/users/victim/tokens/deactivate", R"({"reason":"compromised"})",
                        {"Authorization: Bearer " + kOperator, "Content-Type: application/json"});
        answered = r.status == 200;
      } catch (const std::exception&) {
        // killed mid-call: no answer
      }
    });
    // Killed once some batches are applied.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < deadline) {
      auto r = d.call("GET", "/v1/users/victim/tokens?status=inactive&limit=1", "",
                      {"Authorization: Bearer " + kOperator});
      if (r.status == 200 && !r.json()["tokens"].empty()) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    d.kill9();
    call.join();
    CHECK_FALSE(answered);
  }
  Daemon d(kBinary, data, root, kOperator);
  auto countOf = [&](const std::string& status) {
    size_t n = 0;
    std::string cursor;
    do {
      auto r = d.call("GET",
                      "/v1/users/victim/tokens?limit=1000&status=" + status +
                          (cursor.empty() ? "" : "&cursor=" + cursor),
                      "", {"Authorization: Bearer " + kOperator});
      REQUIRE(r.status == 200);
      n += r.json()["tokens"].size();
      cursor = r.json()["next_cursor"].is_null() ? "" : r.json()["next_cursor"].get<std::string>();
    } while (!cursor.empty());
    return n;
  };
  size_t left = countOf("active");
  CHECK(left + countOf("inactive") == 5000);
  MESSAGE("active after the kill: ", left);
  CHECK(left < 5000);  // the first call's batches that were applied stay applied
  CHECK(left > 0);     // killed after its first batch of 500, long before its tenth
  auto second = d.call("POST", "/v1/users/victim/tokens/deactivate", R"({"reason":"compromised"})",
                       {"Authorization: Bearer " + kOperator, "Content-Type: application/json"});
  REQUIRE(second.status == 200);
  CHECK(second.json()["deactivated"] == left);
  CHECK(countOf("active") == 0);
  for (size_t i = 0; i < made.size(); i += 7) {
    auto v = d.call("POST", "/v1/verify", "",
                    {"Authorization: Basic " + base64(made[i].key + ":" + made[i].token)});
    CHECK_MESSAGE(v.status == 401, made[i].key);
  }
  CHECK(d.terminate() == 0);
  std::filesystem::remove_all(root);
}
