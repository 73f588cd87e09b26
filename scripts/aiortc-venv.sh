#!/usr/bin/env bash
# Creates (once) the pinned Python environment of the aiortc interop test under
# target/aiortc-venv and prints the line that points the test at it:
#   eval "$(./scripts/aiortc-venv.sh)"; cargo test -p ketang --test aiortc_interop
set -euo pipefail
cd "$(dirname "$0")/.."

venv="$PWD/target/aiortc-venv"
req="$PWD/tests/aiortc/requirements.txt"
stamp="$venv/.requirements"
if ! cmp -s "$req" "$stamp" 2>/dev/null; then
  rm -rf "$venv"
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check --only-binary=:all: -r "$req" >&2
  cp "$req" "$stamp"
fi
echo "KETANG_AIORTC_PYTHON=$venv/bin/python"
