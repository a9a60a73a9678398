// ledger-audit history and at: a user's tokens with their events and rotation
// lineage, and validity at a point in time with the event that decided it.
#include <algorithm>
#include <functional>
#include <iostream>
#include <nlohmann/json.hpp>
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

// The answer of `at` for one token: valid or not at `time`, why, and the deciding event.
json atJson(const Timeline& t, Timestamp time) {
  json j{
      {"key", t.key}, {"owner", t.owner}, {"time", formatTime(time)}, {"valid", t.validAt(time)}};
  const Entry* d = t.decider(time);
  const Entry* c = t.created();
  if (!d) {
    j["reason"] = "not_created_yet";
    if (c) j["deciding_event"] = eventJson(*c);
  } else if (!Timeline::makesValid(d->event)) {
    j["reason"] = "deactivated";
    j["deciding_event"] = eventJson(*d);
  } else if (auto expires = t.expiresAt(); expires && time >= *expires) {
    j["reason"] = "expired";
    if (c) j["deciding_event"] = eventJson(*c);
  } else {
    j["reason"] = std::string(d->event.typeName());
    j["deciding_event"] = eventJson(*d);
    if (auto until = t.validUntil(time)) j["valid_until"] = formatTime(*until);
  }
  return j;
}

// The same answer as text.
std::string atText(const Timeline& t, Timestamp time) {
  json j = atJson(t, time);
  std::string out = t.key + " (user " + printable(t.owner) + ") was " +
                    (j["valid"].get<bool>() ? "VALID" : "NOT VALID") + " at " + formatTime(time);
  std::string reason = j["reason"];
  const Entry* d = t.decider(time);
  const Entry* c = t.created();
  if (reason == "not_created_yet") {
    out += ": it was created only at " + (c ? formatTime(c->event.occurredAt) : "?");
    if (c) out += "\n  deciding event: created [" + toString(c->position) + "]";
  } else if (reason == "expired") {
    out += ": it expired at " + formatTime(*t.expiresAt());
    if (c) out += "\n  deciding event: created with that expiry [" + toString(c->position) + "]";
  } else if (d) {
    out += "\n  deciding event:" + eventLine(*d).substr(1);
    if (j.contains("valid_until"))
      out += "\n  valid until " + j["valid_until"].get<std::string>() +
             " (a recorded deactivation takes effect then)";
  }
  return out;
}

// The linked timelines of the events `wanted` picks, from one replay; unreadable
// records are reported on stderr and counted by `decoder`.
Timelines replayTimelines(LogSource& source, bool quiet, Decoder& decoder,
                          const std::function<bool(const Event&)>& wanted) {
  Timelines tl;
  replay(source, quiet, [&](const LogRecord& r) {
    const Event* e = decoder.decode(r);
    if (e && wanted(*e)) tl.add(r, *e);
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
      replayTimelines(*source, o.quiet, decoder, [&](const Event& e) { return e.owner == user; });
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
  auto source = openSource(o);
  Decoder decoder;
  Timelines tl = replayTimelines(*source, o.quiet, decoder, [&](const Event& e) {
    return !key.empty() ? e.tokenKey == key : e.owner == user;
  });
  std::vector<const Timeline*> tokens;
  for (const auto& k : tl.order)
    if (tl.byKey.at(k).state) tokens.push_back(&tl.byKey.at(k));
  if (!key.empty() && tokens.empty()) {
    std::cerr << "no token " << printable(key) << " in the " << source->describe()
              << ": it never existed there (check the key and the log)\n";
    if (format == "json")
      std::cout << dumpJson(json{{"key", key},
                                 {"time", formatTime(time)},
                                 {"valid", false},
                                 {"reason", "unknown_key"}})
                << "\n";
    return 1;
  }
  if (!key.empty()) {
    const Timeline& t = *tokens.front();
    std::cout << (format == "json" ? dumpJson(atJson(t, time)) : atText(t, time)) << "\n";
    return t.validAt(time) && decoder.clean() ? 0 : 1;
  }
  size_t valid = 0;
  for (const auto* t : tokens) {
    if (!t->validAt(time)) continue;
    ++valid;
    std::cout << (format == "json" ? dumpJson(atJson(*t, time)) : atText(*t, time)) << "\n";
  }
  if (format != "json")
    std::cout << valid << " of " << tokens.size() << " tokens of user " << printable(user)
              << " were valid at " << formatTime(time) << "\n";
  if (tokens.empty())
    std::cerr << "user " << printable(user) << " has no tokens in the " << source->describe()
              << "\n";
  return valid > 0 && decoder.clean() ? 0 : 1;
}

}  // namespace tokenledger::audit
