#!/usr/bin/env bash
# Creates (or refreshes) a virtualenv with the consumer's pinned packages from PyPI.
#
#   examples/python-consumer/setup_venv.sh VENV_DIR
#
# Needs Debian's python3 and python3-venv (scripts/deps.sh installs both). Skips pip
# when VENV_DIR was made from the same requirements.txt.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV=${1:?usage: $0 VENV_DIR}
PYTHON=${PYTHON:-/usr/bin/python3}
command -v "$PYTHON" >/dev/null || PYTHON=python3
want=$(sha256sum "$HERE/requirements.txt" | cut -d' ' -f1)
if [[ -x $VENV/bin/python && $(cat "$VENV/.requirements-sha256" 2>/dev/null) == "$want" ]]; then
  exit 0
fi
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --only-binary=:all: \
  -r "$HERE/requirements.txt"
echo "$want" >"$VENV/.requirements-sha256"
