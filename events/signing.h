// Log signing: every event carries an Ed25519 signature by the service that wrote
// it, the writer's key id, a per-writer sequence number and the digest of that
// writer's previous event. Together they make the log tamper-evident: see
// docs/audit.md for exactly what a verifier can and cannot detect.
//
// What is signed: the Cap'n Proto canonical encoding (capnp::canonicalize) of the
// envelope with its `signature` field cleared, prefixed by the context string
// "tokenledger-event-v1\n". Canonicalisation works on the wire layout, so fields a
// newer schema added are covered and verified by older readers too. The digest of
// an event is BLAKE2b-256 over the same bytes (prefix included).
//
// Key id: the first 8 bytes of BLAKE2b-256(public key), lower-case hex.
// Files: DATA_DIR/signing-key holds the private seed (mode 0600, format
// "tokenledger-ed25519-seed <base64 of 32 bytes>"); DATA_DIR/signing-keys.pub and
// `ledger-audit --keys` hold "key_id base64(public key)" lines.
//
// Thread safety: SigningKey and KeyRing are immutable after construction and safe
// to share. A writer's sequence: writer_state.h; the appender that signs and
// appends as one writer: signed_appender.h.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "events/event.h"

namespace tokenledger {

constexpr size_t kPublicKeyBytes = 32;
constexpr size_t kSignatureBytes = 64;
constexpr size_t kSeedBytes = 32;
constexpr size_t kKeyIdChars = 16;
constexpr std::string_view kSigningContext = "tokenledger-event-v1\n";

using Digest = std::array<uint8_t, 32>;

std::string base64Encode(std::string_view bytes);
// Standard alphabet with padding; nullopt on anything else.
std::optional<std::string> base64Decode(std::string_view text);

std::string signingKeyIdOf(std::string_view publicKey);

// An Ed25519 key pair. The secret part is wiped on destruction and never printed.
class SigningKey {
 public:
  static SigningKey generate();
  // nullopt unless `seed` is 32 bytes.
  static std::optional<SigningKey> fromSeed(std::string_view seed);
  ~SigningKey();
  SigningKey(SigningKey&& other) noexcept;
  SigningKey& operator=(SigningKey&& other) noexcept;
  SigningKey(const SigningKey&) = delete;
  SigningKey& operator=(const SigningKey&) = delete;

  const std::string& keyId() const { return keyId_; }
  const std::string& publicKey() const { return publicKey_; }  // 32 raw bytes
  std::string sign(std::string_view message) const;            // 64 bytes, detached
  // The contents of DATA_DIR/signing-key (holds the secret seed).
  std::string toFileText() const;
  // "key_id base64(public key)", the line for signing-keys.pub.
  std::string publicKeyLine() const;

 private:
  SigningKey() = default;
  void derive();
  std::array<unsigned char, 64> secret_{};
  std::string publicKey_;
  std::string keyId_;
};

// Whether `signature` (64 bytes) by `publicKey` (32 raw bytes) covers `message`.
// Never throws.
bool signatureValid(std::string_view publicKey, std::string_view message,
                    std::string_view signature);

// Parses the contents of a signing-key file; nullopt when it is not one.
std::optional<SigningKey> parseSigningKeyFile(std::string_view text);

struct PublicKey {
  std::string keyId;
  std::string key;  // 32 raw bytes
};

// The public keys a verifier trusts.
class KeyRing {
 public:
  // Adds "key_id base64" lines (blank lines and '#' comments ignored). Returns an
  // error naming `source` and the line when one is malformed or its key id does not
  // match its key; nothing is added then.
  std::optional<std::string> addLines(std::string_view text, std::string_view source);
  void add(const std::string& publicKey);
  const PublicKey* find(std::string_view keyId) const;
  const std::vector<PublicKey>& keys() const { return keys_; }

 private:
  std::vector<PublicKey> keys_;
};

// The bytes a signature covers (context prefix + canonical envelope without its
// signature). nullopt when `envelope` is not a readable Cap'n Proto message.
std::optional<std::string> signedBytes(std::string_view envelope);
Digest digestOf(std::string_view signedBytes);

// Sets event.signingKeyId and event.signature (writerSeq and prevDigest must be set
// already: they are signed). Returns the event's digest.
Digest signEvent(Event& event, const SigningKey& key);

enum class SignatureStatus { valid, unsignedEvent, unknownKey, invalid, malformed };
std::string_view toString(SignatureStatus status);

struct SignatureCheck {
  SignatureStatus status = SignatureStatus::malformed;
  std::string keyId;
  uint64_t writerSeq = 0;
  std::string prevDigest;
  Digest digest{};  // of the signed bytes; set unless malformed
};

// Checks one raw envelope against `keys`. Never throws.
SignatureCheck checkSignature(std::string_view envelope, const KeyRing& keys);

// How the projection checks raw envelopes (one per thread: not thread-safe); the
// place for what may be amortised across events (a cache, group signatures).
class SignatureVerifier {
 public:
  SignatureCheck check(std::string_view envelope, const KeyRing& keys) {
    return checkSignature(envelope, keys);
  }
};

}  // namespace tokenledger
