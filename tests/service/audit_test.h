// Shared by the ledger-audit suites (tests/service/audit_test.cpp on the embedded
// log, tests/integration/audit_test.cpp on Kafka): running the tool, building a
// history through a real daemon, and signing events like a foreign producer would.
#pragma once

#include <sys/wait.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "events/event.h"
#include "events/signing.h"
#include "tests/service/daemon_process.h"

namespace tltest {

struct Run {
  int status = -1;
  std::string out;  // stdout
  std::string err;  // stderr
  double seconds = 0;
};

// Runs a shell command line, capturing stdout and stderr separately.
inline Run runCmd(const std::string& cmd) {
  static int counter = 0;
  std::string errPath =
      "/tmp/tl-audit-stderr-" + std::to_string(getpid()) + "-" + std::to_string(++counter);
  Run r;
  auto start = std::chrono::steady_clock::now();
  FILE* p = popen((cmd + " 2>" + errPath).c_str(), "r");
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  int rc = pclose(p);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  r.status = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  r.err = readFile(errPath);
  std::remove(errPath.c_str());
  return r;
}

inline std::vector<std::string> lines(const std::string& s) {
  std::vector<std::string> out;
  size_t at = 0;
  while (at < s.size()) {
    auto nl = s.find('\n', at);
    if (nl == std::string::npos) nl = s.size();
    out.push_back(s.substr(at, nl - at));
    at = nl + 1;
  }
  return out;
}

inline bool contains(const std::string& hay, const std::string& needle) {
  return hay.find(needle) != std::string::npos;
}

// The keys and times of a small history built through the HTTP API:
//   alice: k1 (user) rotated to k3 with a one-hour grace period;
//          k2 (destination) deactivated as compromised, effective an hour ago;
//   bob:   k4.
struct Story {
  std::string k1, k2, k3, k4;
  int64_t rotatedAtS = 0;  // about when the rotation happened (Unix seconds)
};

inline Story tellStory(Daemon& d, const std::string& operatorSecret) {
  std::vector<std::string> auth{"Authorization: Bearer " + operatorSecret};
  auto create = [&](const std::string& user, const nlohmann::json& body) {
    auto r = d.call("POST", "/v1/users/" + user + "/tokens", body.dump(), auth);
    if (r.status != 201) throw std::runtime_error("create failed: " + r.body);
    return r.json()["key"].get<std::string>();
  };
  Story s;
  s.k1 = create("alice", {{"description", "Receive leads from RD Station"}});
  s.k2 = create(
      "alice",
      {{"description", "CRM webhook"}, {"kind", "destination"}, {"destination_id", "crm-1"}});
  s.rotatedAtS = std::chrono::duration_cast<std::chrono::seconds>(
                     std::chrono::system_clock::now().time_since_epoch())
                     .count();
  auto rot = d.call("POST", "/v1/users/alice/tokens/" + s.k1 + "/rotate",
                    R"({"grace_seconds":3600})", auth);
  if (rot.status != 200) throw std::runtime_error("rotate failed: " + rot.body);
  s.k3 = rot.json()["key"].get<std::string>();
  auto de = d.call(
      "POST", "/v1/users/alice/tokens/" + s.k2 + "/deactivate",
      nlohmann::json{{"reason", "compromised"}, {"effective_at", s.rotatedAtS - 3600}}.dump(),
      auth);
  if (de.status != 200) throw std::runtime_error("deactivate failed: " + de.body);
  s.k4 = create("bob", {{"description", "bob's integration"}});
  return s;
}

// An event as a producer without the service's key would write it.
inline std::string foreignEvent(const std::string& owner, const std::string& key,
                                uint64_t writerSeq) {
  using namespace tokenledger;
  Event e;
  e.eventId = randomBytes(16);
  e.tokenKey = key;
  e.owner = owner;
  e.actor = "mallory";
  e.requestId = "forged";
  e.occurredAt = Timestamp{std::chrono::microseconds{1'700'000'000'000'000}};
  e.body = Activated{};
  e.writerSeq = writerSeq;
  signEvent(e, SigningKey::generate());
  return encodeEvent(e);
}

}  // namespace tltest
