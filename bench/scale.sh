#!/usr/bin/env bash
# The scale table of bench/README.md for N tokens: builds a data dir of N tokens
# through the real apply path (scale_model: log bytes per event, read model bytes
# per token, embedded rebuild time, the rebuild's RSS), then on that data dir the
# in-process verify beside its limit (verify_bench --data-dir), and HTTP verify with
# keys drawn at random from the whole set beside nginx's fixed 200 (http_verify.sh
# with one wrk Lua script for both, --threads 1), which also prints the daemon's
# start-to-ready time and anonymous RSS.
#
# usage: bench/scale.sh N [BUILD_DIR]
# Environment: SCALE_DIR (default ${TMPDIR:-/tmp}/tl-scale-N, removed first unless
#   KEEP_DATA=1 and it exists), DURATION/ROUNDS for the HTTP runs (default 10s/2).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
n="${1:?usage: bench/scale.sh N [BUILD_DIR]}"
build_dir="${2:-${BUILD_DIR:-$here/../build}}"
dir="${SCALE_DIR:-${TMPDIR:-/tmp}/tl-scale-$n}"

cmake --build "$build_dir" --target scale_model verify_bench tokenledgerd >/dev/null
bin="$build_dir/bin"

echo "== scale_model --tokens $n --dir $dir"
if [ "${KEEP_DATA:-0}" = 1 ] && [ -f "$dir/credentials" ]; then
  echo "(kept from an earlier run)"
else
  rm -rf "$dir"
  "$bin/scale_model" --tokens "$n" --dir "$dir"
fi
echo "du of the projection: $(du -sb "$dir/projection" | awk -v n="$n" '{ printf "%.0f bytes per token", $1 / n }')"

echo
echo "== verify_bench --data-dir $dir (in-process verify vs its limit)"
"$bin/verify_bench" --data-dir "$dir" | tail -3

echo
echo "== http_verify.sh, random keys, --threads 1"
DATA_DIR="$dir" CREDENTIALS="$dir/credentials" THREADS=1 TARGET_RATIO=0.95 \
  TOKENLEDGERD="$bin/tokenledgerd" "$here/http_verify.sh" "$build_dir"
