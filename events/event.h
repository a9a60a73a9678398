// The domain's events: value types, their Cap'n Proto encoding (the wire contract,
// schemas/tokenledger.capnp) and decoding, and the contract's rules for one event.
// What the projection makes of them (token state, the state machine) is in
// projections/token.h.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "events/secrets.h"
#include "events/times.h"

namespace tokenledger {

constexpr uint16_t kSchemaVersion = 1;

enum class TokenKind : uint8_t { user, destination };
enum class Reason : uint8_t { manual, rotation, compromised, expired, bulk };

std::string_view toString(TokenKind kind);
std::string_view toString(Reason reason);
std::optional<TokenKind> parseKind(std::string_view s);
std::optional<Reason> parseReason(std::string_view s);

struct Created {
  TokenKind kind = TokenKind::user;
  std::string destinationId;
  std::string description;
  SecretHash secretHash{};
  std::optional<Timestamp> expiresAt;  // none = never
  std::string replaces;                // empty = not a rotation
};
struct Activated {};
struct Deactivated {
  Reason reason = Reason::manual;
  std::optional<Timestamp> effectiveAt;  // none = when it occurred (see effectiveAt())
  // The old token's half of a rotation: applies only if the token was rotated to
  // this successor (the rotation's created event won). Empty otherwise.
  std::string rotatedTo = {};
  bool operator==(const Deactivated&) const = default;
};

// A writer key certified by the operator's root key (events/certificate.h). Not
// about a token: an event carrying one has no token key and no owner, and the
// projection's token state machine never sees it (decodeEventView refuses it as
// DecodeError::Kind::notTokenEvent).
struct WriterCertificate {
  std::string writerKey;  // 32 raw bytes
  std::string rootKeyId;
  int64_t issuedAtUs = 0;
  std::string rootSignature;  // 64 bytes
  bool operator==(const WriterCertificate&) const = default;
};

using EventBody = std::variant<Created, Activated, Deactivated, WriterCertificate>;

struct Event {
  std::string eventId;  // 16 random bytes
  std::string tokenKey;
  std::string owner;
  std::string actor;
  std::string requestId;
  Timestamp occurredAt{};
  uint16_t schemaVersion = kSchemaVersion;
  std::string signature;     // Ed25519, 64 bytes; empty = unsigned (events/signing.h)
  std::string signingKeyId;  // 16 hex characters naming the writer's public key
  uint64_t writerSeq = 0;    // 1, 2, 3, … per signing key; 0 = unsigned
  std::string prevDigest;    // 32 bytes: digest of the writer's event writerSeq - 1
  // Conditional events (docs/kafka.md): the token's version (versionOf in
  // projections/token.h) the command was decided on; 0 = unconditional.
  uint32_t basedOnVersion = 0;
  // Retry-safe commands (docs/api.md, "Idempotency-Key"): the client's key, scoped
  // to the owner, and the digest of the request it came with (32 bytes). Empty when
  // the request had no key.
  std::string idempotencyKey;
  std::string requestDigest;
  // Group-signed events (events/signing.h): one Ed25519 signature over the Merkle
  // root of a signing pass's event digests, this event's audit path to that root
  // (sibling digests, 32 bytes each, from the leaf up), its index and the group's
  // size. groupSignature empty = not group-signed (then the rest is empty or 0).
  std::string groupSignature;
  std::vector<std::string> groupProof;
  uint32_t groupLeaf = 0;
  uint32_t groupSize = 0;
  EventBody body;

  std::string_view typeName() const;
};

// Encodes as one unpacked Cap'n Proto message (the wire and storage format).
std::string encodeEvent(const Event& event);

struct DecodeError {
  // notTokenEvent: a well-formed event about no token (a writer certificate), which
  // decodeEventView refuses; decodeEvent reads it.
  enum class Kind { malformed, unknownType, notTokenEvent } kind;
  std::string message;
};
using Decoded = std::variant<Event, DecodeError>;
// Never throws: garbage gives DecodeError::malformed, a newer union member
// DecodeError::unknownType.
Decoded decodeEvent(std::string_view bytes);

// What the state machine and the projection read of an event, as views: into an
// Event (view(event)), or straight into the encoded bytes (decodeEventView), which
// spares a rebuild the copies of the fields it never reads.
struct CreatedView {
  TokenKind kind = TokenKind::user;
  std::string_view destinationId;
  std::string_view description;
  SecretHash secretHash{};
  std::optional<Timestamp> expiresAt;
  std::string_view replaces;
};
struct EventView {
  std::string_view eventId;
  std::string_view tokenKey;
  std::string_view owner;
  std::string_view actor;
  std::string_view requestId;
  Timestamp occurredAt{};
  uint32_t basedOnVersion = 0;
  std::string_view idempotencyKey;
  std::string_view requestDigest;
  std::variant<CreatedView, Activated, Deactivated> body;
  // The bytes' word-aligned copy when they were not aligned (Cap'n Proto reads
  // words); empty otherwise. Moving the view keeps the views valid.
  std::vector<uint64_t> copy;

  std::string_view typeName() const;
};
// Throws std::invalid_argument for an event about no token (a writer certificate).
EventView view(const Event& event);
using DecodedView = std::variant<EventView, DecodeError>;
// Checks exactly what decodeEvent checks; the views point into `bytes` (or the
// view's own copy), so `bytes` must outlive the result.
DecodedView decodeEventView(std::string_view bytes);

// The contract's rules for one event, beyond what decoding checks (events/rules.h):
// a well-formed token key, a valid user id as owner, a time, and for a creation a
// valid description, destination id (exactly for kind destination), expiry and
// predecessor key. What any producer may put on the log, the projection and
// ledger-audit check here before applying it. nullopt when the event is valid.
std::optional<std::string> checkEvent(const EventView& event);

// When a deactivation takes effect: its effectiveAt, or when it occurred if that is
// absent (the schema's 0; times at or before the epoch are treated the same).
Timestamp effectiveAt(const Deactivated& d, Timestamp occurredAt);

}  // namespace tokenledger
