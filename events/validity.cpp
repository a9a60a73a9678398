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

}  // namespace tokenledger
