#!/usr/bin/env python3
"""Median table of bench/compare_engine.sh output (JSON lines on stdin), as markdown."""
import json, statistics, sys
from collections import defaultdict

rows = defaultdict(lambda: defaultdict(list))
env = None
records = []
for line in sys.stdin:
    line = line.strip()
    if not line.startswith("{"):
        continue
    r = json.loads(line)
    records.append(r)
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
    print(f"Measured {env['date']} on {env['cpu']} (load before: {env['loadavg']}; EdgeLab's BLAS core: "
          f"{env.get('blas_core', '?')}, OPENBLAS_CORETYPE in the environment: {env.get('openblas_coretype_env') or 'unset'}); "
          "medians over rounds (min–max).\n")
print("| system | threads | prefill tok/s (128) | decode tok/s (64 after 128) | memory read GB/s | n |")
print("|---|---:|---:|---:|---:|---:|")
for (s, t), m in sorted(rows.items(), key=lambda kv: (kv[0][1], str(kv[0][0]))):
    n = max(len(v) for v in m.values())
    print(f"| {s} | {t} | {med(m['prefill_tokens_per_s'])} | {med(m['decode_tokens_per_s'])} | {med(m['read_bandwidth_gb_s'])} | {n} |")

# Ratios within a round (the systems of a round ran back to back, so load hits both sides alike).
by_round = defaultdict(dict)  # (round, threads) -> system -> record
for r in records:
    if "round" in r:
        by_round[(r["round"], r.get("threads"))].setdefault(r.get("system"), {}).update(r)

def ratio_line(label, num, den):
    per_t = defaultdict(list)
    for (rnd, t), systems in sorted(by_round.items()):
        a, b = num(systems), den(systems)
        if a is not None and b:
            per_t[t].append(a / b)
    for t, v in sorted(per_t.items()):
        print(f"| {label} | {t} | {statistics.median(v):.2f} | {', '.join(f'{x:.2f}' for x in v)} |")

def get(system, key):
    return lambda s: s.get(system, {}).get(key)

print("\n| ratio (same round) | threads | median | per round |")
print("|---|---:|---:|---|")
ratio_line("EdgeLab FP32 prefill / llama.cpp CPU F32 prefill",
           get("edgelab-f32", "prefill_tokens_per_s"), get("llama.cpp-cpu-f32", "prefill_tokens_per_s"))
ratio_line("EdgeLab FP32 decode read rate / memory read roofline",
           get("edgelab-f32", "effective_bandwidth_gb_s"), get("memory", "read_bandwidth_gb_s"))
ratio_line("EdgeLab BF16 decode / EdgeLab FP32 decode",
           get("edgelab-bf16", "decode_tokens_per_s"), get("edgelab-f32", "decode_tokens_per_s"))
ratio_line("EdgeLab F16 decode / EdgeLab FP32 decode",
           get("edgelab-f16", "decode_tokens_per_s"), get("edgelab-f32", "decode_tokens_per_s"))
ratio_line("EdgeLab FP32 decode / llama.cpp CPU F32 decode",
           get("edgelab-f32", "decode_tokens_per_s"), get("llama.cpp-cpu-f32", "decode_tokens_per_s"))
