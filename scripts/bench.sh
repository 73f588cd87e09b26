#!/usr/bin/env bash
# The benchmark matrix of docs/benchmarks.md: every point RUNS times (default 3) against a fresh
# release server with one media shard (loadtest/bench.sh), then the per-point summaries with
# medians (loadtest/bench-summary.py). Loopback only; every run is bounded in time.
#
#   nice -n 5 cargo build --release -p ketang -p ketang-loadtest
#   scripts/bench.sh                 # the whole matrix, ~15 min on 2 cores
#   POINTS="b100 d8x5" scripts/bench.sh
#
# Environment: RUNS (3), DURATION (20s), OUT (target/bench), NICE (5: be kind to other work on
# the machine; 0 to disable), RT (0: plain scheduling; 1 as root runs server and generator
# SCHED_FIFO, which removes other processes' preemption from the latency tail).
set -euo pipefail
cd "$(dirname "$0")/.."

runs=${RUNS:-3}
duration=${DURATION:-20s}
export OUT=${OUT:-target/bench}
export RT=${RT:-0}
nice_n=${NICE:-5}
points=${POINTS:-b100 b300 b500 d8x5 m100}

args_for() {
  case "$1" in
    b100) echo --scenario broadcast --viewers 100 --ramp-per-second 20 ;;
    b300) echo --scenario broadcast --viewers 300 --ramp-per-second 20 ;;
    b500) echo --scenario broadcast --viewers 500 --ramp-per-second 20 ;;
    d8x5) echo --scenario dedicated --rooms 8 --classrooms 4 --ramp-per-second 10 ;;
    m100) echo --scenario master --viewers 100 --speakers 2 --ramp-per-second 20 ;;
    *) echo "unknown point $1" >&2; return 1 ;;
  esac
}

for p in $points; do
  # shellcheck disable=SC2046
  nice -n "$nice_n" loadtest/bench.sh "$p" "$runs" $(args_for "$p") --duration "$duration"
done
for p in $points; do
  echo "== $p"
  python3 loadtest/bench-summary.py "$OUT/$p"-[0-9]*.json
done
