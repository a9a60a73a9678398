#include "service/api.h"

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cstdio>
#include <optional>
#include <vector>

#include "service/http_input.h"
#include "service/json.h"
#include "service/openapi_document.h"
#include "service/verifier.h"
#include "service/web_assets.h"

namespace tokenledger {
namespace {

using nlohmann::json;

// Every error code the service answers with, and its HTTP status: the one place
// where a code meets a status. docs/api.md ("Errors") is this table for people; a
// unit test keeps the two equal.
constexpr ErrorStatus kErrorStatuses[] = {
    // Bad input.
    {"invalid_json", 400},
    {"unknown_field", 400},
    {"invalid_field", 400},
    {"invalid_description", 400},
    {"invalid_user", 400},
    {"invalid_destination_id", 400},
    {"invalid_expires_at", 400},
    {"invalid_grace_seconds", 400},  // TokenService's own; over HTTP invalid_field comes first
    {"invalid_min_position", 400},
    {"invalid_path", 400},
    {"invalid_framing", 400},
    {"invalid_idempotency_key", 400},
    {"invalid_limit", 400},
    {"invalid_cursor", 400},
    {"invalid_filter", 400},
    {"unauthorized", 401},
    {"not_found", 404},
    {"method_not_allowed", 405},
    // The token's state forbids the command.
    {"expired", 409},
    {"already_rotated", 409},
    {"conflict", 409},
    {"payload_too_large", 413},
    {"unsupported_media_type", 415},
    {"idempotency_key_reused", 422},
    {"internal_error", 500},
    // Refused before anything was recorded: the read model has no room, or cannot apply.
    {"read_model_full", 503},
    {"disk_full", 503},
    {"projection_failing", 503},
    // The log, or something else on the way, failed.
    {"log_unavailable", 503},
    {"unavailable", 503},
    // Try again later.
    {"projection_lagging", 503},
    {"shutting_down", 503},
    {"not_ready", 503},
    {"position_not_reached", 503},
    {"too_many_waiters", 503},
    {"too_many_connections", 503},
};

// The methods a route answers: GET (and so HEAD: h2o_send_inline leaves the body
// out) and POST.
enum Methods : unsigned { kGet = 1, kPost = 2 };

unsigned methodOf(std::string_view method) {
  if (method == "GET" || method == "HEAD") return kGet;
  if (method == "POST") return kPost;
  return 0;
}

// The Allow header of a path whose routes answer `methods`.
std::string_view allowHeader(unsigned methods) {
  if (methods == (kGet | kPost)) return "GET, HEAD, POST";
  return methods == kGet ? "GET, HEAD" : "POST";
}

HttpResponse methodNotAllowed(unsigned methods) {
  std::string_view allow = allowHeader(methods);
  auto r = errorResponse("method_not_allowed", "this path accepts " + std::string(allow) + " only");
  r.allow = std::string(allow);
  return r;
}

// Who may call a route.
enum class Access {
  anyone,
  // Authorization: Bearer <operator secret> (413 for a body past kMaxBodyBytes, then
  // 401 unauthorized, before the handler runs).
  operatorOnly,
  // The same, and a command: 503 shutting_down while the daemon drains.
  operatorCommand,
};

// A route's path parameters, one per kind:
//   {user}  any segment; checked by checkUserId after authentication (400 invalid_user)
//   {key}   any segment; the handler looks the token up (404 not_found)
//   {file}  the whole path, as sent, names one of the web page's files ("/" is
//           /index.html); a path that names none does not match
struct PathParams {
  std::optional<std::string_view> user;  // decoded
  std::string_view key;                  // decoded
  const WebAsset* file = nullptr;
};

// Calls `f` with each segment of `pattern` ("/v1/{user}": "v1", then "{user}") while
// it returns true; true if it always did.
template <typename F>
constexpr bool eachSegment(std::string_view pattern, F f) {
  for (std::string_view rest = pattern.substr(1);;) {
    auto slash = rest.find('/');
    if (!f(rest.substr(0, slash))) return false;
    if (slash == std::string_view::npos) return true;
    rest.remove_prefix(slash + 1);
  }
}

// Whether `pattern` is "/" and segments, each a literal or one of the parameters
// above, with {file} only as the whole pattern.
constexpr bool validPattern(std::string_view pattern) {
  if (!pattern.starts_with('/')) return false;
  return pattern == "/{file}" || eachSegment(pattern, [](std::string_view segment) {
           return !segment.empty() &&
                  (segment.front() != '{' || segment == "{user}" || segment == "{key}");
         });
}

const WebAsset* webAssetAt(std::string_view path) {
  if (path == "/") path = "/index.html";
  for (const auto& asset : webAssets())
    if (asset.path == path) return &asset;
  return nullptr;
}

// Whether the path (`parts`, decoded; `rawPath`, as sent) matches `pattern`; if it
// does, its parameters are in `params`.
bool matches(std::string_view pattern, const std::vector<std::string>& parts,
             std::string_view rawPath, PathParams& params) {
  if (pattern == "/{file}") {
    params.file = parts.size() == 1 ? webAssetAt(rawPath) : nullptr;
    return params.file != nullptr;
  }
  size_t i = 0;
  bool same = eachSegment(pattern, [&](std::string_view segment) {
    if (i == parts.size()) return false;
    const std::string& part = parts[i++];
    if (segment == "{user}")
      params.user = part;
    else if (segment == "{key}")
      params.key = part;
    else if (segment != part)
      return false;
    return true;
  });
  return same && i == parts.size();
}

constexpr int literalSegments(std::string_view pattern) {
  int n = 0;
  eachSegment(pattern, [&](std::string_view segment) {
    n += !segment.starts_with('{');
    return true;
  });
  return n;
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
      return errorResponse("unsupported_media_type",
                           "send the body as application/json, not " + type);
  }
  if (!req.hasBody || req.body.empty()) {
    if (required) return errorResponse("invalid_json", "this call needs a JSON object body");
    return json::object();
  }
  auto parsed = parseJsonObject(req.body, allowed);
  if (auto* err = std::get_if<InputError>(&parsed)) return errorResponse(*err);
  return std::move(std::get<json>(parsed));
}

HttpResponse invalidField(std::string_view field, std::string_view expected) {
  return errorResponse("invalid_field",
                       "field \"" + std::string(field) + "\" must be " + std::string(expected));
}

// What a replayed create or rotate says instead of the secret.
constexpr std::string_view kReplayedSecret =
    "an earlier request with this Idempotency-Key created this token; its secret is shown "
    "only in that request's response. If that response never arrived, deactivate this token "
    "and create a new one with a new Idempotency-Key";

json withPosition(json j, const TokenResult& r) {
  if (r.position) j["position"] = toString(*r.position);
  if (r.replayed) j["replayed"] = true;
  return j;
}

// The command's context: who, the request id, and its Idempotency-Key (checked).
std::variant<CommandContext, HttpResponse> commandContext(const HttpRequest& req) {
  CommandContext ctx{"operator", req.requestId, ""};
  if (req.idempotencyKey.empty()) return ctx;
  if (auto err = checkIdempotencyKey(req.idempotencyKey))
    return errorResponse("invalid_idempotency_key", *err);
  ctx.idempotencyKey = req.idempotencyKey;
  return ctx;
}

}  // namespace

