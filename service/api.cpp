#include "service/api.h"

#include <atomic>
#include <vector>

#include "service/http_input.h"
#include "service/json.h"
#include "service/verifier.h"
#include "service/web_assets.h"

namespace tokenledger {
namespace {

using nlohmann::json;

HttpResponse methodNotAllowed(std::string_view allow) {
  auto r =
      errorResponse(405, "method_not_allowed", "this path accepts " + std::string(allow) + " only");
  r.allow = std::string(allow);
  return r;
}

HttpResponse okJson(int status, const json& j) {
  HttpResponse r;
  r.status = status;
  r.body = dumpJson(j);
  return r;
}

// Parses an optional JSON object body and checks its fields against `allowed`.
// Returns the object (empty when there is no body) or the 4xx to send.
std::variant<json, HttpResponse> parseBody(const HttpRequest& req,
                                           std::initializer_list<std::string_view> allowed,
                                           bool required) {
  if (!req.contentType.empty()) {
    std::string type = mediaTypeOf(req.contentType);
    // curl -d sends x-www-form-urlencoded by default; accept it when the body is JSON.
    if (type != "application/json" && type != "application/x-www-form-urlencoded" &&
        type != "text/plain")
      return errorResponse(415, "unsupported_media_type",
                           "send the body as application/json, not " + type);
  }
  if (!req.hasBody || req.body.empty()) {
    if (required) return errorResponse(400, "invalid_json", "this call needs a JSON object body");
    return json::object();
  }
  auto parsed = parseJsonObject(req.body, allowed);
  if (auto* err = std::get_if<InputError>(&parsed))
    return errorResponse(400, err->code, err->message);
  return std::move(std::get<json>(parsed));
}

HttpResponse invalidField(std::string_view field, std::string_view expected) {
  return errorResponse(400, "invalid_field",
                       "field \"" + std::string(field) + "\" must be " + std::string(expected));
}

HttpResponse shuttingDown() {
  return errorResponse(503, "shutting_down", "the service is shutting down; retry elsewhere");
}

HttpResponse fromError(const CommandError& e) {
  return errorResponse(e.status, e.code, e.message);
}

json withPosition(json j, const TokenResult& r) {
  if (r.position) j["position"] = toString(*r.position);
  return j;
}

}  // namespace

HttpResponse errorResponse(int status, std::string_view code, std::string_view message) {
  HttpResponse r;
  r.status = status;
  r.body = errorBody(code, message);
  return r;
}

Api::Api(std::string_view operatorSecret, Projector& projector, const Clock& clock)
    : operatorHash_(hashSecret(operatorSecret)), projector_(projector), clock_(clock) {}

void Api::setSigningKeys(const KeyRing& keys, const std::string& currentKeyId) {
  json list = json::array();
  for (const auto& k : keys.keys())
    list.push_back(json{{"key_id", k.keyId},
                        {"public_key", base64Encode(k.key)},
                        {"algorithm", "ed25519"},
                        {"current", k.keyId == currentKeyId}});
  keysBody_ = dumpJson(json{{"keys", std::move(list)}});
}

bool Api::operatorAuthorized(std::string_view authorization) const {
  auto secret = authCredentials(authorization, "Bearer");
  if (!secret) return false;
  // Compare hashes so the comparison time does not depend on the secret's length.
  return hashesEqual(hashSecret(*secret), operatorHash_);
}

HttpResponse Api::created(const TokenResult& r) const {
  json out = withPosition(tokenJson(r.token, clock_.nowUs()), r);
  out["token"] = r.secret;
  return okJson(201, out);
}

HttpResponse Api::verify(std::string_view authorization, ReadModelReader& reader) {
  std::string credentials;
  VerifyOutcome out;
  if (decodeBasicAuth(authorization, credentials))
    out = verifyCredentials(credentials, reader, clock_.nowUs());
  HttpResponse r;
  if (out.valid()) {
    r.status = 200;
    r.body.reserve(160);
    r.body = R"({"valid":true,"key":")" + std::string(out.key()) + R"(","owner":")" +
             out.token.owner + R"(","kind":")" + std::string(toString(out.token.kind)) + '"';
    if (out.token.kind == TokenKind::destination)
      r.body += R"(,"destination_id":")" + out.token.destinationId + '"';
    r.body += '}';
  } else {
    r.status = 401;
    r.wwwAuthenticate = true;
    r.body = R"({"valid":false,"reason":")" + std::string(toString(out.reason)) + R"("})";
  }
  return r;
}

