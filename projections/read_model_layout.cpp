#include "projections/read_model_layout.h"

#include <bit>
#include <chrono>
#include <cstring>
#include <stdexcept>

#include "events/big_endian.h"

namespace tokenledger::layout {
namespace {

// A verify record's time: 8 bytes, big-endian microseconds since the epoch, 0 when
// absent (an absent time and a present epoch write the same bytes).
void appendTime(std::string& out, const std::optional<Timestamp>& t) {
  appendBigEndian(out, static_cast<uint64_t>(t ? t->time_since_epoch().count() : 0), 8);
}

// From the 8 bytes at `p` (verification reads two per call: one load each).
std::optional<Timestamp> readTime(const char* p) {
  uint64_t v;
  memcpy(&v, p, sizeof v);
  if constexpr (std::endian::native == std::endian::little) v = __builtin_bswap64(v);
  const auto us = static_cast<int64_t>(v);
  if (us == 0) return std::nullopt;
  return Timestamp{std::chrono::microseconds{us}};
}

}  // namespace

const std::string& ownerKey(std::string& out, std::string_view owner, Timestamp createdAt,
                            std::string_view key) {
  out.assign(owner).push_back('\0');
  appendBigEndian(out, static_cast<uint64_t>(createdAt.time_since_epoch().count()), 8);
  out.append(key);
  return out;
}

std::string ownerPrefix(std::string_view owner) {
  std::string out(owner);
  out.push_back('\0');
  return out;
}

std::optional<OwnerKey> splitOwnerKey(std::string_view k) {
  auto z = k.find('\0');
  if (z == std::string_view::npos || k.size() < z + 1 + 8) return std::nullopt;
  auto t = timeOf(k.substr(z + 1, 8));
  if (!t) return std::nullopt;
  return OwnerKey{k.substr(0, z), *t, k.substr(z + 9)};
}

const std::string& historyKey(std::string& out, std::string_view key, uint32_t seq) {
  out.assign(key).push_back('\0');
  appendBigEndian(out, seq, 4);
  return out;
}

std::string historyPrefix(std::string_view key) {
  std::string out(key);
  out.push_back('\0');
  return out;
}

std::optional<std::pair<std::string_view, uint32_t>> splitHistoryKey(std::string_view k) {
  if (k.size() < 5 || k[k.size() - 5] != '\0') return std::nullopt;
  return std::make_pair(k.substr(0, k.size() - 5),
                        static_cast<uint32_t>(readBigEndian(k.substr(k.size() - 4))));
}

std::string partitionKey(Partition partition) {
  std::string out;
  appendBigEndian(out, static_cast<uint32_t>(partition.value), 4);
  return out;
}

std::optional<Partition> partitionOf(std::string_view key) {
  if (key.size() != 4) return std::nullopt;
  return Partition{static_cast<int32_t>(readBigEndian(key))};
}

std::string nextOffsetValue(NextOffset next) {
  std::string out;
  appendBigEndian(out, static_cast<uint64_t>(next.value), 8);
  return out;
}

std::optional<NextOffset> nextOffsetOf(std::string_view value) {
  if (value.size() != 8) return std::nullopt;
  return NextOffset{static_cast<int64_t>(readBigEndian(value))};
}

std::string timeValue(Timestamp t) {
  std::string out;
  appendBigEndian(out, static_cast<uint64_t>(t.time_since_epoch().count()), 8);
  return out;
}

std::optional<Timestamp> timeOf(std::string_view value) {
  if (value.size() != 8) return std::nullopt;
  return Timestamp{std::chrono::microseconds{static_cast<int64_t>(readBigEndian(value))}};
}

std::string writerKey(Partition partition, std::string_view keyId) {
  std::string out = partitionKey(partition);
  out.append(keyId);
  return out;
}

std::optional<std::pair<Partition, std::string_view>> splitWriterKey(std::string_view k) {
  if (k.size() <= 4) return std::nullopt;
  return std::make_pair(*partitionOf(k.substr(0, 4)), k.substr(4));
}

const std::string& idempotencyKey(std::string& out, std::string_view owner, std::string_view key) {
  out.assign(owner).push_back('\0');
  out.append(key);
  return out;
}

std::string encodeIdempotencyRecord(const IdempotencyRecord& r) {
  std::string out = timeValue(r.recordedAt);
  out.append(r.requestDigest);
  out.append(r.tokenKey);
  return out;
}

std::optional<IdempotencyRecord> decodeIdempotencyRecord(std::string_view raw) {
  if (raw.size() < 40) return std::nullopt;
  IdempotencyRecord r;
  r.recordedAt = *timeOf(raw.substr(0, 8));
  r.requestDigest = std::string(raw.substr(8, 32));
  r.tokenKey = std::string(raw.substr(40));
  return r;
}

std::string idempotencyTimeKey(Timestamp recordedAt, std::string_view ownerAndKey) {
  std::string out = timeValue(recordedAt);
  out.append(ownerAndKey);
  return out;
}

std::optional<std::pair<Timestamp, std::string_view>> splitIdempotencyTimeKey(std::string_view k) {
  if (k.size() <= 8) return std::nullopt;
  return std::make_pair(*timeOf(k.substr(0, 8)), k.substr(8));
}

const std::string& encodeVerifyRecord(std::string& out, const VerifyRecord& r) {
  if (r.owner.size() > 255) throw std::logic_error("owner longer than a verify record holds");
  out.clear();
  out.append(reinterpret_cast<const char*>(r.secretHash.data()), r.secretHash.size());
  out.push_back(r.active ? 1 : 0);
  out.push_back(static_cast<char>(r.kind));
  appendTime(out, r.expiresAt);
  appendTime(out, r.deactivateAt);
  out.push_back(static_cast<char>(r.owner.size()));
  out.append(r.owner);
  out.append(r.destinationId);
  return out;
}

std::optional<VerifyRecord> decodeVerifyRecord(std::string_view raw) {
  if (raw.size() < kVerifyFixedBytes) return std::nullopt;
  VerifyRecord r;
  const char* p = raw.data();
  memcpy(r.secretHash.data(), p, r.secretHash.size());
  r.active = p[32] != 0;
  r.kind = static_cast<uint8_t>(p[33]);
  r.expiresAt = readTime(p + 34);
  r.deactivateAt = readTime(p + 42);
  size_t ownerLen = static_cast<unsigned char>(p[50]);
  if (raw.size() < kVerifyFixedBytes + ownerLen) return std::nullopt;
  r.owner = raw.substr(kVerifyFixedBytes, ownerLen);
  r.destinationId = raw.substr(kVerifyFixedBytes + ownerLen);
  return r;
}

}  // namespace tokenledger::layout
