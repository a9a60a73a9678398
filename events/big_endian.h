#pragma once
// Big-endian integers, the byte order of every number in a key of our LMDB files:
// LMDB compares keys as bytes, so big-endian keys sort like the numbers they hold.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace tokenledger {

// Appends the low `bytes` bytes of v, most significant first.
inline void appendBigEndian(std::string& out, uint64_t v, size_t bytes) {
  for (size_t i = bytes; i-- > 0;) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

// Reads all of `bytes` (at most 8) as one big-endian number; the caller checks the size.
inline uint64_t readBigEndian(std::string_view bytes) {
  uint64_t v = 0;
  for (unsigned char c : bytes) v = (v << 8) | c;
  return v;
}

}  // namespace tokenledger