Routed Api::waitThenVerify(const std::vector<Position>& wanted, std::string_view authorization) {
  // Not applied here yet: wait without holding any thread. The projector calls back
  // once it applied the positions or the time is up; the verify then runs on the
  // request's loop. Waiters are capped, so that nobody, with or without a
  // credential, can queue unbounded work.
  if (positionWaiters_.fetch_add(1) >= maxPositionWaiters_) {
    positionWaiters_.fetch_sub(1);
    return errorResponse(503, "too_many_waiters",
                         std::to_string(maxPositionWaiters_) +
                             " verifications already wait for positions this replica has not "
                             "applied; retry shortly, or ask another replica");
  }
  Offsets want;
  for (const auto& p : wanted) {
    auto part = static_cast<size_t>(p.partition);
    if (want.next.size() <= part) want.next.resize(part + 1, 0);
    want.next[part] = std::max(want.next[part], p.offset + 1);
  }
  return Started(
      [this, want = std::move(want), auth = std::string(authorization)](Reply reply) mutable {
        projector_.whenApplied(
            want, kMinPositionWait,
            [this, reply = std::move(reply), auth = std::move(auth)](bool applied) {
              positionWaiters_.fetch_sub(1);
              reply([this, applied, auth](ReadModelReader& reader) {
                if (!applied)
                  return errorResponse(503, "position_not_reached",
                                       "this replica has applied the log up to " +
                                           projector_.applied().toString() +
                                           ", not yet the position asked for; retry, or ask "
                                           "another replica");
                // The loop's snapshot may predate the batch that applied it.
                reader.release();
                return verify(auth, reader);
              });
            });
      });
}

