#!/usr/bin/env bash
# Decode speed by weight type: EdgeLab and llama.cpp on the same GGUF files, interleaved rounds (this machine
# drifts: compare within a round). Files: Llama-3.2-1B shapes (random weights) in F32 (bench/baselines/make_gguf.py)
# and BF16, Q8_0, Q4_0, Q4_1 made from it with llama.cpp's `llama-quantize --pure` (every matrix in that type),
# plus SmolLM2-135M-Instruct Q4_1 (models/, `make smollm2`). EdgeLab runs each file with both arithmetics
# (`exact`: FP32 activations; `llama.cpp`: 8-bit inputs of quantized products, float16 KV cache).
# Prints one JSON line per measurement. Knobs: ROUNDS (2), THREADS ("1 2"), NEW (64), TYPES.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-2}; THREADS=${THREADS:-"1 2"}; NEW=${NEW:-64}; TYPES=${TYPES:-"f32 bf16 q8_0 q4_0 q4_1"}
EL=.build/release/edgelab
BENCH=.cache/baselines/build-cpu/bin/llama-bench
PROMPT=$(seq -s, 100 115)
files=()
for t in $TYPES; do files+=(".cache/baselines/llama-3.2-1b-shapes-$t.gguf"); done
[ -f models/SmolLM2-135M-Instruct.Q4_1.gguf ] && files+=(models/SmolLM2-135M-Instruct.Q4_1.gguf)
for round in $(seq "$ROUNDS"); do
  for t in $THREADS; do
    for f in "${files[@]}"; do
      [ -f "$f" ] || { echo "missing $f" >&2; continue; }
      for a in exact llama.cpp; do
        r=$($EL generate --model "$f" --prompt-tokens "$PROMPT" --max-new-tokens "$NEW" --threads "$t" --arithmetic "$a" --json)
        echo "{\"round\": $round, \"file\": \"$(basename "$f")\", \"system\": \"edgelab-$a\", \"threads\": $t, \"decode_tokens_per_s\": $(echo "$r" | python3 -c 'import json,sys; print(json.load(sys.stdin)["decode_tokens_per_s"])')}"
      done
      if [ -x "$BENCH" ]; then
        r=$($BENCH -m "$f" -p 0 -n "$NEW" -r 1 -t "$t" -o json 2>/dev/null)
        echo "{\"round\": $round, \"file\": \"$(basename "$f")\", \"system\": \"llama.cpp\", \"threads\": $t, \"decode_tokens_per_s\": $(echo "$r" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["avg_ts"])')}"
      fi
    done
  done
done
