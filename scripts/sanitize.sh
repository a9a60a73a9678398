#!/usr/bin/env bash
# The unit suites again, built with AddressSanitizer + UndefinedBehaviorSanitizer,
# and the suites whose code runs threads of its own (projection: batch helpers and
# the projector; signing and service core: the signer's writer thread and the
# asynchronous create) with ThreadSanitizer, each in its own build dir under OUT (default build/). CTest runs
# it as `sanitizers.unit` (label `sanitizers`); by hand:
#   scripts/sanitize.sh [OUT]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${1:-$ROOT/build}"
SUITES=(token_format_test events_test token_test domain_test lmdb_test embedded_log_test projection_test
  service_core_test signing_test rules_test checkpoint_test writer_chain_test trust_test
  audit_timeline_test last_used_test)

# build_and_run DIR FLAGS SUITE...
build_and_run() {
  local dir="$1" flags="$2"
  shift 2
  cmake -S "$ROOT" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS="$flags" \
    >/dev/null
  cmake --build "$dir" -j2 --target "$@"
  for suite in "$@"; do
    echo "== $suite ($flags)"
    "$dir/bin/$suite"
  done
}

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export TSAN_OPTIONS="halt_on_error=1 suppressions=$ROOT/scripts/tsan.supp"
build_and_run "$OUT/sanitize-address" \
  "-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer" \
  "${SUITES[@]}"
build_and_run "$OUT/sanitize-thread" "-fsanitize=thread -O1" projection_test signing_test \
  service_core_test last_used_test
