// A writer's place in its chain of signed events (events/signing.h): the last
// sequence number and digest it appended, persisted in DATA_DIR/signing-state so a
// restart continues the chain, and recovered from the log when that file lags.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "events/event_log.h"

namespace tokenledger {

// Where a writer's sequence stands, persisted in DATA_DIR/signing-state so a
// restart continues it.
struct WriterState {
  uint64_t lastSeq = 0;
  std::string lastDigest;  // 32 bytes, empty before the first event
  // Per partition: no event of this writer newer than lastSeq lies before these
  // offsets (so a restart scans only from here).
  Offsets scanFrom;
};

// "key_id seq digest_hex offsets"
std::string formatWriterState(const std::string& keyId, const WriterState& state);
// nullopt unless the text is a state line for `keyId`.
std::optional<WriterState> parseWriterState(std::string_view text, const std::string& keyId);

// Reads `log` from state.scanFrom to its current end and returns the state with the
// highest sequence number of `keyId` found there (and scanFrom at the end).
WriterState recoverWriterState(EventLog& log, const std::string& keyId, WriterState state);

}  // namespace tokenledger
