#include "tools/tokenctl_request.h"

#include <cctype>
#include <iostream>
#include <nlohmann/json.hpp>
#include <set>

#include "events/rules.h"
#include "tools/tokenctl_output.h"

namespace tokenledger::tools::tokenctl {
namespace {

// A time argument: digits are Unix seconds (sent as a JSON integer), anything
// else is passed on as an RFC 3339 string for the service to validate.
Json timeValue(std::string_view flag, const std::string& text) {
  if (text.empty())
    throw UsageError(std::string(flag) + " needs a time (RFC 3339 or Unix seconds)");
  size_t digitsFrom = text[0] == '-' ? 1 : 0;
  bool numeric = text.size() > digitsFrom &&
                 text.find_first_not_of("0123456789", digitsFrom) == std::string::npos;
  if (numeric) {
    std::optional<int64_t> seconds = parseInt64(text);
    if (!seconds) {
      throw UsageError(std::string(flag) + ": '" + sanitize(text) + "' is not a valid number");
    }
    return *seconds;
  }
  return text;
}

std::string jsonBody(const Json& body) {
  return body.dump();
}

}  // namespace

Call buildCall(const Arguments& args, const std::string& base) {
  const std::string& command = args.command;
  Call call;
  HttpRequest& req = call.request;
  req.headers.push_back("Accept: application/json");
  if (command == "verify") {
    std::string credential;
    if (hasFlag(args, "--stdin")) {
      std::getline(std::cin, credential);
      credential = trimRight(credential);
      if (credential.empty()) throw UsageError("verify --stdin: no KEY:TOKEN on standard input");
    } else {
      credential = args.positionals[0];
    }
    if (credential.find(':') == std::string::npos || credential.front() == ':' ||
        credential.back() == ':') {
      throw UsageError("verify needs KEY:TOKEN (the key, a colon, then the secret token)");
    }
    req.method = "POST";
    req.url = base + "/v1/verify";
    req.headers.push_back("Authorization: Basic " + base64Encode(credential));
    call.verifyCredential = credential;
    return call;
  }

  const std::string& user = args.positionals[0];
  std::string tokens = base + "/v1/users/" + user + "/tokens";
  if (command == "create") {
    if (!hasFlag(args, "--description")) {
      throw UsageError("create needs --description TEXT");
    }
    Json body = Json::object();
    std::string description;
    check(checkDescription(flagOr(args, "--description"), description));
    body["description"] = description;
    std::string kind = flagOr(args, "--kind", "user");
    if (kind != "user" && kind != "destination") {
      throw UsageError("--kind must be 'user' or 'destination', not '" + sanitize(kind) + "'");
    }
    if (hasFlag(args, "--kind")) body["kind"] = kind;
    if (kind == "destination" && !hasFlag(args, "--destination-id")) {
      throw UsageError("--kind destination needs --destination-id ID");
    }
    if (hasFlag(args, "--destination-id")) {
      if (kind != "destination") {
        throw UsageError("--destination-id is only allowed with --kind destination");
      }
      check(checkDestinationId(flagOr(args, "--destination-id")));
      body["destination_id"] = flagOr(args, "--destination-id");
    }
    if (hasFlag(args, "--expires-at")) {
      body["expires_at"] = timeValue("--expires-at", flagOr(args, "--expires-at"));
    }
    req.method = "POST";
    req.url = tokens;
    req.body = jsonBody(body);
    return call;
  }
  auto checkKind = [&](const std::string& kind) {
    if (kind != "user" && kind != "destination")
      throw UsageError("--kind must be 'user' or 'destination', not '" + sanitize(kind) + "'");
    return kind;
  };
  if (command == "list") {
    std::string query;
    if (hasFlag(args, "--status")) {
      std::string status = flagOr(args, "--status");
      if (status != "active" && status != "inactive" && status != "expired")
        throw UsageError("--status must be active, inactive or expired, not '" + sanitize(status) +
                         "'");
      query += "&status=" + status;
    }
    std::string kind = hasFlag(args, "--kind") ? checkKind(flagOr(args, "--kind")) : "";
    if (!hasFlag(args, "--limit") && !hasFlag(args, "--cursor")) {
      // Every token, a page of 1000 at a time: user tokens, then destination tokens.
      call.walkKinds = kind.empty() ? std::vector<std::string>{"user", "destination"}
                                    : std::vector<std::string>{kind};
      req.url = tokens + "?limit=1000" + query;
      return call;
    }
    if (!kind.empty()) query += "&kind=" + kind;
    if (hasFlag(args, "--limit")) {
      std::optional<int64_t> limit = parseInt64(flagOr(args, "--limit"));
      if (!limit || *limit < 1 || *limit > 1000)
        throw UsageError("--limit must be a whole number from 1 to 1000");
      query += "&limit=" + std::to_string(*limit);
    }
    if (hasFlag(args, "--cursor")) {
      std::string cursor = flagOr(args, "--cursor");
      bool ok = !cursor.empty() && cursor.size() <= 128;
      for (char c : cursor) ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '_');
      if (!ok)
        throw UsageError("--cursor: '" + sanitize(cursor) + "' is not a cursor tokenctl printed");
      query += "&cursor=" + cursor;
    }
    req.url = tokens + (query.empty() ? "" : "?" + query.substr(1));
    return call;
  }
  if (command == "deactivate-all") {
    if (!hasFlag(args, "--reason"))
      throw UsageError("deactivate-all needs --reason bulk or --reason compromised");
    Json body = Json::object();
    std::string reason = flagOr(args, "--reason");
    if (reason != "bulk" && reason != "compromised")
      throw UsageError("--reason must be bulk or compromised, not '" + sanitize(reason) + "'");
    body["reason"] = reason;
    if (hasFlag(args, "--kind")) body["kind"] = checkKind(flagOr(args, "--kind"));
    if (hasFlag(args, "--effective-at"))
      body["effective_at"] = timeValue("--effective-at", flagOr(args, "--effective-at"));
    // Without --yes only counts: the operator sees how many tokens it would stop.
    body["dry_run"] = !hasFlag(args, "--yes");
    req.method = "POST";
    req.url = tokens + "/deactivate";
    req.body = jsonBody(body);
    return call;
  }
  std::string token = tokens + "/" + args.positionals[1];
  if (command == "get") {
    req.url = token;
  } else if (command == "history") {
    req.url = token + "/history";
  } else if (command == "activate") {
    req.method = "POST";
    req.url = token + "/activate";
    req.body = "{}";
  } else if (command == "deactivate") {
    Json body = Json::object();
    if (hasFlag(args, "--reason")) {
      static const std::set<std::string, std::less<>> kReasons = {"manual", "rotation",
                                                                  "compromised", "expired", "bulk"};
      std::string reason = flagOr(args, "--reason");
      if (kReasons.count(reason) == 0) {
        throw UsageError("--reason must be one of manual, rotation, compromised, expired, bulk");
      }
      body["reason"] = reason;
    }
    if (hasFlag(args, "--effective-at")) {
      body["effective_at"] = timeValue("--effective-at", flagOr(args, "--effective-at"));
    }
    req.method = "POST";
    req.url = token + "/deactivate";
    req.body = jsonBody(body);
  } else if (command == "rotate") {
    Json body = Json::object();
    if (hasFlag(args, "--grace-seconds")) {
      std::string text = flagOr(args, "--grace-seconds");
      std::optional<int64_t> seconds = parseInt64(text);
      if (!seconds || *seconds < 0) {
        throw UsageError("--grace-seconds: '" + sanitize(text) +
                         "' is not a whole number of seconds (0 or more)");
      }
      body["grace_seconds"] = *seconds;
    }
    req.method = "POST";
    req.url = token + "/rotate";
    req.body = jsonBody(body);
  }
  return call;
}

std::string pageUrl(const Call& call, const std::string& kind, const std::string& cursor) {
  return call.request.url + "&kind=" + kind + (cursor.empty() ? "" : "&cursor=" + cursor);
}

}  // namespace tokenledger::tools::tokenctl
