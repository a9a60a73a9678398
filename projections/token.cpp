#include "projections/token.h"

#include <cstring>
#include <stdexcept>

#include "events/big_endian.h"

namespace tokenledger {
namespace {

// Record layout (all numbers big-endian; str = LEB128 length, then the bytes; a
// time = 8 bytes of microseconds since the epoch, 0 when absent):
//   state:   kind (1) | active (1) | deactivation reason (1) | event count (4)
//            | created | updated | expires | deactivate_at | secret hash (32)
//            | owner str | destination id str | description str | replaces str
//            | replaced_by str | idempotency key str
//   entry:   type (1: created, 2: activated, 3: deactivated) | event id (16)
//            | occurred | actor str | request id str | idempotency key str
//            [deactivated: reason (1) | effective_at (0: when it occurred)
//            | rotated_to str]
constexpr size_t kStateFixed = 1 + 1 + 1 + 4 + 4 * 8 + 32;
constexpr uint8_t kCreated = 1, kActivated = 2, kDeactivated = 3;

size_t varintSize(size_t n) {
  size_t bytes = 1;
  while (n >= 0x80) {
    n >>= 7;
    ++bytes;
  }
  return bytes;
}
size_t strSize(std::string_view s) {
  return varintSize(s.size()) + s.size();
}
void putStr(std::string& out, std::string_view s) {
  for (size_t n = s.size();; n >>= 7) {
    if (n < 0x80) {
      out.push_back(static_cast<char>(n));
      break;
    }
    out.push_back(static_cast<char>(0x80 | (n & 0x7f)));
  }
  out.append(s);
}
int64_t micros(Timestamp t) {
  return t.time_since_epoch().count();
}
void putTime(std::string& out, std::optional<Timestamp> t) {
  appendBigEndian(out, static_cast<uint64_t>(t ? micros(*t) : 0), 8);
}

// Reads a record front to back; every read checks the bytes are there.
class Bytes {
 public:
  explicit Bytes(std::string_view b) : b_(b) {}
  std::string_view take(size_t n) {
    if (n > b_.size()) corrupt();
    auto out = b_.substr(0, n);
    b_.remove_prefix(n);
    return out;
  }
  uint8_t byte() { return static_cast<uint8_t>(take(1)[0]); }
  uint64_t number(size_t bytes) { return readBigEndian(take(bytes)); }
  std::optional<Timestamp> time() {
    auto us = static_cast<int64_t>(number(8));
    if (us == 0) return std::nullopt;
    return Timestamp{std::chrono::microseconds{us}};
  }
  std::string_view str() {
    size_t n = 0;
    for (int shift = 0;; shift += 7) {
      if (shift > 28) corrupt();
      uint8_t b = byte();
      n |= size_t{b & 0x7fu} << shift;
      if (b < 0x80) break;
    }
    return take(n);
  }
  std::string_view rest() const { return b_; }
  bool empty() const { return b_.empty(); }
  [[noreturn]] static void corrupt() {
    throw std::runtime_error(
        "corrupt token record in read model (rebuild it with "
        "`tokenledgerd --rebuild`)");
  }

