// Log signing: every event carries the writer's key id, a per-writer sequence
// number and the digest of that writer's previous event, and is signed with
// Ed25519 by the service that wrote it: alone (v1, `signature`), or as one of a
// group (`groupSignature`, one signature per signing pass). Together they make the
// log tamper-evident: see docs/audit.md for exactly what a verifier can and cannot
// detect.
//
// An event's digest: BLAKE2b-256 over "tokenledger-event-v1\n" followed by the Cap'n
// Proto canonical encoding (capnp::canonicalize) of the envelope with `signature`,
// `groupSignature`, `groupProof`, `groupLeaf` and `groupSize` cleared (signedBytes).
// Canonicalisation works on the wire layout, so fields a newer schema added are
// covered and verified by older readers too. prevDigest chains these digests.
//
// v1 (signEvent): the Ed25519 signature covers the digest's input bytes (the
// signedBytes). Group (signGroup): the digests of a group's events, in order, are the
// leaves of an RFC 9162 Merkle tree (events/merkle.h); the signature covers
// "tokenledger-group-v1\n" || group size (4 bytes, big-endian) || root, and each
// event carries its audit path, leaf index and the group's size, so it verifies on
// its own. Events written before group signing have no group fields: their digest is
// the same bytes as before.
//
// Key id: the first 8 bytes of BLAKE2b-256(public key), lower-case hex.
// Files: DATA_DIR/signing-key holds the private seed (mode 0600, format
// "tokenledger-ed25519-seed <base64 of 32 bytes>"); DATA_DIR/signing-keys.pub and
// `ledger-audit --keys` hold "key_id base64(public key)" lines.
//
// Thread safety: SigningKey and KeyRing are immutable after construction and safe
// to share; a SignatureVerifier is one thread's. A writer's sequence:
// writer_state.h; the appender that signs and appends as one writer:
// signed_appender.h.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
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
// What a group signature covers starts with this (then the size and the root).
constexpr std::string_view kGroupSigningContext = "tokenledger-group-v1\n";

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

// The bytes an event's digest covers, which are also what a v1 signature covers:
// the context prefix and the canonical envelope without `signature` and the group
// fields. nullopt when `envelope` is not a readable Cap'n Proto message.
std::optional<std::string> signedBytes(std::string_view envelope);
Digest digestOf(std::string_view signedBytes);
// The digest of `event` as encodeEvent writes it: digestOf(*signedBytes(...)). Its
// signature and group fields do not count; its signingKeyId, writerSeq and
// prevDigest do.
Digest eventDigest(const Event& event);

// What a group's signature covers: kGroupSigningContext, `groupSize` as 4 bytes
// big-endian, and the Merkle root of the group's digests.
std::string groupSignedBytes(uint32_t groupSize, const Digest& root);

// v1: sets event.signingKeyId and event.signature (writerSeq and prevDigest must be
// set already: they are signed). Returns the event's digest.
Digest signEvent(Event& event, const SigningKey& key);

// Signs `events` as one group, as the SignedAppender signs each pass. Each must
// carry key's id in signingKeyId and its writerSeq and prevDigest already (they are
// in its digest), and digests[i] must be eventDigest(*events[i]). Sets each one's
// groupSignature, groupProof, groupLeaf and groupSize, and clears its signature.
// One Ed25519 signature for all; a group of one has an empty proof. Throws
// std::invalid_argument for no events, a digest count that differs, or a group
// larger than 2^32 - 1.
void signGroup(std::span<Event* const> events, std::span<const Digest> digests,
               const SigningKey& key);

enum class SignatureStatus { valid, unsignedEvent, unknownKey, invalid, malformed };
std::string_view toString(SignatureStatus status);

struct SignatureCheck {
  SignatureStatus status = SignatureStatus::malformed;
  std::string keyId;
  uint64_t writerSeq = 0;
  std::string prevDigest;
  Digest digest{};  // the event's digest (see above); set unless malformed
};

// Checks raw envelopes, signed alone (v1) or as part of a group. A group's root
// signature is verified once and remembered (a small bounded cache of verified
// (key id, group size, root) entries), so a group of N events costs one Ed25519
// verification plus N digests and N short Merkle paths. Never throws.
// Not thread-safe: one per thread.
//
// Statuses: malformed (not a readable envelope), unsignedEvent (neither signature
// nor groupSignature), unknownKey (its key id is not in `keys`), invalid (the
// signature does not cover the event: any changed byte of what the digest covers,
// of its proof, leaf index, group size or group signature; both kinds of signature
// at once; group fields beside a v1 signature), valid. A remembered root is only
// ever matched by the root recomputed from the event's own bytes and path, and only
// with the same public key, size and signature bytes.
class SignatureVerifier {
 public:
  SignatureCheck check(std::string_view envelope, const KeyRing& keys);
  // Ed25519 verifications made so far (a group's root is verified once while it is
  // remembered).
  uint64_t signaturesVerified() const { return signaturesVerified_; }

 private:
  struct Verified {
    std::string publicKey;  // 32 raw bytes
    uint32_t groupSize = 0;
    Digest root{};
    std::string signature;
  };
  // Group roots verified, in a table of sets of kWays, the set chosen by the root's
  // first bytes (a digest: uniform). Thousands, not a few: a Kafka rebuild reads each partition's
  // run of records in turn, so a group's events come back once per partition, thousands of records
  // apart; with 16 remembered, nearly every event cost a verification.
  static constexpr size_t kRemembered = 4096, kWays = 4;
  bool remembered(const std::string& publicKey, uint32_t groupSize, const Digest& root,
                  std::string_view signature) const;
  void remember(const std::string& publicKey, uint32_t groupSize, const Digest& root,
                std::string_view signature);

  static size_t setOf(const Digest& root);
  std::vector<Verified> verified_;  // kRemembered slots once used; groupSize 0: empty
  std::vector<uint8_t> victim_;     // per set: the way replaced next when it is full
  uint64_t signaturesVerified_ = 0;
  std::vector<uint64_t> copy_;     // the envelope's aligned copy, when it needs one
  std::vector<uint64_t> scratch_;  // zeroed: the first segment of the canonical copy
};

// A verifier used once: SignatureVerifier().check(envelope, keys). Never throws.
SignatureCheck checkSignature(std::string_view envelope, const KeyRing& keys);

}  // namespace tokenledger
