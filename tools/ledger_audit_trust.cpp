// ledger-audit's trust: the same policy (events/trust.h) as the replicas, so that
// every command reaches the projection's verdict on every event.
#include <filesystem>
#include <fstream>
#include <sstream>

#include "tools/ledger_audit.h"

namespace tokenledger::audit {

std::string readTextFile(const std::string& path, const std::string& what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UsageError("cannot read " + what + " " + path);
  std::stringstream all;
  all << in.rdbuf();
  return all.str();
}

namespace {

void addFiles(KeyRing& ring, const std::vector<std::string>& files, const std::string& what) {
  for (const auto& f : files) {
    KeyRing file;
    if (auto err = file.addLines(readTextFile(f, what), f)) throw UsageError(*err);
    if (file.keys().empty()) throw UsageError("no public keys in " + what + " " + f);
    for (const auto& k : file.keys()) ring.add(k.key);
  }
}

}  // namespace

std::optional<TrustPolicy> trustPolicyOf(const Options& o) {
  std::vector<std::string> roots = o.rootFiles;
  if (o.log == "kafka" && roots.empty() && o.keyFiles.empty())
    throw UsageError(
        "on Kafka, pass --root ROOT.pub (the trust root the replicas are given with "
        "--trust-root) and/or --keys FILE (writer keys the replicas trust with --trust-keys)");
  if (o.log != "kafka" && roots.empty() && std::filesystem::exists(o.dataDir + "/trust-root.pub"))
    roots.push_back(o.dataDir + "/trust-root.pub");
  if (o.log != "kafka" && roots.empty() && o.keyFiles.empty()) return std::nullopt;
  TrustPolicy p;
  addFiles(p.roots, roots, "trust root");
  addFiles(p.writers, o.keyFiles, "keys file");
  // An embedded daemon with a trust policy also trusts its own keys.
  if (o.log != "kafka" && std::filesystem::exists(o.dataDir + "/signing-keys.pub"))
    addFiles(p.writers, {o.dataDir + "/signing-keys.pub"}, "keys file");
  return p;
}

TrustPolicy signingKeysOf(const Options& o) {
  TrustPolicy p;
  addFiles(
      p.writers,
      o.keyFiles.empty() ? std::vector<std::string>{o.dataDir + "/signing-keys.pub"} : o.keyFiles,
      "keys file");
  return p;
}

}  // namespace tokenledger::audit
