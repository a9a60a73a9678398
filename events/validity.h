// When a token is valid: the one rule, for the read model's state and its verify
// record (projections/) and, through the same state, for ledger-audit's answers at
// any time (tools/).
#pragma once

#include <cstdint>
#include <string_view>

namespace tokenledger {

enum class Status { active, inactive, expired };
std::string_view toString(Status status);  // "active", "inactive", "expired"

// A token's status at `nowUs`, from what the projection keeps of it: whether it is
// active, its expiry (0: never) and, for an active token, a scheduled deactivation
// (0: none). Expiry wins over everything; a scheduled deactivation takes effect at
// its time.
Status statusAt(bool active, int64_t expiresAtUs, int64_t deactivateAtUs, int64_t nowUs);

}  // namespace tokenledger
