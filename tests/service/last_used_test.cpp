// Last used (issue 17) against the real tokenledgerd (embedded log): last_used_at
// and last_used_count in token objects after the flush, failed verifications not
// counted, kept across a restart and a rebuild of the read model, nothing with
// --last-used off, the flag checks, and ledger-audit policy --unused-days.
#include <doctest/doctest.h>

#include <filesystem>
#include <thread>

#include "events/times.h"
#include "tests/service/audit_test.h"
#include "tests/service/service_fixture.h"

using namespace tltest;
using nlohmann::json;

namespace {

constexpr auto kFlush = std::chrono::milliseconds(200);

// The token object once the flush had time to run (a few intervals).
json shownAfterFlush(Fixture& f, const std::string& user, const std::string& key) {
  std::this_thread::sleep_for(kFlush * 4);
  auto r = f.get("/v1/users/" + user + "/tokens/" + key);
  REQUIRE(r.status == 200);
  return r.json();
}

// The minute `t` starts in, as the service formats it.
std::string minuteText(std::chrono::system_clock::time_point t) {
  auto m = std::chrono::floor<std::chrono::minutes>(t);
  return tokenledger::formatTime(tokenledger::Timestamp{m.time_since_epoch()});
}

}  // namespace

TEST_CASE("last_used_at and last_used_count: absent until a successful verify, then the minute") {
  Fixture f({"--last-used-flush-ms", "200"}, "lastused");
  json a = f.create("alice", "Used");
  json b = f.create("alice", "Never used");
  std::string key = a["key"], secret = a["token"];
  CHECK_FALSE(a.contains("last_used_at"));
  CHECK_FALSE(a.contains("last_used_count"));

  // A wrong secret and an unknown key count for nothing.
  CHECK(f.verify(key, "tls_" + std::string(43, 'x')).status == 401);
  json shown = shownAfterFlush(f, "alice", key);
  CHECK_FALSE(shown.contains("last_used_at"));

  auto before = std::chrono::system_clock::now();
  for (int i = 0; i < 3; ++i) REQUIRE(f.verify(key, secret).status == 200);
  CHECK(f.verify(key, "tls_" + std::string(43, 'y')).status == 401);
  auto after = std::chrono::system_clock::now();
  shown = shownAfterFlush(f, "alice", key);
  REQUIRE(shown.contains("last_used_at"));
  std::string at = shown["last_used_at"];
  CHECK((at == minuteText(before) || at == minuteText(after)));
  CHECK(at.substr(17, 6) == "00.000");  // truncated to the minute
  // All three fell in one minute unless the minute turned meanwhile.
  if (minuteText(before) == minuteText(after)) CHECK(shown["last_used_count"] == 3);

  // The list and the command answers carry it too; the unused token does not.
  auto list = f.get("/v1/users/alice/tokens").json()["tokens"];
  REQUIRE(list.size() == 2);
  for (const auto& t : list) CHECK(t.contains("last_used_at") == (t["key"] == key));
  auto deactivated = f.post("/v1/users/alice/tokens/" + key + "/deactivate");
  REQUIRE(deactivated.status == 200);
  CHECK(deactivated.json()["last_used_at"] == at);
  CHECK_FALSE(
      f.get("/v1/users/alice/tokens/" + std::string(b["key"])).json().contains("last_used_at"));
  // Rows carry keys only: no secret in the usage store.
  CHECK(readFile(f.data + "/usage/data.mdb").find(secret) == std::string::npos);
}

TEST_CASE("last use survives a restart (pending uses flushed at SIGTERM) and a rebuild") {
  auto root = tempDir("lastused-restart");
  std::string data = root + "/data";
  std::string key, secret;
  {
    // A flush interval far away: only the flush at shutdown can write it.
    Daemon d(kBinary, data, root, kOperator, {"--last-used-flush-ms", "600000"});
    auto created = d.call("POST", "/v1/users/bob/tokens", R"({"description":"x"})",
                          {"Authorization: Bearer " + kOperator, "Content-Type: application/json"});
    REQUIRE(created.status == 201);
    key = created.json()["key"];
    secret = created.json()["token"];
    for (int i = 0; i < 2; ++i)
      REQUIRE(
          d.call("POST", "/v1/verify", "", {"Authorization: Basic " + base64(key + ":" + secret)})
              .status == 200);
    CHECK(d.terminate() == 0);
  }
  {
    Daemon d(kBinary, data, root, kOperator);
    auto shown =
        d.call("GET", "/v1/users/bob/tokens/" + key, "", {"Authorization: Bearer " + kOperator});
    REQUIRE(shown.status == 200);
    CHECK(shown.json().contains("last_used_at"));
    CHECK(shown.json()["last_used_count"] >= 1);
    CHECK(d.terminate() == 0);
  }
  // The read model is rebuilt from the log, which holds no uses: they live apart.
  auto rebuilt = runCmd(kBinary + " --data-dir " + data + " --rebuild");
  REQUIRE_MESSAGE(rebuilt.status == 0, rebuilt.err);
  {
    Daemon d(kBinary, data, root, kOperator);
    auto shown =
        d.call("GET", "/v1/users/bob/tokens/" + key, "", {"Authorization: Bearer " + kOperator});
    CHECK(shown.json().contains("last_used_at"));
    CHECK(d.terminate() == 0);
  }
  std::filesystem::remove_all(root);
}

