#include "service/json.h"

namespace tokenledger {

std::optional<int64_t> parseTime(const nlohmann::json& v) {
  std::optional<int64_t> t;
  if (v.is_string()) {
    t = parseTime(std::string_view(v.get_ref<const std::string&>()));
  } else if (v.is_number_unsigned()) {
    auto n = v.get<uint64_t>();
    if (n <= 100'000'000'000ULL) t = static_cast<int64_t>(n) * 1'000'000;
  }
  // The epoch and earlier: 0 means "absent" on the wire, and no token lived then.
  if (t && *t <= 0) return std::nullopt;
  return t;
}

nlohmann::json tokenJson(const Token& t, int64_t nowUs) {
  nlohmann::json j;
  j["key"] = t.key;
  j["owner"] = t.owner;
  j["kind"] = toString(t.kind);
  if (t.kind == TokenKind::destination) j["destination_id"] = t.destinationId;
  j["description"] = t.description;
  Status status = statusAt(t, nowUs);
  j["status"] = toString(status);
  j["created_at"] = formatTime(t.createdAtUs);
  j["updated_at"] = formatTime(t.updatedAtUs);
  if (t.expiresAtUs != 0) j["expires_at"] = formatTime(t.expiresAtUs);
  if (t.deactivateAtUs != 0) {
    if (status == Status::active) {
      j["deactivates_at"] = formatTime(t.deactivateAtUs);
    } else {
      j["deactivated_at"] = formatTime(t.deactivateAtUs);
    }
    j["deactivation_reason"] = toString(t.deactivationReason);
  }
  if (!t.replaces.empty()) j["replaces"] = t.replaces;
  if (!t.replacedBy.empty()) j["replaced_by"] = t.replacedBy;
  return j;
}

nlohmann::json eventJson(const Event& e) {
  nlohmann::json j;
  j["type"] = e.typeName();
  j["at"] = formatTime(e.occurredAtUs);
  j["actor"] = e.actor;
  j["request_id"] = e.requestId;
  if (const auto* c = std::get_if<Created>(&e.body)) {
    j["description"] = c->description;
    j["kind"] = toString(c->kind);
    if (c->kind == TokenKind::destination) j["destination_id"] = c->destinationId;
    if (!c->replaces.empty()) j["replaces"] = c->replaces;
    if (c->expiresAtUs != 0) j["expires_at"] = formatTime(c->expiresAtUs);
  } else if (const auto* d = std::get_if<Deactivated>(&e.body)) {
    j["reason"] = toString(d->reason);
    j["effective_at"] = formatTime(effectiveAt(*d, e.occurredAtUs));
  }
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
