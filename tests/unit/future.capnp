# A test-only "newer" version of schemas/tokenledger.capnp's Envelope: the same
# fields with the same ordinals, plus one union member this build does not know.
# Cap'n Proto carries no type ids on the wire, so bytes written with this schema
# are what a newer producer would put on the log.
@0xe7c320dcc5940b27;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("tokenledger::future");

enum TokenKind {
  user @0;
  destination @1;
}

enum DeactivationReason {
  manual @0;
  rotation @1;
  compromised @2;
  expired @3;
  bulk @4;
}

enum HashAlgorithm {
  blake2b256 @0;
}

struct Created {
  kind @0 :TokenKind;
  destinationId @1 :Text;
  description @2 :Text;
  secretHash @3 :Data;
  hashAlgorithm @4 :HashAlgorithm;
  expiresAtUs @5 :Int64;
  replaces @6 :Text;
}

struct Activated {}

struct Deactivated {
  reason @0 :DeactivationReason;
  effectiveAtUs @1 :Int64;
  rotatedTo @2 :Text;
}

struct WriterCertificate {
  writerKey @0 :Data;
  rootKeyId @1 :Text;
  issuedAtUs @2 :Int64;
  rootSignature @3 :Data;
}

struct Revoked {
  note @0 :Text;
}

struct Envelope {
  eventId @0 :Data;
  tokenKey @1 :Text;
  owner @2 :Text;
  actor @3 :Text;
  requestId @4 :Text;
  occurredAtUs @5 :Int64;
  schemaVersion @6 :UInt16;
  signature @7 :Data;
  signingKeyId @8 :Text;

  event :union {
    created @9 :Created;
    activated @10 :Activated;
    deactivated @11 :Deactivated;
    writerCertified @21 :WriterCertificate;
    revoked @22 :Revoked;  # the newer member
  }

  writerSeq @12 :UInt64;
  prevDigest @13 :Data;
  basedOnVersion @14 :UInt32;
  idempotencyKey @15 :Text;
  requestDigest @16 :Data;
  groupSignature @17 :Data;
  groupProof @18 :List(Data);
  groupLeaf @19 :UInt32;
  groupSize @20 :UInt32;
}
