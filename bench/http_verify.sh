#!/usr/bin/env bash
# HTTP verify throughput and p99 latency of tokenledgerd, measured with wrk beside
# nginx answering a fixed 200 (the ceiling of an HTTP/1.1 keep-alive server on this
# machine), in the same run with the same wrk settings. See bench/README.md.
#
# usage: bench/http_verify.sh [BUILD_DIR]
#
#   BUILD_DIR     a configured CMake build dir (default: $BUILD_DIR, else <repo>/build);
#                 tokenledgerd is brought up to date with `cmake --build BUILD_DIR
#                 --target tokenledgerd`. Nothing else is built.
# Environment:
#   TOKENLEDGERD  use this binary instead (skips the build)
#   THREADS       server threads: tokenledgerd --threads N and nginx worker_processes N;
#                 a list ("1 2") runs the whole comparison once per value (default 2)
#   DURATION      wrk -d per run (default 10s)
#   ROUNDS        runs per server, alternating nginx/tokenledgerd (default 2)
#   WRK_THREADS   wrk -t (default 1)      CONNECTIONS   wrk -c (default 32)
#   STRICT=1      exit 3 when a target is missed (default: report only)
#   DATA_DIR      run tokenledgerd on this data dir (e.g. one `scale_model --dir` made)
#                 instead of a fresh one; its start-to-ready time and anonymous RSS are
#                 printed
#   CREDENTIALS   a file of key:secret lines (scale_model's DIR/credentials): every
#                 request, to both servers, carries one drawn at random (one wrk Lua
#                 script for both) instead of the same key
#   KEYS          how many lines of CREDENTIALS the script draws from (default 20000)
#   TARGET_RATIO  the requests/s target as a fraction of nginx (default 0.8)
#   KEEP_TMP=1    keep the temporary directory (configs, logs, data dir)
#
# Targets: tokenledgerd requests/s >= 0.8 x nginx, and tokenledgerd p99 <= 1 ms.
# Each server is scored by its best run (highest requests/s) and that run's p99;
# every run is printed too, with the server's CPU time per request (steadier than
# requests/s when other processes share the machine).
set -euo pipefail

die() {
  echo "http_verify: $*" >&2
  exit 1
}

here="$(cd "$(dirname "$0")" && pwd)"
build_dir="${1:-${BUILD_DIR:-$here/../build}}"
THREADS="${THREADS:-2}"
DURATION="${DURATION:-10s}"
ROUNDS="${ROUNDS:-2}"
WRK_THREADS="${WRK_THREADS:-1}"
CONNECTIONS="${CONNECTIONS:-32}"
TARGET_RATIO="${TARGET_RATIO:-0.8}"
KEYS="${KEYS:-20000}"
TARGET_P99_US=1000

# --- tools -------------------------------------------------------------------------
need=()
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v curl >/dev/null 2>&1 || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]} (apt-get)" >&2
  sudo_cmd=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "need ${need[*]}; install them (as root: apt-get install -y ${need[*]})"
    sudo_cmd=(sudo)
  fi
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"

# --- tokenledgerd --------------------------------------------------------------------
if [ -n "${TOKENLEDGERD:-}" ]; then
  daemon="$TOKENLEDGERD"
else
  [ -f "$build_dir/CMakeCache.txt" ] ||
    die "$build_dir is not a configured build dir; configure one (cmake -G Ninja -S $here/.. -B $build_dir) or pass BUILD_DIR / TOKENLEDGERD"
  cmake --build "$build_dir" --target tokenledgerd >"${TMPDIR:-/tmp}/http_verify-build.$$.log" 2>&1 || {
    cat "${TMPDIR:-/tmp}/http_verify-build.$$.log" >&2
    die "building tokenledgerd failed"
  }
  rm -f "${TMPDIR:-/tmp}/http_verify-build.$$.log"
  daemon="$build_dir/bin/tokenledgerd"
fi
[ -x "$daemon" ] || die "no tokenledgerd at $daemon"

