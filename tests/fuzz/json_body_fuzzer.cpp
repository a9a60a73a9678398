// A command's JSON body (parseJsonObject, service/http_input.h) and the times in it
// (parseTime of a JSON value, service/json.h), on their own: many more bodies per
// second than through Api::handle. The input is the body.
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <variant>

#include "service/http_input.h"
#include "service/json.h"
#include "tests/fuzz/fixture.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tokenledger;
  using nlohmann::json;
  std::string_view body(reinterpret_cast<const char*>(data), size);

  // The fields of a create, the largest set the API allows.
  auto parsed = parseJsonObject(body, {"description", "kind", "destination_id", "expires_at"});
  auto none = parseJsonObject(body, {});
  if (const auto* err = std::get_if<InputError>(&parsed)) {
    FUZZ_CHECK(err->code == "invalid_json" || err->code == "unknown_field", err->code);
    FUZZ_CHECK(!err->message.empty(), "an error without a message");
    FUZZ_CHECK(!std::holds_alternative<json>(none), "fewer allowed fields accept more");
    // A body plain JSON takes is refused only for a field twice, or for not being an
    // object.
    if (err->code == "invalid_json" && json::accept(body.begin(), body.end()))
      FUZZ_CHECK(err->message.find("appears twice") != std::string::npos ||
                     err->message.find("must be a JSON object") != std::string::npos,
                 "valid JSON refused: " + err->message);
    return 0;
  }
  const json& j = std::get<json>(parsed);
  FUZZ_CHECK(j.is_object(), "not an object");
  FUZZ_CHECK(json::accept(body.begin(), body.end()), "accepted what is not JSON");
  if (j.empty()) {
    FUZZ_CHECK(std::holds_alternative<json>(none), "{} refused with no fields allowed");
  } else {
    const auto* err = std::get_if<InputError>(&none);
    FUZZ_CHECK(err && err->code == "unknown_field" &&
                   err->message.find("allowed: none") != std::string::npos,
               "a field accepted where none is allowed");
  }
  for (const auto& [name, value] : j.items()) {
    auto t = parseTime(value);
    FUZZ_CHECK(!t || *t > Timestamp{}, "a time at or before 1970 from " + value.dump());
  }
  // What was accepted, written out again (small bodies only: dump recurses into
  // nested arrays), is accepted as the same object.
  if (size < 2048) {
    std::string again = dumpJson(j);
    auto reparsed = parseJsonObject(again, {"description", "kind", "destination_id", "expires_at"});
    FUZZ_CHECK(std::holds_alternative<json>(reparsed) && std::get<json>(reparsed) == j,
               "not stable when written out again: " + again);
  }
  return 0;
}
