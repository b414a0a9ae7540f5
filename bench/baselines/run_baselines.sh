#!/usr/bin/env bash
# Run the FP32 Llama-3.2-1B-shape baselines on this machine and print one JSON line per
# measurement on stdout:
#   {"system": ..., "threads": N, "prefill_tokens_per_s": ..., "decode_tokens_per_s": ..., ...}
#
#   llama.cpp-cpu-f32      : build-cpu  llama-bench -p 128 -n 64 -d 0,128 -r REPS -t N -o json
#                            prefill = pp128 (empty ctx), decode = tg64 @ depth 128 (after a 128-token
#                            prompt); tg64 @ depth 0 is reported as decode_tokens_per_s_empty_ctx
#   llama.cpp-openblas-f32 : build-blas llama-bench -p 128 -n 0 -r REPS -t N -o json   (prefill only;
#                            BLAS_DECODE=1 also measures decode, which does not use BLAS: batch 1 < 32)
#   hf-transformers-pytorch-cpu-fp32 : hf_decode_bench.py --threads N (prefill 128, decode 64 after it)
#
# Prerequisites (idempotent, run automatically when missing):
#   bench/baselines/build_llamacpp.sh                       -> .cache/baselines/build-{cpu,blas}
#   python bench/baselines/make_gguf.py                     -> .cache/baselines/llama-3.2-1b-shapes-f32.gguf
#   python venv with bench/baselines/requirements.txt      -> .cache/baselines/venv
#
# Env knobs: THREADS="1 2"  REPS=3  PROMPT=128  GEN=64  MODEL=<gguf>  SKIP_LLAMACPP=1  SKIP_BLAS=1
#            SKIP_HF=1  BLAS_DECODE=1  LLAMA_BENCH_EXTRA="-fa off"  PY=<python with torch/transformers>
# Raw outputs are kept in .cache/baselines/results/<UTC timestamp>/ (results.jsonl = stdout lines).
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"
CACHE="${BASELINE_CACHE:-$REPO_ROOT/.cache/baselines}"
THREADS="${THREADS:-1 2}"
REPS="${REPS:-3}"
PROMPT="${PROMPT:-128}"
GEN="${GEN:-64}"
MODEL="${MODEL:-$CACHE/llama-3.2-1b-shapes-f32.gguf}"
VENV="$CACHE/venv"
LLAMA_BENCH_EXTRA="${LLAMA_BENCH_EXTRA:-}"
OUTDIR="$CACHE/results/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$OUTDIR"
log() { echo "[run_baselines] $*" >&2; }

# --- prerequisites -----------------------------------------------------------
if [ -z "${PY:-}" ]; then
  if [ ! -x "$VENV/bin/python" ]; then
    log "creating venv $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --upgrade pip
    # CPU-only torch: pytorch.org's CPU index if reachable, else a local +cpu wheel via pip's
    # find-links, else PyPI (PyPI's Linux torch drags in ~4 GB of CUDA wheels; it still runs on CPU).
    "$VENV/bin/pip" install -q -r "$SCRIPT_DIR/requirements.txt" \
      || "$VENV/bin/pip" install -q -r "$SCRIPT_DIR/requirements.txt" --extra-index-url https://download.pytorch.org/whl/cpu \
      || "$VENV/bin/pip" install -q torch transformers gguf numpy
  fi
  PY="$VENV/bin/python"
fi
if [ -z "${SKIP_LLAMACPP:-}" ]; then
  if [ ! -x "$CACHE/build-cpu/bin/llama-bench" ] || { [ -z "${SKIP_BLAS:-}" ] && [ ! -x "$CACHE/build-blas/bin/llama-bench" ]; }; then
    log "llama.cpp builds missing -> build_llamacpp.sh"
    bash "$SCRIPT_DIR/build_llamacpp.sh" >&2
  fi
  if [ ! -f "$MODEL" ]; then
    log "model missing -> make_gguf.py"
    nice -n 10 "$PY" "$SCRIPT_DIR/make_gguf.py" --out "$MODEL" >&2
  fi
fi

