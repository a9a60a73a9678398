#!/usr/bin/env bash
# The docker-compose files run the brokers that scripts/kafka.sh runs for the tests:
# each Kafka service's KAFKA_* settings (KAFKA_FOO_BAR: v is foo.bar=v) equal the
# server.properties the script writes for that node, but for what names hosts and
# paths (node.id, listeners, voters, log.dirs).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HOST_KEYS='^(node\.id|listeners|advertised\.listeners|controller\.quorum\.voters|log\.dirs)='
fail=0

# compose_settings FILE SERVICE: the service's KAFKA_* environment as sorted key=value
compose_settings() {
  awk -v svc="  $2:" '
    $0 == svc { in_svc = 1; next }
    in_svc && /^  [^ ]/ { in_svc = 0 }
    in_svc && /^      KAFKA_[A-Z0-9_]+:/ {
      key = $1; sub(/:$/, "", key); sub(/^KAFKA_/, "", key)
      val = $0; sub(/^[^:]*: */, "", val); gsub(/^"|"$/, "", val)
      key = tolower(key); gsub(/_/, ".", key)
      print key "=" val
    }' "$1" |
    grep -Ev "$HOST_KEYS" | sort
}
script_settings() { # script_settings NODES NODE
  bash "$ROOT/scripts/kafka.sh" properties --nodes "$1" --node "$2" | grep -v '^#' | grep -Ev "$HOST_KEYS" | sort
}
check() { # check FILE SERVICE NODES NODE
  local diff
  if ! diff=$(diff <(script_settings "$3" "$4") <(compose_settings "$1" "$2")); then
    echo "FAIL: $1 service $2 differs from scripts/kafka.sh properties --nodes $3 --node $4 (< script, > compose):"
    echo "$diff"
    fail=1
  else
    echo "ok: $(basename "$1") $2 = scripts/kafka.sh node $4 of $3 ($(script_settings "$3" "$4" | wc -l) settings)"
  fi
}

check "$ROOT/docker-compose.yml" kafka 1 1
for i in 1 2 3; do check "$ROOT/docker-compose.cluster.yml" "kafka-$i" 3 "$i"; done
# the compose node ids are the script's
for i in 1 2 3; do
  grep -A3 "^  kafka-$i:" "$ROOT/docker-compose.cluster.yml" >/dev/null || { echo "FAIL: no service kafka-$i"; fail=1; }
done
exit $fail
