#!/usr/bin/env bash
# End-to-end test of tokenctl against a real tokenledgerd.
#
#   tests/service/tokenctl_test.sh BIN_DIR TMP_DIR
#
# BIN_DIR holds tokenledgerd and tokenctl (build/bin); TMP_DIR is scratch space
# (its data/ and work/ subfolders are recreated). Starts the daemon on a free port,
# runs every tokenctl command against it, asserts exit codes and output, stops the
# daemon with SIGTERM and checks that it exited 0. Prints "N passed, M failed" and
# exits non-zero on any failure. Needs bash and python3 (for JSON parsing).
set -u

if [[ $# -ne 2 ]]; then
  echo "usage: $0 BIN_DIR TMP_DIR" >&2
  exit 2
fi
BIN=$(cd "$1" && pwd) || exit 2
mkdir -p "$2" || exit 2
TMP=$(cd "$2" && pwd) || exit 2
TOKENCTL="$BIN/tokenctl"
DAEMON="$BIN/tokenledgerd"
for exe in "$TOKENCTL" "$DAEMON"; do
  if [[ ! -x $exe ]]; then
    echo "missing executable: $exe" >&2
    exit 2
  fi
done

# The interpreter itself, not a version-manager shim: it runs once per JSON check.
PYTHON=$(python3 -c 'import sys; print(sys.executable)') || exit 2

rm -rf "$TMP/data" "$TMP/work"
mkdir -p "$TMP/work"
# tokenctl runs in an empty folder, so ./data/operator-secret never exists there.
cd "$TMP/work" || exit 2

SECRET="op-test-$("$PYTHON" -c 'import secrets; print(secrets.token_hex(16))')"
OUTLOG="$TMP/tokenctl-output.log" # everything tokenctl printed, checked for the secret
: >"$OUTLOG"

source "$(dirname "$0")/daemon.sh"

trap tl_kill_daemon EXIT

# ---------------------------------------------------------------- daemon

if ! tl_start_daemon "$DAEMON" "$SECRET" "$TMP/data" "$TMP/daemon"; then
  fail "daemon prints 'listening on 127.0.0.1:PORT' within 10 s" \
    "stdout: $(head -c 2000 "$TMP/daemon.stdout")" "stderr: $(head -c 2000 "$TMP/daemon.stderr")"
  echo "$PASSED passed, $FAILED failed"
  exit 1
fi
pass "daemon listening on port $PORT"
URL="http://127.0.0.1:$PORT"

# ---------------------------------------------------------------- helpers

# tc_env COMMAND...: runs a tokenctl command line; sets OUT, ERR and RC.
tc_env() {
  OUT=$("$@" 2>"$TMP/stderr")
  RC=$?
  ERR=$(cat "$TMP/stderr")
  printf '%s\n%s\n' "$OUT" "$ERR" >>"$OUTLOG"
}
# tc ARGS...: tokenctl with the operator secret and URL in the environment.
tc() { tc_env env TOKENLEDGER_OPERATOR_SECRET="$SECRET" TOKENLEDGER_URL="$URL" "$TOKENCTL" "$@"; }
# tc_nosecret: no operator secret anywhere (env unset, no ./data/operator-secret).
tc_nosecret() { tc_env env -u TOKENLEDGER_OPERATOR_SECRET TOKENLEDGER_URL="$URL" "$TOKENCTL" "$@"; }

expect_rc() { # NAME WANT
  if [[ $RC -eq $2 ]]; then pass "$1 (exit $2)"; else
    fail "$1: expected exit $2, got $RC" "stdout: ${OUT:0:1500}" "stderr: ${ERR:0:1500}"
  fi
}
expect_out() { # NAME TEXT: stdout contains TEXT
  if [[ $OUT == *"$2"* ]]; then pass "$1"; else
    fail "$1: stdout lacks '$2'" "rc=$RC" "stdout: ${OUT:0:1500}" "stderr: ${ERR:0:1500}"
  fi
}
expect_err() { # NAME TEXT: stderr contains TEXT
  if [[ $ERR == *"$2"* ]]; then pass "$1"; else
    fail "$1: stderr lacks '$2'" "rc=$RC" "stdout: ${OUT:0:1500}" "stderr: ${ERR:0:1500}"
  fi
}
expect_eq() { # NAME GOT WANT
  if [[ $2 == "$3" ]]; then pass "$1"; else fail "$1: got '$2', want '$3'"; fi
}
expect_match() { # NAME VALUE REGEX
  if [[ $2 =~ $3 ]]; then pass "$1"; else fail "$1: '$2' does not match /$3/"; fi
}

# jget PATH: a field of the JSON document in $OUT (dotted path, list index as a
# number); prints "<missing>" when absent. Booleans print as true/false.
jget() {
  "$PYTHON" -c '
import json, sys
try:
    v = json.loads(sys.argv[1])
    for part in sys.argv[2].split("."):
        v = v[int(part)] if isinstance(v, list) else v[part]
except Exception:
    print("<missing>"); sys.exit(0)
print(json.dumps(v) if isinstance(v, (bool, list, dict)) or v is None else v)
' "$OUT" "$1"
}
one_line() { # stdout is exactly one line of valid JSON
  if [[ $OUT != *$'\n'* ]] && "$PYTHON" -c 'import json,sys; json.loads(sys.argv[1])' "$OUT" \
    2>/dev/null; then pass "$1"; else fail "$1: not one line of JSON" "stdout: ${OUT:0:1500}"; fi
}

# ---------------------------------------------------------------- help and usage

tc --help
expect_rc "--help" 0
expect_out "--help prints usage" "Usage:"
tc help
expect_rc "help" 0
tc -h
expect_rc "-h" 0

tc
expect_rc "no command" 2
expect_err "no command: hint" "run tokenctl --help"
tc frobnicate alice
expect_rc "unknown command" 2
expect_err "unknown command: hint" "run tokenctl --help"
tc list alice --bogus
expect_rc "unknown flag" 2
expect_err "unknown flag named" "--bogus"
tc get alice
expect_rc "missing KEY" 2
expect_err "missing KEY named" "KEY"
tc list
expect_rc "missing USER" 2
tc get alice tlk_x extra
expect_rc "too many arguments" 2
tc create alice
expect_rc "create without --description" 2
expect_err "create without --description: message" "--description"
tc create alice --description
expect_rc "flag without value" 2
tc rotate alice tlk_x --grace-seconds soon
expect_rc "unparsable --grace-seconds" 2
expect_err "unparsable --grace-seconds: hint" "run tokenctl --help"
tc --timeout abc list alice
expect_rc "unparsable --timeout" 2
tc list 'al ice'
expect_rc "user with a space rejected client-side" 2
tc get alice 'tlk/../x'
expect_rc "key with a slash rejected client-side" 2
tc deactivate alice tlk_x --reason whim
expect_rc "unknown --reason" 2
tc create alice --description d --kind robot
expect_rc "unknown --kind" 2
tc verify no-colon-here
expect_rc "verify without colon" 2
tc list alice --stdin
expect_rc "flag of another command" 2

# ---------------------------------------------------------------- create

tc create alice --description "Receive leads from RD Station" --json
expect_rc "create --json" 0
one_line "create --json prints one line of JSON"
KEY1=$(jget key)
TOKEN1=$(jget token)
expect_match "create: key format" "$KEY1" '^tlk_[A-Za-z0-9]{24}$'
expect_match "create: token format" "$TOKEN1" '^tls_[A-Za-z0-9]{49}$'
expect_eq "create: owner" "$(jget owner)" alice
expect_eq "create: kind defaults to user" "$(jget kind)" user
expect_eq "create: status" "$(jget status)" active

tc create alice --description "Second user token"
expect_rc "create (table output)" 0
expect_out "create: warns the token is shown once" "shown only once"
expect_out "create: prints a key" "tlk_"
expect_out "create: prints a token" "tls_"
KEY2=$(sed -n 's/^key:[[:space:]]*\(tlk_[A-Za-z0-9]*\).*/\1/p' <<<"$OUT" | head -n 1)
TOKEN2=$(sed -n 's/^token:[[:space:]]*\(tls_[A-Za-z0-9]*\).*/\1/p' <<<"$OUT" | head -n 1)
expect_match "create: key line parsed from table output" "$KEY2" '^tlk_'
expect_match "create: token line parsed from table output" "$TOKEN2" '^tls_'

tc create alice --kind destination --destination-id dest-1 --description "Webhook to CRM" \
  --json --url "$URL"
expect_rc "create destination token (global flags after the command)" 0
DKEY=$(jget key)
DTOKEN=$(jget token)
expect_eq "create destination: kind" "$(jget kind)" destination
expect_eq "create destination: destination_id" "$(jget destination_id)" dest-1

tc create alice --kind destination --description "no id"
expect_rc "destination token without --destination-id" 2

tc create alice --description "   "
expect_rc "blank description refused client-side (the service's rule, events/rules.h)" 2
expect_err "blank description: message" "description must not be empty"
tc list ..
expect_rc "user id .. refused client-side" 2
expect_err "user id ..: message" "must not be"

# ---------------------------------------------------------------- verify

tc_nosecret verify "$KEY1:$TOKEN1"
expect_rc "verify (no operator secret needed)" 0
expect_out "verify: prints valid" "valid"
tc_env env -u TOKENLEDGER_OPERATOR_SECRET TOKENLEDGER_URL="$URL" \
  bash -c 'printf "%s\n" "$1" | "$2" verify --stdin' _ "$KEY1:$TOKEN1" "$TOKENCTL"
expect_rc "verify --stdin" 0
tc verify "$DKEY:$DTOKEN" --json
expect_rc "verify destination token --json" 0
one_line "verify --json prints one line of JSON"
expect_eq "verify --json: valid" "$(jget valid)" true
expect_eq "verify --json: owner" "$(jget owner)" alice
expect_eq "verify --json: kind" "$(jget kind)" destination
tc verify "$KEY1:$TOKEN2"
expect_rc "verify with another token's secret" 1
expect_out "verify wrong secret: reason" "invalid: bad_secret"
tc verify "$KEY1:tls_garbage"
expect_rc "verify malformed token" 1
expect_out "verify malformed: reason" "invalid: malformed"

# ---------------------------------------------------------------- get

tc get alice "$KEY1"
expect_rc "get" 0
expect_out "get: shows the key" "$KEY1"
expect_out "get: shows the description" "Receive leads from RD Station"
expect_out "get: shows the status" "active"
tc get alice "$KEY1" --json
expect_rc "get --json" 0
expect_eq "get --json: key" "$(jget key)" "$KEY1"
expect_eq "get --json: no secret in a token object" "$(jget token)" "<missing>"
tc get alice tlk_000000000000000000000000
expect_rc "get unknown key" 1
expect_err "get unknown key: error line" "error:"
expect_err "get unknown key: code" "not_found"
expect_err "get unknown key: status" "HTTP 404"
tc get bob "$KEY1"
expect_rc "get another user's token" 1

# ---------------------------------------------------------------- deactivate / activate

tc deactivate alice "$KEY1"
expect_rc "deactivate" 0
tc verify "$KEY1:$TOKEN1"
expect_rc "verify after deactivate" 1
expect_out "verify after deactivate: reason" "invalid: inactive"
tc deactivate alice "$KEY1" --json
expect_rc "deactivate again (idempotent)" 0
expect_eq "deactivate again: changed" "$(jget changed)" false
tc activate alice "$KEY1"
expect_rc "activate" 0
tc verify "$KEY1:$TOKEN1"
expect_rc "verify after activate" 0
tc activate alice "$KEY1" --json
expect_rc "activate again (idempotent)" 0
expect_eq "activate again: changed" "$(jget changed)" false

tc deactivate alice "$KEY2" --reason compromised --effective-at "$(($(date +%s) - 3600))" --json
expect_rc "deactivate --reason compromised --effective-at (past)" 0
expect_eq "deactivate: reason recorded" "$(jget deactivation_reason)" compromised
expect_eq "deactivate: status" "$(jget status)" inactive
tc verify "$KEY2:$TOKEN2"
expect_rc "verify after compromised deactivation" 1
tc deactivate alice "$KEY2" --effective-at "not a time"
expect_rc "deactivate with a bad time refused by the service" 1

# ---------------------------------------------------------------- rotate

tc rotate alice "$KEY1" --json
expect_rc "rotate --json" 0
one_line "rotate --json prints one line of JSON"
KEY3=$(jget key)
TOKEN3=$(jget token)
expect_match "rotate: new key" "$KEY3" '^tlk_'
expect_eq "rotate: successor replaces the old key" "$(jget replaces)" "$KEY1"
expect_eq "rotate: previous key" "$(jget previous.key)" "$KEY1"
tc verify "$KEY1:$TOKEN1"
expect_rc "verify old token after rotate" 1
expect_out "verify old token after rotate: reason" "invalid: inactive"
tc verify "$KEY3:$TOKEN3"
expect_rc "verify new token after rotate" 0
tc rotate alice "$KEY1"
expect_rc "rotate an already rotated token" 1
expect_err "rotate twice: code" "already_rotated"

tc rotate alice "$DKEY" --grace-seconds 3600
expect_rc "rotate with grace period (table output)" 0
expect_out "rotate: warns the token is shown once" "shown only once"
DKEY2=$(sed -n 's/^key:[[:space:]]*\(tlk_[A-Za-z0-9]*\).*/\1/p' <<<"$OUT" | head -n 1)
DTOKEN2=$(sed -n 's/^token:[[:space:]]*\(tls_[A-Za-z0-9]*\).*/\1/p' <<<"$OUT" | head -n 1)
tc verify "$DKEY:$DTOKEN"
expect_rc "old token still valid during grace period" 0
tc verify "$DKEY2:$DTOKEN2"
expect_rc "new token valid during grace period" 0

# ---------------------------------------------------------------- list

tc list alice
expect_rc "list" 0
expect_out "list: user section" "User tokens"
expect_out "list: destination section" "Destination tokens"
expect_out "list: header" "DESCRIPTION"
expect_out "list: shows a user token" "$KEY3"
expect_out "list: shows a destination token" "$DKEY2"
# user tokens come before the destination section, destination tokens after it
USER_PART=${OUT%%Destination tokens*}
DEST_PART=${OUT#*Destination tokens}
if [[ $USER_PART == *"$KEY1"* && $DEST_PART == *"$DKEY"* && $DEST_PART != *"$KEY1"* ]]; then
  pass "list: tokens are in the right sections"
else
  fail "list: tokens are in the wrong sections" "stdout: $OUT"
fi
tc list alice --json --limit 1000
expect_rc "list --json" 0
one_line "list --json prints one line of JSON"
expect_eq "list --json: user" "$(jget user)" alice
expect_eq "list --json: token count" \
  "$("$PYTHON" -c 'import json,sys; print(len(json.loads(sys.argv[1])["tokens"]))' "$OUT")" 5
tc list nobody
expect_rc "list a user without tokens" 0
expect_out "list empty: sections still shown" "Destination tokens"

# ---------------------------------------------------- pages and deactivate-all

# 5,000 tokens for one user (8 clients at once), and one destination token.
"$PYTHON" - "$URL" "$SECRET" <<'PY'
import concurrent.futures, json, sys, urllib.request
url, secret = sys.argv[1], sys.argv[2]
def create(body):
    req = urllib.request.Request(url + "/v1/users/big/tokens", data=json.dumps(body).encode(),
                                 headers={"Authorization": "Bearer " + secret,
                                          "Content-Type": "application/json"})
    with urllib.request.urlopen(req) as r:
        assert r.status == 201
bodies = [{"description": "load %d" % i} for i in range(5000)]
bodies.append({"description": "hook", "kind": "destination", "destination_id": "d1"})
with concurrent.futures.ThreadPoolExecutor(8) as pool:
    list(pool.map(create, bodies))
PY
tc list big
expect_rc "list of 5,000 tokens" 0
expect_eq "list: every token printed" "$(grep -c '^tlk_' <<<"$OUT")" 5001
expect_eq "list: each once" "$(grep '^tlk_' <<<"$OUT" | cut -d' ' -f1 | sort -u | wc -l)" 5001
tc list big --json
expect_rc "list --json of 5,000 tokens" 0
expect_eq "list --json: no page over 1000 tokens, 5,001 in all" "$("$PYTHON" -c '
import json, sys
pages = [json.loads(l) for l in sys.stdin]
print(max(len(p["tokens"]) for p in pages), sum(len(p["tokens"]) for p in pages))' <<<"$OUT")" \
  "1000 5001"
tc list big --limit 10
expect_eq "list --limit 10: ten tokens" "$(grep -c '^tlk_' <<<"$OUT")" 10
CURSOR=$(sed -n 's/^More: tokenctl list big --cursor \(tlk_[A-Za-z0-9]*\).*/\1/p' <<<"$OUT")
FIRST10=$(grep '^tlk_' <<<"$OUT" | cut -d' ' -f1)
expect_eq "list --limit 10: the cursor is the tenth key" "$CURSOR" "$(tail -n 1 <<<"$FIRST10")"
tc list big --limit 10 --cursor "$CURSOR"
NEXT10=$(grep '^tlk_' <<<"$OUT" | cut -d' ' -f1)
expect_eq "list --cursor: the next ten, none repeated" \
  "$(sort -u <<<"$FIRST10"$'\n'"$NEXT10" | wc -l)" 20
tc list big --limit 0
expect_rc "list --limit 0 is a usage error" 2
tc list big --status revoked
expect_rc "list --status revoked is a usage error" 2
tc list big --cursor 'x&y'
expect_rc "list --cursor with other characters is a usage error" 2
tc deactivate-all big
expect_rc "deactivate-all without --reason" 2
tc deactivate-all big --reason manual
expect_rc "deactivate-all --reason manual" 2
tc deactivate-all big --reason compromised --kind user
expect_rc "deactivate-all without --yes" 0
expect_out "deactivate-all without --yes names the count" "5000 active token(s) of big"
tc list big --status active --kind user --limit 1 --json
expect_eq "deactivate-all without --yes changes nothing" \
  "$("$PYTHON" -c 'import json,sys; print(len(json.loads(sys.argv[1])["tokens"]))' "$OUT")" 1
tc deactivate-all big --reason compromised --kind user --yes
expect_rc "deactivate-all --yes" 0
expect_out "deactivate-all --yes: the count" "Deactivated 5000 token(s) of big"
tc list big --status active
expect_eq "after deactivate-all only the destination token is active" \
  "$(grep -c '^tlk_' <<<"$OUT")" 1

# ---------------------------------------------------------------- history

tc history alice "$KEY1"
expect_rc "history" 0
expect_out "history: created event" "created"
expect_out "history: deactivated event" "deactivated"
expect_out "history: activated event" "activated"
expect_out "history: rotation reason" "rotation"
tc history alice "$KEY1" --json
expect_rc "history --json" 0
expect_eq "history --json: key" "$(jget key)" "$KEY1"
expect_eq "history --json: replaced_by" "$(jget replaced_by)" "$KEY3"
expect_eq "history --json: first event" "$(jget events.0.type)" created
expect_eq "history --json: event count" \
  "$("$PYTHON" -c 'import json,sys; print(len(json.loads(sys.argv[1])["events"]))' "$OUT")" 4
tc history alice tlk_000000000000000000000000
expect_rc "history of an unknown key" 1

# ---------------------------------------------------------------- secrets and connection

tc_nosecret list alice
expect_rc "missing operator secret" 2
expect_err "missing secret: names the env var" "TOKENLEDGER_OPERATOR_SECRET"
expect_err "missing secret: names --secret-file" "--secret-file"

printf '%s\n' "$SECRET" >"$TMP/secret-file"
chmod 600 "$TMP/secret-file"
tc_nosecret --secret-file "$TMP/secret-file" list alice
expect_rc "--secret-file (trailing newline trimmed)" 0
tc_nosecret list alice --secret-file "$TMP/no-such-file"
expect_rc "unreadable --secret-file" 2
mkdir -p "$TMP/work/fallback/data"
cp "$TMP/secret-file" "$TMP/work/fallback/data/operator-secret"
cd "$TMP/work/fallback" || exit 2
tc_nosecret list alice
expect_rc "secret from ./data/operator-secret" 0
cd "$TMP/work" || exit 2

tc_env env TOKENLEDGER_OPERATOR_SECRET="wrong-$SECRET" TOKENLEDGER_URL="$URL" "$TOKENCTL" \
  list alice
expect_rc "wrong operator secret" 1
expect_err "wrong secret: code" "unauthorized"
expect_err "wrong secret: status" "HTTP 401"

CLOSED_PORT=$("$PYTHON" -c '
import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
tc --url "http://127.0.0.1:$CLOSED_PORT" list alice
expect_rc "unreachable service" 2
expect_err "unreachable: message" "cannot reach tokenledgerd at http://127.0.0.1:$CLOSED_PORT"
tc_env env TOKENLEDGER_URL="http://127.0.0.1:$CLOSED_PORT" "$TOKENCTL" verify "$KEY3:$TOKEN3"
expect_rc "unreachable service (TOKENLEDGER_URL, verify)" 2
tc_env env TOKENLEDGER_OPERATOR_SECRET="$SECRET" "$TOKENCTL" --url "$URL" get alice "$KEY3"
expect_rc "--url without TOKENLEDGER_URL" 0

if grep -qF -- "$SECRET" "$OUTLOG"; then
  fail "the operator secret never appears in tokenctl output"
else
  pass "the operator secret never appears in tokenctl output"
fi

# ---------------------------------------------------------------- shutdown

tl_stop_daemon "$TMP/daemon.stderr"

echo "$PASSED passed, $FAILED failed"
[[ $FAILED -eq 0 ]]
