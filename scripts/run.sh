#!/usr/bin/env bash
# Builds (if needed) and runs the Ketang server with its embedded defaults: HTTP on
# 127.0.0.1:8080, media on UDP 127.0.0.1:10000+, data (signing secret) in ./data.
# Extra arguments go to `ketang serve`, e.g. `--config config/ketang.example.toml`.
#
# Besides Rust, building needs a C compiler (aws-lc, SQLite) and cmake (the bundled libopus
# the recorder uses to mix lesson audio). On Debian and Ubuntu this script installs what is
# missing with apt-get (asking for sudo when not root); elsewhere it says what to install.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null; then
  echo "Rust is missing: install it from https://rustup.rs (cargo 1.94 or newer)" >&2
  exit 1
fi

missing=()
command -v cc >/dev/null || missing+=(gcc g++ libc6-dev)
command -v c++ >/dev/null || missing+=(g++)
command -v cmake >/dev/null || missing+=(cmake)
command -v make >/dev/null || missing+=(make)
if [ ${#missing[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null; then
    echo "installing the build tools Ketang needs: ${missing[*]}" >&2
    sudo=()
    if [ "$(id -u)" != 0 ]; then
      if ! command -v sudo >/dev/null; then
        echo "need root to run apt-get install ${missing[*]} (or install them yourself)" >&2
        exit 1
      fi
      sudo=(sudo)
    fi
    "${sudo[@]}" apt-get update
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
  else
    echo "missing build tools: ${missing[*]} (a C/C++ compiler, make and cmake); install them and run again" >&2
    exit 1
  fi
fi

exec cargo run --release --locked -p ketang -- serve "$@"
