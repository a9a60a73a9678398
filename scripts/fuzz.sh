#!/usr/bin/env bash
# The libFuzzer harnesses of tests/fuzz, built by clang-16 with ASan + UBSan in a
# build dir of their own, OUT/fuzz (OUT defaults to build/), then each run for
# FUZZ_SECONDS (default 6) from a scratch copy of its seed corpus, so the repo's
# corpus stays as it is. Fails on any crash, leak, sanitizer report, broken
# invariant or slow input; the input that did it is saved in OUT/fuzz/crashes/.
# CTest runs it as `fuzz.run` (label `fuzz`); by hand:
#   scripts/fuzz.sh [OUT [HARNESS...]]
#   FUZZ_SECONDS=300 scripts/fuzz.sh build api     # one harness, longer
# Harnesses: event_decode api json_body http_input checkpoint (tests/fuzz/README.md).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${1:-$ROOT/build}"
shift || true
ALL=(event_decode api json_body http_input checkpoint)
HARNESSES=("$@")
((${#HARNESSES[@]})) || HARNESSES=("${ALL[@]}")
SECONDS_EACH="${FUZZ_SECONDS:-6}"
DIR="$OUT/fuzz"

if ! command -v clang++-16 >/dev/null || [[ ! -e /usr/lib/llvm-16/lib/libFuzzer.a ]]; then
  echo "fuzz.sh: clang-16 with libFuzzer is missing; run scripts/deps.sh" >&2
  exit 1
fi
launcher=()
if command -v ccache >/dev/null; then
  launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi
# -O1 without NDEBUG: fast enough to fuzz, asserts on.
CC=clang-16 CXX=clang++-16 cmake -S "$ROOT" -B "$DIR" -G Ninja -DTOKENLEDGER_FUZZ=ON \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_C_FLAGS_RELWITHDEBINFO=-O1 -g" \
  "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g" "${launcher[@]}" >/dev/null
targets=()
for h in "${HARNESSES[@]}"; do targets+=("fuzz_$h"); done
cmake --build "$DIR" -j2 --target "${targets[@]}"

# Stack traces with file and line: llvm-symbolizer when there is one (package llvm-16),
# else binutils' addr2line, which clang-16 depends on.
symbolizer=$(command -v llvm-symbolizer-16 llvm-symbolizer addr2line | head -n1 || true)
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1${symbolizer:+:external_symbolizer_path=$symbolizer}
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
SCRATCH="$(mktemp -d /tmp/tl-fuzz-XXXXXX)"
trap 'rm -rf "$SCRATCH"' EXIT
mkdir -p "$DIR/crashes"
failed=()
for h in "${HARNESSES[@]}"; do
  cp -r "$ROOT/tests/fuzz/corpus/$h" "$SCRATCH/$h"
  dict=()
  [[ $h == event_decode ]] || dict=(-dict="$ROOT/tests/fuzz/tokenledger.dict")
  log="$DIR/fuzz_$h.log"
  # -timeout: an input that takes seconds is a finding too.
  if "$DIR/bin/fuzz_$h" "${dict[@]}" -max_total_time="$SECONDS_EACH" -timeout=10 \
    -artifact_prefix="$DIR/crashes/$h-" -print_final_stats=1 "$SCRATCH/$h" >"$log" 2>&1; then
    echo "== $h: $(grep -m1 -E '^#[0-9]+[[:space:]]+DONE' "$log" || echo "done")"
  else
    cat "$log"
    echo "== $h: FAILED (log $log; the input is in $DIR/crashes/, see tests/fuzz/README.md)"
    failed+=("$h")
  fi
done
((${#failed[@]} == 0)) || { echo "fuzz.sh: failed: ${failed[*]}" >&2; exit 1; }
