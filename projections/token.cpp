#include "projections/token.h"

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/exception.h>

#include <cstring>
#include <stdexcept>

#include "events/capnp_util.h"
#include "events/schema_convert.h"
#include "projections/token_state.capnp.h"

namespace tokenledger {

size_t encodedTokenBound(const Token& t) {
  // A token with every text empty (the hash is always 32 bytes), measured once; then
  // what each text adds: its bytes and NUL, padded to words, beyond the empty one's.
  static const size_t kEmpty = encodeToken(Token{}).size();
  auto more = [](size_t n) { return (n + 1 + 7) / 8 * 8 - 8; };
  return kEmpty + more(t.key.size()) + more(t.owner.size()) + more(t.destinationId.size()) +
         more(t.description.size()) + more(t.replaces.size()) + more(t.replacedBy.size()) +
         more(t.idempotencyKey.size());
}

std::string encodeToken(const Token& t) {
  capnp::MallocMessageBuilder message(firstSegmentWords(
      t.key.size() + t.owner.size() + t.destinationId.size() + t.description.size() +
      t.replaces.size() + t.replacedBy.size() + t.idempotencyKey.size() + 256));
  auto b = message.initRoot<projection::TokenState>();
  b.setKey(textOf(t.key));
  b.setOwner(textOf(t.owner));
  b.setKind(toSchema(t.kind));
  b.setDestinationId(textOf(t.destinationId));
  b.setDescription(textOf(t.description));
  b.setActive(t.active);
  b.setSecretHash(kj::arrayPtr(t.secretHash.data(), t.secretHash.size()));
  b.setHashAlgorithm(schema::HashAlgorithm::BLAKE2B256);
  b.setCreatedAtUs(toSchema(t.createdAt));
  b.setUpdatedAtUs(toSchema(t.updatedAt));
  b.setExpiresAtUs(toSchema(t.expiresAt));
  b.setDeactivateAtUs(toSchema(t.deactivateAt));
  b.setDeactivationReason(toSchema(t.deactivationReason));
  b.setReplaces(textOf(t.replaces));
  b.setReplacedBy(textOf(t.replacedBy));
  b.setEventCount(t.eventCount);
  if (!t.idempotencyKey.empty()) b.setIdempotencyKey(textOf(t.idempotencyKey));
  return toBytes(message);
}

Token decodeToken(std::string_view bytes) {
  try {
    std::vector<uint64_t> copy;
    capnp::FlatArrayMessageReader reader(wordsOf(bytes, copy));
    auto r = reader.getRoot<projection::TokenState>();
    Token t;
    t.key = std::string(viewOf(r.getKey()));
    t.owner = std::string(viewOf(r.getOwner()));
    t.kind = fromSchema(r.getKind());
    t.destinationId = std::string(viewOf(r.getDestinationId()));
    t.description = std::string(viewOf(r.getDescription()));
    t.active = r.getActive();
    t.secretHash = hashFrom(r.getSecretHash());
    t.createdAt = timeFromSchema(r.getCreatedAtUs());
    t.updatedAt = timeFromSchema(r.getUpdatedAtUs());
    t.expiresAt = optionalTimeFromSchema(r.getExpiresAtUs());
    t.deactivateAt = optionalTimeFromSchema(r.getDeactivateAtUs());
    t.deactivationReason = fromSchema(r.getDeactivationReason());
    t.replaces = std::string(viewOf(r.getReplaces()));
    t.replacedBy = std::string(viewOf(r.getReplacedBy()));
    t.eventCount = r.getEventCount();
    t.idempotencyKey = std::string(viewOf(r.getIdempotencyKey()));
    return t;
  } catch (const kj::Exception& ex) {
    throw std::runtime_error(std::string("corrupt token state in read model: ") +
                             ex.getDescription().cStr());
  }
}

Status statusAt(const Token& t, Timestamp now) {
  return statusAt(t.active, t.expiresAt, t.deactivateAt, now);
}

std::string_view toString(Conflict conflict) {
  switch (conflict) {
    case Conflict::none:
      return "none";
    case Conflict::stale:
      return "stale";
    case Conflict::alreadyRotated:
      return "already rotated";
    case Conflict::rotationLost:
      return "rotation lost";
    case Conflict::duplicateRequest:
      return "duplicate request";
  }
  return "stale";
}

Conflict conflictOf(const std::optional<Token>& current, const Token* predecessor,
                    const EventView& event) {
  const uint32_t based = event.basedOnVersion;
  if (const auto* c = std::get_if<CreatedView>(&event.body)) {
    if (based == 0 || c->replaces.empty()) return Conflict::none;
    // A rotation: the predecessor must be the owner's, not rotated yet, and unchanged.
    if (!predecessor || predecessor->owner != event.owner) return Conflict::stale;
    if (!predecessor->replacedBy.empty()) return Conflict::alreadyRotated;
    return versionOf(*predecessor) == based ? Conflict::none : Conflict::stale;
  }
  if (const auto* d = std::get_if<Deactivated>(&event.body); d && !d->rotatedTo.empty()) {
    if (!current || current->replacedBy != d->rotatedTo) return Conflict::rotationLost;
  }
  if (based == 0) return Conflict::none;
  if (!current || current->owner != event.owner) return Conflict::none;  // does not apply
  return versionOf(*current) == based ? Conflict::none : Conflict::stale;
}

std::optional<Token> applyEvent(const std::optional<Token>& current, const Event& event) {
  return applyEvent(current, view(event));
}

std::optional<Token> applyEvent(const std::optional<Token>& current, const EventView& event) {
  if (const auto* c = std::get_if<CreatedView>(&event.body)) {
    if (current) return std::nullopt;
    Token t;
    t.key = event.tokenKey;
    t.owner = event.owner;
    t.kind = c->kind;
    t.destinationId = c->destinationId;
    t.description = c->description;
    t.active = true;
    t.secretHash = c->secretHash;
    t.createdAt = event.occurredAt;
    t.updatedAt = event.occurredAt;
    t.expiresAt = c->expiresAt;
    t.replaces = c->replaces;
    t.eventCount = 1;
    t.idempotencyKey = event.idempotencyKey;
    return t;
  }
  if (!current || current->owner != event.owner) return std::nullopt;
  Token t = *current;
  t.updatedAt = event.occurredAt;
  t.eventCount++;
  if (std::holds_alternative<Activated>(event.body)) {
    t.active = true;
    t.deactivateAt.reset();  // activation also cancels a scheduled deactivation
  } else {
    const auto& d = std::get<Deactivated>(event.body);
    const Timestamp effective = effectiveAt(d, event.occurredAt);
    t.deactivationReason = d.reason;
    bool inService = t.active && (!t.deactivateAt || *t.deactivateAt > event.occurredAt);
    if (!inService) {
      // Already out of service (deactivated, or its grace period is over): another
      // deactivation never brings it back, whatever its effective time; it can only
      // move the recorded end earlier (a compromise discovered late).
      t.active = false;
      if (!t.deactivateAt || effective < *t.deactivateAt) t.deactivateAt = effective;
    } else {
      // A deactivation effective later (rotation grace period) keeps the token active
      // until then; one effective now or in the past ends it at once.
      t.deactivateAt = effective;
      t.active = effective > event.occurredAt;
    }
  }
  return t;
}

}  // namespace tokenledger
