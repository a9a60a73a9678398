// The read model's on-disk layout: the one definition its writer (read_model.cpp)
// and every other reader of its files (ledger-audit verify-projection, which opens
// them read-only) share. Changing anything here changes the format of existing read
// models: bump kLayoutVersion (they are then rebuilt from the log, which is the
// truth), and tests/unit/projection_test.cpp pins the layout with literal bytes.
//
// One LMDB environment in DATA_DIR/projection with these named databases:
//
//   tokens     token key                  -> the token's record: its state, then the
//                                             history entries of its first
//                                             kInlineHistory events, in log order (the
//                                             byte layout is in projections/token.cpp)
//   by_owner   owner \0 createdAtUs (8, BE) -> "" (a user's tokens in creation order,
//              token key                    for pages; owners hold no NUL:
//                                             checkEvent refuses them)
//   history    token key \0 seq (4, BE)   -> the history entry of the token's event
//                                             number seq (0, 1, …) from kInlineHistory
//                                             on: a token's record stays small however
//                                             often it is toggled
//   event_ids  event id (16 bytes)        -> its position "p:o" (de-duplication)
//   positions  partition (4 bytes, BE)    -> the next offset to apply (8 bytes, BE)
//   meta       "schema_version"           -> kLayoutVersion in decimal
//   verify     token key                  -> what verification reads, fixed layout
//                                             (see VerifyRecord), derived from
//                                             tokens in the same transaction
//   writers    partition (4, BE) key id   -> the writer's public key (32 bytes): a
//                                             certificate accepted on that partition
//                                             (events/trust.h)
//   idempotency  owner \0 idempotency key -> IdempotencyRecord: the event that
//                                             claimed the key (projections/idempotency.h)
//   idempotency_by_time  recordedAtUs (8, BE) owner \0 idempotency key -> "" (so
//                                             expired claims are found in time order)
//   meta       "trust"                    -> the TrustPolicy fingerprint it was built
//                                             under (a different one: rebuild)
//              "newest_event"             -> the newest applied event's time (8, BE
//                                             microseconds): where purges cut
//
// Invariants: one write transaction stores a batch's changes in every database
// together with the positions they came from (exactly-once: a crash never applies
// a record twice or skips one); tokens and verify hold the same keys; every event
// in a token's history was applied to it, and its event count is the number of
// its entries (inline and in history); idempotency and idempotency_by_time hold the
// same claims.
//
// Writer: the projector's LmdbReadModel (one writer per process). Readers: that
// process's readers, and ledger-audit from another process, read-only.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "events/event_log.h"
#include "events/secrets.h"
#include "events/times.h"

