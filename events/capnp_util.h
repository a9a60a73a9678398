// Small helpers for Cap'n Proto messages held in std::strings: LMDB values and
// Kafka payloads need be neither aligned nor whole words, and the project's text
// and blobs are std::string_views.
#pragma once

#include <capnp/common.h>
#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/common.h>

#include <cstdint>
#include <cstring>
#include <string>
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

inline kj::ArrayPtr<const capnp::byte> bytesOf(std::string_view s) {
  return kj::arrayPtr(reinterpret_cast<const capnp::byte*>(s.data()), s.size());
}
// Views into the message: valid while it lives.
inline std::string_view viewOf(capnp::Data::Reader d) {
  return std::string_view(reinterpret_cast<const char*>(d.begin()), d.size());
}
inline std::string_view viewOf(capnp::Text::Reader t) {
  return std::string_view(t.begin(), t.size());
}
inline capnp::Text::Reader textOf(const std::string& s) {
  return capnp::Text::Reader(s.data(), s.size());
}

// Sizes a builder's first segment for a message of about `payloadBytes` of text and
// data: the default (8 KiB, zeroed) costs more than encoding a few hundred bytes.
// Estimates that fall short just add a segment.
inline unsigned firstSegmentWords(size_t payloadBytes) {
  return static_cast<unsigned>(32 + (payloadBytes + 7) / 8 * 2);
}

// The message in Cap'n Proto's standard unpacked framing.
inline std::string toBytes(capnp::MessageBuilder& message) {
  kj::Array<capnp::word> words = capnp::messageToFlatArray(message);
  auto bytes = words.asBytes();
  return std::string(reinterpret_cast<const char*>(bytes.begin()), bytes.size());
}

}  // namespace tokenledger
