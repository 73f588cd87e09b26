#!/usr/bin/env bash
# Builds (if needed) and runs the Ketang server with its embedded defaults: HTTP on
# 127.0.0.1:8080, media on UDP 127.0.0.1:10000+, data (signing secret) in ./data.
# Extra arguments go to `ketang serve`, e.g. `--config config/ketang.example.toml`.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v cargo >/dev/null; then
  echo "Rust is missing: install it from https://rustup.rs (cargo 1.94 or newer)" >&2
  exit 1
fi
exec cargo run --release --locked -p ketang -- serve "$@"
