#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole CTest suite.
# Extra arguments go to ctest, e.g. scripts/test.sh -L unit
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/build.sh"
cd "$ROOT/build"
ctest --output-on-failure -j2 --timeout 600 "$@"
