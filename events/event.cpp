#include "events/event.h"

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/exception.h>

#include <cstring>
#include <stdexcept>

#include "events/capnp_util.h"
#include "events/rules.h"
#include "events/schema_convert.h"
#include "schemas/tokenledger.capnp.h"

namespace tokenledger {
namespace {

namespace s = schema;

template <typename Body>
std::string_view typeNameOf(const Body& body) {
  switch (body.index()) {
    case 0:
      return "created";
    case 1:
      return "activated";
    case 2:
      return "deactivated";
    default:
      return "writer_certified";
  }
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

std::string_view Event::typeName() const {
  return typeNameOf(body);
}

std::string encodeEvent(const Event& event) {
  capnp::MallocMessageBuilder message(
      firstSegmentWords(event.eventId.size() + event.tokenKey.size() + event.owner.size() +
                        event.actor.size() + event.requestId.size() + event.signature.size() +
                        event.signingKeyId.size() + event.idempotencyKey.size() +
                        event.groupSignature.size() + event.groupProof.size() * 40 + 320));
  auto env = message.initRoot<s::Envelope>();
  env.setEventId(bytesOf(event.eventId));
  env.setTokenKey(textOf(event.tokenKey));
  env.setOwner(textOf(event.owner));
  env.setActor(textOf(event.actor));
  env.setRequestId(textOf(event.requestId));
  env.setOccurredAtUs(toSchema(event.occurredAt));
  env.setSchemaVersion(event.schemaVersion);
  if (!event.signature.empty()) env.setSignature(bytesOf(event.signature));
  if (!event.signingKeyId.empty()) env.setSigningKeyId(textOf(event.signingKeyId));
  env.setWriterSeq(event.writerSeq);
  if (!event.prevDigest.empty()) env.setPrevDigest(bytesOf(event.prevDigest));
  env.setBasedOnVersion(event.basedOnVersion);
  if (!event.idempotencyKey.empty()) env.setIdempotencyKey(textOf(event.idempotencyKey));
  if (!event.requestDigest.empty()) env.setRequestDigest(bytesOf(event.requestDigest));
  if (!event.groupSignature.empty()) env.setGroupSignature(bytesOf(event.groupSignature));
  if (!event.groupProof.empty()) {
    auto proof = env.initGroupProof(static_cast<unsigned>(event.groupProof.size()));
    for (unsigned i = 0; i < proof.size(); ++i) proof.set(i, bytesOf(event.groupProof[i]));
  }
  env.setGroupLeaf(event.groupLeaf);
  env.setGroupSize(event.groupSize);
  if (auto* c = std::get_if<Created>(&event.body)) {
    auto b = env.initEvent().initCreated();
    b.setKind(toSchema(c->kind));
    b.setDestinationId(textOf(c->destinationId));
    b.setDescription(textOf(c->description));
    b.setSecretHash(kj::arrayPtr(c->secretHash.data(), c->secretHash.size()));
    b.setHashAlgorithm(s::HashAlgorithm::BLAKE2B256);
    b.setExpiresAtUs(toSchema(c->expiresAt));
    b.setReplaces(textOf(c->replaces));
  } else if (std::holds_alternative<Activated>(event.body)) {
    env.initEvent().initActivated();
  } else if (const auto* d = std::get_if<Deactivated>(&event.body)) {
    auto b = env.initEvent().initDeactivated();
    b.setReason(toSchema(d->reason));
    b.setEffectiveAtUs(toSchema(d->effectiveAt));
    if (!d->rotatedTo.empty()) b.setRotatedTo(textOf(d->rotatedTo));
  } else {
    const auto& c = std::get<WriterCertificate>(event.body);
    auto b = env.initEvent().initWriterCertified();
    b.setWriterKey(bytesOf(c.writerKey));
    b.setRootKeyId(textOf(c.rootKeyId));
    b.setIssuedAtUs(c.issuedAtUs);
    b.setRootSignature(bytesOf(c.rootSignature));
  }
  return toBytes(message);
}

namespace {

// Reads and checks the fields every decoder needs; views point into the message.
std::optional<DecodeError> readCore(s::Envelope::Reader env, EventView& e) {
  e.eventId = viewOf(env.getEventId());
  e.tokenKey = viewOf(env.getTokenKey());
  e.owner = viewOf(env.getOwner());
  e.occurredAt = timeFromSchema(env.getOccurredAtUs());
  e.actor = viewOf(env.getActor());
  e.requestId = viewOf(env.getRequestId());
  // Read (and so bounds-checked) for both decoders, though only decodeEvent keeps
  // them: a record one decoder refuses, the other must refuse too.
  (void)env.getSignature();
  (void)env.getSigningKeyId();
  (void)env.getPrevDigest();
  e.basedOnVersion = env.getBasedOnVersion();
  e.idempotencyKey = viewOf(env.getIdempotencyKey());
  e.requestDigest = viewOf(env.getRequestDigest());
  auto ev = env.getEvent();
  if (ev.which() == s::Envelope::Event::WRITER_CERTIFIED) {
    (void)ev.getWriterCertified();
    if (e.eventId.size() != 16)
      return DecodeError{DecodeError::Kind::malformed, "envelope lacks an event id"};
    return DecodeError{DecodeError::Kind::notTokenEvent, "a writer certificate"};
  }
  (void)env.getGroupSignature();
  for (auto p : env.getGroupProof()) (void)p;
  if (e.eventId.size() != 16 || e.tokenKey.empty() || e.owner.empty())
    return DecodeError{DecodeError::Kind::malformed, "envelope lacks event id, key or owner"};
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
      out.expiresAt = optionalTimeFromSchema(c.getExpiresAtUs());
      out.replaces = viewOf(c.getReplaces());
      e.body = out;
      return std::nullopt;
    }
    case s::Envelope::Event::ACTIVATED:
      e.body = Activated{};
      return std::nullopt;
    case s::Envelope::Event::DEACTIVATED: {
      auto d = ev.getDeactivated();
      e.body = Deactivated{fromSchema(d.getReason()), optionalTimeFromSchema(d.getEffectiveAtUs()),
                           std::string(viewOf(d.getRotatedTo()))};
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
  return typeNameOf(body);
}

EventView view(const Event& event) {
  EventView v;
  v.eventId = event.eventId;
  v.tokenKey = event.tokenKey;
  v.owner = event.owner;
  v.actor = event.actor;
  v.requestId = event.requestId;
  v.occurredAt = event.occurredAt;
  v.basedOnVersion = event.basedOnVersion;
  v.idempotencyKey = event.idempotencyKey;
  v.requestDigest = event.requestDigest;
  if (const auto* c = std::get_if<Created>(&event.body))
    v.body = CreatedView{c->kind,       c->destinationId, c->description,
                         c->secretHash, c->expiresAt,     c->replaces};
  else if (std::holds_alternative<Activated>(event.body))
    v.body = Activated{};
  else if (const auto* d = std::get_if<Deactivated>(&event.body))
    v.body = *d;
  else
    throw std::invalid_argument("a writer certificate is not a token event");
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
    auto err = readCore(env, v);
    if (err && err->kind != DecodeError::Kind::notTokenEvent) return std::move(*err);
    Event e;
    if (err) {
      auto c = env.getEvent().getWriterCertified();
      e.body = WriterCertificate{std::string(viewOf(c.getWriterKey())),
                                 std::string(viewOf(c.getRootKeyId())), c.getIssuedAtUs(),
                                 std::string(viewOf(c.getRootSignature()))};
    }
    e.eventId = v.eventId;
    e.tokenKey = v.tokenKey;
    e.owner = v.owner;
    e.actor = v.actor;
    e.requestId = v.requestId;
    e.occurredAt = v.occurredAt;
    e.schemaVersion = env.getSchemaVersion();
    e.signature = viewOf(env.getSignature());
    e.signingKeyId = viewOf(env.getSigningKeyId());
    e.writerSeq = env.getWriterSeq();
    e.prevDigest = viewOf(env.getPrevDigest());
    e.basedOnVersion = v.basedOnVersion;
    e.idempotencyKey = v.idempotencyKey;
    e.requestDigest = v.requestDigest;
    // Every signing field as on the wire, a certificate's too: the signature check
    // reads them from the same envelope (a certificate's group signature is judged
    // there, not dropped here).
    e.groupSignature = viewOf(env.getGroupSignature());
    for (auto p : env.getGroupProof()) e.groupProof.emplace_back(viewOf(p));
    e.groupLeaf = env.getGroupLeaf();
    e.groupSize = env.getGroupSize();
    if (err) return e;
    if (const auto* c = std::get_if<CreatedView>(&v.body))
      e.body = Created{
          c->kind,      std::string(c->destinationId), std::string(c->description), c->secretHash,
          c->expiresAt, std::string(c->replaces)};
    else if (std::holds_alternative<Activated>(v.body))
      e.body = Activated{};
    else
      e.body = std::get<Deactivated>(v.body);
    return e;
  });
}

std::optional<std::string> checkEvent(const EventView& event) {
  if (!isWellFormedKey(event.tokenKey)) return "the token key is not of the form tlk_...";
  if (auto err = checkUserId(event.owner)) return "owner: " + *err;
  if (event.occurredAt <= Timestamp{}) return "occurredAtUs must be a time after 1970";
  if (!event.idempotencyKey.empty()) {
    if (auto err = checkIdempotencyKey(event.idempotencyKey)) return "idempotencyKey: " + *err;
    if (event.requestDigest.size() != 32) return "requestDigest must be 32 bytes";
  } else if (!event.requestDigest.empty()) {
    return "requestDigest without an idempotencyKey";
  }
  if (const auto* d = std::get_if<Deactivated>(&event.body)) {
    if (!d->rotatedTo.empty() && (!isWellFormedKey(d->rotatedTo) || d->rotatedTo == event.tokenKey))
      return "rotatedTo must be another token's key";
    return std::nullopt;
  }
  const auto* c = std::get_if<CreatedView>(&event.body);
  if (!c) return std::nullopt;
  if (auto err = checkStoredDescription(c->description)) return *err;
  if (c->kind == TokenKind::destination) {
    if (auto err = checkDestinationId(c->destinationId)) return *err;
  } else if (!c->destinationId.empty()) {
    return "a user token has no destination id";
  }
  if (c->expiresAt && *c->expiresAt < Timestamp{})
    return "expiresAtUs must be 0 (never) or a time after 1970";
  if (!c->replaces.empty() && (!isWellFormedKey(c->replaces) || c->replaces == event.tokenKey))
    return "replaces must be another token's key";
  return std::nullopt;
}

Timestamp effectiveAt(const Deactivated& d, Timestamp occurredAt) {
  return d.effectiveAt && *d.effectiveAt > Timestamp{} ? *d.effectiveAt : occurredAt;
}

}  // namespace tokenledger