# --- temporary directory, cleanup ----------------------------------------------------
tmp="$(mktemp -d "${TMPDIR:-/tmp}/http_verify.XXXXXX")"
daemon_pid=""
nginx_pid=""
wrk_pid=""
stop_servers() {
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
  if [ -n "$nginx_pid" ]; then
    kill -QUIT "$nginx_pid" 2>/dev/null || true
    wait "$nginx_pid" 2>/dev/null || true
    nginx_pid=""
  fi
}
cleanup() {
  stop_servers
  if [ "${KEEP_TMP:-0}" = 1 ]; then
    echo "kept $tmp" >&2
  else
    rm -rf "$tmp"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A port nothing listens on now (nginx retries with another if it loses a race).
free_port() {
  local p
  for _ in $(seq 1 100); do
    p=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return
    fi
  done
  die "found no free port"
}

start_daemon() { # threads
  local dir="$tmp/tl-$1"
  mkdir -p "$dir"
  : >"$dir/stdout" # exists before the background job opens it
  TOKENLEDGER_OPERATOR_SECRET="$operator_secret" \
    "$daemon" --data-dir "${DATA_DIR:-$dir/data}" --listen 127.0.0.1:0 --threads "$1" \
    >"$dir/stdout" 2>"$dir/stderr" &
  daemon_pid=$!
  local started
  started="$(date +%s.%N)"
  local addr=""
  for _ in $(seq 1 200); do
    addr="$(sed -n 's/^listening on //p' "$dir/stdout" 2>/dev/null || true)"
    [ -n "$addr" ] && break
    kill -0 "$daemon_pid" 2>/dev/null || { cat "$dir/stderr" >&2; die "tokenledgerd exited"; }
    sleep 0.1
  done
  [ -n "$addr" ] || die "tokenledgerd did not print 'listening on' within 20 s"
  daemon_url="http://$addr"
  for _ in $(seq 1 6000); do
    if [ "$(curl -s -o /dev/null -w '%{http_code}' "$daemon_url/readyz")" = 200 ]; then
      echo "tokenledgerd start to ready: $(awk -v a="$started" -v b="$(date +%s.%N)" \
        'BEGIN { printf "%.2f", b - a }') s; anonymous RSS" \
        "$(awk '/^RssAnon:/ { printf "%.1f MB", $2 / 1024 }' "/proc/$daemon_pid/status")"
      return
    fi
    sleep 0.01
  done
  die "tokenledgerd at $daemon_url is not ready after 60 s"
}

start_nginx() { # threads
  local dir="$tmp/nginx-$1" port temp_paths="" m
  mkdir -p "$dir"
  temp_paths="client_body_temp_path $dir/client_body;"
  for m in proxy fastcgi uwsgi scgi; do
    if ! "$NGINX" -V 2>&1 | grep -q -- "--without-http_${m}_module"; then
      temp_paths+=" ${m}_temp_path $dir/$m;"
    fi
  done
  for _ in 1 2 3 4 5; do
    port="$(free_port)"
    cat >"$dir/nginx.conf" <<EOF
worker_processes $1;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 300s;
  $temp_paths
  server {
    listen 127.0.0.1:$port;
    default_type application/json;
    location / { return 200 '{"valid":true}'; }
  }
}
EOF
    "$NGINX" -e "$dir/error.log" -c "$dir/nginx.conf" -p "$dir" -g 'daemon off;' \
      >"$dir/stdout" 2>&1 &
    nginx_pid=$!
    nginx_url="http://127.0.0.1:$port"
    for _ in $(seq 1 50); do
      [ "$(curl -s -o /dev/null -w '%{http_code}' "$nginx_url/")" = 200 ] && return
      kill -0 "$nginx_pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -QUIT "$nginx_pid" 2>/dev/null || true
    wait "$nginx_pid" 2>/dev/null || true
    nginx_pid=""
    grep -q "Address already in use" "$dir/error.log" 2>/dev/null || {
      cat "$dir/error.log" "$dir/stdout" >&2 2>/dev/null || true
      die "nginx did not start (config $dir/nginx.conf)"
    }
  done
  die "nginx found no free port"
}

# wrk latency "543.21us" / "1.20ms" / "2.00s" -> microseconds
to_us() {
  awk -v v="$1" 'BEGIN {
    n = v + 0
    if (v ~ /us$/) print n; else if (v ~ /ms$/) print n * 1000;
    else if (v ~ /m$/) print n * 60e6; else if (v ~ /s$/) print n * 1e6; else print -1 }'
}

