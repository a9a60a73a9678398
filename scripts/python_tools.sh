#!/usr/bin/env bash
# Creates (once) the Python virtual environment the contract tests use:
# BUILD_DIR/pytools, with the pinned PyPI packages of tests/contract/requirements.txt
# (openapi-spec-validator, schemathesis). Re-creates it when the requirements change.
# Needs python3 with venv and pip (Debian: python3-venv python3-pip, scripts/deps.sh)
# and access to PyPI (or a pip mirror configured for pip).
#
#   scripts/python_tools.sh BUILD_DIR     # prints the venv's path
set -euo pipefail

if [[ $# -ne 1 ]]; then
  echo "usage: $0 BUILD_DIR" >&2
  exit 2
fi
ROOT=$(cd "$(dirname "$0")/.." && pwd)
REQS="$ROOT/tests/contract/requirements.txt"
mkdir -p "$1"
VENV="$(cd "$1" && pwd)/pytools"
# Debian's interpreter where there is one, so the tools run as on a fresh machine.
PYTHON=/usr/bin/python3
[[ -x $PYTHON ]] || PYTHON=$(command -v python3)

say() { echo "python_tools.sh: $*" >&2; }

# Several tests may ask at once: one creates, the others wait.
exec 9>"$VENV.lock"
flock 9
want=$(sha256sum "$REQS" | cut -d' ' -f1)
if [[ ! -x $VENV/bin/python || $(cat "$VENV/.requirements" 2>/dev/null) != "$want" ]]; then
  say "creating $VENV from $REQS"
  rm -rf "$VENV"
  if ! "$PYTHON" -m venv "$VENV" >&2; then
    say "cannot create a venv with $PYTHON: install python3-venv (scripts/deps.sh)"
    exit 1
  fi
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQS" >&2
  echo "$want" >"$VENV/.requirements"
fi
echo "$VENV"
