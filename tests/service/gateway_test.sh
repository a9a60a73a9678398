#!/usr/bin/env bash
# The gateway recipe (docs/gateway.md) in a real nginx in front of a real tokenledgerd.
#
#   tests/service/gateway_test.sh TOKENLEDGERD GATEWAY_MD TMP_DIR
#
# Takes the first ```nginx block of GATEWAY_MD as it is, changes only its three
# addresses (tokenledgerd 127.0.0.1:8080, the protected service 127.0.0.1:9000,
# nginx 127.0.0.1:8000) to free ports, and includes it in a minimal nginx.conf
# whose second server plays the protected service: it echoes the headers it got.
# Checks: a valid token reaches the service with its owner and kind (and nothing
# the client forged, nor the secret); a token fails with 401 right after its
# deactivate call returned; malformed, unknown and wrong credentials get 401.
# Needs nginx (Debian's nginx-light), curl and python3. Prints "N passed, M failed".
set -u

if [[ $# -ne 3 ]]; then
  echo "usage: $0 TOKENLEDGERD GATEWAY_MD TMP_DIR" >&2
  exit 2
fi
DAEMON=$1
DOC=$2
mkdir -p "$3" || exit 2
TMP=$(cd "$3" && pwd) || exit 2
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
for exe in "$DAEMON" "$NGINX"; do
  if [[ ! -x $exe ]]; then
    echo "missing executable: $exe (nginx: scripts/deps.sh installs nginx-light)" >&2
    exit 2
  fi
done
PYTHON=$(python3 -c 'import sys; print(sys.executable)') || exit 2

source "$(dirname "$0")/daemon.sh"
finish() {
  echo "$PASSED passed, $FAILED failed"
  [[ $FAILED -eq 0 ]]
  exit $?
}

NPID=""
cleanup() {
  if [[ -n $NPID ]] && kill -0 "$NPID" 2>/dev/null; then
    kill -QUIT "$NPID" 2>/dev/null
    wait "$NPID" 2>/dev/null
  fi
  tl_kill_daemon
}
trap cleanup EXIT

rm -rf "$TMP/data" "$TMP/nginx"
mkdir -p "$TMP/nginx"

# ---------------------------------------------------------------- the doc's configuration

CONF=$("$PYTHON" - "$DOC" <<'EOF'
import re, sys
blocks = re.findall(r"^```nginx\n(.*?)^```$", open(sys.argv[1]).read(), re.S | re.M)
if not blocks:
    sys.exit("no ```nginx block")
sys.stdout.write(blocks[0])
EOF
) || {
  fail "docs/gateway.md has an nginx block"
  finish
}
for addr in 127.0.0.1:8080 127.0.0.1:9000 127.0.0.1:8000; do
  n=$(grep -c -F "$addr" <<<"$CONF")
  if [[ $n -eq 1 ]]; then pass "the doc's configuration names $addr once"; else
    fail "the doc's configuration names $addr $n times, want 1"
  fi
done

# ---------------------------------------------------------------- tokenledgerd

SECRET="op-test-$("$PYTHON" -c 'import secrets; print(secrets.token_hex(16))')"
tl_start_daemon "$DAEMON" "$SECRET" "$TMP/data" "$TMP/daemon"
DPORT=$PORT
if [[ -z $DPORT ]]; then
  fail "tokenledgerd listens within 10 s" "stderr: $(head -c 2000 "$TMP/daemon.stderr")"
  finish
fi
API="http://127.0.0.1:$DPORT"
for _ in $(seq 100); do
  [[ $(curl -s -o /dev/null -w '%{http_code}' "$API/readyz") == 200 ]] && break
  sleep 0.1
done

# ---------------------------------------------------------------- nginx

free_port() {
  "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
temp_paths="client_body_temp_path $TMP/nginx/client_body;"
for m in proxy fastcgi uwsgi scgi; do
  "$NGINX" -V 2>&1 | grep -q -- "--without-http_${m}_module" || temp_paths+=" ${m}_temp_path $TMP/nginx/$m;"
done
GPORT=""
for _ in 1 2 3 4 5; do
  GPORT=$(free_port)
  UPORT=$(free_port)
  CONF_RUN=${CONF//127.0.0.1:8080/127.0.0.1:$DPORT}
  CONF_RUN=${CONF_RUN//127.0.0.1:9000/127.0.0.1:$UPORT}
  CONF_RUN=${CONF_RUN//127.0.0.1:8000/127.0.0.1:$GPORT}
  printf '%s' "$CONF_RUN" >"$TMP/nginx/gateway.conf"
  cat >"$TMP/nginx/nginx.conf" <<EOF
worker_processes 1;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
events { worker_connections 256; }
http {
  access_log off;
  $temp_paths
  include $TMP/nginx/gateway.conf;
  # The protected service: echoes what it was sent.
  server {
    listen 127.0.0.1:$UPORT;
    location / {
      default_type text/plain;
      return 200 "upstream owner=[\$http_tokenledger_owner] kind=[\$http_tokenledger_kind] destination=[\$http_tokenledger_destination_id] authorization=[\$http_authorization] method=[\$request_method] uri=[\$request_uri]\n";
    }
  }
}
EOF
  : >"$TMP/nginx/error.log"
  "$NGINX" -e "$TMP/nginx/error.log" -c "$TMP/nginx/nginx.conf" -p "$TMP/nginx" \
    -g 'daemon off;' >"$TMP/nginx/stdout" 2>&1 &
  NPID=$!
  for _ in $(seq 50); do
    [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$UPORT/") == 200 ]] && break 2
    kill -0 "$NPID" 2>/dev/null || break
    sleep 0.1
  done
  kill -QUIT "$NPID" 2>/dev/null
  wait "$NPID" 2>/dev/null
  NPID=""
  grep -q "Address already in use" "$TMP/nginx/error.log" "$TMP/nginx/stdout" || break
done
if [[ -z $NPID ]]; then
  fail "nginx starts with the doc's configuration" "$(cat "$TMP/nginx/stdout" "$TMP/nginx/error.log")"
  finish
fi
pass "nginx runs the doc's configuration (gateway on $GPORT, tokenledgerd on $DPORT)"
GW="http://127.0.0.1:$GPORT"

# ---------------------------------------------------------------- helpers

jget() { # JSON FIELD
  "$PYTHON" -c 'import json, sys; print(json.loads(sys.argv[1]).get(sys.argv[2], "<missing>"))' "$1" "$2"
}
create() { # USER BODY: prints the create response
  curl -s -H "Authorization: Bearer $SECRET" -H 'Content-Type: application/json' \
    -d "$2" "$API/v1/users/$1/tokens"
}
# gw CURL_ARGS...: a request through the gateway; sets CODE, BODY and HEADERS.
gw() {
  BODY=$(curl -s -D "$TMP/headers" -o - -w '\n%{http_code}' "$@")
  CODE=${BODY##*$'\n'}
  BODY=${BODY%$'\n'*}
  HEADERS=$(tr -d '\r' <"$TMP/headers")
}
expect_code() { # NAME WANT
  if [[ $CODE == "$2" ]]; then pass "$1 ($2)"; else
    fail "$1: status $CODE, want $2" "body: ${BODY:0:500}" "$(tail -n 5 "$TMP/nginx/error.log")"
  fi
}
expect_body() { # NAME TEXT
  if [[ $BODY == *"$2"* ]]; then pass "$1"; else fail "$1: body lacks '$2'" "body: ${BODY:0:500}"; fi
}

# ---------------------------------------------------------------- tokenledgerd's headers

OUT=$(create alice '{"description":"gateway test"}')
KEY=$(jget "$OUT" key)
TOKEN=$(jget "$OUT" token)
if [[ $KEY == tlk_* && $TOKEN == tls_* ]]; then pass "created alice's token"; else
  fail "create alice's token" "$OUT"
  finish
fi
gw -u "$KEY:$TOKEN" "$API/v1/verify"
expect_code "tokenledgerd's verify" 200
for h in "tokenledger-owner: alice" "tokenledger-kind: user"; do
  if grep -qix "$h" <<<"$HEADERS"; then pass "verify 200 has '$h'"; else
    fail "verify 200 lacks '$h'" "$HEADERS"
  fi
done
if grep -qi "^tokenledger-destination-id:" <<<"$HEADERS"; then
  fail "a user token's verify has no Tokenledger-Destination-Id" "$HEADERS"
else pass "a user token's verify has no Tokenledger-Destination-Id"; fi
gw -u "$KEY:tls_wrong" "$API/v1/verify"
if [[ $CODE == 401 ]] && ! grep -qi "^tokenledger-owner:" <<<"$HEADERS"; then
  pass "a refused verify names no owner"
else fail "a refused verify: $CODE, want 401 without Tokenledger-Owner" "$HEADERS"; fi

# ---------------------------------------------------------------- valid tokens

gw -u "$KEY:$TOKEN" "$GW/orders?id=7"
expect_code "valid token through the gateway" 200
expect_body "the service is reached" "upstream "
expect_body "the service gets the owner" "owner=[alice]"
expect_body "the service gets the kind" "kind=[user]"
expect_body "no destination for a user token" "destination=[]"
expect_body "the secret does not reach the service" "authorization=[]"
expect_body "path and query pass unchanged" "uri=[/orders?id=7]"

gw -u "$KEY:$TOKEN" -H "Tokenledger-Owner: mallory" -H "Tokenledger-Kind: destination" \
  -H "Tokenledger-Destination-Id: forged" "$GW/"
expect_code "valid token with forged identity headers" 200
expect_body "a forged owner is replaced" "owner=[alice]"
expect_body "a forged kind is replaced" "kind=[user]"
expect_body "a forged destination is dropped" "destination=[]"

gw -u "$KEY:$TOKEN" -X POST -H 'Content-Type: application/json' -d '{"a":1}' "$GW/submit"
expect_code "POST with a body through the gateway" 200
expect_body "the service gets the POST" "method=[POST]"
gw -u "$KEY:$TOKEN" -X DELETE "$GW/thing"
expect_code "DELETE through the gateway (the verify is a GET)" 200

OUT=$(create bob '{"description":"gateway dest","kind":"destination","destination_id":"dest-1"}')
DKEY=$(jget "$OUT" key)
DTOKEN=$(jget "$OUT" token)
gw -u "$DKEY:$DTOKEN" "$GW/"
expect_code "destination token through the gateway" 200
expect_body "destination token: owner" "owner=[bob]"
expect_body "destination token: kind" "kind=[destination]"
expect_body "destination token: destination id" "destination=[dest-1]"

# ---------------------------------------------------------------- deactivation at once

# Each round: a token that passes, its deactivate call, and at once a request.
late=0
for i in $(seq 20); do
  OUT=$(create carol "{\"description\":\"round $i\"}")
  k=$(jget "$OUT" key)
  t=$(jget "$OUT" token)
  gw -u "$k:$t" "$GW/"
  [[ $CODE == 200 ]] || { late=$((late + 1)); fail "round $i: active token got $CODE"; continue; }
  dcode=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $SECRET" \
    "$API/v1/users/carol/tokens/$k/deactivate")
  gw -u "$k:$t" "$GW/"
  if [[ $dcode != 200 || $CODE != 401 ]]; then
    late=$((late + 1))
    fail "round $i: deactivate $dcode, then the gateway answered $CODE (want 401)" "${BODY:0:300}"
  fi
done
[[ $late -eq 0 ]] && pass "20 tokens: 401 on the first request after their deactivate returned"

curl -s -o /dev/null -X POST -H "Authorization: Bearer $SECRET" \
  "$API/v1/users/alice/tokens/$KEY/deactivate"
gw -u "$KEY:$TOKEN" "$GW/"
expect_code "alice's deactivated token" 401
if grep -qix 'www-authenticate: Basic realm="tokenledger"' <<<"$HEADERS"; then
  pass "the 401 asks for Basic credentials"
else fail "the 401 lacks WWW-Authenticate" "$HEADERS"; fi
if [[ $BODY != *upstream* ]]; then pass "a refused request never reaches the service"; else
  fail "a refused request reached the service" "$BODY"
fi

# ---------------------------------------------------------------- malformed and wrong

gw "$GW/"
expect_code "no Authorization header" 401
gw -H "Authorization: Basic !!!not-base64" "$GW/"
expect_code "garbled Basic credentials" 401
gw -H "Authorization: Bearer $DTOKEN" "$GW/"
expect_code "a Bearer token instead of Basic" 401
gw -u "tlk_short:tls_short" "$GW/"
expect_code "malformed key and secret" 401
gw -u "$DKEY:${DTOKEN%??????}AAAAAA" "$GW/"
expect_code "a secret with a bad checksum" 401
gw -u "tlk_AAAAAAAAAAAAAAAAAAAAAAAA:$DTOKEN" "$GW/"
expect_code "an unknown key" 401
gw -u "$DKEY:$TOKEN" "$GW/"
expect_code "another token's secret" 401
gw -u "$DKEY:$DTOKEN" "$GW/"
expect_code "bob's token still passes after all that" 200

finish
