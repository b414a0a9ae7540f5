#!/usr/bin/env bash
# Decode (and prefill) speed by weight type: EdgeLab and llama.cpp on the same GGUF files, interleaved rounds (this
# machine drifts: compare within a round), then a table of EdgeLab ÷ llama.cpp.
#
# Files (.cache/baselines/llama-3.2-1b-shapes-TYPE.gguf): Llama-3.2-1B shapes with random weights in F32
# (bench/baselines/make_gguf.py), and made from it with llama.cpp's llama-quantize (bench/baselines/build_llamacpp.sh
# with TARGETS="llama-bench llama-quantize"): `llama-quantize --pure F32 OUT TYPE` (every matrix in that type) for
# bf16 q8_0 q4_0 q4_1 q4_k q5_k q6_k, and `llama-quantize F32 OUT Q4_K_M|Q5_K_M` for the mixes q4_k_m q5_k_m
# (MAKE_FILES=1 makes the missing ones). Plus SmolLM2-135M-Instruct Q4_1 when models/ has it (`make smollm2`).
#
# EdgeLab runs each file with `edgelab generate --arithmetic A` for A in ARITH (default: llama.cpp; "exact
# llama.cpp" for both), llama.cpp with `llama-bench` (CPU backend). Prints one JSON line per measurement, then the
# table (medians over rounds; EdgeLab's best arithmetic).
# Knobs: ROUNDS (2), THREADS ("1 2"), NEW (64), TYPES, ARITH, MODE (decode | prefill: a 128-token prompt).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-2}; THREADS=${THREADS:-"1 2"}; NEW=${NEW:-64}; MODE=${MODE:-decode}
TYPES=${TYPES:-"f32 bf16 q8_0 q4_0 q4_1 q4_k q5_k q6_k q4_k_m q5_k_m"}; ARITH=${ARITH:-llama.cpp}
EL=.build/release/edgelab
BENCH=.cache/baselines/build-cpu/bin/llama-bench
QUANTIZE=.cache/baselines/build-cpu/bin/llama-quantize
[ -x "$EL" ] || { echo "build EdgeLab first: swift build -c release --product edgelab" >&2; exit 1; }
[ -x "$BENCH" ] || { echo "build llama.cpp first: bench/baselines/build_llamacpp.sh" >&2; exit 1; }
if [ "$MODE" = prefill ]; then PROMPT=$(seq -s, 100 227); NEW=1; else PROMPT=$(seq -s, 100 115); fi

files=()
for t in $TYPES; do
  f=.cache/baselines/llama-3.2-1b-shapes-$t.gguf
  if [ ! -f "$f" ] && [ "${MAKE_FILES:-0}" = 1 ]; then
    src=.cache/baselines/llama-3.2-1b-shapes-f32.gguf
    [ -f "$src" ] || python3 bench/baselines/make_gguf.py
    upper=$(echo "$t" | tr a-z A-Z)
    case "$t" in
      *_m) "$QUANTIZE" "$src" "$f" "$upper" >/dev/null 2>&1 ;;
      *) "$QUANTIZE" --pure "$src" "$f" "$upper" >/dev/null 2>&1 ;;
    esac
  fi
  files+=("$f")
done
[ -f models/SmolLM2-135M-Instruct.Q4_1.gguf ] && files+=(models/SmolLM2-135M-Instruct.Q4_1.gguf)

out=$(mktemp)
trap 'rm -f "$out"' EXIT
for round in $(seq "$ROUNDS"); do
  for t in $THREADS; do
    for f in "${files[@]}"; do
      [ -f "$f" ] || { echo "missing $f (MAKE_FILES=1 makes it)" >&2; continue; }
      for a in $ARITH; do
        r=$($EL generate --model "$f" --prompt-tokens "$PROMPT" --max-new-tokens "$NEW" --threads "$t" --arithmetic "$a" --json)
        if [ "$MODE" = prefill ]; then
          v=$(echo "$r" | python3 -c 'import json,sys; print(128 / json.load(sys.stdin)["prefill_s"])')
        else
          v=$(echo "$r" | python3 -c 'import json,sys; print(json.load(sys.stdin)["decode_tokens_per_s"])')
        fi
        echo "{\"round\": $round, \"file\": \"$(basename "$f")\", \"system\": \"edgelab-$a\", \"threads\": $t, \"tokens_per_s\": $v}" | tee -a "$out"
      done
      if [ "$MODE" = prefill ]; then args=(-p 128 -n 0); else args=(-p 0 -n "$NEW"); fi
      r=$($BENCH -m "$f" "${args[@]}" -r 1 -t "$t" -o json 2>/dev/null)
      v=$(echo "$r" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["avg_ts"])')
      echo "{\"round\": $round, \"file\": \"$(basename "$f")\", \"system\": \"llama.cpp\", \"threads\": $t, \"tokens_per_s\": $v}" | tee -a "$out"
    done
  done
done

python3 - "$out" "$MODE" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
cells, by_round = {}, {}
for r in rows:
    cells.setdefault((r["file"], r["threads"], r["system"]), []).append(r["tokens_per_s"])
    by_round[(r["file"], r["threads"], r["system"], r["round"])] = r["tokens_per_s"]
files = list(dict.fromkeys(r["file"] for r in rows))
threads = sorted({r["threads"] for r in rows})
rounds = sorted({r["round"] for r in rows})
systems = sorted({r["system"] for r in rows if r["system"] != "llama.cpp"})
# The ratio of medians, and the ratio within each round (the systems ran back to back in it, so the host's drift
# hits both): this host moves by tens of percent between rounds, and the per-round ratios show how far to trust a cell.
print(f"\n{sys.argv[2]} tokens/s, medians over rounds (EdgeLab's best arithmetic ÷ llama.cpp), and that ratio per round:")
print("| file | threads | " + " | ".join(systems) + " | llama.cpp | ratio | per round | median per round |")
print("|---|---:|" + "---:|" * (len(systems) + 2) + "---|---:|")
for t in threads:
    for f in files:
        med = {s: statistics.median(cells[(f, t, s)]) for s in systems + ["llama.cpp"] if (f, t, s) in cells}
        if "llama.cpp" not in med:
            continue
        best_system = max((s for s in med if s != "llama.cpp"), key=lambda s: med[s])
        per = [by_round[(f, t, best_system, n)] / by_round[(f, t, "llama.cpp", n)] for n in rounds
               if (f, t, best_system, n) in by_round and (f, t, "llama.cpp", n) in by_round]
        print(f"| {f.replace('llama-3.2-1b-shapes-', '')} | {t} | " + " | ".join(f"{med.get(s, float('nan')):.2f}" for s in systems)
              + f" | {med['llama.cpp']:.2f} | {med[best_system] / med['llama.cpp']:.2f} | "
              + " ".join(f"{x:.2f}" for x in per) + f" | {statistics.median(per):.2f} |")
EOF
