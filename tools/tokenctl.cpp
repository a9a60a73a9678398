// tokenctl: the operator command-line client of tokenledgerd.
//
// It speaks the HTTP API described in docs/api.md and nothing else: it never
// links service internals. Exit codes: 0 success, 1 the service refused (any
// 4xx/5xx, including an invalid token on verify), 2 usage error or the service
// could not be reached.
//
// Files: tokenctl_args (command line and configuration), tokenctl_request (the
// HTTP request of each command), tokenctl_output (what is printed, and how).
#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "tools/http_client.h"
#include "tools/tokenctl_args.h"
#include "tools/tokenctl_output.h"
#include "tools/tokenctl_request.h"

namespace tokenledger::tools::tokenctl {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitRefused = 1;
constexpr int kExitUsage = 2;

// Local failures that no flag fixes: no pointer to --help.
constexpr auto kNoHint = UsageError::Hint::none;

constexpr std::string_view kUsage = R"(tokenctl - operator client for tokenledgerd

Usage:
  tokenctl [--url URL] [--secret-file FILE] [--json] [--timeout SECONDS] COMMAND ARGS

Commands:
  create USER --description TEXT [--kind user|destination] [--destination-id ID]
              [--expires-at T]
                               create a token; prints its key and its secret token
                               (the secret is shown only once)
  list USER [--kind user|destination] [--status active|inactive|expired]
            [--limit N] [--cursor C]
                               list USER's tokens, user tokens then destination
                               tokens, fetched a page (1000) at a time; with --limit
                               or --cursor one page only, and the cursor of the next
  deactivate-all USER --reason bulk|compromised [--kind user|destination]
                 [--effective-at T] [--yes]
                               deactivate every active token of USER (or of one
                               kind); without --yes only counts them
  get USER KEY                 show one token
  activate USER KEY            activate a token (no change if already active)
  deactivate USER KEY [--reason manual|rotation|compromised|expired|bulk]
                      [--effective-at T]
                               deactivate a token, now or at time T (past or future)
  rotate USER KEY [--grace-seconds N]
                               create a successor and deactivate KEY after N seconds
                               (default 0: at once); prints the new secret token
  history USER KEY             list the events of a token
  verify KEY:TOKEN             check a token (HTTP Basic); no operator secret needed
  verify --stdin               same, reading KEY:TOKEN from the first line of stdin,
                               so the secret does not show up in the process list
  help                         show this text

Global options (before or after the command):
  --url URL             service address (default: $TOKENLEDGER_URL, else
                        http://127.0.0.1:8080)
  --secret-file FILE    file holding the operator secret (trailing newline trimmed)
  --json                print the service's JSON response body unchanged, on one line
                        (a list of every page: one line per page)
  --timeout SECONDS     give up on a request after SECONDS (default 30)
  -h, --help            show this text

The operator secret for management commands comes from $TOKENLEDGER_OPERATOR_SECRET,
else --secret-file FILE, else ./data/operator-secret if readable. It is sent as
"Authorization: Bearer" and never printed.

T is an RFC 3339 time (2026-11-28T10:00:00Z, offsets and fractions allowed) or an
integer of Unix seconds. USER and KEY may contain only A-Z a-z 0-9 - _ . @ + :

Exit codes:
  0  success
  1  the service refused the request (any HTTP 4xx/5xx; verify: token not valid)
  2  usage error, missing operator secret, or the service could not be reached
)";

// Says why the service refused (exit 1).
int refused(const HttpResponse& response, const Json& body,
            const std::optional<OperatorSecret>& secret, const Printer& printer) {
  const std::string status = std::to_string(response.status);
  if (body.is_object() && body.contains("error") && body["error"].is_object()) {
    const Json& error = body["error"];
    printer.err("error: " + field(error, "message") + " (" + field(error, "code") + ", HTTP " +
                status + ")\n");
    if (response.status == 401 && secret) {
      printer.err("hint: the operator secret was taken from " + secret->source + "\n");
    }
  } else {
    std::string snippet = sanitize(trimRight(response.body).substr(0, 200));
    printer.err("error: tokenledgerd answered HTTP " + status +
                (snippet.empty() ? std::string() : ": " + snippet) + "\n");
  }
  return kExitRefused;
}

// list without --limit or --cursor: every page of each kind, printed as it comes
// (a user's tokens are never all in memory). --json prints each page's body on a
// line of its own.
template <typename Send>
int walkList(const Call& call, const Arguments& args, Send& send,
             const std::optional<OperatorSecret>& secret, const Printer& printer) {
  for (size_t k = 0; k < call.walkKinds.size(); ++k) {
    const std::string& kind = call.walkKinds[k];
    if (!args.json)
      printer.out(std::string(k ? "\n" : "") +
                  (kind == "user" ? "User tokens\n" : "Destination tokens\n"));
    size_t shown = 0;
    std::string cursor;
    do {
      HttpRequest page = call.request;
      page.url = pageUrl(call, kind, cursor);
      HttpResponse response = send(page);
      Json body = Json::parse(response.body, nullptr, /*allow_exceptions=*/false);
      if (response.status != 200) return refused(response, body, secret, printer);
      if (!body.is_object() || !body.contains("tokens") || !body["tokens"].is_array()) {
        printer.err("error: unexpected answer from tokenledgerd: no token list\n");
        return kExitRefused;
      }
      if (args.json) {
        printer.out(oneLine(response.body) + "\n");
      } else {
        for (const Json& t : body["tokens"])
          printer.out((shown++ ? "" : listHeader()) + listRowOf(t));
      }
      cursor = hasField(body, "next_cursor") ? field(body, "next_cursor") : "";
    } while (!cursor.empty());
    if (!args.json && shown == 0) printer.out("  (none)\n");
  }
  return kExitOk;
}

// Runs the command line: one request, its answer printed. Returns kExitOk or
// kExitRefused (the service said no); throws UsageError for what the user can fix
// (exit 2).
int run(int argc, char** argv, Printer& printer) {
  Arguments args = parseArguments(argc, argv);
  if (args.help) {
    printer.out(kUsage);
    return kExitOk;
  }
  const CommandSpec& spec = validateCommand(args);
  const std::string base = resolveUrl(args);
  const std::chrono::milliseconds timeout = resolveTimeout(args);

  std::optional<OperatorSecret> secret;
  if (spec.needsSecret) {
    secret = resolveSecret(args);
    printer.addSecret(secret->value);
  }
  Call call = buildCall(args, base);
  if (call.verifyCredential) {
    printer.addSecret(*call.verifyCredential);
    size_t colon = call.verifyCredential->find(':');
    printer.addSecret(call.verifyCredential->substr(colon + 1));
  }
  if (secret) call.request.headers.push_back("Authorization: Bearer " + secret->value);
  if (call.request.body) call.request.headers.push_back("Content-Type: application/json");

  CurlGlobal curlGlobal;
  if (!curlGlobal.ok()) throw UsageError("could not initialize libcurl", kNoHint);
  std::unique_ptr<HttpClient> client = newCurlHttpClient(timeout, "tokenctl/0.1");
  auto send = [&](const HttpRequest& request) {
    HttpResponse response;
    TransportError transportError;
    if (!client->perform(request, response, transportError)) {
      throw UsageError("cannot reach tokenledgerd at " + base + ": " +
                           sanitize(transportError.message) + "; is it running?",
                       kNoHint);
    }
    return response;
  };
  if (!call.walkKinds.empty()) return walkList(call, args, send, secret, printer);

  HttpResponse response = send(call.request);
  Json body = Json::parse(response.body, nullptr, /*allow_exceptions=*/false);
  const bool ok = response.status >= 200 && response.status < 300;
  const std::string status = std::to_string(response.status);

  if (args.json && (ok || !body.is_discarded())) printer.out(oneLine(response.body) + "\n");

  if (ok) {
    if (args.json) return kExitOk;
    if (body.is_discarded() || !body.is_object()) {
      printer.err("error: unexpected answer from tokenledgerd (HTTP " + status +
                  "): the body is not a JSON object\n");
      return kExitRefused;
    }
    printer.out(formatSuccess(args.command, body));
    return kExitOk;
  }

  if (args.command == "verify" && response.status == 401 && body.is_object() &&
      body.contains("valid")) {
    if (!args.json) printer.out("invalid: " + field(body, "reason") + "\n");
    return kExitRefused;
  }
  return refused(response, body, secret, printer);
}

}  // namespace
}  // namespace tokenledger::tools::tokenctl

int main(int argc, char** argv) {
  using namespace tokenledger::tools::tokenctl;
  using tokenledger::tools::UsageError;
  Printer printer;
  try {
    return run(argc, argv, printer);
  } catch (const UsageError& e) {
    printer.err("error: " + std::string(e.what()) +
                (e.seeHelp() ? "\nrun tokenctl --help for usage\n" : "\n"));
    return kExitUsage;
  } catch (const std::exception& e) {
    printer.err(std::string("error: internal error in tokenctl: ") + e.what() + "\n");
    return kExitUsage;
  }
}
