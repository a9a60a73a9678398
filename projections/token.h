// A token as the projection knows it: its state after the events applied to it,
// the state machine that applies them, and the stored record of a token: its state
// and its history (read_model_layout.h, "tokens"). Shared by the read model, the service (which
// shows tokens) and ledger-audit (which replays a log without the service).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "events/event.h"
#include "events/times.h"
#include "events/validity.h"

namespace tokenledger {

struct Token {
  std::string key;
  std::string owner;
  TokenKind kind = TokenKind::user;
  std::string destinationId;
  std::string description;
  bool active = true;
  SecretHash secretHash{};
  Timestamp createdAt{};
  Timestamp updatedAt{};
  std::optional<Timestamp> expiresAt;     // none = never
  std::optional<Timestamp> deactivateAt;  // active tokens: scheduled deactivation (if any);
                                          // inactive tokens: when the deactivation took effect
  Reason deactivationReason = Reason::manual;
  std::string replaces;
  std::string replacedBy;
  uint32_t eventCount = 0;
  std::string idempotencyKey;  // of the request that created it (or rotated to it)

  bool operator==(const Token&) const = default;
};

// Status at time `now`, counting scheduled deactivations and expiry
// (events/validity.h).
Status statusAt(const Token& token, Timestamp now);

// A token's version: the number of changes applied to it, its events and its
// rotation to a successor (which sets replacedBy without an event of its own). A
// command's events carry the version it was decided on (Event::basedOnVersion).
inline uint32_t versionOf(const Token& t) {
  return t.eventCount + (t.replacedBy.empty() ? 0 : 1);
}

// Why a conditional event (basedOnVersion > 0) changes nothing: the state it was
// decided on no longer holds when the log reaches it. Decided in log order, so every
// replica, a rebuild and ledger-audit reach the same verdict (docs/kafka.md,
// "Conditional events").
enum class Conflict {
  none,
  stale,            // the token (or a rotation's predecessor) changed since
  alreadyRotated,   // a rotation's predecessor was rotated to another successor
  rotationLost,     // the old token's half of a rotation whose created event lost
  duplicateRequest  // an idempotency key used by an earlier event (idempotency.h)
};
std::string_view toString(Conflict conflict);

// The verdict on `event` against `current` (the token's state) and `predecessor`
// (for a creation that replaces a token: that token's state; null when unknown).
// Unconditional events (basedOnVersion 0, written before conditional events
// existed) never conflict, except a rotation's deactivation whose successor lost.
Conflict conflictOf(const std::optional<Token>& current, const Token* predecessor,
                    const EventView& event);

// The state machine. `current` is the token's state before the event (nullopt if
// unknown). Conflicts are decided before (conflictOf). Returns the new state, or nullopt when the
// event does not apply (an activation or deactivation of an unknown key or of another owner's
// token, a second creation of a key). Events are checked against the contract (checkEvent) before
// they get here.
std::optional<Token> applyEvent(const std::optional<Token>& current, const EventView& event);
std::optional<Token> applyEvent(const std::optional<Token>& current, const Event& event);

// The stored record (read_model_layout.h, database "tokens"): the state part
// (encodeToken), then one history entry per event applied to the token, in log
// order (appendHistoryEntry). The token's key is the record's LMDB key, not stored
// again. A custom byte layout, not Cap'n Proto: it is private to the projection,
// versioned with layout::kLayoutVersion, and a third of the size.
std::string encodeToken(const Token& token);
// Appends encodeToken(token) to `out` (a loop can reuse one buffer).
void appendToken(std::string& out, const Token& token);
// Exactly encodeToken(token).size().
size_t encodedTokenSize(const Token& token);
// Appends the history entry of `event` (applied to the token) to `out`: what the
// API and ledger-audit show of an event (its id, type, time, actor, request id,
// idempotency key and a deactivation's fields); the rest of a creation is the
// token's own state. The signed envelope stays in the log.
void appendHistoryEntry(std::string& out, const EventView& event);
size_t historyEntrySize(const EventView& event);

struct TokenRecord {
  Token token;
  std::string_view history;  // the history entries: a view into the decoded bytes
};
// `key` is the record's key. Throws std::runtime_error on corrupt bytes.
TokenRecord decodeTokenRecord(std::string_view key, std::string_view bytes);
Token decodeToken(std::string_view key, std::string_view bytes);
// The events of a record's history part, in log order, as Event values with the
// fields the entries keep (no signatures: those are in the log). Throws
// std::runtime_error on corrupt bytes.
std::vector<Event> decodeHistory(const Token& token, std::string_view history);

}  // namespace tokenledger
