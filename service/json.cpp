#include "service/json.h"

namespace tokenledger {

std::optional<Timestamp> parseTime(const nlohmann::json& v) {
  std::optional<Timestamp> t;
  if (v.is_string()) {
    t = parseTime(std::string_view(v.get_ref<const std::string&>()));
  } else if (v.is_number_unsigned()) {
    auto n = v.get<uint64_t>();
    if (n <= 100'000'000'000ULL) t = Timestamp{std::chrono::seconds{static_cast<int64_t>(n)}};
  }
  // The epoch and earlier: 0 means "absent" on the wire, and no token lived then.
  if (t && *t <= Timestamp{}) return std::nullopt;
  return t;
}

nlohmann::json tokenJson(const Token& t, Timestamp now, std::optional<LastUse> lastUse) {
  nlohmann::json j;
  j["key"] = t.key;
  j["owner"] = t.owner;
  j["kind"] = toString(t.kind);
  if (t.kind == TokenKind::destination) j["destination_id"] = t.destinationId;
  j["description"] = t.description;
  Status status = statusAt(t, now);
  j["status"] = toString(status);
  j["created_at"] = formatTime(t.createdAt);
  j["updated_at"] = formatTime(t.updatedAt);
  if (t.expiresAt) j["expires_at"] = formatTime(*t.expiresAt);
  if (t.deactivateAt) {
    if (status == Status::active) {
      j["deactivates_at"] = formatTime(*t.deactivateAt);
    } else {
      j["deactivated_at"] = formatTime(*t.deactivateAt);
    }
    j["deactivation_reason"] = toString(t.deactivationReason);
  }
  if (!t.replaces.empty()) j["replaces"] = t.replaces;
  if (!t.replacedBy.empty()) j["replaced_by"] = t.replacedBy;
  if (!t.idempotencyKey.empty()) j["idempotency_key"] = t.idempotencyKey;
  if (lastUse) {
    j["last_used_at"] = formatTime(startOfMinute(lastUse->minute));
    j["last_used_count"] = lastUse->count;
  }
  return j;
}

nlohmann::json eventJson(const Event& e) {
  nlohmann::json j;
  j["type"] = e.typeName();
  j["at"] = formatTime(e.occurredAt);
  j["actor"] = e.actor;
  j["request_id"] = e.requestId;
  if (const auto* c = std::get_if<Created>(&e.body)) {
    j["description"] = c->description;
    j["kind"] = toString(c->kind);
    if (c->kind == TokenKind::destination) j["destination_id"] = c->destinationId;
    if (!c->replaces.empty()) j["replaces"] = c->replaces;
    if (c->expiresAt) j["expires_at"] = formatTime(*c->expiresAt);
  } else if (const auto* d = std::get_if<Deactivated>(&e.body)) {
    j["reason"] = toString(d->reason);
    j["effective_at"] = formatTime(effectiveAt(*d, e.occurredAt));
    if (!d->rotatedTo.empty()) j["rotated_to"] = d->rotatedTo;
  }
  if (!e.idempotencyKey.empty()) j["idempotency_key"] = e.idempotencyKey;
  return j;
}

std::string errorBody(std::string_view code, std::string_view message) {
  nlohmann::json j;
  j["error"]["code"] = code;
  j["error"]["message"] = message;
  return dumpJson(j);
}

std::string dumpJson(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace tokenledger
