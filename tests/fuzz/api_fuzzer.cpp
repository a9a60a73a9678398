// Requests through the API's real entry point, Api::handle, on an in-process
// ledger that holds the fixed tokens (fixture.h). The input is an HTTP/1.1-like
// text, so that seeds are readable:
//
//   METHOD TARGET[ anything]\n       TARGET = path[?query]
//   Name: value\n                    Authorization, Content-Type,
//   …                                Tokenledger-Min-Position, X-Fuzz-Api
//   \n                               then the body (no blank line: no body)
//   BODY
//
// X-Fuzz-Api picks the Api: "started" (creates start on a signer, min_position
// waits are not capped), "draining" (shutting down), else the plain one (creates
// deferred); but for "started", no min_position wait is allowed (503), so that
// each answer is the same every time. Deferred and Started work is never run
// (it would append to the log): what handle() answers at once is checked, and who
// got work queued.
#include <cstddef>
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "service/api.h"
#include "service/http_input.h"
#include "service/verifier.h"
#include "tests/fuzz/fixture.h"

namespace tokenledger::fuzz {
namespace {

using nlohmann::json;

struct Setup {
  Setup()
      : signer(*ledger.log, SigningKey::generate(), WriterState{}, nullptr, nullptr),
        plain(kOperatorSecret, *ledger.projector, ledger.clock),
        started(kOperatorSecret, *ledger.projector, ledger.clock),
        draining(kOperatorSecret, *ledger.projector, ledger.clock),
        usage(ledger.dir.sub("usage")) {
    KeyRing keys;
    keys.add(fixedSigningKey().publicKey());
    for (Api* api : {&plain, &started, &draining})
      api->setSigningKeys(keys, fixedSigningKey().keyId());
    // Deterministic: never wait (503 too_many_waiters) or always (Started; the
    // count of waiters only grows, as nothing runs them). The default cap would
    // start the first 1000 waits of a process and refuse the rest.
    plain.setMaxPositionWaiters(0);
    draining.setMaxPositionWaiters(0);
    started.setMaxPositionWaiters(std::numeric_limits<int>::max());
    started.startCreatesOn(signer, 5s);
    draining.setShuttingDown();
    // Last used on one of them: verifies record, token objects read the usage store,
    // where the first fixed token has a use.
    usage.addOwn({{fixedTokens().front().key, {minuteOf(ledger.clock.now()), 3}}}, "fuzz");
    started.setLastUsed(recorder, usage);
  }
  FixedLedger ledger;
  SignedAppender signer;  // never appends: Started work is not run
  Api plain, started, draining;
  UsageStore usage;
  UsageRecorder recorder;
};

char lower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}
bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (lower(a[i]) != lower(b[i])) return false;
  return true;
}
std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

struct Parsed {
  HttpRequest req;
  std::string_view api;  // X-Fuzz-Api
};

Parsed parse(std::string_view in) {
  Parsed p;
  auto line = [&]() {
    auto nl = in.find('\n');
    std::string_view l = in.substr(0, nl);
    in = nl == std::string_view::npos ? std::string_view() : in.substr(nl + 1);
    return l;
  };
  bool more = !in.empty();
  std::string_view first = line();
  if (!first.empty() && first.back() == '\r') first.remove_suffix(1);
  auto sp = first.find(' ');
  p.req.method = first.substr(0, sp);
  std::string_view target = sp == std::string_view::npos ? "" : first.substr(sp + 1);
  target = target.substr(0, target.find(' '));
  auto q = target.find('?');
  p.req.path = target.substr(0, q);
  if (q != std::string_view::npos) p.req.query = target.substr(q + 1);
  while (more && !in.empty()) {
    std::string_view h = line();
    if (h.empty() || h == "\r") {  // the blank line: the rest is the body
      p.req.hasBody = true;
      p.req.body = in;
      break;
    }
    auto colon = h.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view name = h.substr(0, colon), value = trim(h.substr(colon + 1));
    if (iequals(name, "authorization")) p.req.authorization = value;
    if (iequals(name, "content-type")) p.req.contentType = value;
    if (iequals(name, "tokenledger-min-position")) p.req.minPosition = value;
    if (iequals(name, "x-fuzz-api")) p.api = value;
  }
  return p;
}

// The codes Api::handle may answer, each with the status docs/api.md names for it
// (docs/api.md lists more: those of the transport, http_server.cpp).
bool documented(int status, const std::string& code) {
  static const std::set<std::pair<int, std::string>> codes = {
      {400, "invalid_json"},
      {400, "unknown_field"},
      {400, "invalid_field"},
      {400, "invalid_description"},
      {400, "invalid_user"},
      {400, "invalid_destination_id"},
      {400, "invalid_expires_at"},
      {400, "invalid_min_position"},
      {400, "invalid_path"},
      {401, "unauthorized"},
      {404, "not_found"},
      {405, "method_not_allowed"},
      {409, "expired"},
      {409, "already_rotated"},
      {413, "payload_too_large"},
      {415, "unsupported_media_type"},
      {503, "log_unavailable"},
      {503, "projection_lagging"},
      {503, "shutting_down"},
      {503, "not_ready"},
      {503, "position_not_reached"},
      {503, "too_many_waiters"},
  };
  return codes.count({status, code}) > 0;
}

bool isFixedValid(const std::string& credentials) {
  for (const char* name : {"Active", "Destination", "Rotated", "Successor", "Bob"}) {
    const auto& t = fixedToken(name);
    if (credentials == t.key + ":" + t.secret) return true;
  }
  return false;
}

