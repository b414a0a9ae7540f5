#!/usr/bin/env bash
# Interleaved engine comparison on this machine (issue 4): in each round and for each thread count, run
# llama.cpp (CPU F32 decode after a 128-token prompt; CPU and OpenBLAS prefill of 128 tokens), EdgeLab's engine
# (same shapes, synthetic weights, 128 + 64 tokens), Hugging Face Transformers on PyTorch CPU, and the memory
# read bandwidth, one after another, so that load on this shared machine hits all of them alike.
# Prints JSON lines; summarise with bench/summarise_engine.py. Needs bench/baselines/ set up (see its README).
#   ROUNDS=3 THREADS="1 2" bench/compare_engine.sh > engine.jsonl
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${ROUNDS:-3}"
THREADS="${THREADS:-1 2}"
CACHE=.cache/baselines
MODEL="$CACHE/llama-3.2-1b-shapes-f32.gguf"
PY="${PY:-$CACHE/venv/bin/python}"
EDGELAB=.build/release/edgelab
[ -x "$EDGELAB" ] || swift build -c release --product edgelab >&2
for f in "$CACHE/build-cpu/bin/llama-bench" "$CACHE/build-blas/bin/llama-bench" "$MODEL" "$PY"; do
  [ -e "$f" ] || { echo "missing $f: run bench/baselines/run_baselines.sh once (it builds llama.cpp and the GGUF)" >&2; exit 1; }
done
echo "{\"system\": \"env\", \"date\": \"$(date -u +%FT%TZ)\", \"cpu\": \"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs)\", \"loadavg\": \"$(cut -d' ' -f1-3 /proc/loadavg)\", \"blas_core\": \"$("$EDGELAB" blas --core)\", \"openblas_coretype_env\": \"${OPENBLAS_CORETYPE:-}\"}"
lb() {  # system build threads args...
  local system=$1 build=$2 t=$3; shift 3
  "$CACHE/$build/bin/llama-bench" -m "$MODEL" -t "$t" -r 1 -o json "$@" 2>/dev/null \
    | "$PY" -c 'import json,sys; rows=json.load(sys.stdin); s,t=sys.argv[1],int(sys.argv[2])
for r in rows:
    kind = "prefill" if r["n_prompt"] > 0 else "decode"
    print(json.dumps({"system": s, "threads": t, kind + "_tokens_per_s": r["avg_ts"], "depth": r.get("n_depth", 0)}))' "$system" "$t"
}
tag() { sed "s/^{/{\"round\": $round, /"; }  # every line names its round, for per-round ratios
for round in $(seq "$ROUNDS"); do
  for t in $THREADS; do
    echo "round $round, $t thread(s)" >&2
    "$EDGELAB" bench memory --threads "$t" --mib 2048 --passes 5 --json | sed "s/^{/{\"system\": \"memory\", /" | tag
    lb llama.cpp-cpu-f32 build-cpu "$t" -p 0 -n 64 -d 128 | tag
    lb llama.cpp-cpu-f32 build-cpu "$t" -p 128 -n 0 | tag
    lb llama.cpp-openblas-f32 build-blas "$t" -p 128 -n 0 | tag
    for dtype in f32 bf16 f16; do
      "$EDGELAB" bench engine --model Llama-3.2-1B --threads "$t" --prompt 128 --new 64 --repetitions 1 --dtype "$dtype" --json 2>/dev/null \
        | sed "s/^{/{\"system\": \"edgelab-$dtype\", /" | tag
    done
    "$PY" bench/baselines/hf_decode_bench.py --threads "$t" --prompt 128 --new 64 --reps 1 2>/dev/null | tail -1 \
      | sed "s/^{/{\"system_label\": \"hf\", /" | tag
  done
done
