#include "tools/ledger_audit_timeline.h"

#include <algorithm>
#include <variant>

namespace tokenledger::audit {

void Timeline::add(const LogRecord& r, Event e, const EventJudge::Verdict& verdict) {
  Entry entry{r.position, std::move(e), verdict.applied, verdict.why};
  if (key.empty()) {
    key = entry.event.tokenKey;
    owner = entry.event.owner;
  }
  if (entry.applied)
    if (auto next = applyEvent(state, entry.event)) state = std::move(next);
  // Keep only what history needs of a created event; the hash is not shown.
  if (auto* c = std::get_if<Created>(&entry.event.body)) c->secretHash = SecretHash{};
  entries.push_back(std::move(entry));
}

Timestamp Timeline::effectAt(const Event& e) {
  if (auto* d = std::get_if<Deactivated>(&e.body)) return effectiveAt(*d, e.occurredAt);
  return e.occurredAt;
}

bool Timeline::makesValid(const Event& e) {
  return !std::holds_alternative<Deactivated>(e.body);
}

bool AsOf::counts(const Entry& en) const {
  return en.applied && (!recordedBy || en.event.occurredAt <= *recordedBy);
}

Timeline::Fold Timeline::foldAt(Timestamp t, AsOf asOf) const {
  Fold f;
  for (const auto& en : entries) {
    if (!asOf.counts(en) || effectAt(en.event) > t) continue;
    // An event that does not apply at this point of the fold (e.g. a deactivation
    // effective before the token's creation) changes nothing and decides nothing.
    if (auto next = applyEvent(f.state, en.event)) {
      f.state = std::move(next);
      f.last = &en;
    }
  }
  return f;
}

std::optional<Token> Timeline::stateAt(Timestamp t, AsOf asOf) const {
  return foldAt(t, asOf).state;
}

const Entry* Timeline::decider(Timestamp t, AsOf asOf) const {
  return foldAt(t, asOf).last;
}

std::optional<Timestamp> Timeline::expiresAt() const {
  return state ? state->expiresAt : std::nullopt;
}

bool Timeline::validAt(Timestamp t, AsOf asOf) const {
  auto s = stateAt(t, asOf);
  return s && statusAt(*s, t) == Status::active;
}

std::optional<Timestamp> Timeline::validUntil(Timestamp t, AsOf asOf) const {
  std::optional<Timestamp> best;
  for (const auto& en : entries) {
    if (!asOf.counts(en) || makesValid(en.event)) continue;
    Timestamp x = effectAt(en.event);
    if (x > t && !validAt(x, asOf) && (!best || x < *best)) best = x;
  }
  std::optional<Timestamp> exp = expiresAt();
  if (exp && *exp > t && (!best || *exp < *best)) best = exp;
  return best;
}

const Entry* Timeline::created() const {
  for (const auto& en : entries)
    if (en.applied && std::holds_alternative<Created>(en.event.body)) return &en;
  return nullptr;
}

void Timelines::add(const LogRecord& r, const Event& e) {
  auto verdict = judge.judge(r, e);
  if (verdict.certificate) return;  // the judge's trust took it
  auto [it, inserted] = byKey.try_emplace(e.tokenKey);
  if (inserted) order.push_back(e.tokenKey);
  it->second.add(r, e, verdict);
}

void Timelines::link() {
  for (auto& [key, t] : byKey) {
    const Entry* c = t.created();
    if (!c) continue;
    const auto& replaces = std::get<Created>(c->event.body).replaces;
    if (replaces.empty()) continue;
    auto pred = byKey.find(replaces);
    if (pred != byKey.end() && pred->second.owner == t.owner) {
      pred->second.replacedBy = key;
    }
  }
}

std::set<std::string> lineageOf(const Timelines& tl, const std::string& key) {
  std::set<std::string> out;
  if (!tl.byKey.count(key)) return out;
  std::string k = key;
  while (!k.empty() && tl.byKey.count(k) && out.insert(k).second) {
    const Entry* c = tl.byKey.at(k).created();
    k = c ? std::get<Created>(c->event.body).replaces : "";
  }
  k = tl.byKey.at(key).replacedBy;
  while (!k.empty() && tl.byKey.count(k) && out.insert(k).second) k = tl.byKey.at(k).replacedBy;
  return out;
}

Overlap overlapOf(const Timeline& p, const Timeline& s) {
  Overlap o;
  const Entry* c = s.created();
  if (!c) return o;
  o.from = c->event.occurredAt;
  o.any = p.validAt(o.from) && s.validAt(o.from);
  if (!o.any) return o;
  std::optional<Timestamp> a = p.validUntil(o.from), b = s.validUntil(o.from);
  o.until = !a ? b : (!b ? a : std::min(*a, *b));
  return o;
}

}  // namespace tokenledger::audit
