// verifylib_bench: libtokenledger_verify beside the in-process verify and its limit.
//
// Builds a read model of N tokens (embedded log + projector, as verify_bench does),
// closes it, and measures on one thread, alternating for several rounds:
//   library: tokenledger_verify(key, secret) on the projection, opened read-only as a
//            gateway opens it (a fresh LMDB snapshot per call);
//   verify:  verifyCredentials with the daemon's own reader (on a copy of the file:
//            LMDB forbids opening one environment twice in a process);
//   limit:   one raw mdb_get in `verify` (reused transaction) + one BLAKE2b, on a copy,
//            exactly verify_bench's limit.
// Then the library's throughput on 2 threads. See bench/README.md.
#include <lmdb.h>
#include <sodium.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "events/clock.h"
#include "events/event.h"
#include "events/event_log.h"
#include "projections/projector.h"
#include "projections/read_model.h"
#include "projections/read_model_layout.h"
#include "service/verifier.h"
#include "verifylib/tokenledger_verify.h"

namespace tl = tokenledger;
namespace fs = std::filesystem;

namespace {

double threadCpuNs() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e9 + static_cast<double>(ts.tv_nsec);
}

template <class Op>
double cpuNsPerOp(double seconds, Op&& op) {
  const double start = threadCpuNs();
  uint64_t n = 0;
  double cpu;
  do {
    for (int k = 0; k < 256; ++k) op(n++);
    cpu = threadCpuNs() - start;
  } while (cpu < seconds * 1e9);
  return cpu / static_cast<double>(n);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

void check(int rc, const char* what) {
  if (rc != MDB_SUCCESS) throw std::runtime_error(std::string(what) + ": " + mdb_strerror(rc));
}

struct Credential {
  std::string key, secret, joined;
};

int run(size_t tokens, double seconds, int rounds) {
  tl::initCrypto();
  std::string dir =
      (fs::temp_directory_path() / ("verifylib_bench." + std::to_string(getpid()))).string();
  fs::remove_all(dir);
  struct Cleanup {
    std::string dir;
    ~Cleanup() { fs::remove_all(dir); }
  } cleanup{dir};
  const uint64_t mapSize = (1ull << 30) + tokens * 4096ull;
  std::vector<Credential> creds;
  {
    auto log = tl::openEmbeddedLog(dir + "/log", {mapSize});
    auto model = tl::openReadModel(dir + "/projection", {mapSize});
    auto projector = tl::startProjector(*log, *model, [](const std::string&) {});
    tl::SystemClock clock;
    std::optional<tl::Position> last;
    for (size_t i = 0; i < tokens;) {
      std::string owner = "bench-" + std::to_string(i / 1000);
      std::vector<std::string> values;
      for (size_t j = 0; j < 1000 && i < tokens; ++j, ++i) {
        Credential c{tl::generateTokenKey(), tl::generateSecret(), ""};
        c.joined = c.key + ":" + c.secret;
        tl::Event e;
        e.eventId = tl::randomBytes(16);
        e.tokenKey = c.key;
        e.owner = owner;
        e.actor = "operator";
        e.requestId = "verifylib-bench-" + std::to_string(i);
        e.occurredAt = clock.now();
        tl::Created body;
        body.kind = tl::TokenKind::user;
        body.description = "bench";
        body.secretHash = tl::hashSecret(c.secret);
        e.body = body;
        values.push_back(tl::encodeEvent(e));
        creds.push_back(std::move(c));
      }
      last = log->append(owner, values).back();
    }
    if (last && !projector->waitFor(*last, std::chrono::seconds(300)))
      throw std::runtime_error("the projector did not apply the setup events");
    projector->stop();
  }  // closed: the library opens it as a gateway would, with no daemon running
  fs::create_directories(dir + "/limit");
  fs::copy_file(dir + "/projection/data.mdb", dir + "/limit/data.mdb");
  fs::create_directories(dir + "/inprocess");
  fs::copy_file(dir + "/projection/data.mdb", dir + "/inprocess/data.mdb");

  tokenledger_verifier* lib = nullptr;
  if (tokenledger_verify_open(dir.c_str(), &lib) != TOKENLEDGER_VERIFY_OK)
    throw std::runtime_error(tokenledger_verify_last_error());
  auto model = tl::openReadModel(dir + "/inprocess", {mapSize});
  auto reader = model->reader();
  MDB_env* env = nullptr;
  MDB_txn* txn = nullptr;
  MDB_dbi dbi = 0;
  check(mdb_env_create(&env), "mdb_env_create");
  check(mdb_env_set_maxdbs(env, 16), "mdb_env_set_maxdbs");
  check(mdb_env_set_mapsize(env, mapSize), "mdb_env_set_mapsize");
  check(mdb_env_open(env, (dir + "/limit").c_str(), MDB_NOTLS | MDB_RDONLY, 0600), "mdb_env_open");
  check(mdb_txn_begin(env, nullptr, MDB_RDONLY, &txn), "mdb_txn_begin");
  check(mdb_dbi_open(txn, tl::layout::kVerify, 0, &dbi), "mdb_dbi_open");

  const size_t n = creds.size();
  std::atomic<uint64_t> invalid{0};
  uint64_t sink = 0;
  tl::SystemClock clock;
  auto libOp = [&](uint64_t i) {
    const Credential& c = creds[i % n];
    tokenledger_verify_result r;
    if (tokenledger_verify(lib, c.key.data(), c.key.size(), c.secret.data(), c.secret.size(), &r) !=
            0 ||
        !r.valid)
      invalid++;
  };
  auto verifyOp = [&](uint64_t i) {
    if (!tl::verifyCredentials(creds[i % n].joined, *reader, clock.now()).valid()) invalid++;
  };
  auto limitOp = [&](uint64_t i) {
    const Credential& c = creds[i % n];
    MDB_val k{c.key.size(), const_cast<char*>(c.key.data())}, v;
    if (mdb_get(txn, dbi, &k, &v) == MDB_SUCCESS) sink += v.mv_size;
    unsigned char hash[crypto_generichash_BYTES];
    crypto_generichash(hash, sizeof hash, reinterpret_cast<const unsigned char*>(c.secret.data()),
                       c.secret.size(), nullptr, 0);
    sink += hash[0];
  };
  cpuNsPerOp(0.5, libOp);
  cpuNsPerOp(0.5, verifyOp);
  cpuNsPerOp(0.5, limitOp);
  std::vector<double> l, v, f;
  for (int r = 0; r < rounds; ++r) {
    l.push_back(cpuNsPerOp(seconds, libOp));
    v.push_back(cpuNsPerOp(seconds, verifyOp));
    f.push_back(cpuNsPerOp(seconds, limitOp));
    std::printf("round %d/%d: library %.0f ns/op, in-process verify %.0f ns/op, limit %.0f ns/op\n",
                r + 1, rounds, l.back(), v.back(), f.back());
  }
  // Throughput of the library on 2 threads at once (wall clock), one handle.
  std::atomic<uint64_t> done{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  auto start = std::chrono::steady_clock::now();
  for (int t = 0; t < 2; ++t)
    threads.emplace_back([&, t] {
      uint64_t i = static_cast<uint64_t>(t) * 7919, mine = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        for (int k = 0; k < 256; ++k) libOp(i++);
        mine += 256;
      }
      done += mine;
    });
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& t : threads) t.join();
  double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  mdb_txn_abort(txn);
  mdb_env_close(env);
  tokenledger_verify_close(lib);
  if (invalid.load() != 0) {
    std::cerr << "verifylib_bench: " << invalid.load() << " verifications failed\n";
    return 1;
  }
  double ml = median(l), mv = median(v), mf = median(f);
  std::printf(
      "tokens: %zu, %d rounds x %.1f s of thread CPU time; medians:\n"
      "library (tokenledger_verify): %.0f ns/op\n"
      "in-process verify (verifyCredentials): %.0f ns/op\n"
      "limit (lmdb get + blake2b): %.0f ns/op\n"
      "library / limit: %.2fx, library / in-process: %.2fx\n"
      "library on 2 threads, one handle: %.0f verifications/s\n",
      n, rounds, seconds, ml, mv, mf, ml / mf, ml / mv, static_cast<double>(done.load()) / wall);
  if (sink == 42) std::puts("");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  size_t tokens = 10000;
  double seconds = 2;
  int rounds = 5;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--tokens" && i + 1 < argc) {
      tokens = std::stoul(argv[++i]);
    } else if (a == "--seconds" && i + 1 < argc) {
      seconds = std::stod(argv[++i]);
    } else if (a == "--rounds" && i + 1 < argc) {
      rounds = std::stoi(argv[++i]);
    } else if (a == "--quick") {
      tokens = 1000;
      seconds = 0.2;
      rounds = 3;
    } else {
      std::cerr << "usage: verifylib_bench [--tokens N] [--seconds S] [--rounds R] [--quick]\n";
      return 2;
    }
  }
  try {
    return run(tokens, seconds, rounds);
  } catch (const std::exception& e) {
    std::cerr << "verifylib_bench: " << e.what() << "\n";
    return 1;
  }
}
