#!/usr/bin/env bash
# The API contract (docs/openapi.yaml) against the real tokenledgerd.
#
#   tests/contract/run.sh validate     BUILD_DIR
#   tests/contract/run.sh served       BUILD_DIR TMP_DIR
#   tests/contract/run.sh schemathesis BUILD_DIR TMP_DIR [MAX_EXAMPLES]
#
# validate:     openapi-spec-validator checks the document (OpenAPI 3.1).
# served:       GET /v1/openapi.yaml answers the file byte for byte, as
#               application/yaml, with no credential (needs no Python packages).
# schemathesis: runs schemathesis against a live daemon with the operator secret
#               (Bearer): every response must conform to the document (status code,
#               content type, headers, schema), no 5xx (but the documented 503
#               position_not_reached of a verify waiting for a position the log
#               never reaches, see schemathesis.toml), 405 with Allow for other
#               methods; then the daemon must still answer /healthz and exit 0 on
#               SIGTERM. Prints how many requests it made.
# The PyPI tools come from BUILD_DIR/pytools (scripts/python_tools.sh).
set -u

MODE=${1:-}
BUILD=${2:-}
if [[ -z $MODE || -z $BUILD ]]; then
  echo "usage: $0 validate|served|schemathesis BUILD_DIR [TMP_DIR [MAX_EXAMPLES]]" >&2
  exit 2
fi
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
DOC="$ROOT/docs/openapi.yaml"
BUILD=$(cd "$BUILD" && pwd) || exit 2
DAEMON="$BUILD/bin/tokenledgerd"

pytools() {
  VENV=$("$ROOT/scripts/python_tools.sh" "$BUILD") || {
    echo "FAIL - cannot create the Python tools venv (scripts/python_tools.sh)"
    exit 1
  }
}

if [[ $MODE == validate ]]; then
  pytools
  "$VENV/bin/openapi-spec-validator" "$DOC" || {
    echo "FAIL - docs/openapi.yaml is not a valid OpenAPI document"
    exit 1
  }
  echo "ok   - docs/openapi.yaml is valid OpenAPI 3.1"
  exit 0
fi

TMP=${3:-}
[[ -n $TMP ]] || { echo "$MODE needs TMP_DIR" >&2; exit 2; }
mkdir -p "$TMP" && TMP=$(cd "$TMP" && pwd) || exit 2
[[ -x $DAEMON ]] || { echo "missing executable: $DAEMON" >&2; exit 2; }
[[ $MODE == schemathesis ]] && pytools

source "$ROOT/tests/service/daemon.sh"

rm -rf "$TMP/data"
SECRET="contract-$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')"
trap tl_kill_daemon EXIT
# Last used flushed often, so that token objects carry last_used_at within the run.
if ! tl_start_daemon "$DAEMON" "$SECRET" "$TMP/data" "$TMP/daemon" --last-used-flush-ms 100; then
  fail "daemon prints 'listening on 127.0.0.1:PORT' within 10 s"
  cat "$TMP/daemon.stdout" "$TMP/daemon.stderr" | head -c 4000
  exit 1
fi
BASE="http://127.0.0.1:$PORT"
pass "daemon listening on port $PORT"

if [[ $MODE == served ]]; then
  code=$(curl -s -o "$TMP/served.yaml" -D "$TMP/served.headers" -w '%{http_code}' \
    "$BASE/v1/openapi.yaml")
  [[ $code == 200 ]] && pass "GET /v1/openapi.yaml without a credential: 200" ||
    fail "GET /v1/openapi.yaml: status $code, want 200"
  if cmp -s "$TMP/served.yaml" "$DOC"; then
    pass "the served bytes equal docs/openapi.yaml ($(wc -c <"$DOC") bytes)"
  else
    fail "the served document differs from docs/openapi.yaml (rebuild tokenledgerd?)"
  fi
  grep -qi '^content-type: application/yaml' "$TMP/served.headers" &&
    pass "content type application/yaml" ||
    fail "content type: $(grep -i '^content-type' "$TMP/served.headers")"
  code=$(curl -s -I -o "$TMP/head.headers" -w '%{http_code}' "$BASE/v1/openapi.yaml")
  [[ $code == 200 ]] && grep -qi "^content-length: $(wc -c <"$DOC")" "$TMP/head.headers" &&
    pass "HEAD /v1/openapi.yaml: 200, the same length" || fail "HEAD /v1/openapi.yaml: $code"
  code=$(curl -s -o /dev/null -D "$TMP/post.headers" -w '%{http_code}' -X POST \
    "$BASE/v1/openapi.yaml")
  [[ $code == 405 ]] && grep -qi '^allow: GET, HEAD' "$TMP/post.headers" &&
    pass "POST /v1/openapi.yaml: 405, Allow: GET, HEAD" || fail "POST /v1/openapi.yaml: $code"
