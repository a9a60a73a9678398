// The small parsers of request text, each given the whole input: Authorization
// (authCredentials, decodeBasicAuth, then verifyCredentials against the fixed
// ledger), paths (splitPath), queries (queryValue), Content-Type (mediaTypeOf),
// positions and offsets (parsePosition, Offsets::parse) and times (parseTime).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "events/event_log.h"
#include "events/signing.h"
#include "events/times.h"
#include "service/http_input.h"
#include "service/verifier.h"
#include "tests/fuzz/fixture.h"

namespace tokenledger::fuzz {
namespace {

bool isSpace(char c) {
  return c == ' ' || c == '\t';
}
bool within(std::string_view part, std::string_view whole) {
  return part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size();
}

void checkAuthorization(std::string_view in, ReadModelReader& reader) {
  for (std::string_view scheme : {"Bearer", "Basic"}) {
    auto cred = authCredentials(in, scheme);
    if (!cred) continue;
    FUZZ_CHECK(
        within(*cred, in) && !cred->empty() && !isSpace(cred->front()) && !isSpace(cred->back()),
        "credentials not a trimmed part of the header");
    FUZZ_CHECK(in.size() > scheme.size() && in[scheme.size()] == ' ', "no space after the scheme");
  }
  std::string decoded = "unchanged";
  bool basic = decodeBasicAuth(in, decoded);
  auto b64 = authCredentials(in, "Basic");
  if (!basic) {
    FUZZ_CHECK(decoded == "unchanged", "a refused header changed the output");
  } else {
    FUZZ_CHECK(b64 && b64->size() <= 512 && b64->size() % 4 == 0, "decoded a bad length");
    size_t pad = b64->ends_with("==") ? 2 : b64->ends_with("=") ? 1 : 0;
    FUZZ_CHECK(decoded.size() == b64->size() / 4 * 3 - pad, "decoded to the wrong length");
  }
  // libsodium's strict decoder: whatever it takes, the fast decoder takes the same way.
  if (b64 && b64->size() <= 512) {
    if (auto strict = base64Decode(*b64); strict && !strict->empty())
      FUZZ_CHECK(basic && decoded == *strict, "decodeBasicAuth refuses or misreads base64");
  }
  // The credentials, as decoded and as given.
  for (std::string_view creds : {std::string_view(decoded), in}) {
    if (creds == "unchanged") continue;
    VerifyOutcome out = verifyCredentials(creds, reader, kNow);
    if (out.reason == VerifyReason::malformed) {
      FUZZ_CHECK(out.key().empty(), "a malformed credential with a key");
      continue;
    }
    FUZZ_CHECK(isWellFormedKey(out.key()) && creds.starts_with(std::string(out.key()) + ":"),
               "the outcome's key is not the credential's");
    if (out.valid()) {
      bool fixed = false;
      for (const auto& t : fixedTokens()) fixed = fixed || creds == t.key + ":" + t.secret;
      FUZZ_CHECK(fixed, "valid without a fixed token's secret");
      FUZZ_CHECK(!out.token.owner.empty(), "valid without an owner");
    }
  }
}

void checkPath(std::string_view in) {
  auto parts = splitPath(in);
  if (!parts) {
    FUZZ_CHECK(in.find('%') != std::string_view::npos, "refused without an escape");
    return;
  }
  if (in.empty() || in[0] != '/') {
    FUZZ_CHECK(parts->empty(), "segments of a path without a leading /");
    return;
  }
  size_t slashes = 0;
  for (char c : in) slashes += c == '/';
  FUZZ_CHECK(parts->size() == slashes, "one segment per /");
  // Percent-encoding every byte of every segment gives the same segments back.
  std::string encoded;
  for (const auto& seg : *parts) {
    encoded += '/';
    for (unsigned char c : seg) {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      encoded += buf;
    }
  }
  FUZZ_CHECK(splitPath(encoded) == parts, "encoded segments split differently");
}

void checkQuery(std::string_view in) {
  std::string_view v = queryValue(in, "min_position");
  if (v.empty()) return;
  FUZZ_CHECK(within(v, in) && v.find('&') == std::string_view::npos, "a value beyond its item");
  std::string_view before = in.substr(0, v.data() - in.data());
  FUZZ_CHECK(before.ends_with("min_position=") &&
                 (before.size() == 13 || before[before.size() - 14] == '&'),
             "a value of another name");
}

void checkMediaType(std::string_view in) {
  std::string type = mediaTypeOf(in);
  FUZZ_CHECK(type.find(';') == std::string::npos, "parameters kept");
  for (char c : type) FUZZ_CHECK(!(c >= 'A' && c <= 'Z'), "upper case kept");
  FUZZ_CHECK(type.empty() || (!isSpace(type.front()) && !isSpace(type.back())), "spaces kept");
  FUZZ_CHECK(mediaTypeOf(type) == type, "not idempotent");
}

void checkPositions(std::string_view in) {
  if (auto p = parsePosition(in)) {
    FUZZ_CHECK(p->partition.value >= 0 && p->offset.value >= 0, "a negative position");
    FUZZ_CHECK(parsePosition(toString(*p)) == p, "toString does not parse back");
    std::string buf;
    FUZZ_CHECK(toString(*p, buf) == toString(*p), "the two toStrings differ");
  }
  if (auto o = Offsets::parse(in)) {
    FUZZ_CHECK(!o->next.empty(), "no partitions");
    for (auto n : o->next) FUZZ_CHECK(n.value >= 0, "a negative offset");
    FUZZ_CHECK(Offsets::parse(o->toString()) == o, "toString does not parse back");
  }
}

void checkTime(std::string_view in) {
  auto t = parseTime(in);
  if (!t) return;
  // Seconds, or RFC 3339 "YYYY-MM-DDTHH:MM:SS[.f](Z|±hh:mm)" (40 characters at most).
  FUZZ_CHECK(in.size() <= 40, "a time of " + std::to_string(in.size()) + " characters");
  if (in.find_first_not_of("0123456789") == std::string_view::npos) {
    FUZZ_CHECK(t->time_since_epoch() % 1s == 0us, "Unix seconds with a fraction");
    return;
  }
  // A UTC time names the moment it writes: formatTime writes the same date and time
  // (a leap second :60 is the next second, so compare the second before).
  if (in.size() < 20 || (in.back() != 'Z' && in.back() != 'z')) return;
  bool leap = in.substr(17, 2) == "60";
  std::string want = std::string(in.substr(0, 17)) + (leap ? "59" : std::string(in.substr(17, 2)));
  want[10] = 'T';
  std::string got = formatTime(*t - (leap ? 1s : 0s)).substr(0, 19);
  FUZZ_CHECK(got == want, "\"" + std::string(in) + "\" reads as " + formatTime(*t));
}

}  // namespace
}  // namespace tokenledger::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tokenledger::fuzz;
  static FixedLedger ledger;  // removed at exit; a crash leaves its /tmp/tl-unit-* behind
  std::string_view in(reinterpret_cast<const char*>(data), size);
  checkAuthorization(in, *ledger.reader);
  checkPath(in);
  checkQuery(in);
  checkMediaType(in);
  checkPositions(in);
  checkTime(in);
  return 0;
}
