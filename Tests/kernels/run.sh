#!/usr/bin/env bash
# The C kernels on every instruction set this machine can run: natively at each level the CPU has (portable, AVX2,
# AVX-512; EDGELAB_KERNEL_ISA lowers the choice), and cross-compiled for aarch64 under qemu-aarch64 as a CPU with
# the dot-product instructions (-cpu max) and one without (-cpu cortex-a57), each also at its lesser levels.
# Every run must pass its own checks (Tests/kernels/harness.c), the bits of llama.cpp's arithmetic and of the
# dequantized weights must be the same in all of them, and those of the exact F32/BF16/F16 products in all but
# the AVX-512 ones — each for both llama.cpp builds the arithmetic can reproduce (EDGELAB_LLAMACPP_SIMD). The aarch64 runs need gcc-aarch64-linux-gnu and qemu-user (`make test` installs them);
# without them they are skipped with a note, unless EDGELAB_REQUIRE_AARCH64=1.
#
# `run.sh --lesser-isas` prints the x86 levels below the CPU's best (for running the Swift tests on them too).
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${TMPDIR:-/tmp}/edgelab-kernels.$$
mkdir -p "$out"
trap 'rm -rf "$out"' EXIT
sources=(Sources/CKernels/*.c)
flags=(-O2 -ffp-contract=off -Wall -Wextra -Werror -ISources/CKernels/include -ISources/CKernels)

cc "${flags[@]}" Tests/kernels/harness.c "${sources[@]}" -lm -lpthread -o "$out/native"
EDGELAB_KERNEL_ISA= "$out/native" >"$out/probe.txt" || true  # its checks are judged below, per level
best=$(sed -n 's/^isa //p' "$out/probe.txt")
case "$best" in
  avx512) levels="avx512 avx2 portable" ;;
  avx2) levels="avx2 portable" ;;
  neon-dotprod) levels="neon-dotprod neon portable" ;;
  neon) levels="neon portable" ;;
  *) levels="portable" ;;
esac
if [[ "${1:-}" == "--lesser-isas" ]]; then
  echo "${levels#"$best"}" | xargs -n1 | paste -sd' '
  exit 0
fi

reference=""
reference32=""
check() {  # check NAME COMMAND...: runs one harness, compares its bits with the first run's
  local name=$1
  shift
  if ! "$@" >"$out/$name.txt"; then
    cat "$out/$name.txt"
    echo "kernels: $name FAILED its checks" >&2
    exit 1
  fi
  grep '^bits' "$out/$name.txt" >"$out/$name.bits"
  if grep -q '^order32' "$out/$name.txt"; then
    grep '^order32' "$out/$name.txt" >"$out/$name.order32"
    if [[ -z "$reference32" ]]; then
      reference32=$name
    elif ! diff "$out/$reference32.order32" "$out/$name.order32"; then
      echo "kernels: the exact products on $name sum in another order than on $reference32" >&2
      exit 1
    fi
  fi
  if [[ -z "$reference" ]]; then
    reference=$name
  elif ! diff "$out/$reference.bits" "$out/$name.bits" >"$out/diff.txt"; then
    cat "$out/diff.txt"
    echo "kernels: llama.cpp's arithmetic on $name gives other bits than on $reference" >&2
    exit 1
  fi
  echo "kernels: $name ok ($(sed -n 's/^isa //p' "$out/$name.txt"))"
}

# The llama.cpp build reproduced (EDGELAB_LLAMACPP_SIMD) changes the bits of attention and SwiGLU: each is
# compared across every instruction set on its own.
for simd in avx512 avx2; do
  reference=""
  reference32=""
  export EDGELAB_LLAMACPP_SIMD=$simd
  for level in $levels; do check "x86-$level-$simd" env EDGELAB_KERNEL_ISA="$level" "$out/native"; done

  if command -v aarch64-linux-gnu-gcc >/dev/null && command -v qemu-aarch64 >/dev/null; then
    [ -x "$out/arm64" ] || aarch64-linux-gnu-gcc "${flags[@]}" -static Tests/kernels/harness.c "${sources[@]}" -lm -lpthread -o "$out/arm64"
    for level in neon-dotprod neon portable; do
      check "aarch64-max-$level-$simd" env EDGELAB_KERNEL_ISA="$level" qemu-aarch64 -cpu max "$out/arm64"
    done
    check "aarch64-cortex-a57-$simd" qemu-aarch64 -cpu cortex-a57 "$out/arm64"
  elif [[ "${EDGELAB_REQUIRE_AARCH64:-0}" == 1 ]]; then
    echo "kernels: gcc-aarch64-linux-gnu and qemu-user are needed for the aarch64 runs" >&2
    exit 1
  elif [[ $simd == avx512 ]]; then
    echo "kernels: aarch64 runs skipped (install gcc-aarch64-linux-gnu and qemu-user)"
  fi
done
