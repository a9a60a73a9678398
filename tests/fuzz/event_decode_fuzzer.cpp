// Event records as the log hands them over: any bytes. The two decoders must agree
// (decodeEvent copies, decodeEventView points into the bytes), the contract check
// and the state machine must take whatever they accept, a re-encoded event must
// decode to itself, and the signature check and the signed bytes must agree.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "events/signing.h"
#include "projections/token.h"
#include "tests/fuzz/fixture.h"

namespace tokenledger::fuzz {
namespace {

std::string_view bytesOf(const SecretHash& h) {
  return std::string_view(reinterpret_cast<const char*>(h.data()), h.size());
}

// `a` and `b` say the same about the event.
bool sameView(const EventView& a, const EventView& b) {
  if (a.eventId != b.eventId || a.tokenKey != b.tokenKey || a.owner != b.owner ||
      a.occurredAt != b.occurredAt || a.body.index() != b.body.index())
    return false;
  if (const auto* c = std::get_if<CreatedView>(&a.body)) {
    const auto& d = std::get<CreatedView>(b.body);
    return c->kind == d.kind && c->destinationId == d.destinationId &&
           c->description == d.description && bytesOf(c->secretHash) == bytesOf(d.secretHash) &&
           c->expiresAt == d.expiresAt && c->replaces == d.replaces;
  }
  if (const auto* c = std::get_if<Deactivated>(&a.body)) {
    const auto& d = std::get<Deactivated>(b.body);
    return c->reason == d.reason && c->effectiveAt == d.effectiveAt;
  }
  return true;
}

bool sameEvent(const Event& a, const Event& b) {
  return sameView(view(a), view(b)) && a.actor == b.actor && a.requestId == b.requestId &&
         a.schemaVersion == b.schemaVersion && a.signature == b.signature &&
         a.signingKeyId == b.signingKeyId && a.writerSeq == b.writerSeq &&
         a.prevDigest == b.prevDigest;
}

const KeyRing& trusted() {
  static const KeyRing ring = [] {
    KeyRing r;
    r.add(fixedSigningKey().publicKey());
    return r;
  }();
  return ring;
}

// The rules for one record as both decoders read it.
void checkDecoded(const Decoded& decoded, const DecodedView& viewed) {
  // A writer certificate is an event for decodeEvent (the trust reads it), and for
  // decodeEventView, which serves the token state, not a token event; the view does
  // not read its fields, so a broken one is malformed for decodeEvent only (the
  // projection then reports it as malformed: batch_apply.cpp, judgeTrust).
  if (const auto* e = std::get_if<Event>(&decoded);
      e && std::holds_alternative<WriterCertificate>(e->body)) {
    const auto* f = std::get_if<DecodeError>(&viewed);
    FUZZ_CHECK(f && f->kind == DecodeError::Kind::notTokenEvent,
               "a certificate reads as a token event");
    return;
  }
  if (const auto* f = std::get_if<DecodeError>(&viewed);
      f && f->kind == DecodeError::Kind::notTokenEvent) {
    const auto* e = std::get_if<DecodeError>(&decoded);
    FUZZ_CHECK(e && e->kind == DecodeError::Kind::malformed,
               "the view refuses as a certificate what decodeEvent reads otherwise");
    return;
  }
  FUZZ_CHECK(decoded.index() == viewed.index(), "one decoder accepts what the other refuses");
  if (const auto* e = std::get_if<DecodeError>(&decoded)) {
    const auto& f = std::get<DecodeError>(viewed);
    FUZZ_CHECK(e->kind == f.kind && e->message == f.message,
               "the decoders refuse differently: " + e->message + " / " + f.message);
    FUZZ_CHECK(!e->message.empty(), "a refusal without a message");
    return;
  }
  const Event& event = std::get<Event>(decoded);
  const EventView& v = std::get<EventView>(viewed);
  FUZZ_CHECK(sameView(view(event), v), "decodeEventView differs from decodeEvent");
  FUZZ_CHECK(v.eventId.size() == 16 && !v.tokenKey.empty() && !v.owner.empty(),
             "a decoded event lacks its id, key or owner");
  (void)v.typeName();

  auto why = checkEvent(v);
  FUZZ_CHECK(why == checkEvent(view(event)), "checkEvent differs between the two decodings");
  // What the projection does with an event it takes: apply it to nothing, and
  // (not a creation) to a token of the same owner.
  if (!why) {
    auto created = applyEvent(std::nullopt, v);
    FUZZ_CHECK(created.has_value() == std::holds_alternative<CreatedView>(v.body),
               "only a creation applies to an unknown key");
    Token t;
    t.key = std::string(v.tokenKey);
    t.owner = std::string(v.owner);
    auto applied = applyEvent(t, v);
    FUZZ_CHECK(!std::holds_alternative<CreatedView>(v.body) || !applied,
               "a second creation applied");
    if (applied) (void)statusAt(*applied, kNow);
  }

  // Re-encoding gives the same event (decoding already dropped what it does not
  // know, so this is the fixed point).
  std::string again = encodeEvent(event);
  auto redecoded = decodeEvent(again);
  FUZZ_CHECK(std::holds_alternative<Event>(redecoded), "a re-encoded event does not decode");
  FUZZ_CHECK(sameEvent(event, std::get<Event>(redecoded)), "re-encoding changes the event");
}

}  // namespace
}  // namespace tokenledger::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tokenledger;
  using namespace tokenledger::fuzz;
  std::string_view bytes(reinterpret_cast<const char*>(data), size);

  Decoded decoded = decodeEvent(bytes);
  checkDecoded(decoded, decodeEventView(bytes));
  // The same bytes at an odd address: decodeEventView then reads its own copy.
  std::vector<char> shifted(size + 1);
  if (size) std::memcpy(shifted.data() + 1, data, size);
  std::string_view odd(shifted.data() + 1, size);
  checkDecoded(decoded, decodeEventView(odd));

  // Signatures: checkSignature reads the same canonical bytes signedBytes returns.
  SignatureCheck check = checkSignature(bytes, trusted());
  auto signedPart = signedBytes(bytes);
  if (check.status != SignatureStatus::malformed) {
    FUZZ_CHECK(signedPart.has_value(), "checkSignature reads what signedBytes refuses");
    FUZZ_CHECK(signedPart->starts_with(kSigningContext), "signed bytes without the context");
    FUZZ_CHECK(digestOf(*signedPart) == check.digest, "the digest is not of the signed bytes");
    // Stable: the canonical form (one segment, framed here with its segment table)
    // has the same signed bytes.
    std::string canonical = signedPart->substr(kSigningContext.size());
    uint32_t table[2] = {0, static_cast<uint32_t>(canonical.size() / 8)};
    auto again =
        signedBytes(std::string(reinterpret_cast<const char*>(table), sizeof table) + canonical);
    FUZZ_CHECK(again == signedPart, "signed bytes are not canonical");
  }
  if (const auto* e = std::get_if<Event>(&decoded);
      e && check.status != SignatureStatus::malformed) {
    FUZZ_CHECK(e->signingKeyId == check.keyId && e->writerSeq == check.writerSeq &&
                   e->prevDigest == check.prevDigest,
               "the decoder and the signature check read different signing fields");
    FUZZ_CHECK((check.status == SignatureStatus::unsignedEvent) ==
                   (e->signature.empty() && e->groupSignature.empty()),
               "unsigned means neither a signature nor a group signature");
  }
  if (check.status == SignatureStatus::valid)
    FUZZ_CHECK(check.keyId == fixedSigningKey().keyId(), "valid under a key nobody trusts");
  return 0;
}
