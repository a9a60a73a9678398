// create_load: a closed-loop load generator for token creation. N keep-alive
// connections to 127.0.0.1:PORT, each with one POST /v1/users/{user}/tokens in
// flight at a time (N concurrent clients), driven by one epoll thread. Runs for
// --duration seconds or until --count creations were counted, whichever comes
// first, after a --warmup period that is not counted. See bench/README.md.
//
//   create_load --port P [--connections N] [--duration S] [--count N] [--warmup S]
//               [--users U] [--description TEXT]
//
// The operator secret comes from TOKENLEDGER_OPERATOR_SECRET. Prints one
// machine-readable result line:
//   result connections=N creates=C seconds=T rate=R p50_ms=… p90_ms=… p99_ms=… max_ms=… errors=E
//   cpu_s=…
// (cpu_s: the load generator's own user+system CPU seconds, connecting included)
// Exit status 1 when any request failed (non-201 or a broken connection).
#include <sys/epoll.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "bench_args.h"
#include "bench_http.h"

using namespace tlbench;

namespace {

struct Options {
  int port = 0;
  int connections = 1;
  double duration = 10;
  double warmup = 1;
  long count = 0;  // 0 = no limit
  int users = 1000;
  std::string description = "create_load";
};

[[noreturn]] void usage(int code) {
  std::cerr << "usage: create_load --port P [--connections N] [--duration S] [--count N]\n"
               "                   [--warmup S] [--users U] [--description TEXT]\n"
               "  operator secret from TOKENLEDGER_OPERATOR_SECRET; loopback only\n";
  std::exit(code);
}

struct Conn {
  int fd = -1;
  std::string in;
  int64_t sentNs = 0;
  long sent = 0;
};

}  // namespace

int main(int argc, char** argv) {
  Options o;
  tlbench::Args args(argc, argv, usage);
  while (args.more()) {
    std::string_view a = args.next();
    if (a == "--port")
      o.port = args.number<int>();
    else if (a == "--connections")
      o.connections = args.number<int>();
    else if (a == "--duration")
      o.duration = args.number<double>();
    else if (a == "--warmup")
      o.warmup = args.number<double>();
    else if (a == "--count")
      o.count = args.number<long>();
    else if (a == "--users")
      o.users = args.number<int>();
    else if (a == "--description")
      o.description = args.text();
    else if (a == "--help" || a == "-h")
      usage(0);
    else
      usage(2);
  }
  const char* secret = std::getenv("TOKENLEDGER_OPERATOR_SECRET");
  if (o.port <= 0 || o.connections < 1 || o.users < 1 || !secret || !*secret) usage(2);

  const std::vector<std::string> headers{std::string("Authorization: Bearer ") + secret,
                                         "Content-Type: application/json"};
  const std::string body = "{\"description\":\"" + o.description + "\"}";
  // Users spread the load over partitions (the owner is the partition key).
  std::vector<std::string> requests;
  for (int u = 0; u < o.users; ++u)
    requests.push_back(
        buildRequest("POST", "/v1/users/bench-" + std::to_string(u) + "/tokens", headers, body));

  try {
    int ep = epoll_create1(EPOLL_CLOEXEC);
    std::vector<Conn> conns(static_cast<size_t>(o.connections));
    long nextUser = 0;
    auto sendNext = [&](Conn& c) {
      const std::string& r = requests[static_cast<size_t>(nextUser++ % o.users)];
      c.sentNs = nowNs();
      ssize_t n = ::send(c.fd, r.data(), r.size(), MSG_NOSIGNAL);
      if (n != static_cast<ssize_t>(r.size()))  // a few hundred bytes into an idle socket
        throw std::runtime_error("short send on a fresh request");
      c.sent++;
    };
    for (size_t i = 0; i < conns.size(); ++i) {
      conns[i].fd = connectLoopback(o.port, true);
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.u64 = i;
      epoll_ctl(ep, EPOLL_CTL_ADD, conns[i].fd, &ev);
    }

    const int64_t start = nowNs();
    const int64_t measureFrom = start + static_cast<int64_t>(o.warmup * 1e9);
    const int64_t stopAt = measureFrom + static_cast<int64_t>(o.duration * 1e9);
    std::vector<uint32_t> latUs;
    latUs.reserve(1 << 20);
    long errors = 0, inFlight = 0, counted = 0;
    std::string firstError;
    int64_t lastDone = measureFrom;
    bool stopping = false;
    for (auto& c : conns) {
      sendNext(c);
      inFlight++;
    }
    std::vector<epoll_event> events(conns.size());
    char buf[65536];
    while (inFlight > 0) {
      int n = epoll_wait(ep, events.data(), static_cast<int>(events.size()), 1000);
      if (n < 0 && errno == EINTR) continue;
      int64_t now = nowNs();
      if (now >= stopAt || (o.count > 0 && counted >= o.count)) stopping = true;
      for (int k = 0; k < n; ++k) {
        Conn& c = conns[events[k].data.u64];
        ssize_t r = ::recv(c.fd, buf, sizeof buf, 0);
        if (r <= 0) {
          if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
          errors++;
          if (firstError.empty()) firstError = "connection closed by the server";
          epoll_ctl(ep, EPOLL_CTL_DEL, c.fd, nullptr);
          inFlight--;
          continue;
        }
        c.in.append(buf, static_cast<size_t>(r));
        HttpResponse resp;
        if (!takeResponse(c.in, resp)) continue;
        int64_t done = nowNs();
        inFlight--;
        if (resp.status != 201) {
          errors++;
          if (firstError.empty()) firstError = std::to_string(resp.status) + " " + resp.body;
        } else if (c.sentNs >= measureFrom && done <= stopAt) {
          latUs.push_back(static_cast<uint32_t>((done - c.sentNs) / 1000));
          counted++;
          lastDone = done;
        }
        if (!stopping && !(o.count > 0 && counted >= o.count)) {
          sendNext(c);
          inFlight++;
        }
      }
    }
    for (auto& c : conns) ::close(c.fd);
    ::close(ep);

    // Rate over the measured window: from its start to the last counted response
    // (the whole window when it ran to the end).
    double seconds = static_cast<double>(lastDone - measureFrom) / 1e9;
    if (seconds <= 0) seconds = 1e-9;
    auto ms = [](uint32_t us) { return us / 1000.0; };
    std::vector<uint32_t> s = latUs;
    double p50 = ms(percentile(s, 50)), p90 = ms(percentile(s, 90)), p99 = ms(percentile(s, 99));
    double mx = s.empty() ? 0 : ms(s.back());
    std::printf(
        "result connections=%d creates=%ld seconds=%.2f rate=%.0f p50_ms=%.2f p90_ms=%.2f "
        "p99_ms=%.2f max_ms=%.2f errors=%ld cpu_s=%.2f\n",
        o.connections, counted, seconds, static_cast<double>(counted) / seconds, p50, p90, p99, mx,
        errors, selfCpuSeconds());
    if (!firstError.empty())
      std::fprintf(stderr, "create_load: first error: %s\n", firstError.c_str());
    return errors ? 1 : 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "create_load: %s\n", e.what());
    return 1;
  }
}
