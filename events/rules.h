// The domain's input rules: what a user id, a destination id and a description may
// be. One home for every front end and for the projection: the HTTP API, the
// projector (events from any producer), ledger-audit and tokenctl all call these,
// and the web page's copy of the user-id rule is checked against the same table of
// cases (tests/rules_cases.json).
//
// No dependencies beyond the standard library, so that tokenctl (which talks only
// HTTP) can link it without the rest of events/.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tokenledger {

constexpr size_t kMaxIdLength = 128;
constexpr size_t kMaxDescriptionChars = 200;
constexpr size_t kMaxIdempotencyKeyLength = 255;
// Rotation grace periods and scheduled deactivations: at most a (leap) year ahead.
constexpr std::chrono::seconds kMaxGrace = std::chrono::days{366};

// Each returns what is wrong, phrased for the user, or nullopt when the value is
// acceptable.
//
// User ids: 1-128 characters of A-Z a-z 0-9 - _ . @ + :, and not "." or ".." (they
// are path segments of the HTTP API, where those two mean something else).
std::optional<std::string> checkUserId(std::string_view user);
// Destination ids: 1-128 characters of the same alphabet.
std::optional<std::string> checkDestinationId(std::string_view id);
// Descriptions: trims Unicode white space at both ends into `out`; then 1-200
// characters (code points) of valid UTF-8 without control characters.
std::optional<std::string> checkDescription(std::string_view raw, std::string& out);
// A stored description (an event's): valid as above and already trimmed.
std::optional<std::string> checkStoredDescription(std::string_view description);
// Idempotency keys (the Idempotency-Key header): 1-255 printable ASCII characters
// without spaces (a UUID, or any string the client derives from its own request).
std::optional<std::string> checkIdempotencyKey(std::string_view key);

}  // namespace tokenledger