TEST_CASE("--last-used off records nothing; bad flag values are refused") {
  Fixture f({"--last-used", "off", "--last-used-flush-ms", "200"}, "lastused-off");
  json a = f.create("carol");
  REQUIRE(f.verify(a["key"], a["token"]).status == 200);
  json shown = shownAfterFlush(f, "carol", a["key"]);
  CHECK_FALSE(shown.contains("last_used_at"));
  CHECK_FALSE(std::filesystem::exists(f.data + "/usage"));

  auto tooFast = runCmd(kBinary + " --last-used-flush-ms 99");
  CHECK(tooFast.status == 2);
  CHECK(contains(tooFast.err, "--last-used-flush-ms wants milliseconds from 100"));
  auto badValue = runCmd(kBinary + " --last-used maybe");
  CHECK(badValue.status == 2);
  CHECK(contains(badValue.err, "--last-used wants on or off"));
}

TEST_CASE("ledger-audit policy --unused-days: never used counts from creation, used from the use") {
  Fixture f({"--last-used-flush-ms", "200"}, "lastused-audit");
  json used = f.create("dave", "Used");
  json idle = f.create("dave", "Idle");
  json gone = f.create("dave", "Deactivated");
  REQUIRE(f.verify(used["key"], used["token"]).status == 200);
  REQUIRE(f.post("/v1/users/dave/tokens/" + std::string(gone["key"]) + "/deactivate").status ==
          200);
  std::this_thread::sleep_for(kFlush * 4);
  std::string audit = std::string(LEDGER_AUDIT_PATH) + " --data-dir " + f.data + " --quiet ";

  // Today: nothing is unused for a day (the idle token is younger than that).
  auto today = runCmd(audit + "policy --unused-days 1");
  CHECK_MESSAGE(today.status == 0, (today.out + today.err));
  CHECK(contains(today.out, "every active token was used within the last 1 days"));

  // 0 days: every active token; the used one with its last use.
  auto zero = runCmd(audit + "policy --unused-days 0 --format json");
  CHECK(zero.status == 1);
  auto rows = lines(zero.out);
  REQUIRE(rows.size() == 2);
  std::map<std::string, json> byKey;
  for (const auto& r : rows) {
    json j = json::parse(r);
    byKey[j["key"]] = j;
  }
  REQUIRE(byKey.count(used["key"]));
  REQUIRE(byKey.count(idle["key"]));
  CHECK(byKey[used["key"]].contains("last_used_at"));
  CHECK(byKey[used["key"]]["last_used_count"] == 1);
  CHECK_FALSE(byKey[idle["key"]].contains("last_used_at"));
  CHECK_FALSE(byKey.count(gone["key"]));

  // Ten days on: both are unused for 9 days, neither for 11.
  auto later = std::chrono::system_clock::now() + std::chrono::days(10);
  std::string now = std::to_string(
      std::chrono::duration_cast<std::chrono::seconds>(later.time_since_epoch()).count());
  auto nine = runCmd(audit + "policy --unused-days 9 --now " + now);
  CHECK(nine.status == 1);
  CHECK(contains(nine.out, used["key"].get<std::string>() + "  user  last used "));
  CHECK(contains(nine.out, idle["key"].get<std::string>() + "  user  never used, created "));
  CHECK(contains(nine.out, "2 active tokens of 1 users are unused for 9 days or more"));
  auto eleven = runCmd(audit + "policy --unused-days 11 --now " + now);
  CHECK(eleven.status == 0);

  auto both = runCmd(audit + "policy --unused-days 1 --max-age 3");
  CHECK(both.status == 2);
  CHECK(contains(both.err, "either --max-age DAYS or --unused-days DAYS"));
}
