// The parts of an HTTP request, parsed: pure functions of bytes, with no I/O and
// no state, so the API's rules about its input are testable on their own (and
// fuzzed: tests/fuzz).
#pragma once

#include <initializer_list>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "service/error.h"

namespace tokenledger {

// The credentials of an `Authorization` header of scheme `scheme`: the scheme name
// compared case-insensitively (RFC 9110, 11.1), one or more spaces, then the rest
// without surrounding spaces. nullopt for another scheme or empty credentials.
std::optional<std::string_view> authCredentials(std::string_view header, std::string_view scheme);

// The media type of a Content-Type value, lower-case, without parameters and
// white space: "Application/JSON ; charset=utf-8" gives "application/json".
std::string mediaTypeOf(std::string_view contentType);

// Splits "/a/b%40c" into {"a", "b@c"}, percent-decoding each segment (so clients
// may encode "@" in user ids). nullopt on a broken escape.
std::optional<std::vector<std::string>> splitPath(std::string_view path);

// The value of `name` in a query string (no percent-decoding: our values need none);
// empty when absent.
std::string_view queryValue(std::string_view query, std::string_view name);

// A refusal of the request's input (service/error.h).
using InputError = Error;

// A command's JSON body: valid UTF-8 JSON, one object, no key twice in any object
// (parsers disagree on which of two would count), and only the `allowed` fields.
// Fails with invalid_json (not JSON, not UTF-8, not an object, a key twice) or
// unknown_field (a field not in `allowed`).
std::variant<nlohmann::json, InputError> parseJsonObject(
    std::string_view body, std::initializer_list<std::string_view> allowed);

}  // namespace tokenledger
