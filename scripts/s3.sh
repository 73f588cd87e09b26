#!/usr/bin/env bash
# Makes sure an S3-compatible server runs for the library's S3 test (tests/library_s3.rs) and
# prints the line
#   export KETANG_TEST_S3_URL=http://127.0.0.1:PORT
# for `eval "$(./scripts/s3.sh)"`. The server is moto's (PyPI, a faithful S3 API in memory:
# multipart rules, ranges, any credentials), installed into a cached venv. Idempotent: a
# server already answering on the port is reused; otherwise one starts in the background and
# keeps running after this script (its log: $STATE/moto.log). Progress goes to stderr.
#
# Env: KETANG_S3_PORT (default 9010).
set -euo pipefail

MOTO_VERSION=5.1.22
PORT="${KETANG_S3_PORT:-9010}"
STATE="${XDG_CACHE_HOME:-$HOME/.cache}/ketang"
VENV="$STATE/moto-$MOTO_VERSION"
URL="http://127.0.0.1:$PORT"

say() { printf '%s\n' "$*" >&2; }

# moto answers every path, so its own endpoint tells it apart from another server on the port.
is_moto() { curl -fsS -o /dev/null "$URL/moto-api/" 2>/dev/null; }

if ! is_moto; then
  if [ ! -x "$VENV/bin/moto_server" ]; then
    say "installing moto[server] $MOTO_VERSION into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION" >&2
  fi
  say "starting moto_server on 127.0.0.1:$PORT"
  mkdir -p "$STATE"
  # setsid and no inherited stdout: `$(./scripts/s3.sh)` must not wait for the server.
  setsid "$VENV/bin/moto_server" -H 127.0.0.1 -p "$PORT" >"$STATE/moto.log" 2>&1 </dev/null &
  for _ in $(seq 1 100); do
    is_moto && break
    sleep 0.2
  done
  is_moto || { say "moto_server did not answer on $URL; log:"; tail -n 50 "$STATE/moto.log" >&2; exit 1; }
fi
say "S3 (moto) ready on $URL"
echo "export KETANG_TEST_S3_URL=$URL"
