#!/usr/bin/env bash
# Regenerates the seeds of tests/fuzz/corpus/ (the seeds the generator names are
# overwritten; saved crashes, crash-*, are left alone). Builds the generator and
# ledger-audit in the normal build dir OUT (default build/), which must be
# configured already (scripts/build.sh).
#   tests/fuzz/make_corpus.sh [OUT]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="${1:-$ROOT/build}"
CORPUS="$ROOT/tests/fuzz/corpus"

cmake --build "$OUT" -j2 --target fuzz_make_corpus ledger-audit
DATA="$(mktemp -d /tmp/tl-fuzz-corpus-XXXXXX)"
trap 'rm -rf "$DATA"' EXIT
"$OUT/bin/fuzz_make_corpus" "$CORPUS" "$DATA"
# The real checkpoint: what verify-log writes after checking the signed fixed events.
rm -f "$CORPUS/checkpoint/real.json"
"$OUT/bin/ledger-audit" --data-dir "$DATA" --quiet verify-log \
  --checkpoint "$CORPUS/checkpoint/real.json" >/dev/null
du -sh "$CORPUS"
