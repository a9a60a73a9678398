// ledger-audit's checkpoint file (parseCheckpoint, tools/checkpoint.h): never an
// exception; what it accepts holds what verify-log relies on, and reads back the
// same when written out again. The input is the file.
#include <cstddef>
#include <cstdint>
#include <exception>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <variant>

#include "tests/fuzz/fixture.h"
#include "tools/checkpoint.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tokenledger::audit;
  using nlohmann::json;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  std::variant<Checkpoint, std::string> parsed;
  try {
    parsed = parseCheckpoint(text);
  } catch (const std::exception& e) {
    FUZZ_CHECK(false, std::string("parseCheckpoint threw: ") + e.what());
  }
  if (const auto* err = std::get_if<std::string>(&parsed)) {
    FUZZ_CHECK(!err->empty(), "an error without a message");
    return 0;
  }
  const Checkpoint& c = std::get<Checkpoint>(parsed);
  FUZZ_CHECK(!c.end.next.empty(), "no partitions");
  for (auto n : c.end.next) FUZZ_CHECK(n.value >= 0, "a negative end offset");
  for (const auto& [id, w] : c.writers) {
    FUZZ_CHECK(id.size() == 16 && w.second.size() == 64, "a key id or digest of the wrong size");
    FUZZ_CHECK(w.first >= 1, "seq " + std::to_string(w.first));  // verify-log reads seq - 1
  }
  // Written out the way verify-log writes it, it reads back the same.
  json writers = json::object();
  for (const auto& [id, w] : c.writers) writers[id] = {{"seq", w.first}, {"digest", w.second}};
  json again{{"version", 1}, {"end", c.end.toString()}, {"writers", writers}};
  auto reparsed = parseCheckpoint(again.dump(2));
  FUZZ_CHECK(std::holds_alternative<Checkpoint>(reparsed) && std::get<Checkpoint>(reparsed) == c,
             "does not read back: " + again.dump());
  return 0;
}
