// ledger-audit keys: the operator's root key and the certificates it signs for
// writer keys (docs/kafka.md, "Trusted writers"). Run where the root key is kept
// (offline); replicas and ledger-audit are then given only ROOT.pub.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>
#include <string>

#include "events/certificate.h"
#include "events/signing.h"
#include "events/times.h"
#include "tools/ledger_audit_commands.h"
#include "tools/ledger_audit_text.h"

namespace tokenledger::audit {
namespace {

// Writes `text` to a new file `path` with `mode`; never replaces a file (a root key
// overwritten by mistake cannot be recovered). Throws UsageError when it cannot.
void writeNewFile(const std::string& path, const std::string& text, mode_t mode) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0)
    throw UsageError("cannot create " + path + ": " + std::strerror(errno) +
                     (errno == EEXIST ? " (it is never overwritten; choose another --out)" : ""));
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
            ::fsync(fd) == 0;
  ::close(fd);
  if (!ok) {
    ::unlink(path.c_str());
    throw UsageError("cannot write " + path + ": " + std::strerror(errno));
  }
}

}  // namespace

int cmdKeysNewRoot(const std::string& out) {
  SigningKey root = SigningKey::generate();
  writeNewFile(out, root.toFileText(), 0600);
  writeNewFile(out + ".pub", root.publicKeyLine() + "\n", 0644);
  std::cout << "root key " << root.keyId() << " written to " << out
            << " (keep it offline) and its public key to " << out << ".pub\n"
            << "give " << out << ".pub to every replica (--trust-root) and to ledger-audit "
            << "(--root); certify each writer with `ledger-audit keys certify --root " << out
            << " --writer-key LINE --out FILE`\n";
  return 0;
}

int cmdKeysCertify(const std::string& rootFile, const std::string& writerKeyLine,
                   const std::string& out) {
  auto root = parseSigningKeyFile(readTextFile(rootFile, "root key"));
  if (!root)
    throw UsageError(rootFile + " is not a root key (made by `ledger-audit keys new-root`)");
  KeyRing writer;
  if (auto err = writer.addLines(writerKeyLine, "--writer-key"))
    throw UsageError(*err + " (pass the line `tokenledgerd --print-writer-key` prints)");
  if (writer.keys().size() != 1)
    throw UsageError(
        "--writer-key wants exactly one \"KEY_ID BASE64\" line, as "
        "`tokenledgerd --print-writer-key` prints it");
  const PublicKey& key = writer.keys().front();
  auto cert = certifyWriter(
      *root, key.key,
      std::chrono::duration_cast<std::chrono::microseconds>(now().time_since_epoch()).count());
  writeNewFile(out, certificateFileText(cert), 0644);
  std::cout << "writer key " << key.keyId << " certified by root key " << root->keyId() << " in "
            << out << "\n";
  return 0;
}

}  // namespace tokenledger::audit
