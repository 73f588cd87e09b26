#!/usr/bin/env bash
# Run one load scenario RUNS times, each against a freshly started release server with one media
# shard, and keep every run's table (NAME-i.txt) and JSON report (NAME-i.json) in $OUT.
#
#   cargo build --release -p ketang -p ketang-loadtest
#   loadtest/bench.sh b100 3 --scenario broadcast --viewers 100 --duration 20s --ramp-per-second 10
#   python3 loadtest/bench-summary.py target/bench/b100-*.json
#
# The server is pinned to core 0 and the generator to core 1 (taskset). As root they also run
# SCHED_FIFO (chrt -f 10; RT=0 turns this off) so other work on the machine (builds, browsers)
# does not preempt them: on a busy 2-core machine that is the difference between a 3 ms and a
# 1 s latency tail. Both use little CPU and every run is bounded, so real-time priority is safe.
# KETANG_BIN / LOADTEST_BIN pick other builds (A/B); MEDIA_EXTRA adds lines to the server's
# [media] table (e.g. "audience_bwe_below = 100000" to give every viewer the estimator).
set -euo pipefail
cd "$(dirname "$0")/.."

name=${1:?usage: bench.sh NAME RUNS [ketang-loadtest run args...]}
runs=${2:?usage: bench.sh NAME RUNS [ketang-loadtest run args...]}
shift 2
ketang=${KETANG_BIN:-target/release/ketang}
loadtest=${LOADTEST_BIN:-target/release/ketang-loadtest}
out=${OUT:-target/bench}
port=${PORT:-18080}
mkdir -p "$out"

prio=()
if [ "${RT:-1}" = 1 ] && [ "$(id -u)" = 0 ] && command -v chrt >/dev/null; then
  prio=(chrt -f 10)
fi
pin() { if command -v taskset >/dev/null; then echo taskset -c "$1"; fi; }

for i in $(seq 1 "$runs"); do
  dir=$(mktemp -d)
  cat >"$dir/ketang.toml" <<EOF
[http]
listen = "127.0.0.1:$port"
[media]
listen = "127.0.0.1:$((port + 2000))"
shards = 1
${MEDIA_EXTRA:-}
[storage]
data_dir = "$dir/data"
[log]
filter = "warn"
EOF
  # shellcheck disable=SC2046
  "${prio[@]}" $(pin 0) "$ketang" serve --config "$dir/ketang.toml" >"$out/$name-$i.server.log" 2>&1 &
  server=$!
  for _ in $(seq 1 50); do [ -f "$dir/data/auth.secret" ] && break; sleep 0.1; done
  sleep 0.5
  # shellcheck disable=SC2046
  "${prio[@]}" $(pin 1) "$loadtest" run --url "http://127.0.0.1:$port" \
    --secret-file "$dir/data/auth.secret" --server-pid "$server" --no-progress \
    --json "$out/$name-$i.json" "$@" >"$out/$name-$i.txt" 2>&1 && rc=0 || rc=$?
  # Peer rounds per forwarded packet: one round per subscriber per ingress batch (issue 16).
  if command -v curl >/dev/null; then
    curl -s "http://127.0.0.1:$port/metrics" | awk '
      /^ketang_peer_rounds_total/ { r += $NF }
      /^ketang_rtp_forwarded_packets_total/ { f += $NF }
      END { if (f > 0) printf "peer rounds %d for %d forwarded packets (%.2f per packet)\n", r, f, r / f }
    ' >>"$out/$name-$i.txt" || true
  fi
  echo "$name run $i: exit $rc, $(cut -d' ' -f1-3 /proc/loadavg) load"
  kill "$server" && wait "$server" 2>/dev/null || true
  rm -rf "$dir"
  sleep 1
done
