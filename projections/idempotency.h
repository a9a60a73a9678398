// Retry-safe commands (docs/api.md, "Idempotency-Key"): the rule that decides,
// in log order, whether an event repeats an earlier request. Shared by the
// projection (every replica and rebuild), the service (which answers a repeat with
// the original result) and ledger-audit.
//
// A command's first event carries the client's Idempotency-Key (scoped to the
// owner, so every claim on one key lies in one partition) and the digest of the
// request. The first such event that applies claims the key; a later event with the
// same owner and key within kIdempotencyWindow of the claim, by the events' own
// times, changes nothing (Conflict::duplicateRequest), on every replica alike.
#pragma once

#include <chrono>
#include <optional>

#include "events/times.h"
#include "projections/read_model_layout.h"

namespace tokenledger {

// How long a claim holds: a day covers a client's retries (seconds to hours, with
// backoff, across a restart or a broker outage), as Stripe's 24 hours do.
constexpr std::chrono::hours kIdempotencyWindow{24};
// Claims are purged once the newest applied event is this much newer. Twice the
// window: event times come from the writers' clocks, so the purge waits out a clock
// skew of up to a day before it could change a verdict.
constexpr std::chrono::hours kIdempotencyPurgeAfter{48};

using layout::IdempotencyRecord;

// Whether a request recorded at `eventTime` with a key claimed by `stored` repeats
// that claim (then its event is a duplicate request).
inline bool claimHolds(const std::optional<IdempotencyRecord>& stored, Timestamp eventTime) {
  return stored && eventTime - stored->recordedAt < kIdempotencyWindow;
}

}  // namespace tokenledger