int httpStatusOf(std::string_view code) {
  for (const auto& e : kErrorStatuses)
    if (e.code == code) return e.status;
  return 500;
}

std::span<const ErrorStatus> errorStatuses() {
  return kErrorStatuses;
}

HttpResponse errorResponse(std::string_view code, std::string_view message) {
  HttpResponse r;
  r.status = httpStatusOf(code);
  for (const auto& e : kErrorStatuses)
    if (e.code == code) r.errorCode = e.code;
  r.body = errorBody(code, message);
  return r;
}

HttpResponse errorResponse(const Error& error) {
  return errorResponse(error.code, error.message);
}

struct Api::Call {
  const HttpRequest& req;
  ReadModelReader& reader;
  PathParams params;
};

struct Api::CommandInfo {
  std::string_view type;  // create, activate, deactivate, rotate
  std::string requestId;
  std::string user;
  std::string key;  // empty for create
  std::chrono::steady_clock::time_point start;
};

struct Api::Route {
  unsigned methods;          // Methods
  std::string_view pattern;  // "/v1/users/{user}/tokens", see PathParams
  Access access;
  Routed (Api::*handler)(const Call&);
};

// The route table: every route of the API, once. The first route whose pattern
// matches the path and which answers the method serves the request; a path no
// pattern matches is 404, one whose routes answer other methods 405 with Allow.
std::span<const Api::Route> Api::routes() {
  static constexpr Route kRoutes[] = {
      {kGet, "/healthz", Access::anyone, &Api::health},
      {kGet, "/readyz", Access::anyone, &Api::readiness},
      {kGet, "/v1/keys", Access::anyone, &Api::signingKeys},
      {kGet, "/metrics", Access::anyone, &Api::metricsRoute},
      {kGet, "/v1/openapi.yaml", Access::anyone, &Api::openapi},
      // Api::handle answers a plain verify before the table (the hot path).
      {kGet | kPost, "/v1/verify", Access::anyone, &Api::verifyRoute},
      {kGet, "/{file}", Access::anyone, &Api::page},
      {kGet, "/v1/users/{user}/tokens", Access::operatorOnly, &Api::listTokens},
      {kPost, "/v1/users/{user}/tokens", Access::operatorCommand, &Api::createToken},
      {kPost, "/v1/users/{user}/tokens/deactivate", Access::operatorCommand, &Api::deactivateAll},
      {kGet, "/v1/users/{user}/tokens/{key}", Access::operatorOnly, &Api::showToken},
      {kGet, "/v1/users/{user}/tokens/{key}/history", Access::operatorOnly, &Api::tokenHistory},
      {kPost, "/v1/users/{user}/tokens/{key}/activate", Access::operatorCommand,
       &Api::activateToken},
      {kPost, "/v1/users/{user}/tokens/{key}/deactivate", Access::operatorCommand,
       &Api::deactivateToken},
      {kPost, "/v1/users/{user}/tokens/{key}/rotate", Access::operatorCommand, &Api::rotateToken},
  };
  static_assert(std::ranges::all_of(kRoutes, [](const Route& r) {
    return validPattern(r.pattern) && (r.methods & ~unsigned{kGet | kPost}) == 0 && r.methods != 0;
  }));
  return kRoutes;
}

