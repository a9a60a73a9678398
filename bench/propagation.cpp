// propagation_bench: how long a deactivation on replica A takes to show on
// replica B (two tokenledgerd processes on the same Kafka topic). See
// bench/README.md.
//
//   propagation_bench --port-a A --port-b B [--tokens N] [--users U]
//                     [--timeout-ms T] [--poll-interval-us I]
//
// 1. creates N tokens on A (spread over U users, so over the partitions);
// 2. waits until B verifies every one of them (200);
// 3. for each token in turn: POST .../deactivate on A; t0 = when A's response
//    arrived (A answers after applying the event itself); then POST /v1/verify on
//    B in a tight loop on one keep-alive connection; t1 = when B's first 401
//    arrived. Records t1 - t0.
// The operator secret comes from TOKENLEDGER_OPERATOR_SECRET. Prints
//   result tokens=N p50_ms=… p90_ms=… p99_ms=… max_ms=… timeouts=K immediate=M
//          deactivate_p50_ms=… deactivate_p99_ms=… polls_per_token=…
//          from_request_p50_ms=… from_request_p99_ms=… cpu_s=…
// ("immediate": B already answered 401 to the very first verify; "from_request":
// from sending the deactivate to A until B's first 401, i.e. A's command included).
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "bench_args.h"
#include "bench_http.h"

using namespace tlbench;

namespace {

[[noreturn]] void usage(int code) {
  std::cerr << "usage: propagation_bench --port-a A --port-b B [--tokens N] [--users U]\n"
               "                         [--timeout-ms T] [--poll-interval-us I]\n"
               "  operator secret from TOKENLEDGER_OPERATOR_SECRET; loopback only\n";
  std::exit(code);
}

struct Tok {
  std::string user, key, auth, position;
};

}  // namespace

int main(int argc, char** argv) {
  int portA = 0, portB = 0, tokens = 1000, users = 20, timeoutMs = 5000, pollIntervalUs = 0;
  tlbench::Args args(argc, argv, usage);
  while (args.more()) {
    std::string_view a = args.next();
    if (a == "--port-a")
      portA = args.number<int>();
    else if (a == "--port-b")
      portB = args.number<int>();
    else if (a == "--tokens")
      tokens = args.number<int>();
    else if (a == "--users")
      users = args.number<int>();
    else if (a == "--timeout-ms")
      timeoutMs = args.number<int>();
    else if (a == "--poll-interval-us")
      pollIntervalUs = args.number<int>();
    else if (a == "--help" || a == "-h")
      usage(0);
    else
      usage(2);
  }
  const char* secret = std::getenv("TOKENLEDGER_OPERATOR_SECRET");
  if (portA <= 0 || portB <= 0 || tokens < 1 || users < 1 || !secret || !*secret) usage(2);
  const std::vector<std::string> opHeaders{std::string("Authorization: Bearer ") + secret,
                                           "Content-Type: application/json"};
  try {
    Connection a(portA);

    // 1. tokens on A
    std::vector<Tok> toks;
    int64_t t = nowNs();
    for (int i = 0; i < tokens; ++i) {
      Tok k;
      k.user = "prop-" + std::to_string(i % users);
      auto r = a.request("POST", "/v1/users/" + k.user + "/tokens", opHeaders,
                         "{\"description\":\"propagation_bench\"}");
      if (r.status != 201)
        throw std::runtime_error("create on A: " + std::to_string(r.status) + " " + r.body);
      k.key = jsonString(r.body, "key");
      k.auth = "Authorization: Basic " + base64(k.key + ":" + jsonString(r.body, "token"));
      k.position = jsonString(r.body, "position");
      toks.push_back(std::move(k));
    }
    std::fprintf(stderr, "propagation_bench: created %d tokens on A in %.1f s\n", tokens,
                 static_cast<double>(nowNs() - t) / 1e9);

    // B's connection is opened only now: the server closes keep-alive connections
    // that idled for 10 s, as it would have during step 1.
    Connection b(portB);

    // 2. all of them visible on B (the consistency token makes B wait for each)
    for (const auto& k : toks) {
      auto r = b.request("POST", "/v1/verify", {k.auth, "Tokenledger-Min-Position: " + k.position});
      if (r.status != 200)
        throw std::runtime_error("verify on B before: " + std::to_string(r.status) + " " + r.body);
    }

    // 3. deactivate on A, poll B
    std::vector<double> lagMs, deactMs, fromSentMs;
    long timeouts = 0, immediate = 0, polls = 0;
    for (const auto& k : toks) {
      int64_t sent = nowNs();
      auto r =
          a.request("POST", "/v1/users/" + k.user + "/tokens/" + k.key + "/deactivate", opHeaders);
      int64_t t0 = nowNs();
      if (r.status != 200 || r.body.find("\"changed\":true") == std::string::npos)
        throw std::runtime_error("deactivate on A: " + std::to_string(r.status) + " " + r.body);
      deactMs.push_back(static_cast<double>(t0 - sent) / 1e6);
      const std::string verify = buildRequest("POST", "/v1/verify", {k.auth}, "");
      bool first = true;
      while (true) {
        b.send(verify);
        auto v = b.receive();
        polls++;
        int64_t t1 = nowNs();
        if (v.status == 401) {
          if (v.body.find("inactive") == std::string::npos)
            throw std::runtime_error("verify on B: unexpected 401 " + v.body);
          lagMs.push_back(static_cast<double>(t1 - t0) / 1e6);
          fromSentMs.push_back(static_cast<double>(t1 - sent) / 1e6);
          if (first) immediate++;
          break;
        }
        if (v.status != 200)
          throw std::runtime_error("verify on B: " + std::to_string(v.status) + " " + v.body);
        if (t1 - t0 > static_cast<int64_t>(timeoutMs) * 1000000) {
          timeouts++;
          break;
        }
        first = false;
        if (pollIntervalUs > 0)
          std::this_thread::sleep_for(std::chrono::microseconds(pollIntervalUs));
      }
    }
    std::vector<double> l = lagMs, d = deactMs;
    // percentile() sorts; take every figure before printing (argument order is unspecified).
    double p50 = percentile(l, 50), p90 = percentile(l, 90), p99 = percentile(l, 99);
    double mx = l.empty() ? 0.0 : l.back();
    double d50 = percentile(d, 50), d99 = percentile(d, 99);
    std::vector<double> f = fromSentMs;
    double f50 = percentile(f, 50), f99 = percentile(f, 99);
    std::printf(
        "result tokens=%zu p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f max_ms=%.2f timeouts=%ld "
        "immediate=%ld deactivate_p50_ms=%.2f deactivate_p99_ms=%.2f polls_per_token=%.1f "
        "from_request_p50_ms=%.2f from_request_p99_ms=%.2f cpu_s=%.2f\n",
        toks.size(), p50, p90, p99, mx, timeouts, immediate, d50, d99,
        static_cast<double>(polls) / static_cast<double>(toks.size()), f50, f99, selfCpuSeconds());
    return timeouts ? 1 : 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "propagation_bench: %s\n", e.what());
    return 1;
  }
}
