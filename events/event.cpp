#include "events/event.h"

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/exception.h>

#include <cstring>
#include <stdexcept>

#include "events/capnp_words.h"
#include "events/rules.h"
#include "schemas/tokenledger.capnp.h"

namespace tokenledger {
namespace {

namespace s = schema;

kj::ArrayPtr<const capnp::byte> bytesOf(std::string_view s) {
  return kj::arrayPtr(reinterpret_cast<const capnp::byte*>(s.data()), s.size());
}
std::string_view viewOf(capnp::Data::Reader d) {
  return std::string_view(reinterpret_cast<const char*>(d.begin()), d.size());
}
std::string_view viewOf(capnp::Text::Reader t) {
  return std::string_view(t.begin(), t.size());
}
capnp::Text::Reader textOf(const std::string& s) {
  return capnp::Text::Reader(s.data(), s.size());
}

// Sizes the builder's first segment for the message at hand: the default (8 KiB,
// zeroed) costs more than encoding a few hundred bytes. Estimates that fall short
// just add a segment.
unsigned firstSegmentWords(size_t payloadBytes) {
  return static_cast<unsigned>(32 + (payloadBytes + 7) / 8 * 2);
}

std::string toBytes(capnp::MessageBuilder& message) {
  kj::Array<capnp::word> words = capnp::messageToFlatArray(message);
  auto bytes = words.asBytes();
  return std::string(reinterpret_cast<const char*>(bytes.begin()), bytes.size());
}

std::string_view typeNameOf(bool created, bool activated) {
  return created ? "created" : activated ? "activated" : "deactivated";
}

SecretHash hashFrom(capnp::Data::Reader d) {
  SecretHash h{};
  if (d.size() != h.size()) throw std::runtime_error("secret hash has wrong length");
  memcpy(h.data(), d.begin(), h.size());
  return h;
}

s::TokenKind toSchema(TokenKind k) {
  return k == TokenKind::user ? s::TokenKind::USER : s::TokenKind::DESTINATION;
}
TokenKind fromSchema(s::TokenKind k) {
  if (k == s::TokenKind::USER) return TokenKind::user;
  if (k == s::TokenKind::DESTINATION) return TokenKind::destination;
  throw std::runtime_error("unknown token kind");
}
s::DeactivationReason toSchema(Reason r) {
  return static_cast<s::DeactivationReason>(r);
}
Reason fromSchema(s::DeactivationReason r) {
  auto v = static_cast<uint16_t>(r);
  if (v > static_cast<uint16_t>(Reason::bulk)) throw std::runtime_error("unknown reason");
  return static_cast<Reason>(v);
}

}  // namespace

std::string_view toString(TokenKind kind) {
  return kind == TokenKind::user ? "user" : "destination";
}

std::string_view toString(Reason reason) {
  switch (reason) {
    case Reason::manual:
      return "manual";
    case Reason::rotation:
      return "rotation";
    case Reason::compromised:
      return "compromised";
    case Reason::expired:
      return "expired";
    case Reason::bulk:
      return "bulk";
  }
  return "manual";
}

std::optional<TokenKind> parseKind(std::string_view s) {
  if (s == "user") return TokenKind::user;
  if (s == "destination") return TokenKind::destination;
  return std::nullopt;
}

std::optional<Reason> parseReason(std::string_view s) {
  for (auto r :
       {Reason::manual, Reason::rotation, Reason::compromised, Reason::expired, Reason::bulk})
    if (toString(r) == s) return r;
  return std::nullopt;
}

std::string_view toString(Status status) {
  switch (status) {
    case Status::active:
      return "active";
    case Status::inactive:
      return "inactive";
    case Status::expired:
      return "expired";
  }
  return "inactive";
}

std::string_view Event::typeName() const {
  return typeNameOf(std::holds_alternative<Created>(body), std::holds_alternative<Activated>(body));
}

std::string encodeEvent(const Event& event) {
  capnp::MallocMessageBuilder message(firstSegmentWords(
      event.eventId.size() + event.tokenKey.size() + event.owner.size() + event.actor.size() +
      event.requestId.size() + event.signature.size() + event.signingKeyId.size() + 256));
  auto env = message.initRoot<s::Envelope>();
  env.setEventId(bytesOf(event.eventId));
  env.setTokenKey(textOf(event.tokenKey));
  env.setOwner(textOf(event.owner));
  env.setActor(textOf(event.actor));
  env.setRequestId(textOf(event.requestId));
  env.setOccurredAtUs(event.occurredAtUs);
  env.setSchemaVersion(event.schemaVersion);
  if (!event.signature.empty()) env.setSignature(bytesOf(event.signature));
  if (!event.signingKeyId.empty()) env.setSigningKeyId(textOf(event.signingKeyId));
  env.setWriterSeq(event.writerSeq);
  if (!event.prevDigest.empty()) env.setPrevDigest(bytesOf(event.prevDigest));
  if (auto* c = std::get_if<Created>(&event.body)) {
    auto b = env.initEvent().initCreated();
    b.setKind(toSchema(c->kind));
    b.setDestinationId(textOf(c->destinationId));
    b.setDescription(textOf(c->description));
    b.setSecretHash(kj::arrayPtr(c->secretHash.data(), c->secretHash.size()));
    b.setHashAlgorithm(s::HashAlgorithm::BLAKE2B256);
    b.setExpiresAtUs(c->expiresAtUs);
    b.setReplaces(textOf(c->replaces));
  } else if (std::holds_alternative<Activated>(event.body)) {
    env.initEvent().initActivated();
  } else {
    const auto& d = std::get<Deactivated>(event.body);
    auto b = env.initEvent().initDeactivated();
    b.setReason(toSchema(d.reason));
    b.setEffectiveAtUs(d.effectiveAtUs);
  }
  return toBytes(message);
}

namespace {

// Reads and checks the fields every decoder needs; views point into the message.
std::optional<DecodeError> readCore(s::Envelope::Reader env, EventView& e) {
  e.eventId = viewOf(env.getEventId());
  e.tokenKey = viewOf(env.getTokenKey());
  e.owner = viewOf(env.getOwner());
  e.occurredAtUs = env.getOccurredAtUs();
  // Read (and so bounds-checked) for both decoders, though only decodeEvent keeps
  // them: a record one decoder refuses, the other must refuse too.
  (void)env.getActor();
  (void)env.getRequestId();
  (void)env.getSignature();
  (void)env.getSigningKeyId();
  (void)env.getPrevDigest();
  if (e.eventId.size() != 16 || e.tokenKey.empty() || e.owner.empty())
    return DecodeError{DecodeError::Kind::malformed, "envelope lacks event id, key or owner"};
  auto ev = env.getEvent();
  switch (ev.which()) {
    case s::Envelope::Event::CREATED: {
      auto c = ev.getCreated();
      CreatedView out;
      out.kind = fromSchema(c.getKind());
      out.destinationId = viewOf(c.getDestinationId());
      out.description = viewOf(c.getDescription());
      if (c.getHashAlgorithm() != s::HashAlgorithm::BLAKE2B256)
        return DecodeError{DecodeError::Kind::unknownType, "unknown secret hash algorithm"};
      out.secretHash = hashFrom(c.getSecretHash());
      out.expiresAtUs = c.getExpiresAtUs();
      out.replaces = viewOf(c.getReplaces());
      e.body = out;
      return std::nullopt;
    }
    case s::Envelope::Event::ACTIVATED:
      e.body = Activated{};
      return std::nullopt;
    case s::Envelope::Event::DEACTIVATED: {
      auto d = ev.getDeactivated();
      e.body = Deactivated{fromSchema(d.getReason()), d.getEffectiveAtUs()};
      return std::nullopt;
    }
    default:
      return DecodeError{DecodeError::Kind::unknownType,
                         "unknown event type " + std::to_string(static_cast<int>(ev.which())) +
                             " (written by a newer schema version?)"};
  }
}

// Parses `bytes` as an envelope and hands it to `read`, turning every way a
// message can be broken into DecodeError::malformed.
template <typename Result, typename Read>
Result withEnvelope(std::string_view bytes, std::vector<uint64_t>& copy, Read read) {
  if (bytes.empty() || bytes.size() % 8 != 0)
    return DecodeError{DecodeError::Kind::malformed,
                       "not a Cap'n Proto message (size " + std::to_string(bytes.size()) + ")"};
  try {
    capnp::FlatArrayMessageReader reader(wordsOf(bytes, copy));
    return read(reader.getRoot<s::Envelope>());
  } catch (const kj::Exception& ex) {
    return DecodeError{DecodeError::Kind::malformed,
                       std::string("invalid Cap'n Proto message: ") + ex.getDescription().cStr()};
  } catch (const std::exception& ex) {
    return DecodeError{DecodeError::Kind::malformed, ex.what()};
  }
}

}  // namespace

std::string_view EventView::typeName() const {
  return typeNameOf(std::holds_alternative<CreatedView>(body),
                    std::holds_alternative<Activated>(body));
}

EventView view(const Event& event) {
  EventView v;
  v.eventId = event.eventId;
  v.tokenKey = event.tokenKey;
  v.owner = event.owner;
  v.occurredAtUs = event.occurredAtUs;
  if (const auto* c = std::get_if<Created>(&event.body))
    v.body = CreatedView{c->kind,       c->destinationId, c->description,
                         c->secretHash, c->expiresAtUs,   c->replaces};
  else if (std::holds_alternative<Activated>(event.body))
    v.body = Activated{};
  else
    v.body = std::get<Deactivated>(event.body);
  return v;
}

DecodedView decodeEventView(std::string_view bytes) {
  EventView v;
  return withEnvelope<DecodedView>(bytes, v.copy, [&](s::Envelope::Reader env) -> DecodedView {
    if (auto err = readCore(env, v)) return std::move(*err);
    return std::move(v);
  });
}

Decoded decodeEvent(std::string_view bytes) {
  std::vector<uint64_t> copy;
  return withEnvelope<Decoded>(bytes, copy, [&](s::Envelope::Reader env) -> Decoded {
    EventView v;
    if (auto err = readCore(env, v)) return std::move(*err);
    Event e;
    e.eventId = v.eventId;
    e.tokenKey = v.tokenKey;
    e.owner = v.owner;
    e.actor = viewOf(env.getActor());
    e.requestId = viewOf(env.getRequestId());
    e.occurredAtUs = v.occurredAtUs;
    e.schemaVersion = env.getSchemaVersion();
    e.signature = viewOf(env.getSignature());
    e.signingKeyId = viewOf(env.getSigningKeyId());
    e.writerSeq = env.getWriterSeq();
    e.prevDigest = viewOf(env.getPrevDigest());
    if (const auto* c = std::get_if<CreatedView>(&v.body))
      e.body = Created{
          c->kind,        std::string(c->destinationId), std::string(c->description), c->secretHash,
          c->expiresAtUs, std::string(c->replaces)};
    else if (std::holds_alternative<Activated>(v.body))
      e.body = Activated{};
    else
      e.body = std::get<Deactivated>(v.body);
    return e;
  });
}

size_t encodedTokenBound(const Token& t) {
  // Segment table, root pointer, data and pointer sections, then each blob padded
  // to words (text has a terminating NUL).
  auto blob = [](size_t n) { return (n + 1 + 7) / 8 * 8; };
  return 8 + 8 + 8 * s::TokenState::_capnpPrivate::dataWordSize +
         8 * s::TokenState::_capnpPrivate::pointerCount + blob(t.key.size()) +
         blob(t.owner.size()) + blob(t.destinationId.size()) + blob(t.description.size()) +
         blob(t.secretHash.size()) + blob(t.replaces.size()) + blob(t.replacedBy.size());
}

std::string encodeToken(const Token& t) {
  capnp::MallocMessageBuilder message(
      firstSegmentWords(t.key.size() + t.owner.size() + t.destinationId.size() +
                        t.description.size() + t.replaces.size() + t.replacedBy.size() + 256));
  auto b = message.initRoot<s::TokenState>();
  b.setKey(textOf(t.key));
  b.setOwner(textOf(t.owner));
  b.setKind(toSchema(t.kind));
  b.setDestinationId(textOf(t.destinationId));
  b.setDescription(textOf(t.description));
  b.setActive(t.active);
  b.setSecretHash(kj::arrayPtr(t.secretHash.data(), t.secretHash.size()));
  b.setHashAlgorithm(s::HashAlgorithm::BLAKE2B256);
  b.setCreatedAtUs(t.createdAtUs);
  b.setUpdatedAtUs(t.updatedAtUs);
  b.setExpiresAtUs(t.expiresAtUs);
  b.setDeactivateAtUs(t.deactivateAtUs);
  b.setDeactivationReason(toSchema(t.deactivationReason));
  b.setReplaces(textOf(t.replaces));
  b.setReplacedBy(textOf(t.replacedBy));
  b.setEventCount(t.eventCount);
  return toBytes(message);
}

Token decodeToken(std::string_view bytes) {
  try {
    std::vector<uint64_t> copy;
    capnp::FlatArrayMessageReader reader(wordsOf(bytes, copy));
    auto r = reader.getRoot<s::TokenState>();
    Token t;
    t.key = std::string(viewOf(r.getKey()));
    t.owner = std::string(viewOf(r.getOwner()));
    t.kind = fromSchema(r.getKind());
    t.destinationId = std::string(viewOf(r.getDestinationId()));
    t.description = std::string(viewOf(r.getDescription()));
    t.active = r.getActive();
    t.secretHash = hashFrom(r.getSecretHash());
    t.createdAtUs = r.getCreatedAtUs();
    t.updatedAtUs = r.getUpdatedAtUs();
    t.expiresAtUs = r.getExpiresAtUs();
    t.deactivateAtUs = r.getDeactivateAtUs();
    t.deactivationReason = fromSchema(r.getDeactivationReason());
    t.replaces = std::string(viewOf(r.getReplaces()));
    t.replacedBy = std::string(viewOf(r.getReplacedBy()));
    t.eventCount = r.getEventCount();
    return t;
  } catch (const kj::Exception& ex) {
    throw std::runtime_error(std::string("corrupt token state in read model: ") +
                             ex.getDescription().cStr());
  }
}

Status statusAt(const Token& t, int64_t nowUs) {
  if (t.expiresAtUs != 0 && nowUs >= t.expiresAtUs) return Status::expired;
  if (!t.active) return Status::inactive;
  if (t.deactivateAtUs != 0 && nowUs >= t.deactivateAtUs) return Status::inactive;
  return Status::active;
}

std::optional<std::string> checkEvent(const EventView& event) {
  if (!isWellFormedKey(event.tokenKey)) return "the token key is not of the form tlk_...";
  if (auto err = checkUserId(event.owner)) return "owner: " + *err;
  if (event.occurredAtUs <= 0) return "occurredAtUs must be a time after 1970";
  const auto* c = std::get_if<CreatedView>(&event.body);
  if (!c) return std::nullopt;
  if (auto err = checkStoredDescription(c->description)) return *err;
  if (c->kind == TokenKind::destination) {
    if (auto err = checkDestinationId(c->destinationId)) return *err;
  } else if (!c->destinationId.empty()) {
    return "a user token has no destination id";
  }
  if (c->expiresAtUs < 0) return "expiresAtUs must be 0 (never) or a time after 1970";
  if (!c->replaces.empty() && (!isWellFormedKey(c->replaces) || c->replaces == event.tokenKey))
    return "replaces must be another token's key";
  return std::nullopt;
}

int64_t effectiveAt(const Deactivated& d, int64_t occurredAtUs) {
  return d.effectiveAtUs > 0 ? d.effectiveAtUs : occurredAtUs;
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
    t.createdAtUs = event.occurredAtUs;
    t.updatedAtUs = event.occurredAtUs;
    t.expiresAtUs = c->expiresAtUs;
    t.replaces = c->replaces;
    t.eventCount = 1;
    return t;
  }
  if (!current || current->owner != event.owner) return std::nullopt;
  Token t = *current;
  t.updatedAtUs = event.occurredAtUs;
  t.eventCount++;
  if (std::holds_alternative<Activated>(event.body)) {
    t.active = true;
    t.deactivateAtUs = 0;  // activation also cancels a scheduled deactivation
  } else {
    const auto& d = std::get<Deactivated>(event.body);
    const int64_t effective = effectiveAt(d, event.occurredAtUs);
    t.deactivationReason = d.reason;
    bool inService = t.active && (t.deactivateAtUs == 0 || t.deactivateAtUs > event.occurredAtUs);
    if (!inService) {
      // Already out of service (deactivated, or its grace period is over): another
      // deactivation never brings it back, whatever its effective time; it can only
      // move the recorded end earlier (a compromise discovered late).
      t.active = false;
      if (t.deactivateAtUs == 0 || effective < t.deactivateAtUs) t.deactivateAtUs = effective;
    } else {
      // A deactivation effective later (rotation grace period) keeps the token active
      // until then; one effective now or in the past ends it at once.
      t.deactivateAtUs = effective;
      t.active = effective > event.occurredAtUs;
    }
  }
  return t;
}

}  // namespace tokenledger
