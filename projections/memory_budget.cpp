#include "projections/memory_budget.h"

#include <algorithm>
#include <fstream>
#include <string>

namespace tokenledger {
namespace {

std::optional<uint64_t> readNumber(const std::string& path) {
  std::ifstream in(path);
  uint64_t v = 0;
  if (in >> v) return v;
  return std::nullopt;  // absent, or "max" (cgroup v2: no limit)
}

// What the memory cgroup still allows: limit minus usage, or nullopt without a
// limit. Version 2, then version 1; the process's own group (from /proc/self/cgroup),
// else the hierarchy's root, which is the container's own group in a container.
std::optional<uint64_t> cgroupHeadroom(const std::string& root) {
  std::string v2Path, v1Path;
  std::ifstream in(root + "/proc/self/cgroup");
  for (std::string line; std::getline(in, line);) {
    if (line.starts_with("0::")) v2Path = line.substr(3);
    auto memory = line.find(":memory:");
    if (memory != std::string::npos) v1Path = line.substr(memory + 8);
  }
  const std::string v2 = root + "/sys/fs/cgroup", v1 = root + "/sys/fs/cgroup/memory";
  const std::pair<std::string, std::string> files[] = {
      {v2 + v2Path + "/memory.max", v2 + v2Path + "/memory.current"},
      {v2 + "/memory.max", v2 + "/memory.current"},
      {v1 + v1Path + "/memory.limit_in_bytes", v1 + v1Path + "/memory.usage_in_bytes"},
      {v1 + "/memory.limit_in_bytes", v1 + "/memory.usage_in_bytes"}};
  for (const auto& [limitFile, usageFile] : files) {
    auto limit = readNumber(limitFile), usage = readNumber(usageFile);
    // No limit is written as "max" (v2) or as a huge number (v1).
    if (limit && usage && *limit < (uint64_t{1} << 60))
      return *limit > *usage ? *limit - *usage : 0;
  }
  return std::nullopt;
}

}  // namespace

std::optional<uint64_t> availableMemoryBytes(const std::string& root) {
  std::optional<uint64_t> available;
  std::ifstream in(root + "/proc/meminfo");
  std::string name;
  uint64_t kb = 0;
  while (in >> name >> kb) {
    if (name == "MemAvailable:") {
      available = kb * 1024;
      break;
    }
    in.ignore(256, '\n');
  }
  if (auto headroom = cgroupHeadroom(root); headroom && (!available || *headroom < *available))
    available = headroom;
  return available;
}

size_t rebuildChunkRecords(std::optional<uint64_t> availableBytes) {
  // About what a record costs while its batch is applied (the record, its decoded
  // view, its slot and token, sort entries and encoded values).
  constexpr uint64_t kBytesPerRecord = 1536;
  constexpr size_t kMin = size_t{1} << 16, kMax = size_t{1} << 20;
  if (!availableBytes) return size_t{1} << 18;  // unknown: a few hundred MB
  return std::clamp<size_t>(*availableBytes / 4 / kBytesPerRecord, kMin, kMax);
}

}  // namespace tokenledger
