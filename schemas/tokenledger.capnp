# tokenledger wire contract: every event on the log (embedded LMDB or Kafka) is
# one `Envelope` message, in Cap'n Proto's standard unpacked framing
# (`capnp decode schemas/tokenledger.capnp Envelope`).
#
# Evolution rules (consumers depend on them):
#   - never renumber, retype or reuse a field or union member; only add;
#   - a consumer that sees a union member it does not know (`which()` beyond
#     its enum) skips the event and warns;
#   - times are microseconds since the Unix epoch, UTC; 0 means "absent".
@0xf2e49a6d09136ee3;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("tokenledger::schema");

enum TokenKind {
  user @0;         # created by the user for their own integrations
  destination @1;  # created by the platform for one of the user's data destinations
}

enum DeactivationReason {
  manual @0;
  rotation @1;
  compromised @2;
  expired @3;
  bulk @4;
}

enum HashAlgorithm {
  blake2b256 @0;   # crypto_generichash, 32-byte output, no key
}

struct Created {
  kind @0 :TokenKind;
  destinationId @1 :Text;       # only for kind = destination
  description @2 :Text;         # 1-200 characters, trimmed
  secretHash @3 :Data;          # hash of the secret; the secret itself is never written
  hashAlgorithm @4 :HashAlgorithm;
  expiresAtUs @5 :Int64;        # 0 = never expires
  replaces @6 :Text;            # key of the token this one rotates out, or empty
}

struct Activated {}

struct Deactivated {
  reason @0 :DeactivationReason;
  effectiveAtUs @1 :Int64;      # may lie in the future (grace period) or the past (late compromise)
  rotatedTo @2 :Text;           # set when it is the old token's half of a rotation: applies
                                # only if the token was rotated to this successor (the
                                # rotation's `created` event won; docs/kafka.md)
}

# A writer key, certified by the operator's root key (kept offline): replicas and
# ledger-audit that trust the root trust the events this key signs. A writer appends
# it to every partition before its first event there (docs/kafka.md, "Trusted
# writers").
struct WriterCertificate {
  writerKey @0 :Data;           # the writer's Ed25519 public key, 32 bytes
  rootKeyId @1 :Text;           # key id of the root key that certifies it
  issuedAtUs @2 :Int64;
  rootSignature @3 :Data;       # Ed25519 by the root over the canonical encoding of this
                                # struct with rootSignature cleared, prefixed by
                                # "tokenledger-writer-certificate-v1\n"
}

struct Envelope {
  eventId @0 :Data;             # 16 random bytes; consumers de-duplicate on it
  tokenKey @1 :Text;
  owner @2 :Text;               # also the Kafka message key (partitioning)
  actor @3 :Text;               # who did it, e.g. "operator"
  requestId @4 :Text;
  occurredAtUs @5 :Int64;       # when the service recorded the event
  schemaVersion @6 :UInt16;     # 1
  signature @7 :Data;           # Ed25519 by the writing service over the canonical
                                # encoding of this envelope with `signature` cleared
                                # (docs/audit.md); empty = unsigned
  signingKeyId @8 :Text;        # hex of the first 8 bytes of BLAKE2b-256(public key)

  event :union {
    created @9 :Created;
    activated @10 :Activated;
    deactivated @11 :Deactivated;
    writerCertified @21 :WriterCertificate;  # not about a token: tokenKey and owner empty
  }

  writerSeq @12 :UInt64;        # per signing key: 1, 2, 3, … for every event that writer
                                # appends (gaps, repeats and inversions are evidence)
  prevDigest @13 :Data;         # BLAKE2b-256 of the signed bytes of the same writer's
                                # event writerSeq - 1; empty for writerSeq 1

  # Linearizable commands (docs/kafka.md, "Conditional events"): the token's version
  # (the number of events applied to it) the command was decided on, or for a
  # rotation's `created` the predecessor's. The event applies only if it still holds;
  # else it loses (a conflict) and changes nothing anywhere. 0 = unconditional
  # (events written before this field existed).
  basedOnVersion @14 :UInt32;

  # Retry-safe commands (docs/api.md, "Idempotency-Key"): the client's key, and a
  # digest of the request it came with.
  idempotencyKey @15 :Text;
  requestDigest @16 :Data;

  # Group signatures (docs/audit.md): one Ed25519 signature by the writer over the
  # Merkle root of an append group's event digests, and this event's path to it, so
  # that each event stays verifiable on its own. With groupSignature set, `signature`
  # is empty.
  groupSignature @17 :Data;
  groupProof @18 :List(Data);   # sibling digests from this event's leaf up to the root
  groupLeaf @19 :UInt32;        # this event's index in the group
  groupSize @20 :UInt32;
}
