# Shared by bench/kafka_create_rate, bench/kafka_propagation and bench/kafka_rebuild
# (sourced, not run). See bench/README.md, "Kafka benchmarks".
#
# Environment understood by every Kafka benchmark:
#   BUILD_DIR      a configured CMake build dir (default <repo>/build); the needed
#                  targets are brought up to date with `cmake --build`
#   BIN_DIR        use the binaries in this dir instead (no build step)
#   TRUST=0        start Kafka daemons without trust flags (a build from before trusted
#                  writers, given with BIN_DIR)
#   KAFKA_BROKERS  use this broker (HOST:PORT) instead of starting one; each run
#                  uses fresh topics named tlbench-<what>-<pid>-<n> and leaves them
#   KAFKA_BROKER_PID  that broker's process id, so the `cpu` lines include it
#                  (scripts/kafka.sh writes it to DIR/broker.pid)
#   KEEP_TMP=1     keep the temporary dir (daemon logs, data dirs, broker log)
#
# Trusted writers (docs/kafka.md): a Kafka replica starts only with a trust root.
# Each run makes one root in TMP/trust (ledger-audit keys new-root), and
# kb_start_daemon certifies every Kafka daemon's data dir with it before the start
# (tokenledgerd --print-writer-key, ledger-audit keys certify) and passes
# --trust-root; other tokenledgerd runs (--rebuild) call kb_trust and pass
# "${KB_TRUST_ARGS[@]}".

kb_die() {
  echo "$KB_NAME: $*" >&2
  exit 1
}
kb_say() { echo "$KB_NAME: $*" >&2; }

KB_HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KB_REPO="$(cd "$KB_HERE/.." && pwd)"
KB_DAEMON_PIDS=()
KB_BROKER_DIR=""
KB_SAMPLER_PID=""
KB_TOPIC_N=0
KB_ROOT=""
KB_TRUST_ARGS=()
export TOKENLEDGER_OPERATOR_SECRET="${TOKENLEDGER_OPERATOR_SECRET:-tlbench-operator-secret-0123456789}"

kb_cleanup() {
  local pid
  [ -n "$KB_SAMPLER_PID" ] && kill "$KB_SAMPLER_PID" 2>/dev/null
  for pid in "${KB_DAEMON_PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  done
  KB_DAEMON_PIDS=()
  if [ -n "$KB_BROKER_DIR" ]; then
    bash "$KB_REPO/scripts/kafka.sh" stop --dir "$KB_BROKER_DIR" ${KEEP_TMP:+--keep} >/dev/null 2>&1 || true
    KB_BROKER_DIR=""
  fi
  if [ -n "${KB_TMP:-}" ]; then
    if [ "${KEEP_TMP:-0}" = 1 ]; then echo "kept $KB_TMP" >&2; else rm -rf "$KB_TMP"; fi
  fi
}

# kb_init NAME TARGET... : temp dir, cleanup trap, binaries (built if needed);
# ledger-audit always (it makes the trust root and the certificates).
kb_init() {
  KB_NAME="$1"
  shift
  set -- "$@" ledger-audit
  KB_TMP="$(mktemp -d "${TMPDIR:-/tmp}/$KB_NAME.XXXXXX")"
  trap kb_cleanup EXIT
  trap 'exit 130' INT TERM
  if [ -n "${BIN_DIR:-}" ]; then
    KB_BIN="$BIN_DIR"
  else
    local build_dir="${BUILD_DIR:-$KB_REPO/build}"
    [ -f "$build_dir/CMakeCache.txt" ] ||
      kb_die "$build_dir is not a configured build dir; configure one (cmake -G Ninja -S $KB_REPO -B $build_dir) or set BUILD_DIR / BIN_DIR"
    cmake --build "$build_dir" --target "$@" >"$KB_TMP/build.log" 2>&1 || {
      cat "$KB_TMP/build.log" >&2
      kb_die "building $* failed"
    }
    KB_BIN="$build_dir/bin"
  fi
  local t
  for t in "$@"; do [ -x "$KB_BIN/$t" ] || kb_die "no $t in $KB_BIN"; done
}