else
  # A token verified once: its object, with last_used_at and last_used_count, must
  # match the Token schema (schemathesis's random users seldom reach a used token).
  AUTH="Authorization: Bearer $SECRET"
  created=$(curl -s -X POST -H "$AUTH" -H 'Content-Type: application/json' \
    -d '{"description":"contract last used"}' "$BASE/v1/users/contract/tokens")
  key=$(sed -n 's/.*"key":"\([^"]*\)".*/\1/p' <<<"$created")
  secret=$(sed -n 's/.*"token":"\([^"]*\)".*/\1/p' <<<"$created")
  curl -s -o /dev/null -u "$key:$secret" "$BASE/v1/verify"
  sleep 0.5
  curl -s -H "$AUTH" "$BASE/v1/users/contract/tokens/$key" >"$TMP/used-token.json"
  "$VENV/bin/python" - "$DOC" "$TMP/used-token.json" <<'PY' &&
import json, sys, yaml, jsonschema
doc = yaml.safe_load(open(sys.argv[1]))
token = json.load(open(sys.argv[2]))
assert "last_used_at" in token and token.get("last_used_count") == 1, token
schema = {"$ref": "#/components/schemas/Token", "components": doc["components"]}
jsonschema.Draft202012Validator(schema).validate(token)
PY
    pass "a used token's object (last_used_at, last_used_count) matches the Token schema" ||
    fail "a used token's object does not match the Token schema: $(cat "$TMP/used-token.json")"
  MAX=${4:-25}
  rm -f "$TMP/requests.har"
  START=$(date +%s)
  # One worker: Debian 12's Python 3.11.2 can fail hypothesis's source parsing in
  # threads ("AST constructor recursion depth mismatch").
  timeout 600 "$VENV/bin/schemathesis" --config-file "$HERE/schemathesis.toml" run "$DOC" \
    --url "$BASE" -H "Authorization: Bearer $SECRET" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,unsupported_method,allow_header_conformance \
    --max-examples "$MAX" --seed 20261202 --workers 1 --request-timeout 10 \
    --report har --report-har-path "$TMP/requests.har" --no-color >"$TMP/schemathesis.log" 2>&1
  rc=$?
  SECONDS_TAKEN=$(($(date +%s) - START))
  sed -n '/SUMMARY/,$p' "$TMP/schemathesis.log"
  if [[ $rc -eq 0 ]]; then
    pass "schemathesis: every response conforms to docs/openapi.yaml"
  else
    fail "schemathesis exited $rc (log: $TMP/schemathesis.log)"
    sed -n '/FAILURES\|ERRORS/,/SUMMARY/p' "$TMP/schemathesis.log" | head -c 20000
  fi
  # The requests it made (its HAR report), and the 5xx among them: only the
  # documented 503 position_not_reached of a verify with a min_position may be there.
  "$VENV/bin/python" - "$TMP/requests.har" "$SECONDS_TAKEN" <<'PY' || FAILED=$((FAILED + 1))
import json, sys
entries = json.load(open(sys.argv[1]))["log"]["entries"]
bad = []
for e in entries:
    status = e["response"]["status"]
    if status >= 500:
        text = e["response"].get("content", {}).get("text", "") or ""
        url = e["request"]["url"]
        if not (status == 503 and "/v1/verify" in url and
                (text == "" or '"position_not_reached"' in text)):
            bad.append((e["request"]["method"], url, status, text[:200]))
print(f"schemathesis made {len(entries)} requests in {sys.argv[2]} s")
for b in bad:
    print("FAIL - 5xx:", *b)
sys.exit(1 if bad or not entries else 0)
PY
fi

# No crash: the daemon still answers, then exits cleanly.
code=$(curl -s -o /dev/null -w '%{http_code}' "$BASE/healthz")
[[ $code == 200 ]] && pass "the daemon still answers /healthz" || fail "/healthz: $code"
tl_stop_daemon "$TMP/daemon.stderr"
if [[ $FAILED -gt 0 ]]; then
  echo "$FAILED failed"
  exit 1
fi
echo "all passed"
