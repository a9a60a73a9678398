#!/usr/bin/env bash
# Re-runs the librdkafka/broker compatibility check (scripts/kafka/README.md):
# builds compat_check.c against the installed librdkafka, starts a throwaway
# broker per version (scripts/kafka.sh, free port), runs the C check and a kcat
# round trip, stops the broker.
#
#   scripts/kafka/compat_check.sh [VERSION...]    default: kafka.sh's default version
#
# Output and librdkafka debug logs: $TMPDIR/tokenledger-compat.XXXXXX (printed).
# Exit status 0 only when every version passed.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
kafka="$here/../kafka.sh"
out=$(mktemp -d "${TMPDIR:-/tmp}/tokenledger-compat.XXXXXX")

command -v gcc >/dev/null || { echo "compat_check.sh: needs gcc (scripts/deps.sh)" >&2; exit 1; }
[[ -f /usr/include/librdkafka/rdkafka.h ]] || { echo "compat_check.sh: needs librdkafka-dev (scripts/deps.sh)" >&2; exit 1; }
gcc -O2 -Wall -Wextra -o "$out/compat_check" "$here/compat_check.c" -lrdkafka

dir=""
cleanup() { [[ -n $dir ]] && "$kafka" stop --dir "$dir" >/dev/null 2>&1 || true; }
trap cleanup EXIT

rc=0
versions=("$@")
((${#versions[@]})) || versions=("")
for v in "${versions[@]}"; do
  dir=$(mktemp -d "${TMPDIR:-/tmp}/tokenledger-compat-broker.XXXXXX")
  ready=$("$kafka" start --port 0 --dir "$dir" ${v:+--version "$v"})
  echo "$ready"
  port=$(sed -n 's/^kafka ready on 127\.0\.0\.1:\([0-9]*\) .*/\1/p' <<<"$ready")
  v=$(sed -n 's/.*, version \([^,)]*\).*/\1/p' <<<"$ready")
  b="127.0.0.1:$port"

  echo "== librdkafka $(pkg-config --modversion rdkafka 2>/dev/null || echo '?') against Kafka $v"
  "$out/compat_check" -b "$b" -l "$out/debug-$v.log" | tee "$out/compat-$v.txt" || rc=1

  echo "== kcat against Kafka $v"
  "$out/compat_check" -b "$b" -t kcat-check -n 10 -k -l /dev/null >/dev/null || true # creates the topic
  printf 'k1:one\nk2:two\nk1:three\n' |
    kcat -b "$b" -P -t kcat-check -K: -X enable.idempotence=true -X acks=all &&
    echo "PASS kcat -P             3 keyed messages, idempotent, acks=all" ||
    { echo "FAIL kcat -P"; rc=1; }
  got=$(kcat -b "$b" -C -t kcat-check -e -q -f '%k=%s\n' | grep -c '^k[12]=' || true)
  [[ $got == 3 ]] && echo "PASS kcat -C -e          read them back (and exited at the end)" ||
    { echo "FAIL kcat -C -e          read $got of 3"; rc=1; }
  kcat -b "$b" -L -t kcat-check | grep -q '6 partitions' &&
    echo "PASS kcat -L             metadata" || { echo "FAIL kcat -L"; rc=1; }

  "$kafka" stop --dir "$dir"
  dir=""
done
echo "output and debug logs: $out"
exit $rc