void checkResponse(const Parsed& p, const std::vector<std::string>* parts, bool operatorOk,
                   const HttpResponse& r) {
  const HttpRequest& req = p.req;
  std::string where = "status " + std::to_string(r.status) + ", body " + r.body;
  static const std::set<int> statuses = {200, 201, 400, 401, 404, 405, 409, 413, 415, 503};
  FUZZ_CHECK(statuses.count(r.status), "a status docs/api.md does not name: " + where);
  FUZZ_CHECK((r.status == 405) == !r.allow.empty(), "Allow goes with 405 only; " + where);
  if (r.page) {
    FUZZ_CHECK(r.status == 200 && r.contentType != "application/json" && !r.body.empty(),
               "a page response: " + where);
    FUZZ_CHECK(req.method == "GET" || req.method == "HEAD",
               "a page for " + std::string(req.method));
    return;
  }
  FUZZ_CHECK(r.contentType == "application/json", "content type " + std::string(r.contentType));
  json body = json::parse(r.body, nullptr, false);
  FUZZ_CHECK(!body.is_discarded() && body.is_object(), "not a JSON object: " + where);

  bool verifyRoute = parts && parts->size() == 2 && (*parts)[0] == "v1" && (*parts)[1] == "verify";
  verifyRoute = verifyRoute || req.path == "/v1/verify";
  bool userRoute = parts && parts->size() >= 3 && (*parts)[0] == "v1" && (*parts)[1] == "users";

  if (r.wwwAuthenticate) {
    // The verify refusal: its own shape, not the error shape.
    static const std::set<std::string> reasons = {"malformed", "unknown", "inactive", "expired",
                                                  "bad_secret"};
    FUZZ_CHECK(verifyRoute && r.status == 401, "WWW-Authenticate off verify: " + where);
    FUZZ_CHECK(body.size() == 2 && body.contains("valid") && body["valid"] == false &&
                   body.contains("reason") && body["reason"].is_string() &&
                   reasons.count(body["reason"].get<std::string>()),
               "a verify refusal: " + where);
    return;
  }
  if (r.status >= 400) {
    FUZZ_CHECK(body.size() == 1 && body.contains("error") && body["error"].is_object() &&
                   body["error"].size() == 2 && body["error"].contains("code") &&
                   body["error"]["code"].is_string() && body["error"].contains("message") &&
                   body["error"]["message"].is_string() &&
                   !body["error"]["message"].get<std::string>().empty(),
               "not the error shape: " + where);
    FUZZ_CHECK(documented(r.status, body["error"]["code"].get<std::string>()),
               "a code docs/api.md does not name: " + where);
    return;
  }
  // 200: who may see what.
  if (verifyRoute && body.contains("valid")) {
    std::string credentials;
    FUZZ_CHECK(decodeBasicAuth(req.authorization, credentials) && isFixedValid(credentials),
               "valid without a valid credential: " + where);
  }
  if (userRoute) {
    FUZZ_CHECK(operatorOk, "a user's data without the operator secret: " + where);
    const std::string& user = (*parts)[2];
    if (body.contains("owner")) FUZZ_CHECK(body["owner"] == user, "another owner: " + where);
    // A history names its key only.
    if (body.contains("key") && body["key"].is_string())
      for (const auto& t : fixedTokens())
        if (body["key"] == t.key) FUZZ_CHECK(t.owner == user, "another owner's key: " + where);
    if (body.contains("tokens"))
      for (const auto& t : body["tokens"])
        FUZZ_CHECK(t["owner"] == user, "another owner's token: " + where);
  }
}

}  // namespace
}  // namespace tokenledger::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tokenledger;
  using namespace tokenledger::fuzz;
  // One ledger per process, removed at exit (a crash leaves its /tmp/tl-unit-* behind).
  static Setup instance;
  Setup* setup = &instance;
  Parsed p = parse(std::string_view(reinterpret_cast<const char*>(data), size));
  Api& api = p.api == "started"    ? setup->started
             : p.api == "draining" ? setup->draining
                                   : setup->plain;
  Routed routed = api.handle(p.req, *setup->ledger.reader);

  auto parts = splitPath(p.req.path);
  auto bearer = authCredentials(p.req.authorization, "Bearer");
  bool operatorOk = bearer && *bearer == kOperatorSecret;
  if (const auto* r = std::get_if<HttpResponse>(&routed)) {
    checkResponse(p, parts ? &*parts : nullptr, operatorOk, *r);
    return 0;
  }
  // Work queued: a command of the operator's, a verify waiting for a position, or a
  // scrape of /metrics (the log's end offsets may take a round trip to Kafka).
  bool verifyRoute = parts && *parts == std::vector<std::string>{"v1", "verify"};
  bool metricsRoute = parts && *parts == std::vector<std::string>{"metrics"} &&
                      (p.req.method == "GET" || p.req.method == "HEAD");
  bool command = parts && parts->size() >= 4 && (*parts)[0] == "v1" && (*parts)[1] == "users";
  bool verifyMethod = p.req.method == "GET" || p.req.method == "HEAD" || p.req.method == "POST";
  FUZZ_CHECK((verifyRoute && verifyMethod) || metricsRoute ||
                 (command && operatorOk && p.req.method == "POST" && &api != &setup->draining),
             "work queued for " + std::string(p.req.method) + " " + std::string(p.req.path));
  FUZZ_CHECK(!std::holds_alternative<Started>(routed) || &api == &setup->started,
             "Started from an Api that starts nothing");
  return 0;
}
