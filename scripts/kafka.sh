#!/usr/bin/env bash
# A real single-node Apache Kafka broker (KRaft, broker+controller in one JVM)
# for tests and for users without Docker. No tarball: the broker jars come from
# Maven Central through Maven and are cached between runs.
#
#   scripts/kafka.sh start   [--port P] [--dir D] [--version V] [--heap SIZE]
#   scripts/kafka.sh stop    [--port P | --dir D] [--keep] [--kill]
#   scripts/kafka.sh status  [--port P | --dir D]
#   scripts/kafka.sh pause   [--port P | --dir D]    SIGSTOP (broker hangs)
#   scripts/kafka.sh resume  [--port P | --dir D]    SIGCONT
#   scripts/kafka.sh fetch   [--version V]           only resolve the jars
#
# start: fresh or empty D -> format a KRaft store in D and start; D holding a
# store made by this script -> start the same broker on its data again (no
# reformat), with the port and version recorded in D/kafka.env.
# stop: SIGTERM, wait up to 30 s, then SIGKILL; removes D unless --keep.
# --kill sends SIGKILL at once (a crash). Details: scripts/kafka/README.md.
#
# Environment: KAFKA_PORT (19092), KAFKA_DIR (fresh mktemp dir), KAFKA_VERSION,
# KAFKA_HEAP (512m), KAFKA_START_TIMEOUT (60 s), TOKENLEDGER_CACHE
# (~/.cache/tokenledger), MAVEN_ARGS_EXTRA (extra mvn arguments).
set -euo pipefail
export LC_ALL=C

# Tested with Debian 12's librdkafka 2.0.2: see scripts/kafka/README.md.
DEFAULT_VERSION=4.4.0
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
POM="$SCRIPT_DIR/kafka/pom.xml"
CACHE_ROOT=${TOKENLEDGER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tokenledger}
RUN_ROOT=${TMPDIR:-/tmp}

die() { echo "kafka.sh: $*" >&2; exit 1; }
say() { echo "kafka.sh: $*" >&2; }

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
  exit "${1:-0}"
}

# ---------------------------------------------------------------- prerequisites

SUDO=""
apt_install() { # apt_install package... ; only what is missing
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get: install them by hand"
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || die "need root or sudo to install ${missing[*]}"
    SUDO=sudo
  fi
  say "installing ${missing[*]} (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq >&2
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 \
    || die "apt-get install ${missing[*]} failed"
}

JAVA="" JAVA_ID=""
java_props() { "$1" -XshowSettings:properties -version 2>&1; }
set_java_id() { # set_java_id props major: JAVA_ID names CDS archives; empty = no CDS
  JAVA_ID=""
  # dynamic CDS archives (-XX:ArchiveClassesAtExit) need HotSpot 13 or newer
  (($2 >= 13)) && grep -qE '^ *java\.vm\.name = .*(HotSpot|Server VM)' <<<"$1" || return 0
  JAVA_ID=$(sed -n 's/^ *java\.vm\.version = //p' <<<"$1" | head -1 | tr -c 'A-Za-z0-9.\n-' '_')
}
need_java() { # need_java min_major: sets JAVA and JAVA_ID (VM version, names CDS archives)
  local min=$1 cand props major
  for cand in ${JAVA_HOME:+"$JAVA_HOME/bin/java"} "$(command -v java || true)" \
              /usr/lib/jvm/java-17-openjdk-*/bin/java /usr/lib/jvm/*/bin/java; do
    [[ -n $cand && -x $cand ]] || continue
    props=$(java_props "$cand")
    major=$(sed -n 's/^ *java\.specification\.version = \(1\.\)\{0,1\}\([0-9]*\).*/\2/p' <<<"$props" | head -1)
    if ((${major:-0} >= min)); then
      JAVA=$cand
      set_java_id "$props" "$major"
      return
    fi
  done
  [[ -n $cand ]] && say "no Java $min or newer found"
  apt_install openjdk-17-jre-headless
  for cand in /usr/lib/jvm/java-17-openjdk-*/bin/java; do
    [[ -x $cand ]] || continue
    JAVA=$cand
    set_java_id "$(java_props "$cand")" 17
    return
  done
  die "Kafka $VERSION needs Java $min or newer; none found (set JAVA_HOME)"
}
need_kcat() { command -v kcat >/dev/null || apt_install kcat; command -v kcat >/dev/null || die "kcat not found"; }
need_mvn() { command -v mvn >/dev/null || apt_install maven; command -v mvn >/dev/null || die "mvn not found"; }