# kb_broker: sets KB_BROKERS (KAFKA_BROKERS, or a broker of our own on a free port).
kb_broker() {
  if [ -n "${KAFKA_BROKERS:-}" ]; then
    KB_BROKERS="$KAFKA_BROKERS"
    return
  fi
  KB_BROKER_DIR="$KB_TMP/kafka"
  local line
  line="$(bash "$KB_REPO/scripts/kafka.sh" start --port 0 --dir "$KB_BROKER_DIR" 2>"$KB_TMP/kafka-start.log")" || {
    cat "$KB_TMP/kafka-start.log" >&2
    kb_die "could not start a Kafka broker (scripts/kafka.sh start)"
  }
  KB_BROKERS="$(sed -n 's/^kafka ready on \([^ ]*\).*/\1/p' <<<"$line")"
  [ -n "$KB_BROKERS" ] || kb_die "unexpected kafka.sh output: $line"
  kb_say "broker on $KB_BROKERS"
}

kb_topic() { # a fresh topic name
  KB_TOPIC_N=$((KB_TOPIC_N + 1))
  echo "tlbench-$1-$$-$KB_TOPIC_N"
}

# kb_trust: this run's trust root, KB_ROOT (secret) and KB_ROOT.pub, made once, and
# KB_TRUST_ARGS, the tokenledgerd flags that trust it.
kb_trust() {
  [ -n "$KB_ROOT" ] && return
  mkdir -p "$KB_TMP/trust"
  "$KB_BIN/ledger-audit" keys new-root --out "$KB_TMP/trust/root-key" >"$KB_TMP/trust/new-root.log" 2>&1 || {
    cat "$KB_TMP/trust/new-root.log" >&2
    kb_die "ledger-audit keys new-root failed"
  }
  KB_ROOT="$KB_TMP/trust/root-key"
  KB_TRUST_ARGS=(--trust-root "$KB_ROOT.pub")
}

# kb_certify DATA_DIR: certifies the writer key of DATA_DIR (created if needed) with
# this run's root, as DATA_DIR/writer.cert (once).
kb_certify() {
  local dir="$1" line
  kb_trust
  [ -f "$dir/writer.cert" ] && return
  mkdir -p "$dir"
  line="$("$KB_BIN/tokenledgerd" --data-dir "$dir" --print-writer-key)" ||
    kb_die "tokenledgerd --print-writer-key failed for $dir"
  "$KB_BIN/ledger-audit" keys certify --root "$KB_ROOT" --writer-key "$line" \
    --out "$dir/writer.cert" >/dev/null || kb_die "ledger-audit keys certify failed for $dir"
}

# kb_start_daemon LABEL ARGS... : starts tokenledgerd with a fresh data dir on
# 127.0.0.1:0 (with --log kafka: certified, and trusting this run's root); sets
# KB_PORT and KB_PID; waits for "listening on" and /readyz.
kb_start_daemon() {
  local label="$1"
  shift
  local dir="$KB_TMP/$label"
  mkdir -p "$dir"
  local a prev="" trust=()
  for a in "$@"; do
    # TRUST=0: no trust flags, for a build from before trusted writers (BIN_DIR).
    if [ "$prev" = --log ] && [ "$a" = kafka ] && [ "${TRUST:-1}" != 0 ]; then
      kb_certify "$dir/data"
      trust=("${KB_TRUST_ARGS[@]}")
    fi
    prev="$a"
  done
  "$KB_BIN/tokenledgerd" --data-dir "$dir/data" --listen 127.0.0.1:0 "$@" "${trust[@]}" \
    >"$dir/stdout" 2>"$dir/stderr" &
  KB_PID=$!
  KB_DAEMON_PIDS+=("$KB_PID")
  KB_PORT=""
  local i
  for i in $(seq 1 600); do
    KB_PORT="$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$dir/stdout")"
    [ -n "$KB_PORT" ] && break
    kill -0 "$KB_PID" 2>/dev/null || {
      cat "$dir/stderr" >&2
      kb_die "tokenledgerd ($label) exited at start"
    }
    sleep 0.05
  done
  [ -n "$KB_PORT" ] || kb_die "tokenledgerd ($label) did not print 'listening on' within 30 s"
  for i in $(seq 1 600); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$KB_PORT" && printf 'GET /readyz HTTP/1.0\r\n\r\n' >&3 &&
      head -1 <&3 | grep -q ' 200 ') 2>/dev/null; then
      return
    fi
    sleep 0.05
  done
  kb_die "tokenledgerd ($label) not ready within 30 s"
}

kb_stop_daemon() { # PID
  kill -TERM "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  local keep=() p
  for p in "${KB_DAEMON_PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  KB_DAEMON_PIDS=("${keep[@]}")
}

