// The HTTP request of each tokenctl command (docs/api.md): method, path, headers
// and JSON body, built from checked arguments.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "tools/http_client.h"
#include "tools/tokenctl_args.h"

namespace tokenledger::tools::tokenctl {

struct Call {
  HttpRequest request;
  std::optional<std::string> verifyCredential;  // verify: "KEY:TOKEN"
  // list without --limit or --cursor: walk every page of each kind in `kinds`,
  // request.url being the list's URL with its filters and no kind or cursor.
  std::vector<std::string> walkKinds;
};

// The URL of one page of a walked list: `call`'s, with `kind` and `cursor`.
std::string pageUrl(const Call& call, const std::string& kind, const std::string& cursor);

// The request of `args.command` against the service at `base` (no operator secret
// yet). Reads KEY:TOKEN from stdin for verify --stdin. Throws UsageError for a
// flag value the service would refuse (description, kind, reason, times, …).
Call buildCall(const Arguments& args, const std::string& base);

}  // namespace tokenledger::tools::tokenctl