 private:
  std::string_view b_;
};

template <typename E>
E enumOf(uint8_t v, uint8_t last) {
  if (v > last) Bytes::corrupt();
  return static_cast<E>(v);
}

}  // namespace

size_t encodedTokenSize(const Token& t) {
  return kStateFixed + strSize(t.owner) + strSize(t.destinationId) + strSize(t.description) +
         strSize(t.replaces) + strSize(t.replacedBy) + strSize(t.idempotencyKey);
}

std::string encodeToken(const Token& t) {
  std::string out;
  out.reserve(encodedTokenSize(t));
  appendToken(out, t);
  return out;
}

void appendToken(std::string& out, const Token& t) {
  out.push_back(static_cast<char>(t.kind));
  out.push_back(t.active ? 1 : 0);
  out.push_back(static_cast<char>(t.deactivationReason));
  appendBigEndian(out, t.eventCount, 4);
  putTime(out, t.createdAt);
  putTime(out, t.updatedAt);
  putTime(out, t.expiresAt);
  putTime(out, t.deactivateAt);
  out.append(reinterpret_cast<const char*>(t.secretHash.data()), t.secretHash.size());
  putStr(out, t.owner);
  putStr(out, t.destinationId);
  putStr(out, t.description);
  putStr(out, t.replaces);
  putStr(out, t.replacedBy);
  putStr(out, t.idempotencyKey);
}

size_t historyEntrySize(const EventView& e) {
  size_t n = 1 + 16 + 8 + strSize(e.actor) + strSize(e.requestId) + strSize(e.idempotencyKey);
  if (const auto* d = std::get_if<Deactivated>(&e.body)) n += 1 + 8 + strSize(d->rotatedTo);
  return n;
}

void appendHistoryEntry(std::string& out, const EventView& e) {
  if (e.eventId.size() != 16) throw std::logic_error("an event id is 16 bytes");
  const auto* d = std::get_if<Deactivated>(&e.body);
  out.push_back(static_cast<char>(std::holds_alternative<CreatedView>(e.body) ? kCreated
                                  : d                                         ? kDeactivated
                                                                              : kActivated));
  out.append(e.eventId);
  putTime(out, e.occurredAt);
  putStr(out, e.actor);
  putStr(out, e.requestId);
  putStr(out, e.idempotencyKey);
  if (d) {
    out.push_back(static_cast<char>(d->reason));
    putTime(out, d->effectiveAt);
    putStr(out, d->rotatedTo);
  }
}

TokenRecord decodeTokenRecord(std::string_view key, std::string_view bytes) {
  Bytes in(bytes);
  TokenRecord r;
  Token& t = r.token;
  t.key = key;
  t.kind = enumOf<TokenKind>(in.byte(), static_cast<uint8_t>(TokenKind::destination));
  t.active = in.byte() != 0;
  t.deactivationReason = enumOf<Reason>(in.byte(), static_cast<uint8_t>(Reason::bulk));
  t.eventCount = static_cast<uint32_t>(in.number(4));
  t.createdAt = in.time().value_or(Timestamp{});
  t.updatedAt = in.time().value_or(Timestamp{});
  t.expiresAt = in.time();
  t.deactivateAt = in.time();
  memcpy(t.secretHash.data(), in.take(t.secretHash.size()).data(), t.secretHash.size());
  t.owner = in.str();
  t.destinationId = in.str();
  t.description = in.str();
  t.replaces = in.str();
  t.replacedBy = in.str();
  t.idempotencyKey = in.str();
  r.history = in.rest();
  return r;
}

Token decodeToken(std::string_view key, std::string_view bytes) {
  return decodeTokenRecord(key, bytes).token;
}

std::vector<Event> decodeHistory(const Token& t, std::string_view history) {
  std::vector<Event> out;
  Bytes in(history);
  while (!in.empty()) {
    Event e;
    const uint8_t type = in.byte();
    e.eventId = in.take(16);
    e.tokenKey = t.key;
    e.owner = t.owner;
    e.occurredAt = in.time().value_or(Timestamp{});
    e.actor = in.str();
    e.requestId = in.str();
    e.idempotencyKey = in.str();
    if (type == kCreated) {
      // A creation's fields never change afterwards: they are the token's.
      e.body =
          Created{t.kind, t.destinationId, t.description, t.secretHash, t.expiresAt, t.replaces};
    } else if (type == kActivated) {
      e.body = Activated{};
    } else if (type == kDeactivated) {
      Deactivated d;
      d.reason = enumOf<Reason>(in.byte(), static_cast<uint8_t>(Reason::bulk));
      d.effectiveAt = in.time();
      d.rotatedTo = in.str();
      e.body = std::move(d);
    } else {
      Bytes::corrupt();
    }
    out.push_back(std::move(e));
  }
  return out;
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
