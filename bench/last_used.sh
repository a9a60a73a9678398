#!/usr/bin/env bash
# Verify throughput with last used on against off (issue 17): the same tokenledgerd
# binary, data directory and credentials, started with --last-used off and with
# --last-used on in turns, measured with wrk in the same run. See bench/README.md.
#
# usage: bench/last_used.sh [BUILD_DIR]
#
#   BUILD_DIR     a configured CMake build dir (default: $BUILD_DIR, else <repo>/build);
#                 tokenledgerd is brought up to date (`--target tokenledgerd` only)
# Environment:
#   TOKENLEDGERD  use this binary instead (skips the build)
#   THREADS       tokenledgerd --threads (default 1, as http_verify's THREADS=1)
#   TOKENS        tokens created; each request carries one drawn at random (default 1000)
#   FLUSH_MS      --last-used-flush-ms with it on (default 1000: several flushes per
#                 run, more often than the 60000 default)
#   DURATION      wrk -d per run (default 10s)   ROUNDS  runs per setting (default 3)
#   WRK_THREADS   wrk -t (default 1)             CONNECTIONS  wrk -c (default 32)
#   TARGET_RATIO  on/off requests/s target (default 0.95)
#   STRICT=1      exit 3 when the target is missed
# Scored by each setting's best run; the ratio of the means is printed too.
set -euo pipefail

die() {
  echo "last_used: $*" >&2
  exit 1
}

here="$(cd "$(dirname "$0")" && pwd)"
build_dir="${1:-${BUILD_DIR:-$here/../build}}"
THREADS="${THREADS:-1}"
TOKENS="${TOKENS:-1000}"
FLUSH_MS="${FLUSH_MS:-1000}"
DURATION="${DURATION:-10s}"
ROUNDS="${ROUNDS:-3}"
WRK_THREADS="${WRK_THREADS:-1}"
CONNECTIONS="${CONNECTIONS:-32}"
TARGET_RATIO="${TARGET_RATIO:-0.95}"

command -v wrk >/dev/null 2>&1 || die "needs wrk (apt-get install -y wrk)"
command -v curl >/dev/null 2>&1 || die "needs curl (apt-get install -y curl)"

if [ -n "${TOKENLEDGERD:-}" ]; then
  daemon="$TOKENLEDGERD"
else
  [ -f "$build_dir/CMakeCache.txt" ] ||
    die "$build_dir is not a configured build dir; configure one (cmake -G Ninja -S $here/.. -B $build_dir) or pass TOKENLEDGERD"
  cmake --build "$build_dir" --target tokenledgerd >/dev/null || die "building tokenledgerd failed"
  daemon="$build_dir/bin/tokenledgerd"
fi
[ -x "$daemon" ] || die "no tokenledgerd at $daemon"

tmp="$(mktemp -d "${TMPDIR:-/tmp}/last_used.XXXXXX")"
daemon_pid=""
wrk_pid=""
stop_daemon() {
  if [ -n "$wrk_pid" ]; then
    kill -TERM "$wrk_pid" 2>/dev/null || true
    wait "$wrk_pid" 2>/dev/null || true
    wrk_pid=""
  fi
  if [ -n "$daemon_pid" ]; then
    kill -TERM "$daemon_pid" 2>/dev/null || true
    wait "$daemon_pid" 2>/dev/null || true
    daemon_pid=""
  fi
}
trap 'stop_daemon; rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

operator_secret="bench-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
data="$tmp/data"

start_daemon() { # on|off
  : >"$tmp/stdout"
  TOKENLEDGER_OPERATOR_SECRET="$operator_secret" \
    "$daemon" --data-dir "$data" --listen 127.0.0.1:0 --threads "$THREADS" \
    --last-used "$1" --last-used-flush-ms "$FLUSH_MS" >"$tmp/stdout" 2>"$tmp/stderr" &
  daemon_pid=$!
  local addr=""
  for _ in $(seq 1 200); do
    addr="$(sed -n 's/^listening on //p' "$tmp/stdout" 2>/dev/null || true)"
    [ -n "$addr" ] && break
    kill -0 "$daemon_pid" 2>/dev/null || { cat "$tmp/stderr" >&2; die "tokenledgerd exited"; }
    sleep 0.1
  done
  [ -n "$addr" ] || die "tokenledgerd did not print 'listening on' within 20 s"
  url="http://$addr"
  for _ in $(seq 1 3000); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$url/readyz")" = 200 ] && return
    sleep 0.01
  done
  die "tokenledgerd at $url is not ready after 30 s"
}