# Runs wrk; sets rps, p99_us, cpu_us (server CPU per request) and split (CPU seconds
# per busy server thread). Dies on non-2xx answers; warns on socket errors.
run_wrk() { # name url [header]
  local name="$1" url="$2" out before after
  local args=(-t"$WRK_THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency)
  [ $# -ge 3 ] && args+=(-H "$3")
  [ -n "${CREDENTIALS:-}" ] && args+=(-s "$tmp/random_keys.lua")
  before="$(cpu_ticks "$name")"
  # In the background, so that a signal to this script runs its trap at once.
  wrk "${args[@]}" "$url" >"$tmp/wrk.out" 2>&1 &
  wrk_pid=$!
  wait "$wrk_pid" || { cat "$tmp/wrk.out" >&2; die "wrk failed against $name"; }
  wrk_pid=""
  out="$(cat "$tmp/wrk.out")"
  after="$(cpu_ticks "$name")"
  split="$(cpu_split "$before" "$after")"
  echo "$out" >>"$tmp/wrk.log"
  if grep -q "Non-2xx or 3xx responses" <<<"$out"; then
    echo "$out" >&2
    die "$name answered non-2xx responses under load (see above)"
  fi
  if grep -q "Socket errors" <<<"$out"; then
    echo "$out" >&2
    echo "http_verify: warning: $name had socket errors (see above)" >&2
  fi
  rps="$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")"
  p99_us="$(to_us "$(awk '$1 == "99%" {print $2}' <<<"$out")")"
  # Server CPU (user + system, all threads) per request: less sensitive than req/s to
  # other load on a shared machine.
  cpu_us="$(paste -d' ' <(echo "$before") <(echo "$after") |
    awk -v hz="$(getconf CLK_TCK)" -v n="$(awk '/ requests in / {print $1}' <<<"$out")" \
      '{ t += $2 - $1 } END { if (n > 0) printf "%.1f", t / hz * 1e6 / n; else print "?" }')"
  [ -n "$rps" ] && [ -n "$p99_us" ] && [ "$p99_us" != -1 ] ||
    { echo "$out" >&2; die "cannot parse wrk output"; }
}

