// When a token is valid: the one rule, for the read model's state and its verify
// record (projections/) and, through the same state, for ledger-audit's answers at
// any time (tools/).
#pragma once

#include <optional>
#include <string_view>

#include "events/times.h"

namespace tokenledger {

enum class Status { active, inactive, expired };
std::string_view toString(Status status);  // "active", "inactive", "expired"

// A token's status at `now`, from what the projection keeps of it: whether it is
// active, its expiry (none: never) and, for an active token, a scheduled
// deactivation (none: none scheduled). Expiry wins over everything; a scheduled
// deactivation takes effect at its time.
// Inline: verification asks this on every request.
inline Status statusAt(bool active, std::optional<Timestamp> expiresAt,
                       std::optional<Timestamp> deactivateAt, Timestamp now) {
  if (expiresAt && now >= *expiresAt) return Status::expired;
  if (!active) return Status::inactive;
  if (deactivateAt && now >= *deactivateAt) return Status::inactive;
  return Status::active;
}

}  // namespace tokenledger
