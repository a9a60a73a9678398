# The read model's stored value per token (LMDB database "tokens", see
# read_model_layout.h). Private to the projection: not part of the wire contract
# that other services consume (schemas/tokenledger.capnp), and free to change with
# layout::kLayoutVersion (read models are rebuilt from the log). It moved here from
# schemas/tokenledger.capnp with the same fields and ordinals, so stored values
# read the same.
@0x955f79881f532ee6;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("tokenledger::projection");

using Wire = import "/schemas/tokenledger.capnp";

struct TokenState {
  key @0 :Text;
  owner @1 :Text;
  kind @2 :Wire.TokenKind;
  destinationId @3 :Text;
  description @4 :Text;
  active @5 :Bool;
  secretHash @6 :Data;
  hashAlgorithm @7 :Wire.HashAlgorithm;
  createdAtUs @8 :Int64;
  updatedAtUs @9 :Int64;
  expiresAtUs @10 :Int64;            # 0 = never
  deactivateAtUs @11 :Int64;         # active tokens: scheduled deactivation (0 = none);
                                     # inactive tokens: when the deactivation took effect
  deactivationReason @12 :Wire.DeactivationReason;
  replaces @13 :Text;
  replacedBy @14 :Text;
  eventCount @15 :UInt32;            # number of events applied to this token
  idempotencyKey @16 :Text;          # the Idempotency-Key its creation came with, if any
}
