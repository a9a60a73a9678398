#include "events/kafka_health.h"

#include <nlohmann/json.hpp>

namespace tokenledger {

BrokersReachable brokersReachable(std::string_view statsJson) {
  BrokersReachable r;
  auto j = nlohmann::json::parse(statsJson, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("brokers") || !j["brokers"].is_object()) return r;
  for (const auto& [name, b] : j["brokers"].items()) {
    if (!b.is_object()) continue;
    // The bootstrap entries ("configured", node id -1) duplicate learned brokers.
    int id = b.value("nodeid", -1);
    if (id < 0) continue;
    ++r.known;
    std::string state = b.value("state", "");
    if (state == "UP" || state == "UPDATE") ++r.up;
  }
  return r;
}

}  // namespace tokenledger
