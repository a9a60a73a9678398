# Sourced by the shell-driven tests (tokenctl_test.sh, gateway_test.sh,
# tests/contract/run.sh): their pass/fail counting, and a real tokenledgerd on a
# free loopback port.
#
#   pass MESSAGE              counts and prints "ok   - MESSAGE"
#   fail MESSAGE [DETAIL...]  counts and prints "FAIL - MESSAGE", then each detail
#
#   tl_start_daemon DAEMON SECRET DATA_DIR OUT [ARGS...]
#
# runs DAEMON --data-dir DATA_DIR --listen 127.0.0.1:0 ARGS with SECRET as the
# operator secret, stdout and stderr to OUT.stdout and OUT.stderr; sets DPID, and
# PORT once the daemon printed "listening on 127.0.0.1:PORT". Returns 1, PORT empty,
# when it did not within 10 s. tl_kill_daemon (for the caller's EXIT trap) kills a
# daemon still running; a caller that stopped it itself sets DPID="".
#
#   tl_stop_daemon STDERR_FILE
#
# sends SIGTERM and checks (pass/fail) that the daemon exits 0 within 10 s; on a
# failure prints the end of STDERR_FILE. Sets DPID="".
PASSED=0
FAILED=0
pass() { PASSED=$((PASSED + 1)); echo "ok   - $1"; }
fail() {
  FAILED=$((FAILED + 1))
  echo "FAIL - $1"
  shift
  for line in "$@"; do echo "       $line"; done
}

DPID=""
PORT=""

tl_kill_daemon() {
  if [[ -n $DPID ]] && kill -0 "$DPID" 2>/dev/null; then
    kill -KILL "$DPID" 2>/dev/null
    wait "$DPID" 2>/dev/null
  fi
}

tl_start_daemon() {
  local daemon=$1 secret=$2 data=$3 out=$4
  shift 4
  TOKENLEDGER_OPERATOR_SECRET="$secret" "$daemon" --data-dir "$data" --listen 127.0.0.1:0 \
    "$@" >"$out.stdout" 2>"$out.stderr" &
  DPID=$!
  PORT=""
  for _ in $(seq 100); do
    PORT=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9][0-9]*\)[[:space:]]*$/\1/p' \
      "$out.stdout" | head -n 1)
    [[ -n $PORT ]] && return 0
    kill -0 "$DPID" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

tl_stop_daemon() {
  local stderr_file=$1 rc
  kill -TERM "$DPID"
  for _ in $(seq 100); do
    kill -0 "$DPID" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$DPID" 2>/dev/null; then
    fail "the daemon exits within 10 s of SIGTERM" "stderr: $(tail -c 2000 "$stderr_file")"
    return
  fi
  wait "$DPID"
  rc=$?
  DPID=""
  if [[ $rc -eq 0 ]]; then pass "the daemon exits 0 on SIGTERM"; else
    fail "the daemon exits 0 on SIGTERM (exit $rc)" "stderr: $(tail -c 2000 "$stderr_file")"
  fi
}
