// The domain's input rules (events/rules.h), against the table of cases the web
// page's copy is checked against too (tests/rules_cases.json), and the cases a
// JSON table cannot hold (invalid UTF-8, NULs).
#include <doctest/doctest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "events/rules.h"

namespace tokenledger {
namespace {

nlohmann::json cases() {
  std::ifstream in(RULES_CASES_PATH);
  REQUIRE_MESSAGE(in.good(), "cannot read " RULES_CASES_PATH);
  return nlohmann::json::parse(in);
}

TEST_CASE("the rules agree with the shared table of cases") {
  auto c = cases();
  for (const std::string id : c["user_id"]["valid"]) {
    CAPTURE(id);
    CHECK_FALSE(checkUserId(id).has_value());
  }
  for (const std::string id : c["user_id"]["invalid"]) {
    CAPTURE(id);
    CHECK(checkUserId(id).has_value());
  }
  for (const std::string id : c["destination_id"]["valid"]) {
    CAPTURE(id);
    CHECK_FALSE(checkDestinationId(id).has_value());
  }
  for (const std::string id : c["destination_id"]["invalid"]) {
    CAPTURE(id);
    CHECK(checkDestinationId(id).has_value());
  }
  for (const std::string key : c["idempotency_key"]["valid"]) {
    CAPTURE(key);
    CHECK_FALSE(checkIdempotencyKey(key).has_value());
  }
  for (const std::string key : c["idempotency_key"]["invalid"]) {
    CAPTURE(key);
    CHECK(checkIdempotencyKey(key).has_value());
  }
  for (const auto& pair : c["description"]["valid"]) {
    std::string raw = pair[0], trimmed = pair[1], out;
    CAPTURE(raw);
    CHECK_FALSE(checkDescription(raw, out).has_value());
    CHECK(out == trimmed);
    CHECK_FALSE(checkStoredDescription(trimmed).has_value());
  }
  for (const std::string raw : c["description"]["invalid"]) {
    std::string out;
    CAPTURE(raw);
    CHECK(checkDescription(raw, out).has_value());
  }
  CHECK(c["description"]["max_chars"] == kMaxDescriptionChars);
}

TEST_CASE("a stored description is valid and already trimmed") {
  CHECK_FALSE(checkStoredDescription("Leads").has_value());
  CHECK(checkStoredDescription(" Leads").has_value());
  CHECK(checkStoredDescription("Leads\u00a0").has_value());
  CHECK(checkStoredDescription("").has_value());
  CHECK(checkStoredDescription(std::string(201, 'a')).has_value());
}

TEST_CASE("checkDescription") {
  std::string out;
  auto accepts = [&](std::string_view raw) {
    out.clear();
    return !checkDescription(raw, out).has_value();
  };

  SUBCASE("plain and trimmed") {
    CHECK(accepts("Receive leads from RD Station"));
    CHECK(out == "Receive leads from RD Station");
    CHECK(accepts("  \t spaced out \r\n"));
    CHECK(out == "spaced out");
    CHECK(accepts("inner  spaces kept"));
    CHECK(out == "inner  spaces kept");
  }
  SUBCASE("empty or only white space") {
    CHECK_FALSE(accepts(""));
    CHECK_FALSE(accepts("   "));
    CHECK_FALSE(accepts("\t\r\n "));
    auto msg = checkDescription(" ", out);
    REQUIRE(msg.has_value());
    CHECK(msg->find("empty") != std::string::npos);
  }
  SUBCASE("Unicode white space is trimmed too") {
    CHECK(accepts("\u00a0\u3000Leads\u2003\u00a0"));
    CHECK(out == "Leads");
    CHECK_FALSE(accepts("\u3000\u00a0\u2028"));
  }
  SUBCASE("200 characters, counted as code points") {
    CHECK(accepts(std::string(200, 'a')));
    CHECK(out.size() == 200);
    CHECK_FALSE(accepts(std::string(201, 'a')));
    CHECK(accepts("  " + std::string(200, 'a') + "  "));  // counted after trimming
    std::string e200, e201, k200;
    for (int i = 0; i < 200; ++i) e200 += "é";  // 2 bytes each
    for (int i = 0; i < 200; ++i) k200 += "🔑";  // 4 bytes each
    e201 = e200 + "é";
    CHECK(accepts(e200));
    CHECK(out == e200);
    CHECK(accepts(k200));
    CHECK_FALSE(accepts(e201));
    auto msg = checkDescription(e201, out);
    REQUIRE(msg.has_value());
    CHECK(msg->find("201") != std::string::npos);
  }
  SUBCASE("invalid UTF-8") {
    for (const char* bad : {"\xff", "abc\xc3", "\xc3\x28", "\xc0\xaf", "\xe0\x80\xaf",
                            "\xed\xa0\x80", "\xf4\x90\x80\x80", "\x80", "ok\xe2\x82"}) {
      CAPTURE(bad);
      CHECK_FALSE(accepts(bad));
    }
    auto msg = checkDescription("\xff", out);
    REQUIRE(msg.has_value());
    CHECK(msg->find("UTF-8") != std::string::npos);
  }
  SUBCASE("control characters") {
    CHECK_FALSE(accepts("line\nbreak"));
    CHECK_FALSE(accepts("tab\tinside"));
    CHECK_FALSE(accepts(std::string("nul\0inside", 10)));
    CHECK_FALSE(accepts("bell\x07"));
    CHECK_FALSE(accepts("del\x7f"));
    CHECK_FALSE(accepts("c1\u0085control"));
    CHECK_FALSE(accepts("c1\u009bcontrol"));
  }
  SUBCASE("the output is untouched on refusal") {
    out = "previous";
    CHECK(checkDescription("", out).has_value());
    CHECK(out == "previous");
  }
}

TEST_CASE("checkUserId and checkDestinationId") {
  for (const char* good : {"alice", "a", "alice@example.com", "user_1-2.3+tag", "tenant:42"}) {
    CAPTURE(good);
    CHECK_FALSE(checkUserId(good).has_value());
    CHECK_FALSE(checkDestinationId(good).has_value());
  }
  CHECK_FALSE(checkUserId(std::string(128, 'u')).has_value());
  CHECK(checkUserId(std::string(129, 'u')).has_value());
  for (const char* bad :
       {"", "alice smith", "a/b", "a\\b", "ali\xc3\xa9", "a\nb", "a?b", "a#b", "a%20b", "a\xff"}) {
    CAPTURE(bad);
    CHECK(checkUserId(bad).has_value());
    CHECK(checkDestinationId(bad).has_value());
  }
  CHECK(checkDestinationId(std::string(129, 'd')).has_value());
  CHECK(checkUserId(std::string("a\0b", 3)).has_value());
  // "." and ".." are path segments of the HTTP API, not names.
  CHECK(checkUserId(".").has_value());
  CHECK(checkUserId("..").has_value());
  CHECK_FALSE(checkUserId("...").has_value());
}

}  // namespace
}  // namespace tokenledger