Routed Api::handle(const HttpRequest& req, ReadModelReader& reader) {
  // The hot path: a plain verify is the /v1/verify route's answer without the
  // table's path splitting.
  if (req.path == "/v1/verify" && (req.method == "GET" || req.method == "POST") &&
      req.minPosition.empty() && req.query.empty())
    return verify(req.authorization, reader);
  return route(req, reader);
}

Routed Api::route(const HttpRequest& req, ReadModelReader& reader) {
  auto parts = splitPath(req.path);
  if (!parts) return errorResponse("invalid_path", "the path has a broken %-escape");
  unsigned method = methodOf(req.method);
  // A path is the most literal matching pattern's: /v1/users/U/tokens/deactivate
  // is the bulk route's, never a token key's.
  int literal = -1;
  for (const Route& r : routes()) {
    PathParams params;
    if (matches(r.pattern, *parts, req.path, params))
      literal = std::max(literal, literalSegments(r.pattern));
  }
  unsigned answered = 0;  // the methods of the routes whose pattern matches
  for (const Route& r : routes()) {
    PathParams params;
    if (literalSegments(r.pattern) != literal || !matches(r.pattern, *parts, req.path, params))
      continue;
    answered |= r.methods;
    if ((r.methods & method) == 0) continue;
    // Method before authentication: a wrong method is wrong for everybody.
    if (r.access != Access::anyone) {
      if (req.body.size() > kMaxBodyBytes)
        return errorResponse("payload_too_large",
                             "the body exceeds " + std::to_string(kMaxBodyBytes) + " bytes");
      if (req.authorization.empty())
        return errorResponse("unauthorized",
                             "send the operator secret as Authorization: Bearer <secret>");
      if (!operatorAuthorized(req.authorization))
        return errorResponse("unauthorized", "the operator secret is wrong");
    }
    if (params.user)
      if (auto err = checkUserId(*params.user)) return errorResponse("invalid_user", *err);
    if (r.access == Access::operatorCommand && shuttingDown_)
      return errorResponse("shutting_down", "the service is shutting down; retry elsewhere");
    if (r.access == Access::operatorCommand) {
      CommandInfo info{commandType(r.handler), req.requestId, std::string(params.user.value_or("")),
                       std::string(params.key), std::chrono::steady_clock::now()};
      return counted(info, (this->*r.handler)(Call{req, reader, params}));
    }
    return (this->*r.handler)(Call{req, reader, params});
  }
  if (answered != 0) return methodNotAllowed(answered);
  return errorResponse("not_found", "no such route; see docs/api.md");
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

nlohmann::json Api::tokenObject(const Token& t, Timestamp now, const lmdb::Txn* usage) const {
  std::optional<LastUse> use;
  if (usageStore_) {
    if (usage) {
      use = usageStore_->lastUse(*usage, t.key);
    } else {
      auto txn = usageStore_->reader();
      use = usageStore_->lastUse(txn, t.key);
    }
  }
  return tokenJson(t, now, use);
}

// The response of activate and deactivate: the token, whether it changed, and the
// position of the event when it did.
HttpResponse Api::changedResponse(const CommandResult& result) const {
  if (auto* e = std::get_if<CommandError>(&result)) return errorResponse(*e);
  const auto& r = std::get<TokenResult>(result);
  json out = withPosition(tokenObject(r.token, clock_.now()), r);
  out["changed"] = r.position.has_value() || r.replayed;
  return okJson(200, out);
}

bool Api::operatorAuthorized(std::string_view authorization) const {
  auto secret = authCredentials(authorization, "Bearer");
  if (!secret) return false;
  // Compare hashes so the comparison time does not depend on the secret's length.
  return hashesEqual(hashSecret(*secret), operatorHash_);
}

HttpResponse Api::created(const TokenResult& r) const {
  json out = withPosition(tokenObject(r.token, clock_.now()), r);
  if (r.replayed) {
    out["message"] = kReplayedSecret;
    return okJson(200, out);
  }
  out["token"] = r.secret;
  return okJson(201, out);
}

HttpResponse Api::verify(std::string_view authorization, ReadModelReader& reader) {
  auto start = std::chrono::steady_clock::now();
  std::string credentials;
  VerifyOutcome out;
  Timestamp now{};
  if (decodeBasicAuth(authorization, credentials)) {
    now = clock_.now();
    out = verifyCredentials(credentials, reader, now);
  }
  HttpResponse r;
  if (out.valid()) {
    if (usageRecorder_) usageRecorder_->record(out.key(), now);
    r.status = 200;
    r.body.reserve(160);
    r.body = R"({"valid":true,"key":")" + std::string(out.key()) + R"(","owner":")" +
             out.token.owner + R"(","kind":")" + std::string(toString(out.token.kind)) + '"';
    if (out.token.kind == TokenKind::destination)
      r.body += R"(,"destination_id":")" + out.token.destinationId + '"';
    r.body += '}';
    r.verifiedOwner = out.token.owner;
    r.verifiedKind = toString(out.token.kind);
    if (out.token.kind == TokenKind::destination) r.verifiedDestinationId = out.token.destinationId;
  } else {
    r.status = 401;
    r.wwwAuthenticate = true;
    r.body = R"({"valid":false,"reason":")" + std::string(toString(out.reason)) + R"("})";
  }
  metrics_.verified(out.reason, std::chrono::steady_clock::now() - start);
  return r;
}

