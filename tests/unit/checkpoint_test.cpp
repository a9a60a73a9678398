// ledger-audit's checkpoint file (tools/checkpoint.h): a file verify-log wrote
// reads back; anything else is an error that names the problem, never an exception.
#include <doctest/doctest.h>

#include <string>
#include <variant>

#include "tools/checkpoint.h"

namespace tokenledger::audit {
namespace {

const std::string kDigest(64, 'a');

// What the checkpoint parser makes of `text`: the error, or "ok".
std::string errorOf(const std::string& text) {
  auto parsed = parseCheckpoint(text);
  if (auto* err = std::get_if<std::string>(&parsed)) return *err;
  return "ok";
}

TEST_CASE("a checkpoint as verify-log writes it") {
  // The shape formatCheckpoint writes (tools/checkpoint.cpp).
  const std::string text = R"({
  "end": "0:12,1:0",
  "log": "embedded log in data/log",
  "version": 1,
  "writers": {
    "0123456789abcdef": {"digest": ")" +
                           kDigest + R"(", "position": "0:11", "seq": 12},
    "fedcba9876543210": {"digest": ")" +
                           std::string(64, '0') + R"(", "position": "1:3", "seq": 1}
  },
  "written_at": "2026-11-28T10:00:00.000Z"
})";
  auto parsed = parseCheckpoint(text);
  REQUIRE(std::holds_alternative<Checkpoint>(parsed));
  const auto& c = std::get<Checkpoint>(parsed);
  CHECK(c.end == Offsets::of({12, 0}));
  REQUIRE(c.writers.size() == 2);
  CHECK(c.writers.at("0123456789abcdef") == std::pair<uint64_t, std::string>{12, kDigest});
  CHECK(c.writers.at("fedcba9876543210").first == 1);
  // No writers yet (an empty log) is a checkpoint too.
  CHECK(errorOf(R"({"end":"0:0","writers":{}})") == "ok");
}

TEST_CASE("what formatCheckpoint writes, parseCheckpoint reads back") {
  Digest digest{};
  digest.fill(0xab);
  std::string hex;
  for (int i = 0; i < 32; ++i) hex += "ab";
  CHECK(digestHex(digest) == hex);
  const Checkpoint c{Offsets::of({12, 0}),
                     {{"0123456789abcdef", {12, digestHex(digest)}},
                      {"fedcba9876543210", {1, std::string(64, '0')}}}};
  const std::string text = formatCheckpoint(
      c, "embedded log in data/log", Timestamp{std::chrono::microseconds{1'795'860'000'000'000}},
      {{"0123456789abcdef", Position{Partition{0}, Offset{11}}},
       {"fedcba9876543210", Position{Partition{1}, Offset{3}}}});
  auto parsed = parseCheckpoint(text);
  REQUIRE(std::holds_alternative<Checkpoint>(parsed));
  CHECK(std::get<Checkpoint>(parsed) == c);
  // For people: the log, when, and where each writer's last event is.
  CHECK(text.find(R"("log": "embedded log in data/log")") != std::string::npos);
  CHECK(text.find(R"("written_at": "2026-11-28T10:00:00.000Z")") != std::string::npos);
  CHECK(text.find(R"("position": "1:3")") != std::string::npos);
}

TEST_CASE("a damaged checkpoint is an error that says what is wrong") {
  auto writer = [](const std::string& fields) {
    return R"({"end":"0:5","writers":{"0123456789abcdef":{)" + fields + "}}}";
  };
  const std::string digest = R"("digest":")" + kDigest + '"';
  struct Case {
    std::string text;
    std::string error;  // a part of the message
  };
  for (const auto& [text, error] : std::initializer_list<Case>{
           {"", "not valid JSON"},
           {"{", "not valid JSON"},
           {"\xff", "not valid JSON"},
           {"[]", "not a JSON object"},
           {R"({"version":2,"end":"0:5","writers":{}})", "\"version\" is not 1"},
           {R"({"version":"1","end":"0:5","writers":{}})", "\"version\" is not 1"},
           {R"({"writers":{}})", "no \"end\""},
           // Types the old reader threw nlohmann::json::type_error on.
           {R"({"end":5,"writers":{}})", "\"end\" must be a string of offsets"},
           {R"({"end":"0:5","writers":[]})", "no \"writers\" object"},
           {R"({"end":"0:5","writers":{"0123456789abcdef":7}})", "not an object"},
           {writer(R"("seq":"3",)" + digest), "\"seq\" must be a whole number from 1"},
           {writer(R"("digest":7,"seq":3)"), "\"digest\" must be 64 lower-case hex"},
           // Silently ignored before: the comparison then checked nothing.
           {R"({"end":"5","writers":{}})", "\"end\" must be a string of offsets"},
           {R"({"end":"0:1,2:3","writers":{}})", "\"end\" must be a string of offsets"},
           // seq 0 made verify-log index seq - 1 of an empty list.
           {writer(R"("seq":0,)" + digest), "\"seq\" must be a whole number from 1"},
           {writer(R"("seq":-1,)" + digest), "\"seq\" must be a whole number from 1"},
           {writer(R"("seq":1.5,)" + digest), "\"seq\" must be a whole number from 1"},
           {writer(digest), "\"seq\" must be a whole number from 1"},
           {writer(R"("seq":3,"digest":")" + std::string(64, 'A') + '"'), "\"digest\" must be"},
           {writer(R"("seq":3,"digest":"abc")"), "\"digest\" must be"},
           {writer(R"("seq":3)"), "\"digest\" must be"},
           {R"({"end":"0:5","writers":{"KEY\u0001":{}}})",
            R"(writer "KEY\u0001": a key id is 16 lower-case hex characters)"},
       }) {
    CAPTURE(text);
    std::string got = errorOf(text);
    CHECK_MESSAGE(got.find(error) != std::string::npos, got);
  }
}

}  // namespace
}  // namespace tokenledger::audit
