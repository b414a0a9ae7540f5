#!/usr/bin/env bash
# Obtain llama.cpp source WITHOUT github (from the llama-cpp-python sdist on PyPI,
# which vendors llama.cpp under vendor/llama.cpp) and build two trees:
#   build-cpu  : pure ggml CPU backend (-DGGML_BLAS=OFF, -DGGML_NATIVE=ON)
#   build-blas : ggml CPU + BLAS backend via OpenBLAS (used for batched matmuls, i.e. prefill)
# Everything lands in <repo>/.cache/baselines (gitignored). No third-party code is committed.
#
# Env overrides: LLAMA_CPP_PYTHON_VERSION (default 0.3.36), JOBS (default 2, max sensible on this VM),
#                BASELINE_CACHE (default <repo>/.cache/baselines), TARGETS (default "llama-bench llama-simple"),
#                TREES (default "cpu blas")
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"
CACHE="${BASELINE_CACHE:-$REPO_ROOT/.cache/baselines}"
VER="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
JOBS="${JOBS:-2}"
TARGETS="${TARGETS:-llama-bench llama-simple}"
TREES="${TREES:-cpu blas}"
NICE="nice -n 19"

mkdir -p "$CACHE/src"

# --- 1. toolchain -----------------------------------------------------------
need_pkgs=()
command -v cmake >/dev/null 2>&1 || need_pkgs+=(cmake)
command -v g++   >/dev/null 2>&1 || need_pkgs+=(build-essential)
command -v make  >/dev/null 2>&1 || need_pkgs+=(build-essential)
[ -e /usr/include/x86_64-linux-gnu/openblas-pthread/cblas.h ] || [ -e /usr/include/openblas/cblas.h ] \
  || [ -e /usr/include/cblas.h ] || need_pkgs+=(libopenblas-dev)
command -v pkg-config >/dev/null 2>&1 || need_pkgs+=(pkg-config)
if [ "${#need_pkgs[@]}" -gt 0 ]; then
  echo "[build_llamacpp] apt-get install ${need_pkgs[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

# --- 2. source (PyPI sdist, never github) ------------------------------------
SDIST="$CACHE/src/llama_cpp_python-$VER.tar.gz"
if [ ! -f "$SDIST" ]; then
  echo "[build_llamacpp] pip download llama-cpp-python==$VER (sdist)" >&2
  # --no-binary only for this package: with ':all:' pip would also try to build the
  # build-backend deps (cmake, ninja, ...) from source just to read metadata.
  pip download --no-deps --no-binary llama-cpp-python "llama-cpp-python==$VER" -d "$CACHE/src" >&2
fi
PKGDIR="$CACHE/src/llama_cpp_python-$VER"
if [ ! -d "$PKGDIR/vendor/llama.cpp" ]; then
  tar xzf "$SDIST" -C "$CACHE/src"
fi
SRC="$PKGDIR/vendor/llama.cpp"

# The sdist carries no .git; the upstream commit is recorded in llama-cpp-python's CHANGELOG
# ("## [VER]" section: "update llama.cpp to ggml-org/llama.cpp@<sha>").
COMMIT="$(awk -v v="## [$VER]" '$0==v{f=1;next} /^## \[/{if(f)exit} f' "$PKGDIR/CHANGELOG.md" \
          | grep -o 'llama.cpp@[0-9a-f]\{7,40\}' | head -1 | sed 's/.*@//')"
COMMIT="${COMMIT:-unknown}"
LLAMA_VERSION_BASE="$(sed -n 's/^set(LLAMA_VERSION_\(MAJOR\|MINOR\|PATCH\) \([0-9]*\)).*/\2/p' "$SRC/CMakeLists.txt" | paste -sd.)"
SDIST_SHA256="$(sha256sum "$SDIST" | cut -d' ' -f1)"

# --- 3. build two trees --------------------------------------------------------
common_flags=(
  -DCMAKE_BUILD_TYPE=Release
  -DGGML_NATIVE=ON
  -DLLAMA_CURL=OFF            # deprecated/no-op in recent llama.cpp, kept for older versions
  -DLLAMA_OPENSSL=OFF
  -DLLAMA_BUILD_TESTS=OFF
  -DLLAMA_BUILD_SERVER=OFF
  -DLLAMA_BUILD_TOOLS=ON
  -DLLAMA_BUILD_EXAMPLES=ON
  -DBUILD_SHARED_LIBS=OFF
  -DLLAMA_BUILD_COMMIT="$COMMIT"
)

build_tree() {
  local name="$1"; shift
  local bdir="$CACHE/build-$name"
  echo "[build_llamacpp] configure $name -> $bdir" >&2
  $NICE cmake -S "$SRC" -B "$bdir" "${common_flags[@]}" "$@" > "$CACHE/cmake-$name.log" 2>&1 \
    || { tail -50 "$CACHE/cmake-$name.log" >&2; exit 1; }
  echo "[build_llamacpp] build $name: $TARGETS (-j$JOBS)" >&2
  # shellcheck disable=SC2086
  $NICE cmake --build "$bdir" -j"$JOBS" --target $TARGETS > "$CACHE/build-$name.log" 2>&1 \
    || { tail -50 "$CACHE/build-$name.log" >&2; exit 1; }
}

case " $TREES " in *" cpu "*) build_tree cpu -DGGML_BLAS=OFF ;; esac
case " $TREES " in *" blas "*)
  build_tree blas -DGGML_BLAS=ON -DGGML_BLAS_VENDOR=OpenBLAS
  grep -q "BLAS found" "$CACHE/cmake-blas.log" || grep -qi "openblas" "$CACHE/cmake-blas.log" \
    || echo "[build_llamacpp] WARNING: OpenBLAS not reported by cmake, check $CACHE/cmake-blas.log" >&2 ;;
esac

cat > "$CACHE/llamacpp-version.json" <<JSON
{"llama_cpp_python_sdist": "llama-cpp-python==$VER", "sdist_sha256": "$SDIST_SHA256", "llama_cpp_commit": "$COMMIT", "llama_cpp_version": "$LLAMA_VERSION_BASE", "cpu_build": "$CACHE/build-cpu", "blas_build": "$CACHE/build-blas", "gcc": "$(gcc -dumpfullversion)", "openblas_deb": "$(dpkg-query -W -f='${Version}' libopenblas0-pthread 2>/dev/null || echo unknown)"}
JSON
cat "$CACHE/llamacpp-version.json"
