// Cap'n Proto reads a message as whole, aligned words; LMDB values and Kafka
// payloads need be neither.
#pragma once

#include <capnp/common.h>
#include <kj/common.h>

#include <cstdint>
#include <cstring>
#include <string_view>
#include <vector>

namespace tokenledger {

// `bytes` as words: in place when they are aligned whole words, else copied into
// `copy` (zero-padded to a whole word). Valid while both live.
inline kj::ArrayPtr<const capnp::word> wordsOf(std::string_view bytes,
                                               std::vector<uint64_t>& copy) {
  constexpr size_t kWord = sizeof(capnp::word);
  if (bytes.size() % kWord == 0 && reinterpret_cast<uintptr_t>(bytes.data()) % kWord == 0)
    return kj::arrayPtr(reinterpret_cast<const capnp::word*>(bytes.data()), bytes.size() / kWord);
  copy.assign((bytes.size() + kWord - 1) / kWord, 0);
  memcpy(copy.data(), bytes.data(), bytes.size());
  return kj::arrayPtr(reinterpret_cast<const capnp::word*>(copy.data()), copy.size());
}

}  // namespace tokenledger
