#include "events/certificate.h"

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/exception.h>

#include "events/capnp_util.h"
#include "schemas/tokenledger.capnp.h"

namespace tokenledger {
namespace {

constexpr std::string_view kFileTag = "tokenledger-writer-certificate ";

void fill(schema::WriterCertificate::Builder b, const WriterCertificate& c, bool withSignature) {
  b.setWriterKey(bytesOf(c.writerKey));
  b.setRootKeyId(textOf(c.rootKeyId));
  b.setIssuedAtUs(c.issuedAtUs);
  if (withSignature) b.setRootSignature(bytesOf(c.rootSignature));
}

// What the root signs: the context, then the canonical certificate without its
// signature (canonical: one encoding for one value, whoever encodes it).
std::string signedBytes(const WriterCertificate& c) {
  capnp::MallocMessageBuilder message;
  fill(message.initRoot<schema::WriterCertificate>(), c, false);
  kj::Array<capnp::word> canonical =
      capnp::canonicalize(message.getRoot<schema::WriterCertificate>().asReader());
  auto bytes = canonical.asBytes();
  std::string out(kCertificateContext);
  out.append(reinterpret_cast<const char*>(bytes.begin()), bytes.size());
  return out;
}

}  // namespace

WriterCertificate certifyWriter(const SigningKey& root, std::string_view writerPublicKey,
                                int64_t issuedAtUs) {
  WriterCertificate c{std::string(writerPublicKey), root.keyId(), issuedAtUs, ""};
  c.rootSignature = root.sign(signedBytes(c));
  return c;
}

bool certificateValid(const WriterCertificate& cert, const PublicKey& root) {
  return cert.writerKey.size() == kPublicKeyBytes && cert.rootKeyId == root.keyId &&
         signatureValid(root.key, signedBytes(cert), cert.rootSignature);
}

std::string encodeCertificate(const WriterCertificate& cert) {
  capnp::MallocMessageBuilder message;
  fill(message.initRoot<schema::WriterCertificate>(), cert, true);
  return toBytes(message);
}

std::optional<WriterCertificate> decodeCertificate(std::string_view bytes) {
  if (bytes.empty() || bytes.size() % 8 != 0) return std::nullopt;
  try {
    std::vector<uint64_t> copy;
    capnp::FlatArrayMessageReader reader(wordsOf(bytes, copy));
    auto r = reader.getRoot<schema::WriterCertificate>();
    return WriterCertificate{std::string(viewOf(r.getWriterKey())),
                             std::string(viewOf(r.getRootKeyId())), r.getIssuedAtUs(),
                             std::string(viewOf(r.getRootSignature()))};
  } catch (const kj::Exception&) {
    return std::nullopt;
  }
}

std::string certificateFileText(const WriterCertificate& cert) {
  return std::string(kFileTag) + base64Encode(encodeCertificate(cert)) + "\n";
}

std::optional<WriterCertificate> parseCertificateFile(std::string_view text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' '))
    text.remove_suffix(1);
  if (!text.starts_with(kFileTag)) return std::nullopt;
  auto bytes = base64Decode(text.substr(kFileTag.size()));
  if (!bytes) return std::nullopt;
  return decodeCertificate(*bytes);
}

}  // namespace tokenledger
