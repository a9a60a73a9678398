// How much memory a rebuild may use: what the machine (or the container) still
// has, and how many records a rebuild transaction may hold within it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace tokenledger {

// The memory this process may still use: MemAvailable, or less when its memory
// cgroup (a container's limit) leaves less; nullopt when neither is known. `root`
// prefixes the /proc and /sys paths read (tests).
std::optional<uint64_t> availableMemoryBytes(const std::string& root = "");

// Records per rebuild transaction: as many as a quarter of `availableBytes` holds
// while they are applied, between 2^16 and 2^20 (a batch also reserves up to 2 KB
// of disk per record, see ReadModelOptions); 2^18 when unknown.
size_t rebuildChunkRecords(std::optional<uint64_t> availableBytes);

}  // namespace tokenledger
