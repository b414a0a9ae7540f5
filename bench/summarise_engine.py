#!/usr/bin/env python3
"""Median table of bench/compare_engine.sh output (JSON lines on stdin), as markdown."""
import json, statistics, sys
from collections import defaultdict

rows = defaultdict(lambda: defaultdict(list))
env = None
for line in sys.stdin:
    line = line.strip()
    if not line.startswith("{"):
        continue
    r = json.loads(line)
    if r.get("system") == "env":
        env = r
        continue
    key = (r.get("system"), r.get("threads"))
    for k in ("prefill_tokens_per_s", "decode_tokens_per_s", "read_bandwidth_gb_s", "effective_bandwidth_gb_s"):
        if isinstance(r.get(k), (int, float)):
            rows[key][k].append(r[k])

def med(v):
    return f"{statistics.median(v):.2f}" + (f" ({min(v):.2f}–{max(v):.2f})" if len(v) > 1 else "") if v else "–"

if env:
    print(f"Measured {env['date']} on {env['cpu']} (load before: {env['loadavg']}); medians over rounds (min–max).\n")
print("| system | threads | prefill tok/s (128) | decode tok/s (64 after 128) | memory read GB/s | n |")
print("|---|---:|---:|---:|---:|---:|")
for (s, t), m in sorted(rows.items(), key=lambda kv: (kv[0][1], str(kv[0][0]))):
    n = max(len(v) for v in m.values())
    print(f"| {s} | {t} | {med(m['prefill_tokens_per_s'])} | {med(m['decode_tokens_per_s'])} | {med(m['read_bandwidth_gb_s'])} | {n} |")