# CPU ticks (user+system) of each server thread: tokenledgerd's threads, nginx's
# worker processes. Shows how evenly the connections landed on the threads.
cpu_ticks() { # name
  local f
  if [ "$1" = nginx ]; then
    for f in $(cat "/proc/$nginx_pid/task/$nginx_pid/children" 2>/dev/null); do
      awk '{print $14 + $15}' "/proc/$f/stat" 2>/dev/null
    done
  else
    for f in /proc/"$daemon_pid"/task/*/stat; do awk '{print $14 + $15}' "$f" 2>/dev/null; done
  fi
}
# Per-thread CPU seconds between two cpu_ticks snapshots, busiest first, idle ones left out.
cpu_split() { # before after
  paste -d' ' <(echo "$1") <(echo "$2") |
    awk -v hz="$(getconf CLK_TCK)" '{ d = ($2 - $1) / hz; if (d >= 0.05) printf "%.1f\n", d }' |
    sort -rn | tr '\n' ' '
}

fmt_us() { awk -v u="$1" 'BEGIN { if (u >= 1000) printf "%.2f ms", u / 1000; else printf "%.0f us", u }'; }

operator_secret="bench-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
failed=0
if [ -n "${CREDENTIALS:-}" ]; then
  [ -r "$CREDENTIALS" ] || die "cannot read CREDENTIALS=$CREDENTIALS"
  # One Authorization header per credential, drawn at random per request.
  shuf -n "$KEYS" "$CREDENTIALS" | python3 "$here/random_keys_lua.py" >"$tmp/random_keys.lua"
  echo "random keys: $(grep -c Basic "$tmp/random_keys.lua") credentials drawn from $CREDENTIALS"
fi
echo "tokenledgerd: $daemon"
echo "nginx: $("$NGINX" -v 2>&1 | sed 's/^nginx version: //'), wrk: $(wrk -v 2>&1 | head -1 | awk '{print $2}')"
echo "wrk -t$WRK_THREADS -c$CONNECTIONS -d$DURATION --latency; $ROUNDS runs each, alternating; $(nproc) CPUs"

for threads in $THREADS; do
  echo
  echo "== threads $threads (tokenledgerd --threads $threads, nginx worker_processes $threads) =="
  start_daemon "$threads"
  start_nginx "$threads"

  created="$(curl -sf -X POST -H "Authorization: Bearer $operator_secret" \
    -H 'Content-Type: application/json' -d '{"description":"http verify bench"}' \
    "$daemon_url/v1/users/bench/tokens")" || die "creating a token failed"
  key="$(sed -n 's/.*"key":"\([^"]*\)".*/\1/p' <<<"$created")"
  secret="$(sed -n 's/.*"token":"\([^"]*\)".*/\1/p' <<<"$created")"
  [ -n "$key" ] && [ -n "$secret" ] || die "unexpected create response: $created"
  auth="Authorization: Basic $(printf '%s:%s' "$key" "$secret" | base64 -w0)"

  verify_url="$daemon_url/v1/verify"
  code="$(curl -s -o "$tmp/verify.json" -w '%{http_code}' -H "$auth" "$verify_url")"
  if [ "$code" != 200 ]; then
    cat "$tmp/verify.json" >&2
    die "GET $verify_url answered $code, not 200: nothing to measure"
  fi
  echo "check: GET /v1/verify -> 200 $(cat "$tmp/verify.json")"
  echo "servers: nginx $nginx_url (pid $nginx_pid), tokenledgerd $daemon_url (pid $daemon_pid)"

  best_n_rps=0 best_n_p99=0 best_t_rps=0 best_t_p99=0 sum_n=0 sum_t=0 cpu_n=0 cpu_t=0
  for round in $(seq 1 "$ROUNDS"); do
    run_wrk nginx "$nginx_url/" "$auth"
    printf '  run %d nginx        %10.0f req/s  p99 %-9s server CPU %5s us/req (s per thread: %s)\n' \
      "$round" "$rps" "$(fmt_us "$p99_us")" "$cpu_us" "$split"
    sum_n="$(awk -v a="$sum_n" -v b="$rps" 'BEGIN { print a + b }')"
    cpu_n="$(awk -v a="$cpu_n" -v b="$cpu_us" 'BEGIN { print a + b }')"
    if awk -v a="$rps" -v b="$best_n_rps" 'BEGIN { exit !(a > b) }'; then
      best_n_rps=$rps best_n_p99=$p99_us
    fi
    run_wrk tokenledgerd "$verify_url" "$auth"
    printf '  run %d tokenledgerd %10.0f req/s  p99 %-9s server CPU %5s us/req (s per thread: %s)\n' \
      "$round" "$rps" "$(fmt_us "$p99_us")" "$cpu_us" "$split"
    sum_t="$(awk -v a="$sum_t" -v b="$rps" 'BEGIN { print a + b }')"
    cpu_t="$(awk -v a="$cpu_t" -v b="$cpu_us" 'BEGIN { print a + b }')"
    if awk -v a="$rps" -v b="$best_t_rps" 'BEGIN { exit !(a > b) }'; then
      best_t_rps=$rps best_t_p99=$p99_us
    fi
  done
  stop_servers

  ratio="$(awk -v t="$best_t_rps" -v n="$best_n_rps" 'BEGIN { printf "%.2f", t / n }')"
  ratio_ok="$(awk -v t="$best_t_rps" -v n="$best_n_rps" -v g="$TARGET_RATIO" \
    'BEGIN { print (t >= g * n) ? "PASS" : "MISS" }')"
  mean_ratio="$(awk -v t="$sum_t" -v n="$sum_n" 'BEGIN { printf "%.2f", t / n }')"
  p99_ok="$(awk -v p="$best_t_p99" -v g="$TARGET_P99_US" 'BEGIN { print (p <= g) ? "PASS" : "MISS" }')"
  [ "$ratio_ok" = PASS ] && [ "$p99_ok" = PASS ] || failed=1
  echo "threads $threads, best run of $ROUNDS each:"
  printf '  nginx fixed 200:      %10.0f req/s  p99 %s\n' "$best_n_rps" "$(fmt_us "$best_n_p99")"
  printf '  tokenledgerd verify:  %10.0f req/s  p99 %s\n' "$best_t_rps" "$(fmt_us "$best_t_p99")"
  echo "  ratio: ${ratio}x nginx (target >= ${TARGET_RATIO}x) $ratio_ok" \
    "(ratio of the means of all runs: ${mean_ratio}x)"
  echo "  p99: $(fmt_us "$best_t_p99") (target <= 1 ms) $p99_ok"
  awk -v n="$cpu_n" -v t="$cpu_t" -v r="$ROUNDS" 'BEGIN {
    printf "  server CPU per request, mean of runs: nginx %.1f us, tokenledgerd %.1f us (nginx/tokenledgerd %.2f)\n",
      n / r, t / r, n / t }'
done

if [ "$failed" = 1 ] && [ "${STRICT:-0}" = 1 ]; then exit 3; fi
exit 0
