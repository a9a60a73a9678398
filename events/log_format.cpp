#include "events/log_format.h"

#include "events/big_endian.h"

namespace tokenledger::logformat {

std::string recordKey(Offset offset) {
  std::string out;
  appendBigEndian(out, static_cast<uint64_t>(offset.value), kKeyBytes);
  return out;
}

std::optional<Offset> offsetOf(std::string_view key) {
  if (key.size() != kKeyBytes) return std::nullopt;
  return Offset{static_cast<int64_t>(readBigEndian(key))};
}

std::string packRecord(std::string_view key, std::string_view value) {
  std::string out;
  out.reserve(kLengthBytes + key.size() + value.size());
  appendBigEndian(out, key.size(), kLengthBytes);
  out.append(key);
  out.append(value);
  return out;
}

std::optional<LogRecord> unpackRecord(Offset offset, std::string_view raw) {
  if (raw.size() < kLengthBytes) return std::nullopt;
  uint64_t n = readBigEndian(raw.substr(0, kLengthBytes));
  if (raw.size() - kLengthBytes < n) return std::nullopt;
  return LogRecord{Position{Partition{0}, offset}, std::string(raw.substr(kLengthBytes, n)),
                   std::string(raw.substr(kLengthBytes + n))};
}

}  // namespace tokenledger::logformat
