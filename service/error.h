// How the service says no, everywhere: a stable machine code and a message for a
// person that says what to do. The codes are the API's `error.code` values
// (docs/api.md, "Errors"): invalid_user, not_found, expired, already_rotated,
// log_unavailable, projection_lagging, read_model_full, disk_full, busy,
// projection_failing, …
//
// An Error carries no HTTP status: the commands (token_service.h) and the input
// parsers (http_input.h) know nothing of HTTP. The API maps each code to its status
// in one table (api.h, httpStatusOf).
#pragma once

#include <string>

namespace tokenledger {

struct Error {
  std::string code;
  std::string message;
};

}  // namespace tokenledger
