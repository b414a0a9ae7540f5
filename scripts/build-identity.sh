#!/usr/bin/env bash
# Writes OUT/GeneratedIdentity.swift: who this build is. Run by the BuildIdentity plugin before every build.
# Usage: scripts/build-identity.sh PACKAGE_ROOT OUT_DIR
#
# The identity is DESCRIBE+HASH[.dirty]:
#   DESCRIBE  `git describe --always --tags` of the checkout ("nogit" outside one)
#   HASH      the first 12 hex digits of a SHA-256 over every source file that goes into the binary (Package.swift,
#             Package.resolved, Plugins/, Sources/, algorithms/, experiments/: path and content, in byte order)
#   .dirty    the work tree differs from its commit (git status shows a change or a new file)
# Two builds with the same HASH[.dirty] were made from the same sources and the same resolved dependencies;
# EdgeLab compares that part (BuildIdentity.sameBuild), so a clone with or without tags, or with edits outside
# the sources (README, tests), builds the same identity's program.
set -euo pipefail
root=$1
out=$2
mkdir -p "$out"
cd "$root"

sources=(Package.swift Plugins Sources algorithms experiments)
describe=nogit
dirty=false
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  # Only characters a Swift string literal takes as they are (a tag may hold anything).
  describe=$(git describe --always --tags --abbrev=12 2>/dev/null | tr -cd 'A-Za-z0-9._+/-' || true)
  [ -n "$describe" ] || describe=nogit
  # Without optional locks: a build must not take index.lock from a concurrent git command.
  [ -z "$(git --no-optional-locks status --porcelain -- "${sources[@]}")" ] || dirty=true
fi

if command -v sha256sum >/dev/null 2>&1; then
  sha() { sha256sum; }
else
  sha() { shasum -a 256; }
fi

# Source files: git's view where there is one (tracked, and new files it does not ignore), else every file.
list_sources() {
  for f in Package.swift Package.resolved; do [ -f "$f" ] && printf '%s\0' "$f"; done
  if [ "$describe" != nogit ]; then
    git ls-files -z --cached --others --exclude-standard -- "${sources[@]:1}"
  else
    find "${sources[@]:1}" -type f -print0 2>/dev/null || true
  fi
}
hash=$(list_sources | LC_ALL=C sort -zu | while IFS= read -r -d '' f; do
  [ -f "$f" ] || continue # listed by git but deleted in the work tree
  printf '%s\n' "$f"
  sha <"$f"
done | sha | cut -c1-12)
if ! [[ "$hash" =~ ^[0-9a-f]{12}$ ]]; then
  echo "error: build-identity.sh: could not hash the sources (got '$hash')" >&2
  exit 1
fi

identity="$describe+$hash"
[ "$dirty" = false ] || identity="$identity.dirty"

file="$out/GeneratedIdentity.swift"
tmp="$file.tmp.$$"
cat >"$tmp" <<SWIFT
// Generated before every build by scripts/build-identity.sh; never edited or committed.
extension BuildIdentity {
  /// This build: git describe, a hash of its sources and resolved dependencies, ".dirty" for a changed tree.
  public static let current = "$identity"
  public static let describe = "$describe"
  public static let sourceHash = "$hash"
  public static let dirty = $dirty
}
SWIFT
if cmp -s "$tmp" "$file" 2>/dev/null; then rm -f "$tmp"; else mv "$tmp" "$file"; fi
