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

Status statusAt(bool active, int64_t expiresAtUs, int64_t deactivateAtUs, int64_t nowUs) {
  if (expiresAtUs != 0 && nowUs >= expiresAtUs) return Status::expired;
  if (!active) return Status::inactive;
  if (deactivateAtUs != 0 && nowUs >= deactivateAtUs) return Status::inactive;
  return Status::active;
}

}  // namespace tokenledger