# ------------------------------------------------------------------------ jars

LIBS=""
valid_version() { [[ $1 =~ ^[0-9]+\.[0-9]+\.[0-9]+([.-][A-Za-z0-9.-]+)?$ ]] || die "bad --version '$1'"; }

# Resolves the broker jars of $VERSION into $CACHE_ROOT/kafka-$VERSION/libs,
# once: libs/.complete lists the jars of a finished resolution.
fetch_jars() {
  local base="$CACHE_ROOT/kafka-$VERSION"
  LIBS="$base/libs"
  cache_complete && return 0
  need_mvn
  mkdir -p "$base"
  exec 9>"$base/.lock"
  flock 9 # concurrent starts: one resolves, the others wait and reuse
  if ! cache_complete; then
    local tmp="$base/libs.tmp.$$" t0=$SECONDS
    rm -rf "$tmp" "$LIBS" "$base/cds"
    say "resolving Kafka $VERSION broker jars from Maven Central into $LIBS"
    # shellcheck disable=SC2086
    if ! mvn -q -B -f "$POM" -Dkafka.version="$VERSION" ${MAVEN_ARGS_EXTRA:-} \
         dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp" \
         >"$base/mvn.log" 2>&1; then
      tail -n 30 "$base/mvn.log" >&2
      rm -rf "$tmp"
      die "Maven could not resolve org.apache.kafka:kafka_2.13:$VERSION (log: $base/mvn.log)"
    fi
    ls "$tmp"/kafka_2.13-"$VERSION".jar >/dev/null 2>&1 || die "no kafka_2.13-$VERSION.jar after Maven"
    (cd "$tmp" && ls -1 -- *.jar) >"$tmp/.complete"
    mv "$tmp" "$LIBS"
    say "resolved $(wc -l <"$LIBS/.complete") jars in $((SECONDS - t0)) s"
  fi
  exec 9>&-
}
cache_complete() {
  [[ -s $LIBS/.complete ]] || return 1
  local j
  while read -r j; do [[ -f $LIBS/$j ]] || return 1; done <"$LIBS/.complete"
}
# Class-data sharing: the first run of a version dumps the classes it loaded
# into an archive (at JVM exit: for the broker, on stop); later runs map it and
# start about twice as fast. One archive per Kafka version and JVM build, in
# the cache next to libs/. KAFKA_CDS=0 turns it off.
CDS_OPTS=()
cds_opts() { # cds_opts name dump_path: sets CDS_OPTS
  local archive="$CACHE_ROOT/kafka-$VERSION/cds/$1-$JAVA_ID.jsa"
  CDS_OPTS=()
  [[ ${KAFKA_CDS:-1} != 0 && -n $JAVA_ID ]] || return 0
  if [[ -s $archive ]]; then
    CDS_OPTS=("-XX:SharedArchiveFile=$archive")
  else
    mkdir -p "${archive%/*}"
    echo "$archive" >"$2.target"
    CDS_OPTS=("-XX:ArchiveClassesAtExit=$2")
  fi
}
cds_promote() { # cds_promote dump_path: moves a finished dump into the cache
  local dump=$1 target
  if [[ -s $dump && -f $dump.target ]]; then
    target=$(cat "$dump.target")
    if [[ ! -s $target ]]; then
      { cp "$dump" "$target.tmp.$$" && mv -f "$target.tmp.$$" "$target"; } 2>/dev/null || rm -f "$target.tmp.$$"
    fi
  fi
  rm -f "$dump" "$dump.target"
}
classpath() { local IFS=:; local jars=("$LIBS"/*.jar); echo "${jars[*]}"; }

# ----------------------------------------------------------------------- state

DIR="" PORT="" CPORT="" VERSION="" KEEP=0 KILL=0 HEAP=${KAFKA_HEAP:-512m}
PORT_SET=0 VERSION_SET=0

pointer() { echo "$RUN_ROOT/tokenledger-kafka-$1.dir"; } # port -> dir of the last start

load_env() { # reads D/kafka.env into PORT, CPORT, VERSION (unless given)
  local f="$DIR/kafka.env" k v
  [[ -f $f ]] || return 1
  while IFS='=' read -r k v; do
    case $k in
      KAFKA_PORT) D_PORT=$v ;;
      KAFKA_CONTROLLER_PORT) D_CPORT=$v ;;
      KAFKA_VERSION) D_VERSION=$v ;;
      KAFKA_CLUSTER_ID) D_CLUSTER_ID=$v ;;
    esac
  done <"$f"
}

resolve_dir() { # for stop/status/pause: --dir, else KAFKA_DIR, else the pointer of --port
  if [[ -z $DIR ]]; then
    DIR=${KAFKA_DIR:-}
  fi
  if [[ -z $DIR ]]; then
    local p=${PORT:-${KAFKA_PORT:-19092}} ptr
    ptr=$(pointer "$p")
    [[ -f $ptr ]] || return 1
    DIR=$(cat "$ptr")
  fi
  DIR=$(realpath -m "$DIR")
  [[ -f $DIR/kafka.env ]]
}

broker_pid() { # prints the pid if the broker of $DIR is running
  local pid
  [[ -f $DIR/broker.pid ]] || return 1
  pid=$(cat "$DIR/broker.pid")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  # the pid must still be our JVM (pids get reused)
  tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -qF -- "kafka.Kafka $DIR/server.properties" || return 1
  echo "$pid"
}

alive() { # alive pid: exists and is not a zombie (an init that does not reap must not hang stop)
  local st
  st=$(awk '/^State:/ {print $2}' "/proc/$1/status" 2>/dev/null) || return 1
  [[ -n $st && $st != Z ]]
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_port_pair() { # two free consecutive ports: prints the first
  # Below the ephemeral range: the broker's own connection to its controller gets an
  # ephemeral local port, which must not be the listener port it is about to bind.
  local p low=32768
  read -r low _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || low=32768
  ((low > 12000)) || die "ip_local_port_range starts at $low: no room for --port 0; pass a --port"
  for _ in $(seq 1 50); do
    p=$((10000 + RANDOM % (low - 10002)))
    port_open "$p" || port_open "$((p + 1))" || { echo "$p"; return; }
  done
  die "no free port pair found"
}

answers_metadata() { # our broker (id 1, advertised 127.0.0.1:PORT) answers a metadata request
  kcat -b "127.0.0.1:$PORT" -L -m 5 2>/dev/null | grep -q "broker 1 at 127.0.0.1:$PORT"
}

# ---------------------------------------------------------------------- start

write_properties() {
  local major=${VERSION%%.*}
  cat >"$DIR/server.properties" <<EOF
# written by scripts/kafka.sh: single-node KRaft broker for tokenledger tests
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CPORT
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CPORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=$DIR/data
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
group.initial.rebalance.delay.ms=0
EOF
  if ((major >= 4)); then
    cat >>"$DIR/server.properties" <<EOF
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
EOF
  fi
}

jvm_opts() {
  JVM_OPTS=(
    "-Xms$HEAP" "-Xmx$HEAP"
    -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35
    -XX:+ExplicitGCInvokesConcurrent -XX:+ExitOnOutOfMemoryError
    -Djava.awt.headless=true
    -Dorg.slf4j.simpleLogger.showDateTime=true
    "-Dorg.slf4j.simpleLogger.dateTimeFormat=yyyy-MM-dd'T'HH:mm:ss.SSS"
    -Dorg.slf4j.simpleLogger.showShortLogName=true
  )
}

cmd_start() {
  PORT=${PORT:-${KAFKA_PORT:-}}
  VERSION=${VERSION:-${KAFKA_VERSION:-}}
  [[ -n ${KAFKA_VERSION:-} ]] && VERSION_SET=1
  [[ -n ${KAFKA_PORT:-} ]] && PORT_SET=1
  DIR=${DIR:-${KAFKA_DIR:-}}
  local fresh=1 D_PORT="" D_CPORT="" D_VERSION="" D_CLUSTER_ID=""
  if [[ -n $DIR ]]; then
    DIR=$(realpath -m "$DIR")
    if load_env; then
      fresh=0
      [[ -f $DIR/data/meta.properties ]] || fresh=1 # recorded but never formatted
      if [[ $VERSION_SET == 1 && $VERSION != "$D_VERSION" ]]; then
        die "$DIR holds a Kafka $D_VERSION store; start it with --version $D_VERSION or use a fresh dir"
      fi
      if [[ $PORT_SET == 1 && $PORT != "$D_PORT" ]]; then
        die "$DIR is the broker on port $D_PORT; start it with --port $D_PORT (or no --port) or use a fresh dir"
      fi
      PORT=$D_PORT CPORT=$D_CPORT VERSION=$D_VERSION
      local pid
      if pid=$(broker_pid); then
        answers_metadata || die "broker of $DIR is running (pid $pid) but does not answer on 127.0.0.1:$PORT"
        echo "kafka ready on 127.0.0.1:$PORT (dir $DIR, version $VERSION, already running)"
        return 0
      fi
    elif [[ -e $DIR ]]; then
      [[ -d $DIR ]] || die "$DIR is not a directory"
      [[ -z $(ls -A "$DIR") ]] || die "$DIR is neither empty nor a broker dir made by this script (no kafka.env)"
    fi
  else
    DIR=$(mktemp -d "$RUN_ROOT/tokenledger-kafka.XXXXXX")
    # a failed first start leaves nothing behind
    trap '[[ -f $DIR/data/meta.properties ]] || rm -rf -- "$DIR"' EXIT
  fi
  VERSION=${VERSION:-$DEFAULT_VERSION}
  valid_version "$VERSION"
  PORT=${PORT:-19092}
  if [[ $PORT == 0 ]]; then PORT=$(free_port_pair); fi
  [[ $PORT =~ ^[0-9]+$ ]] && ((PORT > 0 && PORT < 65535)) || die "bad --port '$PORT'"
  CPORT=${CPORT:-$((PORT + 1))}
  port_open "$PORT" && die "port $PORT is in use (another broker? try: $0 stop --port $PORT, or --port 0)"
  port_open "$CPORT" && die "controller port $CPORT (port+1) is in use: choose another --port"

  local major=${VERSION%%.*} minjava=11
  ((major >= 4)) && minjava=17
  need_java "$minjava"
  need_kcat
  fetch_jars
  mkdir -p "$DIR/data"
  local cp; cp=$(classpath)
  jvm_opts

  if [[ $fresh == 1 ]]; then
    # A base64url UUID like kafka-storage random-uuid makes, and like it never one
    # that starts with '-': the format tool would read that as an option (1 in 64).
    local cid=${D_CLUSTER_ID:-}
    while [[ -z $cid || $cid == -* ]]; do
      cid=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
    done
    printf 'KAFKA_PORT=%s\nKAFKA_CONTROLLER_PORT=%s\nKAFKA_VERSION=%s\nKAFKA_CLUSTER_ID=%s\n' \
      "$PORT" "$CPORT" "$VERSION" "$cid" >"$DIR/kafka.env"
    write_properties
    cds_opts format "$DIR/format.jsa"
    if ! "$JAVA" -Xmx256m -XX:TieredStopAtLevel=1 "${CDS_OPTS[@]}" "${JVM_OPTS[@]:2}" -cp "$cp" \
         kafka.tools.StorageTool format --cluster-id="$cid" -c "$DIR/server.properties" >"$DIR/format.log" 2>&1; then
      tail -n 20 "$DIR/format.log" >&2
      rm -f "$DIR/format.jsa" "$DIR/format.jsa.target"
      die "formatting the KRaft store in $DIR/data failed (log: $DIR/format.log)"
    fi
    cds_promote "$DIR/format.jsa"
  else
    write_properties # same ports and dir: identical content; keeps the file current with this script
  fi

  cds_promote "$DIR/broker.jsa" # left by a run that was not stopped by this script
  cds_opts broker "$DIR/broker.jsa"
  echo "$DIR" >"$(pointer "$PORT")"
  : >>"$DIR/broker.log"
  echo "==== $(date -Is) start: Kafka $VERSION on 127.0.0.1:$PORT (controller $CPORT)" >>"$DIR/broker.log"
  # New session: Ctrl-C in the caller's terminal or a test harness killing its
  # process group does not take the broker down; stop does. The wrapper writes
  # its own pid, which exec turns into the JVM's.
  # shellcheck disable=SC2016 # $$ and $1 are for the inner shell
  setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$DIR/broker.pid" \
    "$JAVA" "${JVM_OPTS[@]}" "${CDS_OPTS[@]}" -cp "$cp" kafka.Kafka "$DIR/server.properties" \
    </dev/null >>"$DIR/broker.log" 2>&1 &
  local t0=$SECONDS timeout=${KAFKA_START_TIMEOUT:-60} pid="" why
  why="did not answer a metadata request on 127.0.0.1:$PORT within $timeout s"
  while ((SECONDS - t0 < timeout)); do
    pid=$(cat "$DIR/broker.pid" 2>/dev/null || true)
    if [[ -n $pid ]]; then
      if ! alive "$pid"; then why="exited during startup"; pid=""; break; fi
      if port_open "$PORT" && answers_metadata; then
        echo "kafka ready on 127.0.0.1:$PORT (dir $DIR, version $VERSION)"
        trap - EXIT
        return 0
      fi
    fi
    sleep 0.2
  done
  say "the broker $why; last lines of $DIR/broker.log:"
  grep -v '^	' "$DIR/broker.log" | tail -n 25 >&2 || true
  [[ -n $pid ]] && kill -KILL "$pid" 2>/dev/null || true
  rm -f "$DIR/broker.pid" "$DIR/broker.jsa" "$DIR/broker.jsa.target"
  trap - EXIT
  say "the broker dir is kept for inspection: $DIR (remove it with: $0 stop --dir $DIR)"
  exit 1
}

# ----------------------------------------------------------------- stop/status

cmd_stop() {
  resolve_dir || { echo "kafka not running (no broker dir found${DIR:+ at $DIR})"; return 0; }
  local D_PORT="" D_CPORT="" D_VERSION="" D_CLUSTER_ID="" pid
  load_env; PORT=$D_PORT
  if pid=$(broker_pid); then
    local clean=1
    if [[ $KILL == 1 ]]; then
      clean=0
      kill -KILL "$pid" 2>/dev/null || true
      echo "==== $(date -Is) killed (SIGKILL)" >>"$DIR/broker.log"
    else
      kill -CONT "$pid" 2>/dev/null || true # in case it was paused
      kill -TERM "$pid" 2>/dev/null || true
    fi
    local t0=$SECONDS
    while alive "$pid" && ((SECONDS - t0 < 30)); do sleep 0.1; done
    if alive "$pid"; then
      say "broker (pid $pid) still running after 30 s: SIGKILL"
      clean=0
      kill -KILL "$pid" 2>/dev/null || true
      while alive "$pid"; do sleep 0.1; done
    fi
    echo "kafka stopped (pid $pid, 127.0.0.1:$PORT)"
    [[ $clean == 1 ]] || rm -f "$DIR/broker.jsa" # a dump cut short
  else
    echo "kafka not running (dir $DIR)"
  fi
  rm -f "$DIR/broker.pid"
  cds_promote "$DIR/broker.jsa"
  local ptr; ptr=$(pointer "$PORT")
  if [[ $KEEP == 1 ]]; then
    echo "kept $DIR (start it again with: $0 start --dir $DIR)"
  else
    [[ -f $ptr && $(cat "$ptr") == "$DIR" ]] && rm -f "$ptr"
    rm -rf -- "$DIR"
  fi
}

cmd_status() {
  resolve_dir || { echo "kafka not running (no broker dir found${DIR:+ at $DIR})"; return 1; }
  local D_PORT="" D_CPORT="" D_VERSION="" D_CLUSTER_ID="" pid state
  load_env; PORT=$D_PORT
  if pid=$(broker_pid); then
    state=$(awk '/^State:/ {print $2}' "/proc/$pid/status")
    if [[ $state == T ]]; then
      echo "kafka paused (pid $pid) on 127.0.0.1:$PORT (dir $DIR, version $D_VERSION)"
    elif command -v kcat >/dev/null && ! answers_metadata; then
      echo "kafka running (pid $pid) but not answering on 127.0.0.1:$PORT (dir $DIR, version $D_VERSION)"
    else
      echo "kafka running (pid $pid) on 127.0.0.1:$PORT (dir $DIR, version $D_VERSION)"
    fi
    return 0
  fi
  echo "kafka not running (dir $DIR, version $D_VERSION, port $PORT)"
  return 1
}

cmd_signal() { # pause/resume
  resolve_dir || die "no broker dir found"
  local D_PORT="" D_CPORT="" D_VERSION="" D_CLUSTER_ID="" pid
  load_env; PORT=$D_PORT
  pid=$(broker_pid) || die "kafka not running (dir $DIR)"
  kill "-$1" "$pid"
  echo "kafka $2 (pid $pid, 127.0.0.1:$PORT)"
}

# ------------------------------------------------------------------------ main

cmd=${1:-}
[[ -n $cmd ]] || usage 1
shift
while (($#)); do
  case $1 in
    --port) PORT=${2:?--port needs a value}; PORT_SET=1; shift 2 ;;
    --port=*) PORT=${1#*=}; PORT_SET=1; shift ;;
    --dir) DIR=${2:?--dir needs a value}; shift 2 ;;
    --dir=*) DIR=${1#*=}; shift ;;
    --version) VERSION=${2:?--version needs a value}; VERSION_SET=1; shift 2 ;;
    --version=*) VERSION=${1#*=}; VERSION_SET=1; shift ;;
    --heap) HEAP=${2:?--heap needs a value}; shift 2 ;;
    --keep) KEEP=1; shift ;;
    --kill) KILL=1; shift ;;
    -h|--help) usage 0 ;;
    *) die "unknown argument '$1' (see $0 --help)" ;;
  esac
done

case $cmd in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  pause) cmd_signal STOP paused ;;
  resume) cmd_signal CONT resumed ;;
  fetch)
    VERSION=${VERSION:-${KAFKA_VERSION:-$DEFAULT_VERSION}}; valid_version "$VERSION"
    fetch_jars; echo "Kafka $VERSION jars in $LIBS" ;;
  -h|--help|help) usage 0 ;;
  *) die "unknown command '$cmd' (start, stop, status, pause, resume, fetch)" ;;
esac
