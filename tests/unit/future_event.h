// Events written with tests/unit/future.capnp: what a newer producer puts on the log.
#pragma once

#include <capnp/message.h>
#include <capnp/serialize.h>

#include <chrono>
#include <string>

#include "events/secrets.h"
#include "events/times.h"
#include "tests/unit/future.capnp.h"

namespace tokenledger::test {

namespace detail {
inline std::string flatten(capnp::MessageBuilder& message) {
  auto words = capnp::messageToFlatArray(message);
  auto bytes = words.asBytes();
  return std::string(reinterpret_cast<const char*>(bytes.begin()), bytes.size());
}
inline void fillEnvelope(future::Envelope::Builder env, const std::string& eventId,
                         const std::string& key, const std::string& owner, Timestamp at) {
  env.setEventId(
      kj::arrayPtr(reinterpret_cast<const capnp::byte*>(eventId.data()), eventId.size()));
  env.setTokenKey(key);
  env.setOwner(owner);
  env.setActor("operator");
  env.setRequestId("req-future");
  env.setOccurredAtUs(at.time_since_epoch().count());
  env.setSchemaVersion(2);
}
}  // namespace detail

// An envelope whose event is the union member `revoked @12`, unknown to this build.
inline std::string encodeRevoked(const std::string& eventId, const std::string& key,
                                 const std::string& owner, Timestamp at) {
  capnp::MallocMessageBuilder message;
  auto env = message.initRoot<future::Envelope>();
  detail::fillEnvelope(env, eventId, key, owner, at);
  env.initEvent().initRevoked().setNote("revoked by a newer producer");
  return detail::flatten(message);
}

// A `created` envelope written with the future schema: this build must read it.
inline std::string encodeFutureCreated(const std::string& eventId, const std::string& key,
                                       const std::string& owner, Timestamp at,
                                       const SecretHash& hash) {
  capnp::MallocMessageBuilder message;
  auto env = message.initRoot<future::Envelope>();
  detail::fillEnvelope(env, eventId, key, owner, at);
  auto c = env.initEvent().initCreated();
  c.setKind(future::TokenKind::DESTINATION);
  c.setDestinationId("dest-7");
  c.setDescription("from the future");
  c.setSecretHash(kj::arrayPtr(hash.data(), hash.size()));
  c.setExpiresAtUs((at + std::chrono::milliseconds{1}).time_since_epoch().count());
  c.setReplaces("");
  return detail::flatten(message);
}

}  // namespace tokenledger::test