Routed Api::handle(const HttpRequest& req, ReadModelReader& reader) {
  // The hot path: a plain verify needs no path splitting.
  if (req.path == "/v1/verify" && (req.method == "GET" || req.method == "POST") &&
      req.minPosition.empty() && req.query.empty())
    return verify(req.authorization, reader);
  auto split = splitPath(req.path);
  if (!split) return errorResponse(400, "invalid_path", "the path has a broken %-escape");
  const std::vector<std::string>& parts = *split;
  const auto& m = req.method;
  // HEAD is GET without the body (h2o_send_inline leaves it out).
  bool get = m == "GET" || m == "HEAD", post = m == "POST";

  if (parts.size() == 1 && parts[0] == "healthz") {
    if (!get) return methodNotAllowed("GET, HEAD");
    return okJson(200, json{{"status", "ok"}});
  }
  if (parts.size() == 1 && parts[0] == "readyz") {
    if (!get) return methodNotAllowed("GET, HEAD");
    if (!projector_.ready())
      return errorResponse(503, "not_ready",
                           "the read model is still catching up with the log, or the projector "
                           "is failing (see the service log)");
    // Verification still answers then, but commands are refused: take this replica
    // out of rotation until the operator acts.
    if (auto refusal = projector_.refusal())
      return errorResponse(503, refusal->code, refusal->message);
    if (auto why = log_ ? log_->refusing() : std::nullopt)
      return errorResponse(503, "log_unavailable", *why + "; commands are refused until it works");
    return okJson(200, json{{"status", "ready"}, {"applied", projector_.applied().toString()}});
  }
  if (parts.size() == 2 && parts[0] == "v1" && parts[1] == "keys") {
    // Public keys that sign this service's events (docs/audit.md); no secret here.
    if (!get) return methodNotAllowed("GET, HEAD");
    HttpResponse r;
    r.body = keysBody_;
    return r;
  }
  if (parts.size() == 2 && parts[0] == "v1" && parts[1] == "verify") {
    if (!get && !post) return methodNotAllowed("GET, HEAD, POST");
    std::string_view minPosition = req.minPosition;
    if (minPosition.empty()) minPosition = queryValue(req.query, "min_position");
    if (minPosition.empty()) return verify(req.authorization, reader);
    // A consistency token: the positions of events the caller needs to see.
    std::vector<Position> wanted;
    for (std::string_view rest = minPosition; !rest.empty();) {
      auto comma = rest.find(',');
      auto p = parsePosition(rest.substr(0, comma));
      if (!p)
        return errorResponse(400, "invalid_min_position",
                             "min_position must be positions p:o[,p:o…] as returned by commands");
      wanted.push_back(*p);
      rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    }
    Offsets applied = reader.applied();
    bool covered = true;
    for (const auto& p : wanted) covered = covered && applied.covers(p);
    if (covered) return verify(req.authorization, reader);
    return waitThenVerify(wanted, req.authorization);
  }
  if (parts.size() == 1) {
    std::string_view path = req.path == "/" ? std::string_view("/index.html") : req.path;
    for (const auto& asset : webAssets()) {
      if (asset.path != path) continue;
      if (!get) return methodNotAllowed("GET, HEAD");
      HttpResponse r;
      r.body = std::string(asset.body);
      r.contentType = asset.contentType;
      r.page = true;
      return r;
    }
  }
  if (parts.size() < 4 || parts.size() > 6 || parts[0] != "v1" || parts[1] != "users" ||
      parts[3] != "tokens")
    return errorResponse(404, "not_found", "no such route; see docs/api.md");
  if (parts.size() == 6 && parts[5] != "activate" && parts[5] != "deactivate" &&
      parts[5] != "rotate" && parts[5] != "history")
    return errorResponse(404, "not_found", "no such route; see docs/api.md");

  // Method check before authentication: a wrong method is wrong for everybody.
  std::string_view allow = parts.size() == 4       ? "GET, HEAD, POST"
                           : parts.size() == 5     ? "GET, HEAD"
                           : parts[5] == "history" ? "GET, HEAD"
                                                   : "POST";
  if (!((get && allow.find("GET") != std::string_view::npos) ||
        (post && allow.find("POST") != std::string_view::npos)))
    return methodNotAllowed(allow);
  if (req.body.size() > kMaxBodyBytes)
    return errorResponse(413, "payload_too_large",
                         "the body exceeds " + std::to_string(kMaxBodyBytes) + " bytes");
  if (req.authorization.empty())
    return errorResponse(401, "unauthorized",
                         "send the operator secret as Authorization: Bearer <secret>");
  if (!operatorAuthorized(req.authorization))
    return errorResponse(401, "unauthorized", "the operator secret is wrong");

  const std::string& user = parts[2];
  if (auto err = checkUserId(user)) return errorResponse(400, "invalid_user", *err);
  int64_t now = clock_.nowUs();
  CommandContext ctx{"operator", req.requestId};

  if (parts.size() == 4 && get) {
    json tokens = json::array();
    for (const auto& t : reader.tokensOf(user)) tokens.push_back(tokenJson(t, now));
    return okJson(200, json{{"user", user}, {"tokens", std::move(tokens)}});
  }
  if (parts.size() == 4 && post) {
    if (shuttingDown_) return shuttingDown();
    auto parsed = parseBody(req, {"description", "kind", "destination_id", "expires_at"}, true);
    if (auto* r = std::get_if<HttpResponse>(&parsed)) return *r;
    const json& j = std::get<json>(parsed);
    CreateCommand cmd;
    cmd.user = user;
    if (!j.contains("description"))
      return invalidField("description", "present (1-200 characters)");
    if (!j["description"].is_string()) return invalidField("description", "a string");
    cmd.description = j["description"].get<std::string>();
    if (j.contains("kind")) {
      auto kind = j["kind"].is_string() ? parseKind(j["kind"].get<std::string>()) : std::nullopt;
      if (!kind) return invalidField("kind", "\"user\" or \"destination\"");
      cmd.kind = *kind;
    }
    if (j.contains("destination_id")) {
      if (!j["destination_id"].is_string()) return invalidField("destination_id", "a string");
      cmd.destinationId = j["destination_id"].get<std::string>();
    }
    if (j.contains("expires_at")) {
      auto t = parseTime(j["expires_at"]);
      if (!t) return invalidField("expires_at", "an RFC 3339 time or Unix seconds, after 1970");
      cmd.expiresAtUs = *t;
    }
    if (!signer_)
      return Deferred([cmd, ctx, this](TokenService& svc) {
        auto result = svc.create(cmd, ctx);
        if (auto* e = std::get_if<CommandError>(&result)) return fromError(*e);
        return created(std::get<TokenResult>(result));
      });
    auto prepared = prepareCreate(cmd, ctx, clock_);
    if (auto* e = std::get_if<CommandError>(&prepared)) return fromError(*e);
    return Started([this, p = std::move(std::get<PreparedCreate>(prepared))](Reply reply) mutable {
      startCreate(*signer_, projector_, visibilityTimeout_, std::move(p),
                  [this, reply = std::move(reply)](auto outcome) {
                    reply([this, outcome = std::move(outcome)](ReadModelReader& reader) {
                      if (auto* e = std::get_if<CommandError>(&outcome)) return fromError(*e);
                      const auto& o = std::get<CreateOutcome>(outcome);
                      // The snapshot may predate the commit that added the token.
                      reader.release();
                      auto token = reader.token(o.key);
                      if (!token)
                        return errorResponse(503, "projection_lagging",
                                             "the token is not visible yet");
                      return created(TokenResult{*token, o.secret, o.position, std::nullopt});
                    });
                  });
    });
  }

  const std::string& key = parts[4];
  if (parts.size() == 5 || parts[5] == "history") {
    auto token = isWellFormedKey(key) ? reader.token(key) : std::nullopt;
    if (!token || token->owner != user)
      return errorResponse(404, "not_found", "no token " + key + " for this user");
    if (parts.size() == 5) return okJson(200, tokenJson(*token, now));
    json events = json::array();
    for (const auto& e : reader.history(key)) events.push_back(eventJson(e));
    json out{{"key", key}, {"events", std::move(events)}};
    if (!token->replaces.empty()) out["replaces"] = token->replaces;
    if (!token->replacedBy.empty()) out["replaced_by"] = token->replacedBy;
    return okJson(200, out);
  }
  if (shuttingDown_) return shuttingDown();

  if (parts[5] == "activate") {
    auto parsed = parseBody(req, {}, false);
    if (auto* r = std::get_if<HttpResponse>(&parsed)) return *r;
    return Deferred([user, key, ctx, this](TokenService& svc) {
      auto result = svc.activate(user, key, ctx);
      if (auto* e = std::get_if<CommandError>(&result)) return fromError(*e);
      const auto& r = std::get<TokenResult>(result);
      json out = withPosition(tokenJson(r.token, clock_.nowUs()), r);
      out["changed"] = r.position.has_value();
      return okJson(200, out);
    });
  }
  if (parts[5] == "deactivate") {
    auto parsed = parseBody(req, {"reason", "effective_at"}, false);
    if (auto* r = std::get_if<HttpResponse>(&parsed)) return *r;
    const json& j = std::get<json>(parsed);
    DeactivateCommand cmd{user, key, Reason::manual, std::nullopt};
    if (j.contains("reason")) {
      auto reason =
          j["reason"].is_string() ? parseReason(j["reason"].get<std::string>()) : std::nullopt;
      if (!reason)
        return invalidField("reason",
                            "one of \"manual\", \"rotation\", \"compromised\", \"expired\", "
                            "\"bulk\"");
      cmd.reason = *reason;
    }
    if (j.contains("effective_at")) {
      auto t = parseTime(j["effective_at"]);
      if (!t) return invalidField("effective_at", "an RFC 3339 time or Unix seconds, after 1970");
      cmd.effectiveAtUs = *t;
    }
    return Deferred([cmd, ctx, this](TokenService& svc) {
      auto result = svc.deactivate(cmd, ctx);
      if (auto* e = std::get_if<CommandError>(&result)) return fromError(*e);
      const auto& r = std::get<TokenResult>(result);
      json out = withPosition(tokenJson(r.token, clock_.nowUs()), r);
      out["changed"] = r.position.has_value();
      return okJson(200, out);
    });
  }
  // rotate
  auto parsed = parseBody(req, {"grace_seconds", "expires_at"}, false);
  if (auto* r = std::get_if<HttpResponse>(&parsed)) return *r;
  const json& j = std::get<json>(parsed);
  RotateCommand cmd{user, key, 0, std::nullopt};
  if (j.contains("expires_at")) {
    auto t = parseTime(j["expires_at"]);
    if (!t) return invalidField("expires_at", "an RFC 3339 time or Unix seconds, after 1970");
    cmd.expiresAtUs = *t;
  }
  if (j.contains("grace_seconds")) {
    const auto& g = j["grace_seconds"];
    if (!g.is_number_integer() || g.get<int64_t>() < 0 || g.get<int64_t>() > kMaxGraceSeconds)
      return invalidField("grace_seconds",
                          "an integer from 0 to " + std::to_string(kMaxGraceSeconds));
    cmd.graceSeconds = g.get<int64_t>();
  }
  return Deferred([cmd, ctx, this](TokenService& svc) {
    auto result = svc.rotate(cmd, ctx);
    if (auto* e = std::get_if<CommandError>(&result)) return fromError(*e);
    const auto& r = std::get<TokenResult>(result);
    int64_t nowUs = clock_.nowUs();
    json out = withPosition(tokenJson(r.token, nowUs), r);
    out["token"] = r.secret;
    if (r.previous) out["previous"] = tokenJson(*r.previous, nowUs);
    return okJson(200, out);
  });
}

}  // namespace tokenledger
