// The embedded event log's on-disk format: the one definition that its writer
// (embedded_log.cpp) and every reader of its files (ledger-audit, which opens them
// read-only without the service) share. Changing anything here changes the format
// of every existing log: tests/unit/embedded_log_test.cpp pins it with literal bytes.
//
// Layout: one LMDB environment in DATA_DIR/log with one named database, "events":
//
//   key    8 bytes  the record's offset, big-endian (LMDB's byte order is then the
//                   numeric order; MDB_APPEND holds because offsets only grow)
//   value  4 bytes  the length n of the record's key (the owner), big-endian
//          n bytes  the key
//          rest     the value: one event envelope (schemas/tokenledger.capnp)
//
// Invariants: one partition (0); offsets run 0, 1, 2, … without gaps, since the
// writer appends at the last offset + 1 and never deletes (a gap means records were
// removed behind its back: ledger-audit verify-log reports it); records are never
// changed once written.
//
// Writer: EmbeddedLog (events/embedded_log.cpp), one write transaction per append,
// synced before the append returns. Readers: EmbeddedLog's LogReader in the same
// process; ledger-audit (tools/ledger_audit_sources.cpp) in another, read-only,
// while the daemon may be writing.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "events/event_log.h"

namespace tokenledger::logformat {

constexpr const char* kEventsDb = "events";
constexpr size_t kKeyBytes = 8;
constexpr size_t kLengthBytes = 4;

// The database key of the record at `offset`.
std::string recordKey(Offset offset);
// The offset a database key names; nullopt unless it is kKeyBytes long.
std::optional<Offset> offsetOf(std::string_view key);

// The database value of a record with key (owner) `key` and value `value`.
std::string packRecord(std::string_view key, std::string_view value);
// The record stored at `offset` as `raw`; nullopt when `raw` is too short for the
// key length it declares (a damaged record). Never throws.
std::optional<LogRecord> unpackRecord(Offset offset, std::string_view raw);

}  // namespace tokenledger::logformat
