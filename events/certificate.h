// Trusted writers: the operator's root key (kept offline) certifies each writer
// key, and replicas and ledger-audit that trust the root trust what those keys
// sign. Adding a replica means certifying its key once, never editing the other
// replicas (docs/kafka.md, "Trusted writers").
//
// What the root signs: the Cap'n Proto canonical encoding of a WriterCertificate
// (schemas/tokenledger.capnp) with rootSignature cleared, prefixed by
// kCertificateContext. Files:
//   root key       "tokenledger-ed25519-seed BASE64" (as signing-key; mode 0600,
//                  kept offline)
//   root.pub       "KEY_ID BASE64" (as signing-keys.pub): the trust root replicas
//                  and ledger-audit are given
//   writer.cert    "tokenledger-writer-certificate BASE64" (the encoded certificate),
//                  in the writer's data directory
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "events/signing.h"

namespace tokenledger {

constexpr std::string_view kCertificateContext = "tokenledger-writer-certificate-v1\n";

// WriterCertificate is in events/event.h (an event may carry one).
inline std::string writerKeyIdOf(const WriterCertificate& cert) {
  return signingKeyIdOf(cert.writerKey);
}

// `root` certifies `writerPublicKey` (32 raw bytes).
WriterCertificate certifyWriter(const SigningKey& root, std::string_view writerPublicKey,
                                int64_t issuedAtUs);
// Whether `cert` is signed by `root` (and names it). Never throws.
bool certificateValid(const WriterCertificate& cert, const PublicKey& root);

// The certificate as one Cap'n Proto message, and back; nullopt on anything else.
std::string encodeCertificate(const WriterCertificate& cert);
std::optional<WriterCertificate> decodeCertificate(std::string_view bytes);

// The writer.cert file's text, and back; nullopt when the text is not one.
std::string certificateFileText(const WriterCertificate& cert);
std::optional<WriterCertificate> parseCertificateFile(std::string_view text);

}  // namespace tokenledger
