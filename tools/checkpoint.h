// The checkpoint of `ledger-audit verify-log --checkpoint FILE` (docs/audit.md):
// what the last successful run saw. The file's one definition: the text verify-log
// writes and a pure parser of it, apart from the tool, so that a damaged or
// hand-edited file is a clear error and never an exception or a crash (unit-tested
// in tests/unit/checkpoint_test.cpp, fuzzed in tests/fuzz).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include "events/event_log.h"
#include "events/signing.h"
#include "events/times.h"

namespace tokenledger::audit {

struct Checkpoint {
  Offsets end;  // where each partition ended
  // Per writer key id (16 lower-case hex characters): its last seq (1 or more) and
  // that event's digest (64 lower-case hex characters).
  std::map<std::string, std::pair<uint64_t, std::string>> writers;

  bool operator==(const Checkpoint&) const = default;
};

// Reads the JSON a successful verify-log wrote: {"version":1, "end":"0:N,…",
// "writers":{KEY_ID:{"seq":N,"digest":HEX,…},…}, …}; other fields are ignored.
// Never throws: on anything else, the error says what is wrong.
std::variant<Checkpoint, std::string> parseCheckpoint(std::string_view text);

// The file's text: `checkpoint`, and for people the `log` it describes, when it was
// written and where each writer's last event is (`positions`, by key id; a writer
// missing there throws std::out_of_range, a `log` that is not UTF-8 throws
// nlohmann::json::type_error). parseCheckpoint reads it back as `checkpoint`.
std::string formatCheckpoint(const Checkpoint& checkpoint, const std::string& log,
                             Timestamp writtenAt, const std::map<std::string, Position>& positions);

// A digest as the file holds it: 64 lower-case hex characters.
std::string digestHex(const Digest& digest);

}  // namespace tokenledger::audit
