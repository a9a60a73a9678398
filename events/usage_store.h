// "Last used" (issue 17): when each token last verified successfully, to the minute,
// and how often in that minute, per replica. Not events: it lives beside the read
// model in an LMDB environment of its own (DATA_DIR/usage), which rebuilds of the
// read model leave alone, and on Kafka in a compacted topic (usage_topic.h).
//
// Each replica's row holds its latest minute and its count there; what a token shows
// is the latest minute over all replicas and the sum of the counts of the replicas
// whose latest minute it is (mergeReplicas). Rows carry token keys, never secrets.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "events/lmdb.h"
#include "events/times.h"

namespace tokenledger {

// Minutes since the Unix epoch, and successful verifications in that minute.
struct LastUse {
  int64_t minute = 0;
  uint64_t count = 0;
  bool operator==(const LastUse&) const = default;
};

int64_t minuteOf(Timestamp t);
Timestamp startOfMinute(int64_t minute);

// One replica's uses over time: a later minute replaces, the same minute adds up.
LastUse accumulate(LastUse a, LastUse b);
// Several replicas' latest uses: the latest minute, the counts of that minute summed.
LastUse mergeReplicas(LastUse a, LastUse b);
// The same replica's row seen twice (a topic replays old records): the newer wins,
// by minute then count (counts only grow within a minute).
LastUse newerOf(LastUse a, LastUse b);

// The stored form: version byte 1, minute and count big-endian (17 bytes).
std::string encodeLastUse(LastUse u);
std::optional<LastUse> decodeLastUse(std::string_view bytes);
// The row key: token key, NUL, replica id (so a prefix seek finds a token's rows).
std::string usageRowKey(std::string_view tokenKey, std::string_view replica);
// Splits a row key; nullopt when it has no NUL.
std::optional<std::pair<std::string_view, std::string_view>> splitUsageRowKey(std::string_view row);

// How far ahead of this machine's clock a row's minute may be (other replicas'
// clocks may run ahead a little).
constexpr int64_t kMaxUsageSkewMinutes = 5;
// Whether a row from elsewhere (the usage topic) may be stored: a well-formed token
// key, a replica id of 1-64 bytes, a minute that is not past now plus the skew. The
// topic is not signed: whoever can write to it could otherwise shadow every real use
// for ever with a row from the year 3000, or fill the store with rows of no token.
std::optional<std::string> usageRowProblem(std::string_view row, const LastUse& use, Timestamp now);

// DATA_DIR/usage. Thread-safe: LMDB serialises writers, readers take snapshots.
class UsageStore {
 public:
  // Read-only: for tools that read a running daemon's store (EnvOptions::readOnly).
  UsageStore(const std::string& dir, bool readOnly = false);

  using Rows = std::vector<std::pair<std::string, std::string>>;  // row key, encoded use
  // Adds `uses` (by token key) to `replica`'s rows (accumulate); returns the rows
  // as written, for the topic.
  Rows addOwn(const std::map<std::string, LastUse, std::less<>>& uses, std::string_view replica);
  // Stores rows from the topic, each unless the row there is newer (newerOf);
  // malformed rows and those usageRowProblem refuses at `now` are skipped and
  // counted: returns how many.
  size_t putRows(const Rows& rows, Timestamp now);

  // A read transaction for lastUse (one per response).
  lmdb::Txn reader() const;
  // The token's use over every replica, or nullopt when never used.
  std::optional<LastUse> lastUse(const lmdb::Txn& txn, std::string_view tokenKey) const;
  // Every token's merged use (ledger-audit).
  std::map<std::string, LastUse, std::less<>> all() const;

 private:
  std::unique_ptr<lmdb::Env> env_;
  MDB_dbi dbi_ = 0;
};

}  // namespace tokenledger