{
  echo "date_utc: $(date -u +%FT%TZ)"
  echo "host: $(uname -a)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-)"
  echo "nproc: $(nproc)"
  echo "loadavg_before: $(cat /proc/loadavg)"
  [ -f "$CACHE/llamacpp-version.json" ] && echo "llamacpp: $(cat "$CACHE/llamacpp-version.json")"
} > "$OUTDIR/env.txt"
cat "$OUTDIR/env.txt" >&2

# --- llama-bench helper -------------------------------------------------------
# $1 system name, $2 raw json file, $3 threads -> one JSON line
emit_llamabench() {
  "$PY" - "$1" "$2" "$3" "$PROMPT" "$GEN" <<'PYEOF'
import json, sys
system, path, threads, P, G = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
rows = json.load(open(path))
def find(p, g, d):
    for r in rows:
        if r["n_prompt"] == p and r["n_gen"] == g and r["n_depth"] == d:
            return r
    return None
pp = find(P, 0, 0); tg_d = find(0, G, P); tg0 = find(0, G, 0); pp_d = find(P, 0, P)
ts = lambda r: None if r is None else round(r["avg_ts"], 3)
sd = lambda r: None if r is None else round(r["stddev_ts"], 3)
any_r = next(iter(rows))
rec = {
    "system": system, "threads": threads,
    "prefill_tokens_per_s": ts(pp),
    "decode_tokens_per_s": ts(tg_d),
    "decode_tokens_per_s_empty_ctx": ts(tg0),
    "prefill_tokens_per_s_at_depth": ts(pp_d),
    "prefill_stddev": sd(pp), "decode_stddev": sd(tg_d),
    "prompt_tokens": P, "decode_tokens": G, "decode_after_prompt": tg_d is not None,
    "reps": len(any_r["samples_ts"]),
    "build_commit": any_r["build_commit"], "backends": any_r["backends"],
    "model_type": any_r["model_type"], "model_n_params": any_r["model_n_params"],
    "type_k": any_r["type_k"], "type_v": any_r["type_v"], "flash_attn": any_r["flash_attn"],
    "n_batch": any_r["n_batch"], "n_ubatch": any_r["n_ubatch"],
}
print(json.dumps(rec), flush=True)
PYEOF
}

run_llamabench() {  # $1 system, $2 binary, $3 threads, rest: test args
  local system="$1" bin="$2" t="$3"; shift 3
  local raw="$OUTDIR/${system}-t${t}.json"
  # shellcheck disable=SC2086
  log "$bin -m $MODEL $* -r $REPS -t $t $LLAMA_BENCH_EXTRA -o json"
  # shellcheck disable=SC2086
  "$bin" -m "$MODEL" "$@" -r "$REPS" -t "$t" $LLAMA_BENCH_EXTRA -o json > "$raw" 2> "$OUTDIR/${system}-t${t}.log"
  emit_llamabench "$system" "$raw" "$t" | tee -a "$OUTDIR/results.jsonl"
}

# --- runs ---------------------------------------------------------------------
for t in $THREADS; do
  if [ -z "${SKIP_LLAMACPP:-}" ]; then
    run_llamabench llama.cpp-cpu-f32 "$CACHE/build-cpu/bin/llama-bench" "$t" \
      -p "$PROMPT" -n "$GEN" -d "0,$PROMPT"
    if [ -z "${SKIP_BLAS:-}" ]; then
      if [ -n "${BLAS_DECODE:-}" ]; then
        run_llamabench llama.cpp-openblas-f32 "$CACHE/build-blas/bin/llama-bench" "$t" \
          -p "$PROMPT" -n "$GEN" -d "0,$PROMPT"
      else
        run_llamabench llama.cpp-openblas-f32 "$CACHE/build-blas/bin/llama-bench" "$t" \
          -p "$PROMPT" -n 0 -d 0
      fi
    fi
  fi
  if [ -z "${SKIP_HF:-}" ]; then
    log "$PY hf_decode_bench.py --threads $t --prompt $PROMPT --new $GEN --reps $REPS"
    "$PY" "$SCRIPT_DIR/hf_decode_bench.py" --threads "$t" --prompt "$PROMPT" --new "$GEN" --reps "$REPS" \
      2> "$OUTDIR/hf-t${t}.log" | tee -a "$OUTDIR/results.jsonl"
  fi
done
echo "loadavg_after: $(cat /proc/loadavg)" >> "$OUTDIR/env.txt"
log "raw results in $OUTDIR"
