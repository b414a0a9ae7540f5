#!/usr/bin/env bash
# Installs the Debian packages EdgeLab needs, only those missing. Usage: scripts/install-deps.sh PKG...
# Needs root or passwordless sudo for apt-get when something is missing; says exactly what to do otherwise.
set -euo pipefail

if ! command -v swift >/dev/null 2>&1; then
  echo "error: 'swift' is not on PATH. Install Swift 6.1 or later (https://swift.org/install) and retry." >&2
  exit 1
fi

if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "note: not a Debian-based system; make sure these are installed: $*" >&2
  exit 0
fi

missing=()
for pkg in "$@"; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$pkg")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

echo "installing missing packages: ${missing[*]}" >&2
if [[ $(id -u) -eq 0 ]]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  as_root=(sudo)
else
  echo "error: these packages are missing and installing them needs root: ${missing[*]}" >&2
  echo "       run: sudo apt-get install -y ${missing[*]}   (then run make again)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq >&2
"${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
