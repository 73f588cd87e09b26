#!/usr/bin/env python3
"""Summarise ketang-loadtest JSON reports: one column per run and the median of each figure.

usage: python3 loadtest/bench-summary.py target/bench/b100-*.json
"""
import json
import statistics
import sys


def row(path):
    r = json.load(open(path))
    srv = r.get("server") or {}
    lat = r.get("latency_us") or {}
    a, v = lat.get("audio") or {}, lat.get("video") or {}
    ttff = r.get("ttff_ms") or {}
    lag = r.get("generator_timer_lag_us") or {}
    return {
        "run": path.rsplit("/", 1)[-1],
        "pubs": r["publishers"],
        "subs": r["subscribers"],
        "failed joins": r["failed_joins"],
        "tracks recv/expected": f'{r["tracks_received"]}/{r["tracks_expected"]}',
        "in pkt/s": r["in"]["packets_per_sec"],
        "out pkt/s": r["out"]["packets_per_sec"],
        "out Mbit/s": r["out"]["mbit_per_sec"],
        "loss before RTX %": r["loss"]["before_retransmission_ratio"] * 100,
        "loss after RTX %": r["loss"]["after_retransmission_ratio"] * 100,
        "audio p50 ms": a.get("p50", 0) / 1000,
        "audio p95 ms": a.get("p95", 0) / 1000,
        "audio p99 ms": a.get("p99", 0) / 1000,
        "video p50 ms": v.get("p50", 0) / 1000,
        "video p95 ms": v.get("p95", 0) / 1000,
        "video p99 ms": v.get("p99", 0) / 1000,
        "ttff p50 ms": ttff.get("p50", 0),
        "ttff p95 ms": ttff.get("p95", 0),
        "freezes": r["freezes"]["count"],
        "server cores": srv.get("cpu_cores", 0),
        "server µs/egress pkt": srv.get("cpu_us_per_egress_packet") or 0,
        "server RSS MiB": srv.get("rss_mib_end", 0),
        "server KiB/sub": srv.get("rss_kib_per_subscriber") or 0,
        "generator cores": r["generator"]["cpu_cores"],
        "generator lag p99 ms": lag.get("p99", 0) / 1000,
        "host UDP drops": r.get("host_udp_rcvbuf_drops") or 0,
    }


def main():
    rows = [row(p) for p in sys.argv[1:]]
    if not rows:
        sys.exit(__doc__)
    for key in rows[0]:
        vals = [r[key] for r in rows]
        cells = " | ".join(f"{x:.3f}" if isinstance(x, float) else str(x) for x in vals)
        numeric = all(isinstance(x, (int, float)) for x in vals)
        med = f"   median {statistics.median(vals):.3f}" if numeric and len(vals) > 1 else ""
        print(f"{key:22} {cells}{med}")


if __name__ == "__main__":
    main()
