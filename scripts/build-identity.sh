#!/usr/bin/env bash
# Writes OUT/GeneratedIdentity.swift: who this build is. Run by the BuildIdentity plugin before every build.
# Usage: scripts/build-identity.sh PACKAGE_ROOT OUT_DIR
#
# The identity is DESCRIBE+HASH[.dirty]:
#   DESCRIBE  `git describe --always --tags` of the checkout ("nogit" outside one)
#   HASH      the first 12 hex digits of a SHA-256 over every source file that goes into the binary (Package.swift,
#             Package.resolved, Plugins/, Sources/, algorithms/, experiments/: path and content, in byte order)
#   .dirty    the work tree differs from its commit (git status shows a change or a new file)
# Two builds with the same identity were made from the same sources and the same resolved dependencies.
set -eu
root=$1
out=$2
mkdir -p "$out"
cd "$root"

describe=nogit
dirty=false
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  describe=$(git describe --always --tags 2>/dev/null || echo nogit)
  [ -z "$(git status --porcelain 2>/dev/null)" ] || dirty=true
fi

# Source files: git's view where there is one (tracked, and new files it does not ignore), else every file.
list_sources() {
  for f in Package.swift Package.resolved; do [ -f "$f" ] && printf '%s\0' "$f"; done
  if [ "$describe" != nogit ]; then
    git ls-files -z --cached --others --exclude-standard -- Plugins Sources algorithms experiments
  else
    find Plugins Sources algorithms experiments -type f -print0 2>/dev/null
  fi
}
hash=$(list_sources | LC_ALL=C sort -zu | while IFS= read -r -d '' f; do
  [ -f "$f" ] || continue # listed by git but deleted in the work tree
  printf '%s\n' "$f"
  sha256sum <"$f"
done | sha256sum | cut -c1-12)

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
