// Conversions between the domain's types (events/event.h) and the wire schema's
// (schemas/tokenledger.capnp): for the encoders of events and of stored token state.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstring>
#include <optional>
#include <stdexcept>

#include "events/event.h"
#include "events/times.h"
#include "schemas/tokenledger.capnp.h"

namespace tokenledger {

inline schema::TokenKind toSchema(TokenKind k) {
  return k == TokenKind::user ? schema::TokenKind::USER : schema::TokenKind::DESTINATION;
}
// Throws std::runtime_error for a value this build does not know.
inline TokenKind fromSchema(schema::TokenKind k) {
  if (k == schema::TokenKind::USER) return TokenKind::user;
  if (k == schema::TokenKind::DESTINATION) return TokenKind::destination;
  throw std::runtime_error("unknown token kind");
}
inline schema::DeactivationReason toSchema(Reason r) {
  return static_cast<schema::DeactivationReason>(r);
}
// Throws std::runtime_error for a value this build does not know.
inline Reason fromSchema(schema::DeactivationReason r) {
  auto v = static_cast<uint16_t>(r);
  if (v > static_cast<uint16_t>(Reason::bulk)) throw std::runtime_error("unknown reason");
  return static_cast<Reason>(v);
}

// Times: Int64 microseconds since the Unix epoch, where 0 means "absent"
// (schemas/tokenledger.capnp; the stored token state follows it). The one
// conversion between Timestamp and the wire, for the encoders and decoders.
inline int64_t toSchema(Timestamp t) {
  return t.time_since_epoch().count();
}
// An absent time is 0 (and so is a present epoch: the wire cannot tell them apart).
inline int64_t toSchema(const std::optional<Timestamp>& t) {
  return t ? toSchema(*t) : 0;
}
inline Timestamp timeFromSchema(int64_t us) {
  return Timestamp{std::chrono::microseconds{us}};
}
// 0 is absent; any other value is a time (one before the epoch too: checkEvent
// judges it, and encoding it again gives the same bytes).
inline std::optional<Timestamp> optionalTimeFromSchema(int64_t us) {
  if (us == 0) return std::nullopt;
  return timeFromSchema(us);
}

// A stored secret hash; throws std::runtime_error unless it is 32 bytes.
inline SecretHash hashFrom(capnp::Data::Reader d) {
  SecretHash h{};
  if (d.size() != h.size()) throw std::runtime_error("secret hash has wrong length");
  memcpy(h.data(), d.begin(), h.size());
  return h;
}

}  // namespace tokenledger
