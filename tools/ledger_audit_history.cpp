// ledger-audit history and at: a user's tokens with their events and rotation
// lineage, and validity at a point in time with the event that decided it.
#include <algorithm>
#include <functional>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <variant>
#include <vector>

#include "events/times.h"
#include "tools/ledger_audit_commands.h"
#include "tools/ledger_audit_replay.h"
#include "tools/ledger_audit_text.h"
#include "tools/ledger_audit_timeline.h"

namespace tokenledger::audit {
namespace {

using nlohmann::json;

// One event as a line of `history --format json` (and the deciding event of `at`).
json eventJson(const Entry& en) {
  const Event& e = en.event;
  json j{{"type", "event"},
         {"position", toString(en.position)},
         {"key", e.tokenKey},
         {"owner", e.owner},
         {"event", std::string(e.typeName())},
         {"recorded_at", formatTime(e.occurredAt)},
         {"actor", e.actor},
         {"request_id", e.requestId}};
  if (auto* c = std::get_if<Created>(&e.body)) {
    j["kind"] = std::string(toString(c->kind));
    if (c->kind == TokenKind::destination) j["destination_id"] = c->destinationId;
    j["description"] = c->description;
    if (!c->replaces.empty()) j["replaces"] = c->replaces;
    if (c->expiresAt) j["expires_at"] = formatTime(*c->expiresAt);
  } else if (auto* d = std::get_if<Deactivated>(&e.body)) {
    j["reason"] = std::string(toString(d->reason));
    j["effective_at"] = formatTime(effectiveAt(*d, e.occurredAt));
  }
  if (!e.signingKeyId.empty()) {
    j["signing_key_id"] = e.signingKeyId;
    j["writer_seq"] = e.writerSeq;
  }
  if (!en.applied) j["ignored"] = en.note;
  return j;
}

// One event as a line of `history` text: time, type, actor, details, position.
std::string eventLine(const Entry& en) {
  const Event& e = en.event;
  std::string out = "  " + formatTime(e.occurredAt) + "  " + std::string(e.typeName());
  out.append(std::max<size_t>(1, 13 - e.typeName().size()), ' ');
  out += "by " + printable(e.actor);
  if (auto* c = std::get_if<Created>(&e.body)) {
    out += "  kind " + std::string(toString(c->kind));
    if (c->kind == TokenKind::destination)
      out += " (destination " + printable(c->destinationId) + ")";
    if (!c->replaces.empty()) out += "  replaces " + c->replaces;
    if (c->expiresAt) out += "  expires " + formatTime(*c->expiresAt);
  } else if (auto* d = std::get_if<Deactivated>(&e.body)) {
    const Timestamp effective = effectiveAt(*d, e.occurredAt);
    out += "  reason " + std::string(toString(d->reason)) + "  effective " + formatTime(effective);
    if (effective > e.occurredAt) out += " (grace period)";
    if (effective < e.occurredAt) out += " (in the past)";
  }
  out += "  [" + toString(en.position) + "]";
  if (!en.applied) out += "  " + en.note;
  return out;
}

// One view's answer of `at` for one token: valid or not at the time asked, why,
// and the event that decided it (see AsOf: as known now, or as recorded then).
struct AtAnswer {
  bool valid = false;
  std::string reason;                   // not_created_yet, deactivated, expired, created, activated
  const Entry* decidedBy = nullptr;     // not_created_yet and expired: the creation (if any)
  std::optional<Timestamp> validUntil;  // valid: when a counted deactivation or expiry ends it

