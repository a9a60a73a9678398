// scale_model: a read model of N tokens, built through the real apply path, and
// what it costs (issue "Performance at scale").
//
// Writes N `created` events (real envelopes: random token keys and secrets, ten
// tokens per owner, one writer's chain signed in groups like the service's
// SignedAppender) into an embedded log with EventLog::appendBatch, then rebuilds the
// read model from that log with rebuildReadModel(), the code `tokenledgerd --rebuild`
// runs. Reports:
//   - log bytes per event and read-model bytes per token (blocks in use, as du
//     counts them, over every file of log/ and projection/);
//   - the rebuild's time and events/s;
//   - anonymous RSS after the rebuild, and the process's peak RSS.
// With --dir, DIR is then a data directory tokenledgerd can start on (embedded mode),
// and DIR/credentials holds a sample of "key:secret" lines (mode 0600) for verify
// benchmarks with keys drawn from the whole set.
//
//   scale_model --tokens N [--dir DIR] [--sample S] [--group G]
//   scale_model --quick            (20,000 tokens: the CTest smoke run)
#include <sys/stat.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "bench/bench_args.h"
#include "bench/signed_events.h"
#include "events/event.h"
#include "events/event_log.h"
#include "events/secrets.h"
#include "projections/read_model.h"

using namespace tokenledger;
namespace fs = std::filesystem;

namespace {

[[noreturn]] void usage(int code) {
  std::cerr << "usage: scale_model --tokens N [--dir DIR] [--sample S] [--group G]\n"
               "       scale_model --quick   (20,000 tokens)\n"
               "  --tokens N   tokens to create (each one event)\n"
               "  --dir DIR    where to build, kept (must not exist; default: a temp dir, removed\n"
               "               at the end)\n"
               "  --sample S   credentials written to DIR/credentials (default 100000)\n"
               "  --group G    events per signature (default 64; 0: each alone)\n";
  std::exit(code);
}

// Bytes of disk in use under `dir` (st_blocks, like du).
uint64_t diskUse(const fs::path& dir) {
  uint64_t total = 0;
  for (const auto& f : fs::recursive_directory_iterator(dir)) {
    struct stat st {};
    if (f.is_regular_file() && ::stat(f.path().c_str(), &st) == 0)
      total += static_cast<uint64_t>(st.st_blocks) * 512;
  }
  return total;
}

// A field of /proc/self/status in kB ("RssAnon", "VmHWM"), or 0.
uint64_t statusKb(const std::string& field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(field + ":", 0) == 0) return std::stoull(line.substr(field.size() + 1));
  return 0;
}

