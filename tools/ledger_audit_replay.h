// How every ledger-audit command reads the log: one pass from the beginning to the
// snapshot's end, with a progress bar on a terminal and Ctrl-C as a clean stop;
// records that are not readable events are reported with their position and
// skipped, so one bad record never hides the rest of the answer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "events/event.h"
#include "events/event_log.h"
#include "events/signing.h"
#include "tools/ledger_audit.h"

namespace tokenledger::audit {

// Thrown by replay() after Ctrl-C; main() exits 130 without an answer.
struct Interrupted {};

// From now on Ctrl-C stops the running replay (instead of killing the process),
// so that what a command created is cleaned up on the way out.
void stopReplaysOnSigint();

// Replays `source` to its end, calling `handle` for every record in order per
// partition; returns how many records it read. Shows a progress bar on stderr
// when it is a terminal, unless `quiet`. Throws Interrupted on Ctrl-C, and what
// source.next() and `handle` throw.
uint64_t replay(LogSource& source, bool quiet, const std::function<void(const LogRecord&)>& handle);

// Decodes records; a malformed or unknown one is reported on stderr with its
// position and counted, and the replay goes on.
class Decoder {
 public:
  // The event, valid until the next call; nullptr when the record is not one.
  const Event* decode(const LogRecord& r);
  // Whether every record so far was a readable event.
  bool clean() const { return malformed == 0 && unknown == 0; }
  // A line on stderr when some records could not be read.
  void summary() const;

  size_t malformed = 0;  // not an event
  size_t unknown = 0;    // an event of a newer schema

 private:
  Event event_;
};

// Signature checks on up to 8 cores: each thread takes a contiguous share of a chunk,
// with a SignatureVerifier of its own that lives from chunk to chunk, so the root of
// a group (events appended together, next to each other in the log) is verified
// once per thread that meets it.
class SignatureChecker {
 public:
  SignatureChecker();
  // The checks of `records` against `keys`, in order.
  std::vector<SignatureCheck> check(const std::vector<LogRecord>& records, const KeyRing& keys);

 private:
  std::vector<SignatureVerifier> verifiers_;  // one per thread
};

}  // namespace tokenledger::audit
