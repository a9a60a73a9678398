#include "events/usage_store.h"

#include "events/big_endian.h"
#include "events/secrets.h"

namespace tokenledger {
namespace {

constexpr char kVersion = 1;
constexpr size_t kEncodedSize = 17;
// A small environment: one row per token and replica (~100 B); 1 GiB of address
// space is millions of them, and the file grows only as used.
constexpr uint64_t kMapSize = 1ull << 30;

}  // namespace

int64_t minuteOf(Timestamp t) {
  return std::chrono::floor<std::chrono::minutes>(t).time_since_epoch().count();
}

Timestamp startOfMinute(int64_t minute) {
  return Timestamp{std::chrono::minutes{minute}};
}

LastUse accumulate(LastUse a, LastUse b) {
  if (a.minute == b.minute) return {a.minute, a.count + b.count};
  return a.minute > b.minute ? a : b;
}

LastUse mergeReplicas(LastUse a, LastUse b) {
  return accumulate(a, b);  // the same arithmetic, over replicas instead of flushes
}

LastUse newerOf(LastUse a, LastUse b) {
  if (a.minute != b.minute) return a.minute > b.minute ? a : b;
  return a.count >= b.count ? a : b;
}

std::string encodeLastUse(LastUse u) {
  std::string out(1, kVersion);
  appendBigEndian(out, static_cast<uint64_t>(u.minute), 8);
  appendBigEndian(out, u.count, 8);
  return out;
}

std::optional<LastUse> decodeLastUse(std::string_view b) {
  if (b.size() != kEncodedSize || b[0] != kVersion) return std::nullopt;
  return LastUse{static_cast<int64_t>(readBigEndian(b.substr(1, 8))), readBigEndian(b.substr(9))};
}

std::string usageRowKey(std::string_view tokenKey, std::string_view replica) {
  std::string k(tokenKey);
  k += '\0';
  k += replica;
  return k;
}

std::optional<std::pair<std::string_view, std::string_view>> splitUsageRowKey(
    std::string_view row) {
  auto nul = row.find('\0');
  if (nul == std::string_view::npos || nul == 0) return std::nullopt;
  return std::pair{row.substr(0, nul), row.substr(nul + 1)};
}

UsageStore::UsageStore(const std::string& dir, bool readOnly) {
  lmdb::EnvOptions options;
  options.mapSizeBytes = kMapSize;
  options.maxDbs = 2;
  options.readOnly = readOnly;
  // Losing the last flushes in a power cut is acceptable for "last used".
  if (!readOnly) options.flags = MDB_NOSYNC;
  env_ = std::make_unique<lmdb::Env>(dir, options);
  if (readOnly) {
    auto txn = lmdb::Txn::read(*env_);
    dbi_ = txn.openDb("usage");
    txn.commit();
  } else {
    auto txn = lmdb::Txn::write(*env_);
    dbi_ = txn.openDb("usage", 0, true);
    txn.commit();
  }
}

UsageStore::Rows UsageStore::addOwn(const std::map<std::string, LastUse, std::less<>>& uses,
                                    std::string_view replica) {
  Rows written;
  written.reserve(uses.size());
  auto txn = lmdb::Txn::write(*env_);
  for (const auto& [key, use] : uses) {
    std::string row = usageRowKey(key, replica);
    LastUse merged = use;
    if (auto old = txn.get(dbi_, row))
      if (auto u = decodeLastUse(*old)) merged = accumulate(*u, use);
    std::string value = encodeLastUse(merged);
    txn.put(dbi_, row, value);
    written.emplace_back(std::move(row), std::move(value));
  }
  txn.commit();
  return written;
}

std::optional<std::string> usageRowProblem(std::string_view row, const LastUse& use,
                                           Timestamp now) {
  auto parts = splitUsageRowKey(row);
  if (!parts || !isWellFormedKey(parts->first)) return "the row's key names no token";
  if (parts->second.empty() || parts->second.size() > 64) return "the replica id is not 1-64 bytes";
  if (use.minute > minuteOf(now) + kMaxUsageSkewMinutes)
    return "its minute lies in the future (" + formatTime(startOfMinute(use.minute)) + ")";
  return std::nullopt;
}

size_t UsageStore::putRows(const Rows& rows, Timestamp now) {
  size_t refused = 0;
  auto txn = lmdb::Txn::write(*env_);
  for (const auto& [row, value] : rows) {
    auto use = decodeLastUse(value);
    if (!use || usageRowProblem(row, *use, now)) {
      ++refused;
      continue;
    }
    if (auto old = txn.get(dbi_, row))
      if (auto u = decodeLastUse(*old); u && newerOf(*u, *use) == *u) continue;
    txn.put(dbi_, row, value);
  }
  txn.commit();
  return refused;
}

lmdb::Txn UsageStore::reader() const {
  return lmdb::Txn::read(*env_);
}

std::optional<LastUse> UsageStore::lastUse(const lmdb::Txn& txn, std::string_view tokenKey) const {
  std::string prefix(tokenKey);
  prefix += '\0';
  lmdb::Cursor c(txn, dbi_);
  std::optional<LastUse> out;
  for (bool ok = c.seek(prefix); ok && c.key().starts_with(prefix); ok = c.next())
    if (auto u = decodeLastUse(c.value())) out = out ? mergeReplicas(*out, *u) : *u;
  return out;
}

std::map<std::string, LastUse, std::less<>> UsageStore::all() const {
  std::map<std::string, LastUse, std::less<>> out;
  auto txn = reader();
  lmdb::Cursor c(txn, dbi_);
  for (bool ok = c.first(); ok; ok = c.next()) {
    auto parts = splitUsageRowKey(c.key());
    auto u = decodeLastUse(c.value());
    if (!parts || !u) continue;
    auto [it, fresh] = out.try_emplace(std::string(parts->first), *u);
    if (!fresh) it->second = mergeReplicas(it->second, *u);
  }
  return out;
}

}  // namespace tokenledger
