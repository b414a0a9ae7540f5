#!/usr/bin/env python3
"""Every target imports only what Package.swift says it depends on (no module reached transitively).

Reads the package description (`swift package dump-package`) and each target's sources; prints one line per
undeclared import and exits 1 if there are any. Platform modules (Foundation, Glibc, Testing, ...) need no
declaration. Run by `make lint`.
"""
import json
import os
import re
import subprocess
import sys

PLATFORM = {"Foundation", "FoundationEssentials", "Glibc", "Musl", "Darwin", "Dispatch", "Synchronization", "Testing",
            "XCTest", "_Concurrency", "Swift", "os", "PackagePlugin"}
# Modules of package products whose names differ from the module they provide.
PRODUCT_MODULES = {"ArgumentParser": ["ArgumentParser"], "Logging": ["Logging"], "SystemPackage": ["SystemPackage"],
                   "HeapModule": ["HeapModule"], "PropertyBased": ["PropertyBased"]}

package = json.loads(subprocess.run(["swift", "package", "dump-package"], capture_output=True, text=True, check=True).stdout)
problems = []
for target in package["targets"]:
    if target["type"] == "system":
        continue
    declared = set()
    for dep in target["dependencies"]:
        kind, value = next(iter(dep.items()))
        name = value[0]
        declared.update(PRODUCT_MODULES.get(name, [name]))
    path = target.get("path") or os.path.join("Tests" if target["type"] == "test" else "Sources", target["name"])
    for root, _, files in os.walk(path):
        for f in sorted(files):
            if not f.endswith(".swift"):
                continue
            file = os.path.join(root, f)
            with open(file, encoding="utf-8") as handle:
                for number, line in enumerate(handle, 1):
                    m = re.match(r"^\s*(?:@testable\s+)?(?:public\s+|internal\s+|package\s+|private\s+|fileprivate\s+)?import\s+(?:struct\s+|class\s+|enum\s+|func\s+)?([A-Za-z_][A-Za-z0-9_]*)", line)
                    if m and m.group(1) not in PLATFORM and m.group(1) not in declared and m.group(1) != target["name"]:
                        problems.append(f"{file}:{number}: target {target['name']} imports {m.group(1)} without declaring it in Package.swift")
for p in problems:
    print(p)
if problems:
    sys.exit(1)
print(f"imports: every target declares what it imports ({len(package['targets'])} targets)")