  // The same answer for the same reason, decided by the same event.
  bool sameAs(const AtAnswer& o) const {
    return valid == o.valid && reason == o.reason && decidedBy == o.decidedBy;
  }
};

AtAnswer answerAt(const Timeline& t, Timestamp time, AsOf asOf) {
  AtAnswer a;
  a.valid = t.validAt(time, asOf);
  const Entry* d = t.decider(time, asOf);
  if (!d) {
    a.reason = "not_created_yet";
    a.decidedBy = t.created();
  } else if (!Timeline::makesValid(d->event)) {
    a.reason = "deactivated";
    a.decidedBy = d;
  } else if (auto expires = t.expiresAt(); expires && time >= *expires) {
    a.reason = "expired";
    a.decidedBy = t.created();
  } else {
    a.reason = std::string(d->event.typeName());
    a.decidedBy = d;
    a.validUntil = t.validUntil(time, asOf);
  }
  return a;
}

// Both views of `at` for one token at `time`.
struct AtAnswers {
  AtAnswer now;       // as known now: every event in the log
  AtAnswer recorded;  // as recorded at `time`: the events recorded by then
  // Events recorded after `time` changed the answer about `time`.
  bool backdatedChange() const { return !now.sameAs(recorded); }
};

AtAnswers answersAt(const Timeline& t, Timestamp time) {
  return {answerAt(t, time, AsOf::knownNow()), answerAt(t, time, AsOf::recordedAt(time))};
}

// `at --format json` for one token: today's fields answer as known now;
// "as_recorded" answers as recorded at `time`, "backdated_change" says they differ.
json atJson(const Timeline& t, Timestamp time) {
  AtAnswers a = answersAt(t, time);
  auto fill = [](json& j, const AtAnswer& x) {
    j["valid"] = x.valid;
    j["reason"] = x.reason;
    if (x.decidedBy) j["deciding_event"] = eventJson(*x.decidedBy);
    if (x.validUntil) j["valid_until"] = formatTime(*x.validUntil);
  };
  json j{{"key", t.key}, {"owner", t.owner}, {"time", formatTime(time)}};
  fill(j, a.now);
  json recorded = json::object();
  fill(recorded, a.recorded);
  j["as_recorded"] = std::move(recorded);
  j["backdated_change"] = a.backdatedChange();
  return j;
}

// One view's answer in a line, for when the views differ: the verdict, then the
// deciding event with its effective and recorded times and its position.
std::string answerText(const Timeline& t, const AtAnswer& a) {
  std::string out = a.valid ? "valid" : "not valid";
  const Entry* e = a.decidedBy;
  std::string at = e ? " [" + toString(e->position) + "]" : "";
  if (a.reason == "not_created_yet") {
    out += ": not created yet";
    if (e) out += " (created only at " + formatTime(e->event.occurredAt) + at + ")";
  } else if (a.reason == "expired") {
    out += ": expired at " + formatTime(*t.expiresAt());
    if (e) out += " (created with that expiry" + at + ")";
  } else if (e) {
    const Event& ev = e->event;
    out += ": " + std::string(ev.typeName());
    if (auto* d = std::get_if<Deactivated>(&ev.body)) {
      const Timestamp effective = effectiveAt(*d, ev.occurredAt);
      out += " (" + std::string(toString(d->reason)) + ") effective " + formatTime(effective);
      if (effective < ev.occurredAt) out += " (in the past)";
      if (effective > ev.occurredAt) out += " (grace period)";
      out += ", recorded " + formatTime(ev.occurredAt);
    } else {
      out += " " + formatTime(ev.occurredAt);
    }
    out += " by " + printable(ev.actor) + at;
    if (a.validUntil) out += "; valid until " + formatTime(*a.validUntil);
  }
  return out;
}

// `at` as text for one token. When both views agree: the answer, "(same as recorded
// then)" and the deciding event. When they differ: each view with its deciding event.
std::string atText(const Timeline& t, Timestamp time) {
  AtAnswers a = answersAt(t, time);
  auto verdict = [](bool valid) { return std::string(valid ? "VALID" : "NOT VALID"); };
  std::string out = t.key + " (user " + printable(t.owner) + ") was " + verdict(a.now.valid) +
                    " at " + formatTime(time);
  if (a.backdatedChange()) {
    if (a.now.valid != a.recorded.valid)
      out += " as known now, but " + verdict(a.recorded.valid) + " as recorded then";
    else
      out += " as known now and as recorded then, decided by different events";
    out += " (a backdated change)";
    out += "\n  as known now: " + answerText(t, a.now);
    out += "\n  as recorded at " + formatTime(time) + ": " + answerText(t, a.recorded);
    return out;
  }
  const AtAnswer& now = a.now;
  const Entry* d = now.decidedBy;
  if (now.reason == "not_created_yet") {
    out += ": it was created only at " + (d ? formatTime(d->event.occurredAt) : "?");
  } else if (now.reason == "expired") {
    out += ": it expired at " + formatTime(*t.expiresAt());
  }
  out += " (same as recorded then)";
  if (now.reason == "not_created_yet") {
    if (d) out += "\n  deciding event: created [" + toString(d->position) + "]";
  } else if (now.reason == "expired") {
    if (d) out += "\n  deciding event: created with that expiry [" + toString(d->position) + "]";
  } else if (d) {
    out += "\n  deciding event:" + eventLine(*d).substr(1);
    if (now.validUntil)
      out += "\n  valid until " + formatTime(*now.validUntil) +
             (now.validUntil == a.recorded.validUntil
                  ? " (a recorded deactivation takes effect then)"
                  : " (a deactivation recorded after " + formatTime(time) + " takes effect then)");
  }
  return out;
}

// The linked timelines of the events `wanted` picks, from one replay; unreadable
// records are reported on stderr and counted by `decoder`.
Timelines replayTimelines(const Options& o, LogSource& source, Decoder& decoder,
                          const std::function<bool(const Event&)>& wanted) {
  Timelines tl(trustPolicyOf(o));
  replay(source, o.quiet, [&](const LogRecord& r) {
    const Event* e = decoder.decode(r);
    if (e && (std::holds_alternative<WriterCertificate>(e->body) || wanted(*e))) tl.add(r, *e);
  });
  tl.link();
  decoder.summary();
  return tl;
}

}  // namespace

int cmdHistory(const Options& o, const std::string& user, const std::string& key,
               const std::string& format) {
  auto source = openSource(o);
  Decoder decoder;
  Timelines tl =
      replayTimelines(o, *source, decoder, [&](const Event& e) { return e.owner == user; });
  std::set<std::string> keep;
  if (!key.empty()) {
    keep = lineageOf(tl, key);
    if (keep.empty())
      std::cerr << "no token " << printable(key) << " of user " << printable(user) << " in the "
                << source->describe() << "\n";
  }
  std::vector<const Timeline*> tokens;
  for (const auto& k : tl.order)
    if (key.empty() || keep.count(k)) tokens.push_back(&tl.byKey.at(k));
  if (tokens.empty() && key.empty())
    std::cerr << "user " << printable(user) << " has no tokens in the " << source->describe()
              << "\n";

  if (format == "json") {
    for (const auto* t : tokens)
      for (const auto& en : t->entries) std::cout << dumpJson(eventJson(en)) << "\n";
    for (const auto* t : tokens) {
      if (t->replacedBy.empty() || !tl.byKey.count(t->replacedBy)) continue;
      Overlap ov = overlapOf(*t, tl.byKey.at(t->replacedBy));
      json j{{"type", "rotation"},
             {"owner", user},
             {"from", t->key},
             {"to", t->replacedBy},
             {"at", formatTime(ov.from)}};
      j["both_valid_from"] = ov.any ? json(formatTime(ov.from)) : json(nullptr);
      j["both_valid_until"] = ov.any && ov.until ? json(formatTime(*ov.until)) : json(nullptr);
      std::cout << dumpJson(j) << "\n";
    }
  } else if (format == "csv") {
    std::cout << "type,position,owner,key,event,recorded_at,actor,kind,destination_id,description,"
                 "reason,effective_at,replaces,replaced_by,both_valid_until,request_id\n";
    for (const auto* t : tokens) {
      for (const auto& en : t->entries) {
        const Event& e = en.event;
        std::string kind, dest, desc, reason, effective, replaces;
        if (auto* c = std::get_if<Created>(&e.body)) {
          kind = toString(c->kind);
          dest = c->destinationId;
          desc = c->description;
          replaces = c->replaces;
        } else if (auto* d = std::get_if<Deactivated>(&e.body)) {
          reason = toString(d->reason);
          effective = formatTime(effectiveAt(*d, e.occurredAt));
        }
        std::cout << "event," << toString(en.position) << "," << csvField(e.owner) << ","
                  << e.tokenKey << "," << e.typeName() << "," << formatTime(e.occurredAt) << ","
                  << csvField(e.actor) << "," << kind << "," << csvField(dest) << ","
                  << csvField(desc) << "," << reason << "," << effective << "," << replaces << ",,,"
                  << csvField(e.requestId) << "\n";
      }
    }
    for (const auto* t : tokens) {
      if (t->replacedBy.empty() || !tl.byKey.count(t->replacedBy)) continue;
      Overlap ov = overlapOf(*t, tl.byKey.at(t->replacedBy));
      std::cout << "rotation,," << csvField(user) << "," << t->key << ",rotated,"
                << formatTime(ov.from) << ",,,,,,,," << t->replacedBy << ","
                << (ov.any ? (ov.until ? formatTime(*ov.until) : std::string("open")) : "")
                << ",\n";
    }
  } else {
    Timestamp now = audit::now();
    for (const auto* t : tokens) {
      const Entry* c = t->created();
      std::string head = "token " + t->key;
      if (c) {
        const auto& cr = std::get<Created>(c->event.body);
        head += " (" + std::string(toString(cr.kind)) + ") \"" + printable(cr.description) + "\"";
      }
      head += t->validAt(now) ? "  — valid now" : "  — not valid now";
      std::cout << head << "\n";
      for (const auto& en : t->entries) std::cout << eventLine(en) << "\n";
      std::cout << "\n";
    }
    bool any = false;
    for (const auto* t : tokens) {
      if (t->replacedBy.empty() || !tl.byKey.count(t->replacedBy)) continue;
      if (!any) std::cout << "rotation lineage:\n";
      any = true;
      Overlap ov = overlapOf(*t, tl.byKey.at(t->replacedBy));
      std::cout << "  " << t->key << " -> " << t->replacedBy << "  rotated " << formatTime(ov.from);
      if (!ov.any)
        std::cout << "; never both valid";
      else if (ov.until)
        std::cout << "; both valid until " << formatTime(*ov.until) << " ("
                  << (*ov.until - ov.from) / std::chrono::seconds{1} << " s)";
      else
        std::cout << "; both still valid (the old token was never deactivated)";
      std::cout << "\n";
    }
  }
  return decoder.clean() ? 0 : 1;
}

int cmdAt(const Options& o, const std::string& user, const std::string& key, Timestamp time,
          const std::string& format) {
  // A token's verdicts depend on its predecessor's events too (a rotation is
  // conditional on it), so `--key` judges all events of the owners naming the key
  // (one, unless someone forged events with another).
  std::set<std::string> owners{user};
  if (!key.empty()) {
    owners.clear();
    auto first = openSource(o);
    replay(*first, o.quiet, [&](const LogRecord& r) {
      auto d = decodeEventView(r.value);
      if (auto* v = std::get_if<EventView>(&d); v && v->tokenKey == key) owners.emplace(v->owner);
    });
  }
  auto source = openSource(o);
  Decoder decoder;
  Timelines tl = replayTimelines(o, *source, decoder,
                                 [&](const Event& e) { return owners.count(e.owner) > 0; });
  std::vector<const Timeline*> tokens;
  for (const auto& k : tl.order)
    if (tl.byKey.at(k).state && (key.empty() || k == key)) tokens.push_back(&tl.byKey.at(k));
  if (!key.empty() && tokens.empty()) {
    std::cerr << "no token " << printable(key) << " in the " << source->describe()
              << ": it never existed there (check the key and the log)\n";
    if (format == "json")
      std::cout << dumpJson(json{{"key", key},
                                 {"time", formatTime(time)},
                                 {"valid", false},
                                 {"reason", "unknown_key"},
                                 {"as_recorded", {{"valid", false}, {"reason", "unknown_key"}}},
                                 {"backdated_change", false}})
                << "\n";
    return 1;
  }
  if (!key.empty()) {
    const Timeline& t = *tokens.front();
    std::cout << (format == "json" ? dumpJson(atJson(t, time)) : atText(t, time)) << "\n";
    return t.validAt(time) && decoder.clean() ? 0 : 1;
  }
  // The tokens valid at T as known now, and those valid as recorded at T but no
  // longer as known now (a backdated deactivation), each with both views.
  size_t valid = 0, recordedOnly = 0;
  for (const auto* t : tokens) {
    bool now = t->validAt(time), recorded = t->validAt(time, AsOf::recordedAt(time));
    if (!now && !recorded) continue;
    ++(now ? valid : recordedOnly);
    std::cout << (format == "json" ? dumpJson(atJson(*t, time)) : atText(*t, time)) << "\n";
  }
  if (format != "json") {
    std::cout << valid << " of " << tokens.size() << " tokens of user " << printable(user)
              << " were valid at " << formatTime(time);
    if (recordedOnly)
      std::cout << " as known now; " << recordedOnly
                << " more as recorded then (deactivated later with an earlier effective time)";
    std::cout << "\n";
  }
  if (tokens.empty())
    std::cerr << "user " << printable(user) << " has no tokens in the " << source->describe()
              << "\n";
  return valid > 0 && decoder.clean() ? 0 : 1;
}

}  // namespace tokenledger::audit
