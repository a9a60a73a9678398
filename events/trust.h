// Trusted writers: which events may change a replica's state. One rule for the
// projection (every replica and every rebuild) and ledger-audit, so they all reach
// the same verdict on every event (docs/kafka.md, "Trusted writers").
//
// An event is trusted on partition p when its signature is valid and its signing
// key is either
//   - a writer key trusted everywhere (TrustPolicy::writers: in embedded mode the
//     data directory's own keys, DATA_DIR/signing-keys.pub; on Kafka, keys given
//     with --trust-keys, e.g. of a log migrated from embedded mode), or
//   - certified by a root key (TrustPolicy::roots) in a writerCertified event that
//     lies earlier in partition p. The root's signature is the authority: the
//     certificate event itself needs no envelope signature, and a copy of it
//     appended by anyone only admits a key the root certified (whose events must
//     still carry that key's signature).
// Deciding per partition, in partition order, keeps the verdict independent of how
// a reader interleaves partitions. A writer therefore appends its certificate to
// every partition before its first event there (service/daemon.cpp does at start).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <variant>

#include "events/certificate.h"
#include "events/event_log.h"
#include "events/signing.h"

namespace tokenledger {

struct TrustPolicy {
  KeyRing roots;    // certify writers through writerCertified events
  KeyRing writers;  // trusted on every partition from the start

  // Names the policy: a read model built under another policy is rebuilt (the
  // events it refused or took may differ).
  std::string fingerprint() const;
  // "2 root keys (…), 1 writer key (…)", for logs.
  std::string describe() const;
};

// The trust a replica has built so far: the policy, and the writer keys certified
// on each partition by the certificates seen there. Copyable (small: keys times
// partitions), so an apply can work on a copy and keep it only once committed.
class WriterTrust {
 public:
  explicit WriterTrust(TrustPolicy policy);

  // A certificate accepted before (the read model stores them).
  void admit(Partition p, const PublicKey& writer);
  // A writerCertified event `e` read at `p`: its key is trusted on `p` from here on
  // when a trusted root certifies it. Returns the key, or why the event was refused.
  std::variant<PublicKey, std::string> admitCertificate(Partition p, const Event& e);
  // Every key a signature may be checked against: the policy's writers and every
  // key certified on any partition. Whether the key is trusted where the event lies
  // is refusal()'s question.
  const KeyRing& knownKeys() const { return known_; }
  // nullopt when an event at `p` whose signature check is `check` is trusted; else
  // why not, for the report ("unsigned", "signed by key K, which is not certified on
  // partition 2", …).
  std::optional<std::string> refusal(Partition p, const SignatureCheck& check) const;

  const TrustPolicy& policy() const { return policy_; }
  // Keys certified per partition, for storage: (partition, key).
  const std::map<int32_t, std::set<std::string>>& certified() const { return certified_; }

 private:
  TrustPolicy policy_;
  KeyRing known_;
  std::map<int32_t, std::set<std::string>> certified_;  // partition -> key ids
};

// The writer key a certificate event names; nullopt unless `e` carries a
// certificate with a 32-byte key.
std::optional<PublicKey> certifiedKey(const Event& e);

}  // namespace tokenledger
