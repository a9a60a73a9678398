#include "projections/event_judge.h"

namespace tokenledger {

EventJudge::EventJudge(std::optional<TrustPolicy> trust) {
  if (trust) trust_.emplace(std::move(*trust));
}

const KeyRing& EventJudge::knownKeys() const {
  return trust_ ? trust_->knownKeys() : none_;
}

EventJudge::Verdict EventJudge::judge(const LogRecord& r, const Event& e,
                                      const SignatureCheck* check) {
  const Partition p = r.position.partition;
  if (std::holds_alternative<WriterCertificate>(e.body)) {
    Verdict v{false, true, "a writer certificate"};
    if (trust_) {
      auto admitted = trust_->admitCertificate(p, e);
      if (auto* why = std::get_if<std::string>(&admitted)) v.why = "untrusted: " + *why;
    }
    return v;
  }
  if (trust_) {
    SignatureCheck made;
    // A check made in advance may predate a certificate judged since.
    if (!check ||
        (check->status == SignatureStatus::unknownKey && trust_->knownKeys().find(check->keyId))) {
      made = verifier_.check(r.value, trust_->knownKeys());
      check = &made;
    }
    if (auto why = trust_->refusal(p, *check)) return Verdict{false, false, *why};
  }
  if (!seenIds_.insert(e.eventId).second)
    return Verdict{false, false, "duplicate: an event with this id was applied before; ignored"};
  const EventView v = view(e);
  if (auto why = checkEvent(v)) return Verdict{false, false, "breaks the contract: " + *why};
  std::string claimKey;
  if (!e.idempotencyKey.empty()) {
    claimKey = e.owner + '\0' + e.idempotencyKey;
    auto it = claims_.find(claimKey);
    if (it != claims_.end() && claimHolds(it->second, e.occurredAt))
      return Verdict{false, false,
                     "repeats the request of Idempotency-Key " + e.idempotencyKey + " (token " +
                         it->second.tokenKey + "): changes nothing"};
  }
  auto it = tokens_.find(e.tokenKey);
  std::optional<Token> current;
  if (it != tokens_.end()) current = it->second;
  Token* predecessor = nullptr;
  if (const auto* c = std::get_if<Created>(&e.body); c && !c->replaces.empty())
    if (auto pit = tokens_.find(c->replaces); pit != tokens_.end()) predecessor = &pit->second;
  if (Conflict c = conflictOf(current, predecessor, v); c != Conflict::none)
    return Verdict{false, false,
                   "lost a race (" + std::string(toString(c)) + "): changes nothing anywhere"};
  auto next = applyEvent(current, v);
  if (!next) return Verdict{false, false, "does not apply"};
  bool created = !current;
  tokens_.insert_or_assign(e.tokenKey, std::move(*next));
  if (created && predecessor && predecessor->owner == e.owner) predecessor->replacedBy = e.tokenKey;
  if (!claimKey.empty())
    claims_.insert_or_assign(claimKey,
                             IdempotencyRecord{e.occurredAt, e.requestDigest, e.tokenKey});
  return Verdict{true, false, ""};
}

}  // namespace tokenledger
