// Trusted writers for the Kafka integration suites (docs/kafka.md, "Trusted
// writers"), set up exactly as an operator does it, with the real tools:
//
//   ledger-audit keys new-root --out DIR/trust/root-key      once per test
//   tokenledgerd --data-dir D --print-writer-key             per data dir ...
//   ledger-audit keys certify --root DIR/trust/root-key      ... before it starts
//                --writer-key LINE --out D/writer.cert
//
// and then `tokenledgerd … --log kafka … --trust-root DIR/trust/root-key.pub` and
// `ledger-audit --log kafka … --root DIR/trust/root-key.pub`. Shared by
// kafka_test.cpp, audit_test.cpp and replicas_test.cpp (TOKENLEDGERD_PATH and
// LEDGER_AUDIT_PATH come from tests/integration/CMakeLists.txt).
#pragma once

#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "events/trust.h"
#include "tests/service/audit_test.h"

namespace tltest {

// The broker of the `kafka` fixture (tests/integration/CMakeLists.txt).
inline std::string env(const char* name) {
  const char* v = std::getenv(name);
  REQUIRE_MESSAGE(v != nullptr, name << " is not set: run through ctest (it starts the broker)");
  return v;
}
inline std::string brokers() {
  return env("KAFKA_BROKERS");
}

class TrustRoot {
 public:
  // Makes a root key in `dir`/trust (created if missing) with ledger-audit.
  explicit TrustRoot(const std::string& dir, std::string daemon = TOKENLEDGERD_PATH,
                     std::string audit = LEDGER_AUDIT_PATH)
      : daemon_(std::move(daemon)), audit_(std::move(audit)) {
    std::filesystem::create_directories(dir + "/trust");
    key_ = dir + "/trust/root-key";
    pub_ = key_ + ".pub";
    auto r = runCmd(audit_ + " keys new-root --out " + key_);
    REQUIRE_MESSAGE(r.status == 0, "ledger-audit keys new-root: " << r.out << r.err);
  }

  const std::string& key() const { return key_; }  // the secret root key
  const std::string& pub() const { return pub_; }  // what replicas and ledger-audit get

  // The public key line of `dataDir`'s writer (its signing key is created if needed).
  std::string writerKeyLine(const std::string& dataDir) const {
    auto r = runCmd(daemon_ + " --data-dir " + dataDir + " --print-writer-key");
    REQUIRE_MESSAGE(r.status == 0, "tokenledgerd --print-writer-key: " << r.out << r.err);
    std::string line = r.out.substr(0, r.out.find('\n'));
    REQUIRE_MESSAGE(line.find(' ') != std::string::npos, "unexpected writer key line: " << r.out);
    return line;
  }

  // Certifies `dataDir`'s writer key into dataDir/writer.cert (once: a restart keeps
  // its certificate) and returns `base` plus the flags a Kafka daemon needs to trust
  // this root.
  std::vector<std::string> daemonArgs(const std::string& dataDir,
                                      std::vector<std::string> base) const {
    certify(dataDir);
    base.push_back("--trust-root");
    base.push_back(pub_);
    return base;
  }

  void certify(const std::string& dataDir) const {
    if (std::filesystem::exists(dataDir + "/writer.cert")) return;
    std::string line = writerKeyLine(dataDir);
    auto r = runCmd(audit_ + " keys certify --root " + key_ + " --writer-key '" + line +
                    "' --out " + dataDir + "/writer.cert");
    REQUIRE_MESSAGE(r.status == 0, "ledger-audit keys certify: " << r.out << r.err);
  }

  // The policy of a replica started with daemonArgs(): for opening its read model.
  tokenledger::TrustPolicy policy() const {
    tokenledger::TrustPolicy p;
    auto err = p.roots.addLines(readFile(pub_), pub_);
    REQUIRE_MESSAGE(!err, *err);
    return p;
  }

  // " --root ROOT.pub", for every ledger-audit command that reads a Kafka topic.
  std::string auditFlags() const { return " --root " + pub_; }

 private:
  std::string daemon_, audit_, key_, pub_;
};

}  // namespace tltest
