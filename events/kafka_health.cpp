#include "events/kafka_health.h"

#include <nlohmann/json.hpp>

namespace tokenledger {

BrokersReachable brokersReachable(std::string_view statsJson) {
  BrokersReachable r;
  auto j = nlohmann::json::parse(statsJson, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("brokers") || !j["brokers"].is_object()) return r;
  for (const auto& [name, b] : j["brokers"].items()) {
    if (!b.is_object()) continue;
    // Brokers not learned from metadata (node id -1: bootstrap entries before the
    // first metadata answer) are not counted.
    const auto id = b.find("nodeid");
    const auto state = b.find("state");
    if (id == b.end() || !id->is_number_integer() || id->get<int64_t>() < 0) continue;
    ++r.known;
    if (state != b.end() && state->is_string() && (*state == "UP" || *state == "UPDATE")) ++r.up;
  }
  return r;
}

}  // namespace tokenledger