# The credentials: TOKENS tokens, made once, used by every run (a wrk Lua script
# draws one per request).
start_daemon off
echo "creating $TOKENS tokens"
: >"$tmp/credentials"
for i in $(seq 1 "$TOKENS"); do
  created="$(curl -sf -X POST -H "Authorization: Bearer $operator_secret" \
    -H 'Content-Type: application/json' -d '{"description":"last used bench"}' \
    "$url/v1/users/bench$((i % 50))/tokens")" || die "creating a token failed"
  key="$(sed -n 's/.*"key":"\([^"]*\)".*/\1/p' <<<"$created")"
  secret="$(sed -n 's/.*"token":"\([^"]*\)".*/\1/p' <<<"$created")"
  echo "$key:$secret" >>"$tmp/credentials"
done
stop_daemon
python3 "$here/random_keys_lua.py" <"$tmp/credentials" >"$tmp/random_keys.lua"

ticks() { awk '{print $14 + $15}' "/proc/$daemon_pid/stat"; }

run() { # on|off; sets rps and cpu_us (the daemon's CPU per request: steadier than
  # requests/s when other processes share the machine)
  start_daemon "$1"
  local before
  before="$(ticks)"
  wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"$DURATION" -s "$tmp/random_keys.lua" \
    "$url/v1/verify" >"$tmp/wrk.out" 2>&1 &
  wrk_pid=$!
  wait "$wrk_pid" || { cat "$tmp/wrk.out" >&2; die "wrk failed"; }
  wrk_pid=""
  cpu_us="$(awk -v a="$before" -v b="$(ticks)" -v hz="$(getconf CLK_TCK)" \
    -v n="$(awk '/ requests in / {print $1}' "$tmp/wrk.out")" 'BEGIN { printf "%.2f", (b - a) / hz * 1e6 / n }')"
  grep -q "Non-2xx or 3xx responses" "$tmp/wrk.out" && { cat "$tmp/wrk.out" >&2; die "non-2xx answers"; }
  rps="$(awk '/^Requests\/sec:/ {print $2}' "$tmp/wrk.out")"
  [ "$1" = on ] && flushes="$(curl -s "$url/metrics" | awk '/^tokenledger_last_used_flushes_total/ {print $2}')"
  stop_daemon
}

echo "tokenledgerd: $daemon --threads $THREADS; wrk -t$WRK_THREADS -c$CONNECTIONS -d$DURATION," \
  "$TOKENS tokens at random; --last-used-flush-ms $FLUSH_MS; $ROUNDS runs each, alternating; $(nproc) CPUs"
best_off=0 best_on=0 sum_off=0 sum_on=0 cpu_off=0 cpu_on=0
for round in $(seq 1 "$ROUNDS"); do
  # Off first in odd rounds, on first in even ones: neither always has the second slot.
  order="off on"
  [ $((round % 2)) = 0 ] && order="on off"
  for mode in $order; do
    run "$mode"
    extra=""
    [ "$mode" = on ] && extra="  ($flushes flushes)"
    printf '  run %d last-used %-3s %10.0f req/s  server CPU %s us/req%s\n' "$round" "$mode" "$rps" "$cpu_us" "$extra"
    if [ "$mode" = off ]; then
      cpu_off="$(awk -v a="$cpu_off" -v b="$cpu_us" 'BEGIN { print a + b }')"
      sum_off="$(awk -v a="$sum_off" -v b="$rps" 'BEGIN { print a + b }')"
      awk -v a="$rps" -v b="$best_off" 'BEGIN { exit !(a > b) }' && best_off=$rps
    else
      cpu_on="$(awk -v a="$cpu_on" -v b="$cpu_us" 'BEGIN { print a + b }')"
      sum_on="$(awk -v a="$sum_on" -v b="$rps" 'BEGIN { print a + b }')"
      awk -v a="$rps" -v b="$best_on" 'BEGIN { exit !(a > b) }' && best_on=$rps
    fi
  done
done
ratio="$(awk -v a="$best_on" -v b="$best_off" 'BEGIN { printf "%.3f", a / b }')"
mean_ratio="$(awk -v a="$sum_on" -v b="$sum_off" 'BEGIN { printf "%.3f", a / b }')"
ok="$(awk -v a="$best_on" -v b="$best_off" -v g="$TARGET_RATIO" 'BEGIN { print (a >= g * b) ? "PASS" : "MISS" }')"
printf 'best runs: off %.0f req/s, on %.0f req/s\n' "$best_off" "$best_on"
awk -v a="$cpu_off" -v b="$cpu_on" -v r="$ROUNDS" 'BEGIN {
  printf "server CPU per request, mean of runs: off %.2f us, on %.2f us (off/on %.3f)\n", a / r, b / r, a / b }'
echo "ratio on/off: ${ratio} (target >= ${TARGET_RATIO}) $ok (ratio of the means: ${mean_ratio})"
if [ "$ok" = MISS ] && [ "${STRICT:-0}" = 1 ]; then exit 3; fi
exit 0
