#!/usr/bin/env bash
# A real Apache Kafka broker (KRaft, broker+controller in one JVM), or a cluster
# of them, for tests and for users without Docker. No tarball: the broker jars
# come from Maven Central through Maven and are cached between runs.
#
#   scripts/kafka.sh start   [--port P] [--dir D] [--version V] [--heap SIZE] [--nodes N]
#   scripts/kafka.sh stop    [--port P | --dir D] [--node I] [--keep] [--kill]
#   scripts/kafka.sh status  [--port P | --dir D] [--node I]
#   scripts/kafka.sh pause   [--port P | --dir D] [--node I]    SIGSTOP (broker hangs)
#   scripts/kafka.sh resume  [--port P | --dir D] [--node I]    SIGCONT
#   scripts/kafka.sh start   --dir D --node I                   restart one node
#   scripts/kafka.sh fetch   [--version V]                      only resolve the jars
#   scripts/kafka.sh properties [--nodes N] [--node I] [--port P] [--version V]
#                                       print a node's server.properties, start nothing
#
# --nodes 3: a cluster of 3 combined broker+controller nodes (a 3-voter quorum),
# node I on ports P+2(I-1) (broker) and P+2(I-1)+1 (controller), in D/node-I;
# replication factor 3 and min.insync.replicas 2 by default. --node I acts on one
# node of the cluster in D; without it, on all of them.
#
# start: fresh or empty D -> format a KRaft store in D and start; D holding a
# store made by this script -> start the same broker on its data again (no
# reformat), with the port and version recorded in D/kafka.env.
# stop: SIGTERM, wait up to 30 s, then SIGKILL; removes D unless --keep.
# --kill sends SIGKILL at once (a crash). Details: scripts/kafka/README.md.
#
# Environment: KAFKA_PORT (19092), KAFKA_DIR (fresh mktemp dir), KAFKA_VERSION,
# KAFKA_HEAP (512m; 384m per node of a cluster), KAFKA_SESSION_TIMEOUT_MS (cluster:
# 3000, how long a dead broker leads its partitions), KAFKA_START_TIMEOUT (60 s), TOKENLEDGER_CACHE
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

DIR="" PORT="" CPORT="" VERSION="" KEEP=0 KILL=0 HEAP=${KAFKA_HEAP:-}
PORT_SET=0 VERSION_SET=0 NODES="" NODE=""
# The node being worked on: its id, the quorum's voters, the cluster's size.
NODE_ID=1 VOTERS="" CLUSTER_NODES=1

pointer() { echo "$RUN_ROOT/tokenledger-kafka-$1.dir"; } # port -> dir of the last start