Routed Api::waitThenVerify(const std::vector<Position>& wanted, std::string_view authorization) {
  // Not applied here yet: wait without holding any thread. The projector calls back
  // once it applied the positions or the time is up; the verify then runs on the
  // request's loop. Waiters are capped, so that nobody, with or without a
  // credential, can queue unbounded work.
  if (positionWaiters_.fetch_add(1) >= maxPositionWaiters_) {
    positionWaiters_.fetch_sub(1);
    return errorResponse("too_many_waiters",
                         std::to_string(maxPositionWaiters_) +
                             " verifications already wait for positions this replica has not "
                             "applied; retry shortly, or ask another replica");
  }
  Offsets want;
  for (const auto& p : wanted) want.advancePast(p.partition, p.offset);
  return Started(
      [this, want = std::move(want), auth = std::string(authorization)](Reply reply) mutable {
        projector_.whenApplied(
            want, kMinPositionWait,
            [this, reply = std::move(reply), auth = std::move(auth)](bool applied) {
              positionWaiters_.fetch_sub(1);
              reply([this, applied, auth](ReadModelReader& reader) {
                if (!applied)
                  return errorResponse("position_not_reached",
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

Routed Api::health(const Call&) {
  return okJson(200, json{{"status", "ok"}});
}

Routed Api::readiness(const Call&) {
  if (!projector_.ready())
    return errorResponse("not_ready",
                         "the read model is still catching up with the log, or the projector "
                         "is failing (see the service log)");
  // Verification still answers then, but commands are refused: take this replica
  // out of rotation until the operator acts.
  if (auto refusal = projector_.refusal()) return errorResponse(refusal->code, refusal->message);
  if (auto why = log_ ? log_->refusing() : std::nullopt)
    return errorResponse("log_unavailable", *why + "; commands are refused until it works");
  // What the projector did with the events since start: untrusted events and lost
  // races are expected to be rare; a growing count is worth a look (the service log
  // names each skipped or untrusted event with its position).
  ApplyReport t = projector_.totals();
  return okJson(200, json{{"status", "ready"},
                          {"applied", projector_.applied().toString()},
                          {"events",
                           {{"applied", t.applied},
                            {"skipped", t.skipped},
                            {"untrusted", t.untrusted},
                            {"conflicts", t.conflicts},
                            {"duplicates", t.duplicates},
                            {"certificates", t.certificates}}}});
}

Routed Api::signingKeys(const Call&) {
  // Public keys that sign this service's events (docs/audit.md); no secret here.
  HttpResponse r;
  r.body = keysBody_;
  return r;
}

Routed Api::openapi(const Call&) {
  // docs/openapi.yaml, byte for byte (embedded at build time).
  HttpResponse r;
  r.body = std::string(openapiDocument());
  r.contentType = "application/yaml";
  return r;
}

Routed Api::metricsRoute(const Call&) {
  // On a command thread: the collector asks the log for its end offsets, a broker
  // round trip on Kafka that must not stall an HTTP loop.
  return Deferred([this](TokenService&) {
    HttpResponse r;
    r.body = metrics_.render();
    r.contentType = "text/plain; version=0.0.4; charset=utf-8";
    return r;
  });
}

std::string_view Api::commandType(Routed (Api::*handler)(const Call&)) {
  if (handler == &Api::createToken) return "create";
  if (handler == &Api::activateToken) return "activate";
  if (handler == &Api::deactivateToken) return "deactivate";
  if (handler == &Api::rotateToken) return "rotate";
  if (handler == &Api::deactivateAll) return "deactivate_all";
  return "other";
}

Routed Api::counted(const CommandInfo& info, Routed routed) {
  // Produces the answer and counts it; one that throws is counted as the 503
  // unavailable http_server turns the exception into.
  auto answered = [this, info](const auto& produce) {
    HttpResponse r;
    try {
      r = produce();
    } catch (...) {
      commandAnswered(info, errorResponse("unavailable", ""));
      throw;
    }
    commandAnswered(info, r);
    return r;
  };
  if (auto* deferred = std::get_if<Deferred>(&routed))
    return Deferred([answered, inner = std::move(*deferred)](TokenService& svc) {
      return answered([&] { return inner(svc); });
    });
  if (auto* started = std::get_if<Started>(&routed))
    return Started([answered, inner = std::move(*started)](Reply reply) {
      inner([answered, reply = std::move(reply)](Finish finish) {
        reply([answered, finish = std::move(finish)](ReadModelReader& reader) {
          return answered([&] { return finish(reader); });
        });
      });
    });
  commandAnswered(info, std::get<HttpResponse>(routed));
  return routed;
}

void Api::commandAnswered(const CommandInfo& info, const HttpResponse& r) {
  auto took = std::chrono::steady_clock::now() - info.start;
  std::string_view outcome = r.status < 400 ? "ok" : r.errorCode.empty() ? "error" : r.errorCode;
  metrics_.commandDone(info.type, outcome, took);
  if (!commandLog_) return;
  char ms[32];
  std::snprintf(ms, sizeof ms, "%.3f", std::chrono::duration<double, std::milli>(took).count());
  LogLine line{r.status >= 500 ? (r.status == 503 ? "warn" : "error") : "info",
               "command " + std::string(info.type) + ": " + std::string(outcome)};
  line.fields = {
      {"request_id", info.requestId}, {"command", std::string(info.type)}, {"user", info.user}};
  if (!info.key.empty()) line.fields.emplace_back("key", info.key);
  line.fields.emplace_back("status", std::to_string(r.status));
  line.fields.emplace_back("outcome", std::string(outcome));
  line.fields.emplace_back("duration_ms", ms);
  commandLog_(line);
}

Routed Api::verifyRoute(const Call& call) {
  const HttpRequest& req = call.req;
  std::string_view minPosition = req.minPosition;
  std::string fromQuery;
  if (minPosition.empty()) {
    // URL-encoded, as clients send a query: "0:5,1:7" comes as 0%3A5%2C1%3A7.
    auto decoded = splitPath("/" + std::string(queryValue(req.query, "min_position")));
    if (!decoded || decoded->size() != 1)
      return errorResponse("invalid_min_position",
                           "min_position must be positions p:o[,p:o…] as returned by commands");
    fromQuery = std::move(decoded->front());
    minPosition = fromQuery;
  }
  if (minPosition.empty()) return verify(req.authorization, call.reader);
  // A consistency token: the positions of events the caller needs to see.
  std::vector<Position> wanted;
  for (std::string_view rest = minPosition; !rest.empty();) {
    auto comma = rest.find(',');
    auto p = parsePosition(rest.substr(0, comma));
    if (!p)
      return errorResponse("invalid_min_position",
                           "min_position must be positions p:o[,p:o…] as returned by commands");
    wanted.push_back(*p);
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
  }
  Offsets applied = call.reader.applied();
  bool covered = true;
  for (const auto& p : wanted) covered = covered && applied.covers(p);
  if (covered) return verify(req.authorization, call.reader);
  return waitThenVerify(wanted, req.authorization);
}

Routed Api::page(const Call& call) {
  HttpResponse r;
  r.body = std::string(call.params.file->body);
  r.contentType = call.params.file->contentType;
  r.page = true;
  return r;
}

namespace {

// A query parameter, URL-decoded: "" when absent, nullopt when badly encoded.
std::optional<std::string> queryParam(std::string_view query, std::string_view name) {
  std::string_view raw = queryValue(query, name);
  if (raw.empty()) return std::string();
  auto decoded = splitPath("/" + std::string(raw));
  if (!decoded || decoded->size() != 1) return std::nullopt;
  return std::move(decoded->front());
}

std::optional<Status> parseStatus(std::string_view s) {
  for (Status st : {Status::active, Status::inactive, Status::expired})
    if (toString(st) == s) return st;
  return std::nullopt;
}

}  // namespace

Routed Api::listTokens(const Call& call) {
  std::string_view user = *call.params.user;
  const std::string_view query = call.req.query;
  PageRequest req;
  req.limit = kDefaultPageSize;
  auto limit = queryParam(query, "limit");
  if (limit && !limit->empty()) {
    size_t n = 0;
    auto [end, ec] = std::from_chars(limit->data(), limit->data() + limit->size(), n);
    if (ec != std::errc() || end != limit->data() + limit->size() || n < 1 || n > kMaxPageSize)
      limit.reset();
    req.limit = n;
  }
  if (!limit)
    return errorResponse("invalid_limit",
                         "limit must be a whole number from 1 to " + std::to_string(kMaxPageSize));
  auto cursor = queryParam(query, "cursor");
  if (!cursor || (!cursor->empty() && !isWellFormedKey(*cursor)))
    return errorResponse("invalid_cursor",
                         "cursor must be a next_cursor this list returned; start without one");
  req.after = *cursor;
  auto kindText = queryParam(query, "kind");
  std::optional<TokenKind> kind;
  if (kindText && !kindText->empty()) kind = parseKind(*kindText);
  if (!kindText || (!kindText->empty() && !kind))
    return errorResponse("invalid_filter", "kind must be \"user\" or \"destination\"");
  auto statusText = queryParam(query, "status");
  std::optional<Status> status;
  if (statusText && !statusText->empty()) status = parseStatus(*statusText);
  if (!statusText || (!statusText->empty() && !status))
    return errorResponse("invalid_filter",
                         "status must be \"active\", \"inactive\" or \"expired\"");
  Timestamp now = clock_.now();
  if (kind || status)
    req.keep = [kind, status, now](const Token& t) {
      return (!kind || t.kind == *kind) && (!status || statusAt(t, now) == *status);
    };
  TokenPage page = call.reader.tokensPage(user, req);
  if (page.unknownAfter)
    return errorResponse("invalid_cursor",
                         "cursor is not one of this user's tokens: pass the next_cursor this "
                         "list returned");
  json tokens = json::array();
  std::optional<lmdb::Txn> usage;
  if (usageStore_) usage.emplace(usageStore_->reader());
  for (const auto& t : page.tokens)
    tokens.push_back(tokenObject(t, now, usage ? &*usage : nullptr));
  json next = page.next.empty() ? json(nullptr) : json(std::move(page.next));
  return okJson(200, json{{"user", std::string(user)},
                          {"tokens", std::move(tokens)},
                          {"next_cursor", std::move(next)}});
}

Routed Api::createToken(const Call& call) {
  auto parsed = parseBody(call.req, {"description", "kind", "destination_id", "expires_at"}, true);
  if (auto* r = std::get_if<HttpResponse>(&parsed)) return *r;
  const json& j = std::get<json>(parsed);
  CreateCommand cmd;
  cmd.user = *call.params.user;
  if (!j.contains("description")) return invalidField("description", "present (1-200 characters)");
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
    cmd.expiresAt = *t;
  }
  auto context = commandContext(call.req);
  if (auto* r = std::get_if<HttpResponse>(&context)) return *r;
  const CommandContext& ctx = std::get<CommandContext>(context);
  // Without a signer (unit tests), or with an idempotency key (its claim is looked
  // up first): on a command thread.
  if (!signer_ || !ctx.idempotencyKey.empty())
    return Deferred([cmd, ctx, this](TokenService& svc) {
      auto result = svc.create(cmd, ctx);
      if (auto* e = std::get_if<CommandError>(&result)) return errorResponse(*e);
      return created(std::get<TokenResult>(result));
    });
  auto prepared = prepareCreate(cmd, ctx, clock_);
  if (auto* e = std::get_if<CommandError>(&prepared)) return errorResponse(*e);
  return Started([this, p = std::move(std::get<PreparedCreate>(prepared))](Reply reply) mutable {
    startCreate(*signer_, projector_, visibilityTimeout_, std::move(p),
                [this, reply = std::move(reply)](auto outcome) {
                  reply([this, outcome = std::move(outcome)](ReadModelReader& reader) {
                    if (auto* e = std::get_if<CommandError>(&outcome)) return errorResponse(*e);
                    const auto& o = std::get<CreateOutcome>(outcome);
                    // The snapshot may predate the commit that added the token.
                    reader.release();
                    auto token = reader.token(o.key);
                    if (!token)
                      return errorResponse("projection_lagging", "the token is not visible yet");
                    return created(TokenResult{*token, o.secret, o.position, std::nullopt});
                  });
                });
  });
}

std::variant<Token, HttpResponse> Api::ownedToken(const Call& call) {
  std::string_view key = call.params.key;
  auto token = isWellFormedKey(key) ? call.reader.token(key) : std::nullopt;
  if (!token || token->owner != *call.params.user)
    return errorResponse("not_found", "no token " + std::string(key) + " for this user");
  return std::move(*token);
}

Routed Api::showToken(const Call& call) {
  auto token = ownedToken(call);
  if (auto* r = std::get_if<HttpResponse>(&token)) return std::move(*r);
  return okJson(200, tokenObject(std::get<Token>(token), clock_.now()));
}

Routed Api::tokenHistory(const Call& call) {
  auto found = ownedToken(call);
  if (auto* r = std::get_if<HttpResponse>(&found)) return std::move(*r);
  const Token& token = std::get<Token>(found);
  json events = json::array();
  for (const auto& e : call.reader.history(token.key)) events.push_back(eventJson(e));
  json out{{"key", token.key}, {"events", std::move(events)}};
  if (!token.replaces.empty()) out["replaces"] = token.replaces;
  if (!token.replacedBy.empty()) out["replaced_by"] = token.replacedBy;
  return okJson(200, out);
}

Routed Api::activateToken(const Call& call) {
  auto parsed = parseBody(call.req, {}, false);
  if (auto* r = std::get_if<HttpResponse>(&parsed)) return *r;
  auto context = commandContext(call.req);
  if (auto* r = std::get_if<HttpResponse>(&context)) return *r;
  return Deferred([user = std::string(*call.params.user), key = std::string(call.params.key),
                   ctx = std::get<CommandContext>(context), this](TokenService& svc) {
    return changedResponse(svc.activate(user, key, ctx));
  });
}

Routed Api::deactivateToken(const Call& call) {
  auto parsed = parseBody(call.req, {"reason", "effective_at"}, false);
  if (auto* r = std::get_if<HttpResponse>(&parsed)) return *r;
  const json& j = std::get<json>(parsed);
  DeactivateCommand cmd{std::string(*call.params.user), std::string(call.params.key),
                        Reason::manual, std::nullopt};
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
    cmd.effectiveAt = *t;
  }
  auto context = commandContext(call.req);
  if (auto* r = std::get_if<HttpResponse>(&context)) return *r;
  return Deferred([cmd, ctx = std::get<CommandContext>(context), this](TokenService& svc) {
    return changedResponse(svc.deactivate(cmd, ctx));
  });
}

Routed Api::deactivateAll(const Call& call) {
  auto parsed = parseBody(call.req, {"reason", "kind", "effective_at", "dry_run"}, true);
  if (auto* r = std::get_if<HttpResponse>(&parsed)) return *r;
  const json& j = std::get<json>(parsed);
  DeactivateAllCommand cmd;
  cmd.user = *call.params.user;
  // Required, so that nobody deactivates a user's every token by an empty body.
  auto reason = j.contains("reason") && j["reason"].is_string()
                    ? parseReason(j["reason"].get<std::string>())
                    : std::nullopt;
  if (!reason || (*reason != Reason::bulk && *reason != Reason::compromised))
    return invalidField("reason", "\"bulk\" or \"compromised\"");
  cmd.reason = *reason;
  if (j.contains("kind")) {
    auto kind = j["kind"].is_string() ? parseKind(j["kind"].get<std::string>()) : std::nullopt;
    if (!kind) return invalidField("kind", "\"user\" or \"destination\"");
    cmd.kind = *kind;
  }
  if (j.contains("effective_at")) {
    auto t = parseTime(j["effective_at"]);
    if (!t) return invalidField("effective_at", "an RFC 3339 time or Unix seconds, after 1970");
    cmd.effectiveAt = *t;
  }
  if (j.contains("dry_run")) {
    if (!j["dry_run"].is_boolean()) return invalidField("dry_run", "true or false");
    cmd.dryRun = j["dry_run"].get<bool>();
  }
  auto context = commandContext(call.req);
  if (auto* r = std::get_if<HttpResponse>(&context)) return *r;
  return Deferred([cmd, ctx = std::get<CommandContext>(context)](TokenService& svc) {
    auto done = svc.deactivateAll(cmd, ctx);
    if (auto* err = std::get_if<CommandError>(&done)) return errorResponse(*err);
    const auto& r = std::get<DeactivateAllResult>(done);
    json out{{"user", cmd.user}, {"dry_run", cmd.dryRun}, {"matching", r.matching}};
    if (!cmd.dryRun) out["deactivated"] = r.deactivated;
    if (r.position) out["position"] = toString(*r.position);
    return okJson(200, out);
  });
}

Routed Api::rotateToken(const Call& call) {
  auto parsed = parseBody(call.req, {"grace_seconds", "expires_at"}, false);
  if (auto* r = std::get_if<HttpResponse>(&parsed)) return *r;
  const json& j = std::get<json>(parsed);
  RotateCommand cmd{std::string(*call.params.user), std::string(call.params.key),
                    std::chrono::seconds{0}, std::nullopt};
  if (j.contains("expires_at")) {
    auto t = parseTime(j["expires_at"]);
    if (!t) return invalidField("expires_at", "an RFC 3339 time or Unix seconds, after 1970");
    cmd.expiresAt = *t;
  }
  if (j.contains("grace_seconds")) {
    const auto& g = j["grace_seconds"];
    if (!g.is_number_integer() || g.get<int64_t>() < 0 || g.get<int64_t>() > kMaxGrace.count())
      return invalidField("grace_seconds",
                          "an integer from 0 to " + std::to_string(kMaxGrace.count()));
    cmd.grace = std::chrono::seconds{g.get<int64_t>()};
  }
  auto context = commandContext(call.req);
  if (auto* r = std::get_if<HttpResponse>(&context)) return *r;
  return Deferred([cmd, ctx = std::get<CommandContext>(context), this](TokenService& svc) {
    auto result = svc.rotate(cmd, ctx);
    if (auto* e = std::get_if<CommandError>(&result)) return errorResponse(*e);
    const auto& r = std::get<TokenResult>(result);
    Timestamp now = clock_.now();
    json out = withPosition(tokenObject(r.token, now), r);
    if (r.replayed)
      out["message"] = kReplayedSecret;
    else
      out["token"] = r.secret;
    if (r.previous) out["previous"] = tokenObject(*r.previous, now);
    return okJson(200, out);
  });
}

}  // namespace tokenledger
