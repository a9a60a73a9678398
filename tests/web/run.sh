#!/usr/bin/env bash
# Unit tests of the web page's own code (CTest unit.web_rules): node's test runner,
# no browser. Installs Node.js (Debian's) if there is none.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
command -v node >/dev/null || "$HERE/../../scripts/deps.sh" nodejs
exec node --test "$HERE"/*.test.mjs