read_env() { # read_env FILE PREFIX: its KAFKA_X=v lines into PREFIX_X (KAFKA_CONTROLLER_PORT: PREFIX_CPORT)
  local k v
  [[ -f $1 ]] || return 1
  while IFS='=' read -r k v; do
    case $k in
      KAFKA_PORT | KAFKA_VERSION | KAFKA_CLUSTER_ID | KAFKA_NODE_ID | KAFKA_VOTERS | KAFKA_NODES)
        printf -v "$2_${k#KAFKA_}" '%s' "$v" ;;
      KAFKA_CONTROLLER_PORT) printf -v "$2_CPORT" '%s' "$v" ;;
    esac
  done <"$1"
}
load_env() { read_env "$DIR/kafka.env" D; } # a node's: D_PORT, D_CPORT, D_VERSION, D_NODE_ID, ...
# A cluster dir holds cluster.env (KAFKA_PORT = node 1's port) and node-I/.
is_cluster() { [[ -f $1/cluster.env ]]; }
load_cluster() { read_env "$CDIR/cluster.env" C; } # C_NODES, C_PORT, C_VERSION, C_CLUSTER_ID
select_nodes() { # sets WHICH to --node I (checked against C_NODES), else to every node
  WHICH=()
  if [[ -n $NODE ]]; then
    [[ $NODE =~ ^[0-9]+$ ]] && ((NODE >= 1 && NODE <= C_NODES)) || die "bad --node '$NODE': the cluster in $CDIR has nodes 1-$C_NODES"
    WHICH=("$NODE")
  else
    local i
    for ((i = 1; i <= C_NODES; i++)); do WHICH+=("$i"); done
  fi
}
node_port() { echo $((C_PORT + 2 * ($1 - 1))); } # node I's broker port; controller: +1
voters_of() { # voters_of nodes base_port
  local i out=""
  for ((i = 1; i <= $1; i++)); do out+="${out:+,}$i@127.0.0.1:$(($2 + 2 * (i - 1) + 1))"; done
  echo "$out"
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
  [[ -f $DIR/kafka.env ]] || is_cluster "$DIR"
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

free_port_run() { # free_port_run N: N free consecutive ports; prints the first
  # Below the ephemeral range: the broker's own connection to its controller gets an
  # ephemeral local port, which must not be the listener port it is about to bind.
  local p low=32768 n=$1 i ok
  read -r low _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || low=32768
  ((low > 12000)) || die "ip_local_port_range starts at $low: no room for --port 0; pass a --port"
  for _ in $(seq 1 50); do
    p=$((10000 + RANDOM % (low - 10000 - n)))
    ok=1
    for ((i = 0; i < n; i++)); do port_open "$((p + i))" && { ok=0; break; }; done
    ((ok)) && { echo "$p"; return; }
  done
  die "no $n free consecutive ports found"
}

answers_metadata() { # our broker (id NODE_ID, advertised 127.0.0.1:PORT) answers a metadata request
  kcat -b "127.0.0.1:$PORT" -L -m 5 2>/dev/null | grep -q "broker $NODE_ID at 127.0.0.1:$PORT"
}

# ---------------------------------------------------------------------- start

write_properties() {
  local major=${VERSION%%.*} rf=1 isr=1
  if ((CLUSTER_NODES > 1)); then rf=$((CLUSTER_NODES < 3 ? CLUSTER_NODES : 3)); isr=$((rf - 1)); fi
  cat >"$DIR/server.properties" <<EOP
# written by scripts/kafka.sh: KRaft node $NODE_ID of $CLUSTER_NODES (broker and controller) for tokenledger
process.roles=broker,controller
node.id=$NODE_ID
controller.quorum.voters=$VOTERS
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CPORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=$DIR/data
num.partitions=1
default.replication.factor=$rf
min.insync.replicas=$isr
auto.create.topics.enable=false
offsets.topic.replication.factor=$rf
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$isr
transaction.state.log.num.partitions=1
group.initial.rebalance.delay.ms=0
EOP
  if ((major >= 4)); then
    cat >>"$DIR/server.properties" <<EOP
share.coordinator.state.topic.replication.factor=$rf
share.coordinator.state.topic.min.isr=$isr
EOP
  fi
  if ((CLUSTER_NODES > 1)); then
    # A broker that stops heartbeating is fenced after the session timeout: only then
    # do its partitions get new leaders and leave its ISRs, so this bounds how long
    # writes stall when a node dies (Kafka's default: 9 s, heartbeats every 2 s).
    local session=${KAFKA_SESSION_TIMEOUT_MS:-3000}
    cat >>"$DIR/server.properties" <<EOP
broker.session.timeout.ms=$session
broker.heartbeat.interval.ms=$((session / 8 > 100 ? session / 8 : 100))
unclean.leader.election.enable=false
EOP
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

random_cluster_id() {
  # A base64url UUID like kafka-storage random-uuid makes, and like it never one
  # that starts with '-': the format tool would read that as an option (1 in 64).
  local cid=""
  while [[ -z $cid || $cid == -* ]]; do
    cid=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
  done
  echo "$cid"
}

# Formats the KRaft store of the node in $DIR (kafka.env and server.properties first).
node_format() { # node_format cluster_id
  printf 'KAFKA_PORT=%s\nKAFKA_CONTROLLER_PORT=%s\nKAFKA_VERSION=%s\nKAFKA_CLUSTER_ID=%s\nKAFKA_NODE_ID=%s\nKAFKA_VOTERS=%s\nKAFKA_NODES=%s\n' \
    "$PORT" "$CPORT" "$VERSION" "$1" "$NODE_ID" "$VOTERS" "$CLUSTER_NODES" >"$DIR/kafka.env"
  write_properties
  cds_opts format "$DIR/format.jsa"
  if ! "$JAVA" -Xmx256m -XX:TieredStopAtLevel=1 "${CDS_OPTS[@]}" "${JVM_OPTS[@]:2}" -cp "$CP" \
       kafka.tools.StorageTool format --cluster-id="$1" -c "$DIR/server.properties" >"$DIR/format.log" 2>&1; then
    tail -n 20 "$DIR/format.log" >&2
    rm -f "$DIR/format.jsa" "$DIR/format.jsa.target"
    die "formatting the KRaft store in $DIR/data failed (log: $DIR/format.log)"
  fi
  cds_promote "$DIR/format.jsa"
}

# Starts the JVM of the node in $DIR in the background; does not wait.
node_launch() {
  cds_promote "$DIR/broker.jsa" # left by a run that was not stopped by this script
  cds_opts broker "$DIR/broker.jsa"
  : >>"$DIR/broker.log"
  echo "==== $(date -Is) start: Kafka $VERSION node $NODE_ID on 127.0.0.1:$PORT (controller $CPORT)" >>"$DIR/broker.log"
  rm -f "$DIR/broker.pid"
  # New session: Ctrl-C in the caller's terminal or a test harness killing its
  # process group does not take the broker down; stop does. The wrapper writes
  # its own pid, which exec turns into the JVM's.
  # shellcheck disable=SC2016 # $$ and $1 are for the inner shell
  setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$DIR/broker.pid" \
    "$JAVA" "${JVM_OPTS[@]}" "${CDS_OPTS[@]}" -cp "$CP" kafka.Kafka "$DIR/server.properties" \
    </dev/null >>"$DIR/broker.log" 2>&1 &
}

# Waits until every node dir given answers metadata as itself. Each entry is
# "dir node_id port". Prints why and kills what it started on failure.
nodes_wait() {
  local t0=$SECONDS timeout=${KAFKA_START_TIMEOUT:-60} entry d id p pid pending why=""
  while ((SECONDS - t0 < timeout)); do
    pending=()
    for entry in "$@"; do
      read -r d id p <<<"$entry"
      pid=$(cat "$d/broker.pid" 2>/dev/null || true)
      if [[ -n $pid ]] && ! alive "$pid"; then why="node $id exited during startup"; break 2; fi
      DIR=$d NODE_ID=$id PORT=$p
      if [[ -z $pid ]] || ! port_open "$p" || ! answers_metadata; then pending+=("$entry"); fi
    done
    ((${#pending[@]})) || return 0
    set -- "${pending[@]}"
    sleep 0.2
  done
  [[ -n $why ]] || why="did not answer a metadata request on 127.0.0.1:$p within $timeout s"
  say "the broker $why; last lines of $d/broker.log:"
  grep -v '^	' "$d/broker.log" | tail -n 25 >&2 || true
  return 1
}
kill_started() { # kill_started dir...: after a failed start
  local d pid
  for d in "$@"; do
    pid=$(cat "$d/broker.pid" 2>/dev/null || true)
    [[ -n $pid ]] && kill -KILL "$pid" 2>/dev/null || true
    rm -f "$d/broker.pid" "$d/broker.jsa" "$d/broker.jsa.target"
  done
}

prepare_runtime() { # java, kcat, jars, JVM flags, classpath
  local major=${VERSION%%.*} minjava=11
  ((major >= 4)) && minjava=17
  need_java "$minjava"
  need_kcat
  fetch_jars
  CP=$(classpath)
  jvm_opts
}

cmd_start() {
  PORT=${PORT:-${KAFKA_PORT:-}}
  VERSION=${VERSION:-${KAFKA_VERSION:-}}
  [[ -n ${KAFKA_VERSION:-} ]] && VERSION_SET=1
  [[ -n ${KAFKA_PORT:-} ]] && PORT_SET=1
  DIR=${DIR:-${KAFKA_DIR:-}}
  [[ -z $DIR ]] || DIR=$(realpath -m "$DIR")
  if [[ -n $NODES ]]; then
    [[ $NODES =~ ^[0-9]+$ ]] && ((NODES >= 1 && NODES <= 9)) || die "bad --nodes '$NODES' (1-9)"
  fi
  if [[ -n $DIR ]] && is_cluster "$DIR" || ((${NODES:-1} > 1)); then
    cluster_start
    return
  fi
  [[ -z $NODE ]] || die "--node needs the --dir of a cluster (one started with --nodes N)"
  HEAP=${HEAP:-512m}
  local fresh=1 D_PORT="" D_CPORT="" D_VERSION="" D_CLUSTER_ID="" D_NODE_ID="" D_VOTERS="" D_NODES=""
  if [[ -n $DIR ]]; then
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
      NODE_ID=${D_NODE_ID:-1}
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
  if [[ $PORT == 0 ]]; then PORT=$(free_port_run 2); fi
  [[ $PORT =~ ^[0-9]+$ ]] && ((PORT > 0 && PORT < 65535)) || die "bad --port '$PORT'"
  CPORT=${CPORT:-$((PORT + 1))}
  VOTERS="1@127.0.0.1:$CPORT"
  port_open "$PORT" && die "port $PORT is in use (another broker? try: $0 stop --port $PORT, or --port 0)"
  port_open "$CPORT" && die "controller port $CPORT (port+1) is in use: choose another --port"

  prepare_runtime
  mkdir -p "$DIR/data"
  if [[ $fresh == 1 ]]; then
    node_format "${D_CLUSTER_ID:-$(random_cluster_id)}"
  else
    write_properties # same ports and dir: identical content; keeps the file current with this script
  fi
  echo "$DIR" >"$(pointer "$PORT")"
  node_launch
  if nodes_wait "$DIR 1 $PORT"; then
    echo "kafka ready on 127.0.0.1:$PORT (dir $DIR, version $VERSION)"
    trap - EXIT
    return 0
  fi
  kill_started "$DIR"
  trap - EXIT
  say "the broker dir is kept for inspection: $DIR (remove it with: $0 stop --dir $DIR)"
  exit 1
}

# A cluster in CDIR: starts every node that is not running (or only --node I).
cluster_start() {
  local CDIR=$DIR C_NODES="" C_PORT="" C_VERSION="" C_CLUSTER_ID="" i
  HEAP=${HEAP:-384m}
  if [[ -n $CDIR ]] && is_cluster "$CDIR"; then
    load_cluster
    [[ -z $NODES || $NODES == "$C_NODES" ]] || die "$CDIR is a cluster of $C_NODES nodes; start it with --nodes $C_NODES (or no --nodes)"
    [[ $VERSION_SET == 0 || $VERSION == "$C_VERSION" ]] || die "$CDIR holds Kafka $C_VERSION; start it with --version $C_VERSION or use a fresh dir"
    [[ $PORT_SET == 0 || $PORT == "$C_PORT" ]] || die "$CDIR is the cluster on port $C_PORT; start it with --port $C_PORT (or no --port)"
    VERSION=$C_VERSION
  else
    [[ -z $NODE ]] || die "--node needs the --dir of a cluster made by this script"
    if [[ -z $CDIR ]]; then
      CDIR=$(mktemp -d "$RUN_ROOT/tokenledger-kafka-cluster.XXXXXX")
    elif [[ -e $CDIR ]]; then
      [[ -d $CDIR ]] || die "$CDIR is not a directory"
      [[ -z $(ls -A "$CDIR") ]] || die "$CDIR is neither empty nor a cluster dir made by this script (no cluster.env)"
    fi
    VERSION=${VERSION:-$DEFAULT_VERSION}
    valid_version "$VERSION"
    PORT=${PORT:-19092}
    if [[ $PORT == 0 ]]; then PORT=$(free_port_run $((2 * NODES))); fi
    [[ $PORT =~ ^[0-9]+$ ]] && ((PORT > 0 && PORT + 2 * NODES < 65535)) || die "bad --port '$PORT'"
    for ((i = 0; i < 2 * NODES; i++)); do
      port_open "$((PORT + i))" && die "port $((PORT + i)) is in use: a cluster of $NODES needs ports $PORT-$((PORT + 2 * NODES - 1)) free (or --port 0)"
    done
    mkdir -p "$CDIR"
    C_NODES=$NODES C_PORT=$PORT C_VERSION=$VERSION C_CLUSTER_ID=$(random_cluster_id)
    printf 'KAFKA_NODES=%s\nKAFKA_PORT=%s\nKAFKA_VERSION=%s\nKAFKA_CLUSTER_ID=%s\n' \
      "$C_NODES" "$C_PORT" "$C_VERSION" "$C_CLUSTER_ID" >"$CDIR/cluster.env"
  fi
  select_nodes
  prepare_runtime
  CLUSTER_NODES=$C_NODES
  VOTERS=$(voters_of "$C_NODES" "$C_PORT")
  local waits=() started=() brokers="" pid
  for i in "${WHICH[@]}"; do
    DIR=$CDIR/node-$i NODE_ID=$i PORT=$(node_port "$i")
    CPORT=$((PORT + 1))
    mkdir -p "$DIR/data"
    if pid=$(broker_pid); then
      say "node $i already running (pid $pid)"
    else
      port_open "$PORT" && die "port $PORT of node $i is in use by something else"
      port_open "$CPORT" && die "controller port $CPORT of node $i is in use by something else"
      if [[ -f $DIR/data/meta.properties ]]; then
        write_properties
      else
        node_format "$C_CLUSTER_ID"
      fi
      node_launch
      started+=("$DIR")
    fi
    waits+=("$DIR $i $PORT")
  done
  echo "$CDIR" >"$(pointer "$C_PORT")"
  if ! nodes_wait "${waits[@]}"; then
    [[ -n $NODE ]] && say "a node answers only while a majority of the $C_NODES controllers runs: start the others too"
    kill_started "${started[@]}"
    say "the cluster dir is kept for inspection: $CDIR (remove it with: $0 stop --dir $CDIR)"
    exit 1
  fi
  for ((i = 1; i <= C_NODES; i++)); do brokers+="${brokers:+,}127.0.0.1:$(node_port "$i")"; done
  if [[ -n $NODE ]]; then
    echo "kafka node $NODE ready on 127.0.0.1:$(node_port "$NODE") (cluster dir $CDIR)"
  else
    echo "kafka cluster ready on $brokers (dir $CDIR, $C_NODES nodes, version $VERSION)"
  fi
}

# ----------------------------------------------------------------- stop/status

# Sends the stop signal to the node in $DIR; prints its pid if it was running.
node_signal_stop() {
  local pid
  pid=$(broker_pid) || return 1
  if [[ $KILL == 1 ]]; then
    kill -KILL "$pid" 2>/dev/null || true
    echo "==== $(date -Is) killed (SIGKILL)" >>"$DIR/broker.log"
  else
    kill -CONT "$pid" 2>/dev/null || true # in case it was paused
    kill -TERM "$pid" 2>/dev/null || true
  fi
  echo "$pid"
}
# Waits for the node in $DIR (pid $1, port $2) to exit; SIGKILL after 30 s.
node_wait_stop() {
  local pid=$1 clean=1 t0=$SECONDS
  [[ $KILL == 1 ]] && clean=0
  while alive "$pid" && ((SECONDS - t0 < 30)); do sleep 0.1; done
  if alive "$pid"; then
    say "broker (pid $pid) still running after 30 s: SIGKILL"
    clean=0
    kill -KILL "$pid" 2>/dev/null || true
    while alive "$pid"; do sleep 0.1; done
  fi
  echo "kafka stopped (pid $pid, 127.0.0.1:$2)"
  [[ $clean == 1 ]] || rm -f "$DIR/broker.jsa" # a dump cut short
  rm -f "$DIR/broker.pid"
  cds_promote "$DIR/broker.jsa"
}

cmd_stop() {
  resolve_dir || { echo "kafka not running (no broker dir found${DIR:+ at $DIR})"; return 0; }
  local D_PORT="" D_CPORT="" D_VERSION="" D_CLUSTER_ID="" D_NODE_ID="" D_VOTERS="" D_NODES="" pid
  if is_cluster "$DIR"; then
    local CDIR=$DIR C_NODES="" C_PORT="" C_VERSION="" C_CLUSTER_ID="" i pids=() dirs=() ports=()
    load_cluster
    select_nodes
    # all at once: a node stopping alone waits for a controller quorum that the
    # others, stopping one after the other, would no longer form
    for i in "${WHICH[@]}"; do
      DIR=$CDIR/node-$i
      if pid=$(node_signal_stop); then pids+=("$pid"); dirs+=("$DIR"); ports+=("$(node_port "$i")")
      else echo "kafka node $i not running"; fi
    done
    for i in "${!pids[@]}"; do DIR=${dirs[$i]} node_wait_stop "${pids[$i]}" "${ports[$i]}"; done
    DIR=$CDIR
    if [[ -n $NODE || $KEEP == 1 ]]; then
      echo "kept $CDIR (start it again with: $0 start --dir $CDIR${NODE:+ --node $NODE})"
    else
      local ptr; ptr=$(pointer "$C_PORT")
      [[ -f $ptr && $(cat "$ptr") == "$CDIR" ]] && rm -f "$ptr"
      rm -rf -- "$CDIR"
    fi
    return 0
  fi
  [[ -z $NODE ]] || die "--node needs the --dir of a cluster"
  load_env; PORT=$D_PORT
  if pid=$(node_signal_stop); then
    node_wait_stop "$pid" "$PORT"
  else
    echo "kafka not running (dir $DIR)"
    rm -f "$DIR/broker.pid"
  fi
  local ptr; ptr=$(pointer "$PORT")
  if [[ $KEEP == 1 ]]; then
    echo "kept $DIR (start it again with: $0 start --dir $DIR)"
  else
    [[ -f $ptr && $(cat "$ptr") == "$DIR" ]] && rm -f "$ptr"
    rm -rf -- "$DIR"
  fi
}

node_status() { # prints one node's state; returns 1 if its process does not exist
  local D_PORT="" D_CPORT="" D_VERSION="" D_CLUSTER_ID="" D_NODE_ID="" D_VOTERS="" D_NODES="" pid state
  load_env || { echo "kafka not set up in $DIR"; return 1; }
  PORT=$D_PORT NODE_ID=${D_NODE_ID:-1}
  local what="kafka" ; [[ -n $D_NODE_ID && ${D_NODES:-1} -gt 1 ]] && what="kafka node $D_NODE_ID"
  if pid=$(broker_pid); then
    state=$(awk '/^State:/ {print $2}' "/proc/$pid/status")
    if [[ $state == T ]]; then
      echo "$what paused (pid $pid) on 127.0.0.1:$PORT (dir $DIR, version $D_VERSION)"
    elif command -v kcat >/dev/null && ! answers_metadata; then
      echo "$what running (pid $pid) but not answering on 127.0.0.1:$PORT (dir $DIR, version $D_VERSION)"
    else
      echo "$what running (pid $pid) on 127.0.0.1:$PORT (dir $DIR, version $D_VERSION)"
    fi
    return 0
  fi
  echo "$what not running (dir $DIR, version $D_VERSION, port $PORT)"
  return 1
}

# Runs `$@` for the node of $DIR, or for each selected node of a cluster dir.
for_nodes() {
  if ! is_cluster "$DIR"; then
    [[ -z $NODE ]] || die "--node needs the --dir of a cluster"
    "$@"
    return
  fi
  local CDIR=$DIR C_NODES="" C_PORT="" C_VERSION="" C_CLUSTER_ID="" i rc=0
  load_cluster
  select_nodes
  for i in "${WHICH[@]}"; do DIR=$CDIR/node-$i "$@" || rc=1; done
  return $rc
}

cmd_status() {
  resolve_dir || { echo "kafka not running (no broker dir found${DIR:+ at $DIR})"; return 1; }
  for_nodes node_status
}

node_signal() { # node_signal SIGNAL verb
  local D_PORT="" D_CPORT="" D_VERSION="" D_CLUSTER_ID="" D_NODE_ID="" D_VOTERS="" D_NODES="" pid
  load_env; PORT=$D_PORT
  pid=$(broker_pid) || die "kafka not running (dir $DIR)"
  kill "-$1" "$pid"
  echo "kafka $2 (pid $pid, 127.0.0.1:$PORT)"
}

cmd_signal() { # pause/resume
  resolve_dir || die "no broker dir found"
  for_nodes node_signal "$@"
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
    --nodes) NODES=${2:?--nodes needs a value}; shift 2 ;;
    --nodes=*) NODES=${1#*=}; shift ;;
    --node) NODE=${2:?--node needs a value}; shift 2 ;;
    --node=*) NODE=${1#*=}; shift ;;
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
  properties)
    VERSION=${VERSION:-${KAFKA_VERSION:-$DEFAULT_VERSION}}; valid_version "$VERSION"
    CLUSTER_NODES=${NODES:-1} NODE_ID=${NODE:-1} C_PORT=${PORT:-${KAFKA_PORT:-19092}}
    PORT=$(node_port "$NODE_ID") CPORT=$((PORT + 1))
    VOTERS=$(voters_of "$CLUSTER_NODES" "$C_PORT")
    DIR=$(mktemp -d "$RUN_ROOT/tokenledger-kafka-properties.XXXXXX")
    write_properties && cat "$DIR/server.properties"
    rm -rf -- "$DIR" ;;
  -h|--help|help) usage 0 ;;
  *) die "unknown command '$cmd' (start, stop, status, pause, resume, fetch, properties)" ;;
esac