namespace tokenledger::layout {

// 2: writers, idempotency, idempotency_by_time; TokenState.idempotencyKey.
// 3: compact history entries instead of envelopes, the first kInlineHistory inside
//    the token's record; the record in a byte layout of its own instead of Cap'n
//    Proto (docs/architecture.md, "The read model's layout").
// 4: by_owner keys hold the creation time, so that lists page in creation order.
constexpr uint32_t kLayoutVersion = 4;
// How many of a token's history entries its record holds; the rest are in history.
constexpr uint32_t kInlineHistory = 8;

constexpr const char* kTokens = "tokens";
constexpr const char* kByOwner = "by_owner";
constexpr const char* kHistory = "history";
constexpr const char* kEventIds = "event_ids";
constexpr const char* kPositions = "positions";
constexpr const char* kMeta = "meta";
constexpr const char* kVerify = "verify";
constexpr const char* kWriters = "writers";
constexpr const char* kIdempotency = "idempotency";
constexpr const char* kIdempotencyByTime = "idempotency_by_time";
// Every database, in the order dumps and comparisons list them.
constexpr std::array<const char*, 10> kDatabases = {
    kTokens, kByOwner, kHistory, kEventIds,    kPositions,
    kMeta,   kVerify,  kWriters, kIdempotency, kIdempotencyByTime};
constexpr std::string_view kSchemaVersionKey = "schema_version";
constexpr std::string_view kTrustKey = "trust";
constexpr std::string_view kNewestEventKey = "newest_event";
// A time as 8 bytes, big-endian microseconds since the epoch; nullopt unless 8 bytes.
std::string timeValue(Timestamp t);
std::optional<Timestamp> timeOf(std::string_view value);

// by_owner: into `out`, so that a loop can reuse one buffer.
const std::string& ownerKey(std::string& out, std::string_view owner, Timestamp createdAt,
                            std::string_view key);
// What every by_owner key of `owner` starts with.
std::string ownerPrefix(std::string_view owner);
struct OwnerKey {
  std::string_view owner;
  Timestamp createdAt;
  std::string_view key;
};
// nullopt without the separator and 8 bytes of time after it.
std::optional<OwnerKey> splitOwnerKey(std::string_view k);

// history: into `out`, so that a loop can reuse one buffer.
const std::string& historyKey(std::string& out, std::string_view key, uint32_t seq);
// The prefix every history key of `key` starts with.
std::string historyPrefix(std::string_view key);
// (token key, seq); nullopt unless the key ends in the separator and 4 bytes.
std::optional<std::pair<std::string_view, uint32_t>> splitHistoryKey(std::string_view k);

// positions
std::string partitionKey(Partition partition);
std::optional<Partition> partitionOf(std::string_view key);
std::string nextOffsetValue(NextOffset next);
std::optional<NextOffset> nextOffsetOf(std::string_view value);

// writers: (partition, key id); nullopt unless 4 bytes and a key id follow.
std::string writerKey(Partition partition, std::string_view keyId);
std::optional<std::pair<Partition, std::string_view>> splitWriterKey(std::string_view k);

// idempotency: owner \0 key (into `out`, reused by loops), and its value.
const std::string& idempotencyKey(std::string& out, std::string_view owner, std::string_view key);
struct IdempotencyRecord {
  Timestamp recordedAt{};     // the claiming event's occurredAt
  std::string requestDigest;  // 32 bytes
  std::string tokenKey;       // the token it created or changed
  bool operator==(const IdempotencyRecord&) const = default;
};
// recordedAtUs (8, BE) | request digest (32) | token key.
std::string encodeIdempotencyRecord(const IdempotencyRecord& r);
// nullopt when shorter than 40 bytes.
std::optional<IdempotencyRecord> decodeIdempotencyRecord(std::string_view raw);
// idempotency_by_time: recordedAtUs (8, BE) | owner \0 key.
std::string idempotencyTimeKey(Timestamp recordedAt, std::string_view ownerAndKey);
// (recordedAt, owner \0 key); nullopt when shorter than 9 bytes.
std::optional<std::pair<Timestamp, std::string_view>> splitIdempotencyTimeKey(std::string_view k);

// verify: secret hash (32) | active (1) | kind (1) | expiresAtUs (8, BE)
// | deactivateAtUs (8, BE) | owner length (1) | owner | destination id.
// Times are microseconds since the Unix epoch, 0 when absent (as on the wire);
// encodeVerifyRecord and decodeVerifyRecord are the only conversions.
// No Cap'n Proto decoding on the hot path. Owners are at most 255 bytes (user ids
// are at most 128: checkEvent keeps longer ones out).
struct VerifyRecord {
  SecretHash secretHash{};
  bool active = false;
  uint8_t kind = 0;  // TokenKind
  std::optional<Timestamp> expiresAt;
  std::optional<Timestamp> deactivateAt;
  std::string_view owner;
  std::string_view destinationId;
};
constexpr size_t kVerifyFixedBytes = 32 + 1 + 1 + 8 + 8 + 1;
// Into `out`, so that a loop can reuse one buffer. Throws std::logic_error for an
// owner over 255 bytes (checkEvent keeps them out before anything is stored).
const std::string& encodeVerifyRecord(std::string& out, const VerifyRecord& r);
// Views into `raw`; nullopt when it is shorter than it says.
std::optional<VerifyRecord> decodeVerifyRecord(std::string_view raw);

}  // namespace tokenledger::layout
