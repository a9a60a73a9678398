#include "events/validity.h"

namespace tokenledger {

std::string_view toString(Status status) {
  switch (status) {
    case Status::active:
      return "active";
    case Status::inactive:
      return "inactive";
    case Status::expired:
      return "expired";
  }
  return "inactive";
}

Status statusAt(bool active, std::optional<Timestamp> expiresAt,
                std::optional<Timestamp> deactivateAt, Timestamp now) {
  if (expiresAt && now >= *expiresAt) return Status::expired;
  if (!active) return Status::inactive;
  if (deactivateAt && now >= *deactivateAt) return Status::inactive;
  return Status::active;
}

}  // namespace tokenledger