double secondsSince(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

int main(int argc, char** argv) {
  size_t tokens = 0, sample = 100000, group = 64;
  std::string dir;
  bool removeAtEnd = false;
  tlbench::Args args(argc, argv, usage);
  while (args.more()) {
    std::string_view a = args.next();
    if (a == "--tokens")
      tokens = args.number<size_t>();
    else if (a == "--quick")
      tokens = 20000;
    else if (a == "--dir")
      dir = args.text();
    else if (a == "--sample")
      sample = args.number<size_t>();
    else if (a == "--group")
      group = args.number<size_t>();
    else
      usage(2);
  }
  if (tokens == 0) usage(2);
  initCrypto();
  if (dir.empty()) {
    std::string pattern = (fs::temp_directory_path() / "scale-model-XXXXXX").string();
    if (!mkdtemp(pattern.data())) return 2;
    dir = pattern;
    removeAtEnd = true;
  } else if (fs::exists(dir)) {
    std::cerr << "scale_model: " << dir << " exists; give a new --dir\n";
    return 2;
  }
  fs::create_directories(dir);
  fs::permissions(dir, fs::perms::owner_all, fs::perm_options::replace);
  printf("scale_model: %zu tokens in %s, signed in groups of %zu\n", tokens, dir.c_str(), group);

  // The log: N created events, ten tokens per owner.
  SigningKey key = SigningKey::generate();
  std::ofstream(dir + "/signing-keys.pub") << key.publicKeyLine() << "\n";
  std::ofstream creds(dir + "/credentials");
  fs::permissions(dir + "/credentials", fs::perms::owner_read | fs::perms::owner_write,
                  fs::perm_options::replace);
  const size_t every = std::max<size_t>(1, tokens / std::max<size_t>(sample, 1));
  auto start = std::chrono::steady_clock::now();
  {
    auto log = openEmbeddedLog(dir + "/log", EmbeddedLogOptions{uint64_t{64} << 30});
    tlbench::SignedChain chain(key, group);
    const Timestamp t0{std::chrono::microseconds{1'790'000'000'000'000}};
    for (size_t base = 0; base < tokens; base += chain.chunk()) {
      size_t m = std::min(chain.chunk(), tokens - base);
      std::vector<Event> events(m);
      for (size_t i = 0; i < m; ++i) {
        size_t k = base + i;
        Event& e = events[i];
        e.eventId = randomBytes(16);
        e.tokenKey = generateTokenKey();
        e.owner = "user-" + std::to_string(k / 10);
        e.actor = "operator";
        e.requestId = "scale-" + std::to_string(k);
        e.occurredAt = t0 + std::chrono::microseconds{static_cast<int64_t>(k)};
        std::string secret = generateSecret();
        Created c;
        c.description = "Receive leads from RD Station";
        c.secretHash = hashSecret(secret);
        e.body = c;
        if (k % every == 0) creds << e.tokenKey << ':' << secret << '\n';
      }
      log->appendBatch(chain.seal(events));
    }
  }
  creds.close();
  double written = secondsSince(start);
  uint64_t logBytes = diskUse(dir + "/log");
  printf("log written in %.1f s: %.1f MB, %.0f bytes per event\n", written, logBytes / 1e6,
         static_cast<double>(logBytes) / static_cast<double>(tokens));
  fflush(stdout);

  // The read model, through the projection's apply path.
  start = std::chrono::steady_clock::now();
  ApplyReport report;
  try {
    auto log = openEmbeddedLog(dir + "/log", EmbeddedLogOptions{uint64_t{64} << 30});
    size_t skipped = 0;
    report =
        rebuildReadModel(*log, dir + "/projection", [&](const Position& p, const std::string& why) {
          if (++skipped <= 5) std::cerr << "skipped " << toString(p) << ": " << why << "\n";
        });
  } catch (const std::exception& e) {
    std::cerr << "scale_model: the rebuild failed after " << secondsSince(start) << " s with "
              << diskUse(dir + "/projection") / 1000000 << " MB of read model: " << e.what()
              << "\n";
    return 1;
  }
  double rebuilt = secondsSince(start);
  uint64_t anonKb = statusKb("RssAnon"), peakKb = statusKb("VmHWM");
  uint64_t modelBytes = diskUse(dir + "/projection");
  if (report.applied != tokens) {
    std::cerr << "scale_model: the rebuild applied " << report.applied << " of " << tokens
              << " events\n";
    return 1;
  }
  auto n = static_cast<double>(tokens);
  printf("rebuild: %.2f s, %.0f events/s\n", rebuilt, n / rebuilt);
  printf("read model: %.1f MB, %.0f bytes per token (every database)\n", modelBytes / 1e6,
         static_cast<double>(modelBytes) / n);
  printf("RSS after the rebuild: %.1f MB anonymous; peak %.1f MB\n", anonKb / 1024.0,
         peakKb / 1024.0);
  if (removeAtEnd) {
    fs::remove_all(dir);
    return 0;
  }
  printf(
      "data dir: %s (tokenledgerd --data-dir %s starts on it; %s/credentials: %zu key:secret "
      "lines)\n",
      dir.c_str(), dir.c_str(), dir.c_str(), (tokens + every - 1) / every);
  return 0;
}
