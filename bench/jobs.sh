#!/usr/bin/env bash
# Wall time of a simulated sweep in one process and in N (edgelab run NAME --jobs N), rounds interleaved, and
# whether the files are the same run for run (the table `edgelab show` prints, provenance lines aside).
# Usage: bench/jobs.sh [EXPERIMENT] [JOBS] [ROUNDS]   (defaults: edgeshard-70b 2 3)
set -euo pipefail
name=${1:-edgeshard-70b}; jobs=${2:-2}; rounds=${3:-3}
bin=${EDGELAB:-.build/release/edgelab}
dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT
echo "| round | --jobs 1 (s) | --jobs $jobs (s) | speed-up | same runs |"
echo "|---:|---:|---:|---:|:---:|"
for r in $(seq 1 "$rounds"); do
  t0=$(date +%s.%N); "$bin" run "$name" --out "$dir/one.h5" --quiet; t1=$(date +%s.%N)
  "$bin" run "$name" --out "$dir/many.h5" --jobs "$jobs" --quiet; t2=$(date +%s.%N)
  same=no
  if diff <("$bin" show "$dir/one.h5" | tail -n +5) <("$bin" show "$dir/many.h5" | tail -n +5) >/dev/null; then same=yes; fi
  awk -v r="$r" -v a="$(echo "$t1 - $t0" | bc)" -v b="$(echo "$t2 - $t1" | bc)" -v s="$same" \
    'BEGIN { printf "| %d | %.2f | %.2f | %.2f× | %s |\n", r, a, b, a / b, s }'
done