# CPU accounting: kb_cpu_mark snapshots utime+stime (clock ticks) of the broker
# JVM, the running daemons and the whole machine; kb_cpu_report LABEL prints the
# CPU each used since the mark, in cores (1.00 = one core busy all the time), and
# leaves them in KB_CORES_BROKER, KB_CORES_DAEMONS (all daemons together) and
# KB_CORES_EXTRA ("" when not measured), for kb_us_per OPS_PER_S CORES.
kb_broker_pid() {
  if [ -n "$KB_BROKER_DIR" ] && [ -f "$KB_BROKER_DIR/broker.pid" ]; then
    cat "$KB_BROKER_DIR/broker.pid"
  elif [ -n "${KAFKA_BROKER_PID:-}" ] && [ -d "/proc/$KAFKA_BROKER_PID" ]; then
    echo "$KAFKA_BROKER_PID"
  else
    return 1
  fi
}
kb_ticks() { # PID -> utime+stime of the process (all threads), 0 if gone
  awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0
}
kb_cpu_mark() {
  KB_MARK_T="$(date +%s.%N)"
  KB_MARK_BROKER="$(kb_broker_pid || true)"
  KB_MARK_BROKER_T="$( [ -n "$KB_MARK_BROKER" ] && kb_ticks "$KB_MARK_BROKER" || echo 0)"
  KB_MARK_PIDS=("${KB_DAEMON_PIDS[@]}")
  KB_MARK_PIDS_T=()
  local p
  for p in "${KB_MARK_PIDS[@]}"; do KB_MARK_PIDS_T+=("$(kb_ticks "$p")"); done
  KB_MARK_ALL="$(awk '/^cpu /{print $2+$3+$4+$6+$7+$8; exit}' /proc/stat)"
  KB_MARK_IDLE="$(awk '/^cpu /{print $5; exit}' /proc/stat)"
}
kb_cpu_report() { # LABEL [EXTRA_TICKS_LABEL EXTRA_TICKS]
  local hz now el i out busy idle
  hz="$(getconf CLK_TCK)"
  now="$(date +%s.%N)"
  el="$(awk -v a="$KB_MARK_T" -v b="$now" 'BEGIN{print b-a}')"
  out="cpu $1 over ${el%.*}s (cores busy):"
  KB_CORES_BROKER="" KB_CORES_DAEMONS="" KB_CORES_EXTRA=""
  if [ -n "$KB_MARK_BROKER" ]; then
    KB_CORES_BROKER="$(awk -v t0="$KB_MARK_BROKER_T" -v t1="$(kb_ticks "$KB_MARK_BROKER")" -v hz="$hz" -v el="$el" 'BEGIN{printf "%.3f", (t1-t0)/hz/el}')"
    out+=" broker=$(printf '%.2f' "$KB_CORES_BROKER")"
  fi
  local c
  for i in "${!KB_MARK_PIDS[@]}"; do
    c="$(awk -v t0="${KB_MARK_PIDS_T[$i]}" -v t1="$(kb_ticks "${KB_MARK_PIDS[$i]}")" -v hz="$hz" -v el="$el" 'BEGIN{printf "%.3f", (t1-t0)/hz/el}')"
    KB_CORES_DAEMONS="$(awk -v a="${KB_CORES_DAEMONS:-0}" -v b="$c" 'BEGIN{printf "%.3f", a+b}')"
    out+=" tokenledgerd[$i]=$(printf '%.2f' "$c")"
  done
  if [ $# -ge 3 ]; then
    KB_CORES_EXTRA="$(awk -v t="$3" -v hz="$hz" -v el="$el" 'BEGIN{printf "%.3f", t/hz/el}')"
    out+=" $2=$(printf '%.2f' "$KB_CORES_EXTRA")"
  fi
  busy="$(awk '/^cpu /{print $2+$3+$4+$6+$7+$8; exit}' /proc/stat)"
  idle="$(awk '/^cpu /{print $5; exit}' /proc/stat)"
  out+=" machine=$(awk -v b0="$KB_MARK_ALL" -v b1="$busy" -v hz="$hz" -v el="$el" 'BEGIN{printf "%.2f", (b1-b0)/hz/el}')/$(nproc)"
  out+=" loadavg=$(cut -d' ' -f1 /proc/loadavg)"
  echo "$out"
}

# kb_us_per OPS_PER_S CORES: CPU microseconds per operation ("-" without a figure).
kb_us_per() {
  if [ -z "$2" ] || [ -z "$1" ] || [ "$1" = - ] || [ "$1" = 0 ]; then
    echo -
  else
    awk -v r="$1" -v c="$2" 'BEGIN{printf "%.1f", c*1e6/r}'
  fi
}
