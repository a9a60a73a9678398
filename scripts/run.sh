#!/usr/bin/env bash
# Quick start: installs or upgrades what it needs (scripts/deps.sh), builds, and runs tokenledgerd on
# 127.0.0.1:8080 with ./data as data directory (embedded event log).
# Extra arguments go to tokenledgerd, e.g. scripts/run.sh --listen 127.0.0.1:9090
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/build.sh" >&2
exec "$ROOT/build/bin/tokenledgerd" --data-dir ./data --listen 127.0.0.1:8080 "$@"
