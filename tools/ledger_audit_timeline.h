// Token timelines for `history` and `at`: each token's events in log order, which
// of them the projection applies, and what follows for validity at any time t and
// for rotation lineage (which token replaced which, and when both were valid).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "events/event_log.h"
#include "events/times.h"
#include "projections/event_judge.h"
#include "projections/token.h"

namespace tokenledger::audit {

struct Entry {
  Position position;
  Event event;
  bool applied = true;  // false: the projection ignores it (does not apply, duplicate)
  std::string note;
};

// Which events an answer counts, by when they were recorded (Event::occurredAt):
// the bitemporal cut-off. Default: every event in the log, i.e. as known now.
// `recordedBy` T: only those recorded at or before T, i.e. what the ledger said at
// T (what a verifier asked at T answered, once the event had propagated).
struct AsOf {
  std::optional<Timestamp> recordedBy;  // none: no cut-off (as known now)

  static AsOf knownNow() { return {}; }
  static AsOf recordedAt(Timestamp t) { return {t}; }
  // Whether `en` counts: applied by the projection and recorded by the cut-off.
  bool counts(const Entry& en) const;
};

// One token's events and its state as the projection computes it.
struct Timeline {
  std::string key, owner;
  std::vector<Entry> entries;
  std::optional<Token> state;
  std::string replacedBy;

  // Appends the event at `r`'s position with the projection's verdict on it.
  void add(const LogRecord& r, Event e, const EventJudge::Verdict& verdict);

  // When an entry takes effect, and what it makes the token from then on.
  static Timestamp effectAt(const Event& e);
  static bool makesValid(const Event& e);

  // The token as it stood at `t`: the projection's state machine
  // (projections/token.h) over the entries `asOf` counts that took effect at or
  // before t, in log order. As known now (the default) a deactivation recorded
  // after t but effective earlier counts; recorded at t it does not.
  std::optional<Token> stateAt(Timestamp t, AsOf asOf = {}) const;
  // Valid at `t`: that state's status at t (events/validity.h), the one rule the
  // read model and verification use too.
  bool validAt(Timestamp t, AsOf asOf = {}) const;
  // The entry that decided validity at `t`, for the answer's explanation: the last
  // one that changed the state stateAt(t, asOf) folds (nullptr: no token at t).
  const Entry* decider(Timestamp t, AsOf asOf = {}) const;
  // The token's expiry (none: never, or no token).
  std::optional<Timestamp> expiresAt() const;
  // The first time after `t` at which the token stops being valid, as far as the
  // entries `asOf` counts say (none: never).
  std::optional<Timestamp> validUntil(Timestamp t, AsOf asOf = {}) const;
  // The applied created event; nullptr when there is none.
  const Entry* created() const;

 private:
  // stateAt and decider: one fold of the projection's state machine.
  struct Fold {
    std::optional<Token> state;
    const Entry* last = nullptr;  // the last entry that changed `state`
  };
  Fold foldAt(Timestamp t, AsOf asOf) const;
};

// Timelines of the tokens an audit looks at, in creation order.
struct Timelines {
  // Without a policy every well-formed event is trusted.
  explicit Timelines(std::optional<TrustPolicy> trust = std::nullopt) : judge(std::move(trust)) {}

  std::map<std::string, Timeline> byKey;
  std::vector<std::string> order;
  EventJudge judge;  // the projection's verdicts, in log order

  // Every writer certificate must come here (the trust learns it), and every event
  // of the tokens looked at: a token's verdicts depend only on its own events and
  // its predecessor's (same owner), so an owner's or a lineage's events suffice.
  void add(const LogRecord& r, const Event& e);
  // Links successors to predecessors (same owner only, as in the projection).
  void link();
};

// `key` with its rotation lineage (predecessors and successors); empty when `key`
// is not in `tl`.
std::set<std::string> lineageOf(const Timelines& tl, const std::string& key);

// The window in which predecessor `p` and its successor `s` were both valid.
struct Overlap {
  Timestamp from{};                // when the successor was created
  std::optional<Timestamp> until;  // none: open-ended (the predecessor is still valid)
  bool any = false;
};
Overlap overlapOf(const Timeline& p, const Timeline& s);

}  // namespace tokenledger::audit
