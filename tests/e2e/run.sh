#!/usr/bin/env bash
# End-to-end test of the Tokens page (CTest e2e.tokens_page, label e2e).
#
#   tests/e2e/run.sh PATH/TO/tokenledgerd ARTIFACTS_DIR
#
# Installs Debian's chromium and fonts, or upgrades them to the newest version,
# through scripts/deps.sh (and Node.js and npm if there are none), playwright-core
# from package-lock.json; starts tokenledgerd on a free port with a fresh data
# dir and a known operator secret, runs tokens_page.test.mjs with node's test
# runner, then stops the daemon with SIGTERM and checks that it exited 0.
# Screenshots of every step, and the daemon's log, go to ARTIFACTS_DIR.
set -euo pipefail

if (($# != 2)); then
  echo "usage: $0 PATH/TO/tokenledgerd ARTIFACTS_DIR" >&2
  exit 2
fi
DAEMON=$(realpath "$1")
ARTIFACTS=$(realpath -m "$2")
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CHROMIUM=${TL_CHROMIUM:-/usr/bin/chromium}

log() { echo "e2e: $*" >&2; }

# ------------------------------------------------------------------ dependencies

# Debian's packages through scripts/deps.sh, as for the build: what is missing is
# installed and what has a newer candidate upgraded, so the test drives the newest
# chromium Debian has. Node.js may come from elsewhere (20 or newer; Debian 12 has
# 18): Debian's is asked for only when there is no node at all. A browser given in
# TL_CHROMIUM is left alone.
packages=(fonts-liberation2 curl)
[[ $CHROMIUM != /usr/bin/chromium ]] || packages+=(chromium)
command -v node >/dev/null || packages+=(nodejs)
command -v npm >/dev/null || packages+=(npm)
"$HERE/../../scripts/deps.sh" "${packages[@]}"
[[ -x $CHROMIUM ]] || { log "no browser at $CHROMIUM"; exit 1; }

node_major=$(node -p 'process.versions.node.split(".")[0]')
if ((node_major < 20)); then
  log "node $(node --version) is too old: playwright-core needs Node.js 20 or newer"
  exit 1
fi

# playwright-core, exactly as package-lock.json pins it. No browser download:
# the test drives Debian's chromium.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
lock_sum=$(sha256sum "$HERE/package-lock.json" | cut -d' ' -f1)
if [[ $(cat "$HERE/node_modules/.installed-lock-sha256" 2>/dev/null) != "$lock_sum" ]]; then
  log "npm ci in $HERE"
  (cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$lock_sum" >"$HERE/node_modules/.installed-lock-sha256"
fi

# ------------------------------------------------------------------ the daemon

mkdir -p "$ARTIFACTS"
rm -f "$ARTIFACTS"/*.png
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tokenledger-e2e.XXXXXX")
DAEMON_LOG=$ARTIFACTS/tokenledgerd.log
SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
PID=""

cleanup() {
  if [[ -n $PID ]] && kill -0 "$PID" 2>/dev/null; then
    kill -TERM "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# Last use (last_used_at) is flushed once a minute by default; the test wants a
# verify reflected within a moment.
extra=(--last-used-flush-ms 200)

TOKENLEDGER_OPERATOR_SECRET=$SECRET "$DAEMON" --data-dir "$WORK/data" --listen 127.0.0.1:0 "${extra[@]}" \
  >"$DAEMON_LOG" 2>&1 &
PID=$!

PORT=""
for _ in $(seq 1 200); do
  PORT=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$DAEMON_LOG" | head -n1)
  [[ -n $PORT ]] && break
  if ! kill -0 "$PID" 2>/dev/null; then
    log "tokenledgerd exited before listening:"
    cat "$DAEMON_LOG" >&2
    exit 1
  fi
  sleep 0.1
done
if [[ -z $PORT ]]; then
  log "tokenledgerd did not print 'listening on' within 20 s:"
  cat "$DAEMON_LOG" >&2
  exit 1
fi
BASE=http://127.0.0.1:$PORT
for _ in $(seq 1 100); do
  curl -fsS "$BASE/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
log "tokenledgerd listening on $BASE (pid $PID, data $WORK/data)"

# ------------------------------------------------------------------ the test

status=0
TL_BASE_URL=$BASE TL_OPERATOR_SECRET=$SECRET TL_ARTIFACTS=$ARTIFACTS TL_DAEMON_LOG=$DAEMON_LOG \
TL_CHROMIUM=$CHROMIUM \
  node --test --test-reporter=spec "$HERE/tokens_page.test.mjs" || status=$?

# ------------------------------------------------------------------ stop, check exit 0

kill -TERM "$PID"
daemon_status=0
wait "$PID" || daemon_status=$?
PID=""
if ((daemon_status != 0)); then
  log "tokenledgerd exited $daemon_status after SIGTERM (expected 0); its log:"
  tail -n 40 "$DAEMON_LOG" >&2
  status=1
fi
if grep -q "$SECRET" "$DAEMON_LOG"; then
  log "the operator secret is in the daemon log"
  status=1
fi
log "screenshots in $ARTIFACTS"
exit $status
