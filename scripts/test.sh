#!/usr/bin/env bash
# Installs what the tests need (if missing) and runs every test: format, lints, Rust unit and
# integration tests (SFU on a virtual clock, the server with webrtc-rs clients on loopback, the
# admin API on SQLite and on a local PostgreSQL started here), a Schemathesis run against the
# admin API's OpenAPI document, then the browser end-to-end tests in headless Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n== %s\n' "$*"; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "need root to run: $*" >&2; return 1; fi
}

# --- System packages -------------------------------------------------------------------
missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v node >/dev/null || missing+=(nodejs npm)
command -v curl >/dev/null || missing+=(curl)
# ip and tc: network namespaces and link shaping in the browser tests.
{ command -v ip >/dev/null && command -v tc >/dev/null; } || missing+=(iproute2)
# nft: silent network cuts (packets dropped, link up) in the outage test.
command -v nft >/dev/null || missing+=(nftables)
# cmake builds the bundled libopus (recording); ffmpeg/ffprobe check the recorded files.
command -v cmake >/dev/null || missing+=(cmake)
command -v ffprobe >/dev/null || missing+=(ffmpeg)
python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  as_root apt-get update
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi

# --- PostgreSQL for the API tests (installed and started if needed) -------------------------
say "PostgreSQL"
pg_env=$(./scripts/postgres.sh) # a failure stops here (inside `eval "$(...)"` it would not)
eval "$pg_env"
export KETANG_TEST_DATABASE_URL

# --- S3 (moto) for the library's S3 store test (installed and started if needed) ------------
say "S3 (moto)"
s3_env=$(./scripts/s3.sh)
eval "$s3_env"
export KETANG_TEST_S3_URL

# --- aiortc (a second independent WebRTC client) for tests/aiortc_interop.rs ------------------
say "aiortc venv"
aiortc_env=$(./scripts/aiortc-venv.sh)
eval "$aiortc_env"
export KETANG_AIORTC_PYTHON

# --- The browser app parses (a syntax error would only show as a blank page) -----------------
say "web-client syntax"
js_check=$(mktemp -d)
for f in $(find web-client -name '*.js'); do
  # Plain ES modules: check each as a module.
  cp "$f" "$js_check/check.mjs"
  node --check "$js_check/check.mjs" || { echo "syntax error in $f" >&2; exit 1; }
done
rm -rf "$js_check"

# Every test's output and every e2e server's log is kept here, then searched for secrets.
logs="$PWD/target/test-logs"
rm -rf "$logs" && mkdir -p "$logs"
export KETANG_E2E_LOG_DIR="$logs"

# --- Rust ----------------------------------------------------------------------------------
say "cargo fmt --check"
cargo fmt --all -- --check

say "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

say "cargo test (unit, SFU scenarios, server integration)"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast 2>&1 | tee "$logs/cargo-test.log"
  # nextest does not run doctests.
  cargo test --workspace --locked --doc 2>&1 | tee "$logs/cargo-doctest.log"
else
  cargo test --workspace --locked --no-fail-fast 2>&1 | tee "$logs/cargo-test.log"
fi

# --- Admin API fuzzing --------------------------------------------------------------------
cargo build -p ketang --locked
say "schemathesis against the admin API"
KETANG_BIN="$PWD/target/debug/ketang" ./scripts/schemathesis.sh

# --- Browser end-to-end --------------------------------------------------------------------
say "browser end-to-end (headless Chromium)"
(cd e2e && npm ci --no-audit --no-fund && KETANG_BIN="$PWD/../target/debug/ketang" npm test) 2>&1 | tee "$logs/e2e.log"

say "no secrets in the test logs"
./scripts/no-secrets-in-logs.sh "$logs"

say "all tests passed"
