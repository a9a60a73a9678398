// What the suites that drive a real tokenledgerd share: a daemon on a fresh data
// directory with a known operator secret, request shorthands, and the check of the
// one error shape.
#pragma once

#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/service/daemon_process.h"

namespace tltest {

// TL_TOKENLEDGERD runs the suite against another build (e.g. an older commit's, to
// see a new test fail before its fix).
inline const std::string kBinary =
    std::getenv("TL_TOKENLEDGERD") ? std::getenv("TL_TOKENLEDGERD") : TOKENLEDGERD_PATH;
inline const std::string kOperator = "test-operator-secret-0123456789abcdef";

struct Fixture {
  explicit Fixture(std::vector<std::string> extraArgs = {}, const std::string& name = "http")
      : root(tempDir(name)),
        data(root + "/data"),
        daemon(kBinary, data, root, kOperator, extraArgs) {}
  ~Fixture() { std::filesystem::remove_all(root); }

  std::string root;
  std::string data;
  Daemon daemon;

  std::vector<std::string> auth() const { return {"Authorization: Bearer " + kOperator}; }

  Response post(const std::string& path, const std::string& body = "") {
    auto h = auth();
    h.push_back("Content-Type: application/json");
    return daemon.call("POST", path, body, h);
  }
  Response get(const std::string& path) { return daemon.call("GET", path, "", auth()); }

  nlohmann::json create(const std::string& user, const std::string& description = "Receive leads") {
    auto r =
        post("/v1/users/" + user + "/tokens", nlohmann::json{{"description", description}}.dump());
    REQUIRE(r.status == 201);
    return r.json();
  }

  Response verify(const std::string& key, const std::string& token) {
    return daemon.call("POST", "/v1/verify", "",
                       {"Authorization: Basic " + base64(key + ":" + token)});
  }
};

// Every error response has exactly {"error":{"code":string,"message":string}}.
inline void checkError(const Response& r, int status, const std::string& code) {
  CHECK(r.status == status);
  nlohmann::json j = nlohmann::json::parse(r.body, nullptr, false);
  REQUIRE_MESSAGE(j.is_object(), r.body);
  REQUIRE(j.size() == 1);
  REQUIRE(j.contains("error"));
  CHECK(j["error"].size() == 2);
  CHECK(j["error"]["code"] == code);
  CHECK(j["error"]["message"].is_string());
  CHECK(!j["error"]["message"].get<std::string>().empty());
  CHECK(r.headers.count("tokenledger-applied-position") == 1);
}

}  // namespace tltest
