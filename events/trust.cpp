#include "events/trust.h"

#include <algorithm>
#include <vector>

namespace tokenledger {
namespace {

std::string keyList(const KeyRing& ring) {
  std::vector<std::string> ids;
  for (const auto& k : ring.keys()) ids.push_back(k.keyId);
  std::sort(ids.begin(), ids.end());
  std::string out;
  for (const auto& id : ids) out += (out.empty() ? "" : ",") + id;
  return out;
}

}  // namespace

std::string TrustPolicy::fingerprint() const {
  return "roots=" + keyList(roots) + ";writers=" + keyList(writers);
}

std::string TrustPolicy::describe() const {
  auto part = [](size_t n, const char* one, const char* many, const KeyRing& ring) {
    return std::to_string(n) + " " + (n == 1 ? one : many) + (n ? " (" + keyList(ring) + ")" : "");
  };
  return part(roots.keys().size(), "root key", "root keys", roots) + ", " +
         part(writers.keys().size(), "writer key trusted everywhere",
              "writer keys trusted everywhere", writers);
}

WriterTrust::WriterTrust(TrustPolicy policy) : policy_(std::move(policy)) {
  for (const auto& k : policy_.writers.keys()) known_.add(k.key);
}

void WriterTrust::admit(Partition p, const PublicKey& writer) {
  known_.add(writer.key);
  certified_[p.value].insert(writer.keyId);
}

std::optional<PublicKey> certifiedKey(const Event& e) {
  const auto* c = std::get_if<WriterCertificate>(&e.body);
  if (!c || c->writerKey.size() != kPublicKeyBytes) return std::nullopt;
  return PublicKey{signingKeyIdOf(c->writerKey), c->writerKey};
}

std::variant<PublicKey, std::string> WriterTrust::admitCertificate(Partition p, const Event& e) {
  auto key = certifiedKey(e);
  if (!key) return std::string("a writer certificate without a 32-byte writer key");
  const auto& cert = std::get<WriterCertificate>(e.body);
  const PublicKey* root = policy_.roots.find(cert.rootKeyId);
  if (!root)
    return "a writer certificate for key " + key->keyId + " by root key " +
           cert.rootKeyId.substr(0, kKeyIdChars) + ", which is not trusted";
  if (!certificateValid(cert, *root))
    return "a writer certificate for key " + key->keyId + " whose root signature is invalid";
  admit(p, *key);
  return *key;
}

std::optional<std::string> WriterTrust::refusal(Partition p, const SignatureCheck& check) const {
  switch (check.status) {
    case SignatureStatus::valid:
      break;
    case SignatureStatus::unsignedEvent:
      return std::string("untrusted: unsigned");
    case SignatureStatus::unknownKey:
      return "untrusted: signed by key " + check.keyId.substr(0, kKeyIdChars) +
             ", which no trusted root certified on partition " + std::to_string(p.value);
    case SignatureStatus::invalid:
      return "untrusted: invalid signature (key " + check.keyId.substr(0, kKeyIdChars) + ")";
    case SignatureStatus::malformed:
      return std::string("untrusted: the signature fields are malformed");
  }
  if (policy_.writers.find(check.keyId)) return std::nullopt;
  auto it = certified_.find(p.value);
  if (it != certified_.end() && it->second.count(check.keyId)) return std::nullopt;
  return "untrusted: signed by key " + check.keyId +
         ", which no trusted root certified on partition " + std::to_string(p.value) +
         " before this event";
}

}  // namespace tokenledger
