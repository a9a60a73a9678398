#!/usr/bin/env bash
# CTest fixtures for the integration label: a fresh single-node KRaft broker, or a
# fresh 3-node cluster (nodes on PORT, PORT+2, PORT+4).
#   kafka_fixture.sh up DIR PORT          (removes DIR first, so every run starts empty)
#   kafka_fixture.sh up-cluster DIR PORT  (same, 3 nodes)
#   kafka_fixture.sh down DIR PORT        (either)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KAFKA="$HERE/../../scripts/kafka.sh"
case "$1" in
  up)
    bash "$KAFKA" stop --dir "$2" --kill >/dev/null 2>&1 || true
    rm -rf "$2"
    exec bash "$KAFKA" start --dir "$2" --port "$3"
    ;;
  up-cluster)
    bash "$KAFKA" stop --dir "$2" --kill >/dev/null 2>&1 || true
    rm -rf "$2"
    exec bash "$KAFKA" start --nodes 3 --dir "$2" --port "$3"
    ;;
  down)
    exec bash "$KAFKA" stop --dir "$2"
    ;;
  *)
    echo "usage: $0 up|up-cluster|down DIR PORT" >&2
    exit 2
    ;;
esac
