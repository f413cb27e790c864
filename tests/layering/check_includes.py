#!/usr/bin/env python3
"""Layering check: no folder includes a header from a folder that depends on it.

Each folder with an include/ directory (storage, central, firmware and every hub/<part>) owns the headers
in it. A file's `#include "ferry/x.h"` makes its folder depend on the header's owner. The dependency graph
between folders must have no cycle: if hub/uplink includes a header of hub/ctl while hub/ctl includes one
of hub/uplink, the build's layering is broken even where the link order happens to work. Prints every
folder's dependencies, and every include that closes a cycle. Exit 1 on a cycle or an unknown header.
"""
import os
import re
import sys

root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..")
root = os.path.abspath(root)
folders = ["storage", "central", "firmware"] + sorted(
    "hub/" + d for d in os.listdir(os.path.join(root, "hub")) if os.path.isdir(os.path.join(root, "hub", d)))

owner = {}  # "ferry/x.h" -> folder
for f in folders:
    inc = os.path.join(root, f, "include")
    for dirpath, _, files in os.walk(inc):
        for name in files:
            rel = os.path.relpath(os.path.join(dirpath, name), inc)
            if rel in owner:
                sys.exit(f"check_includes: {rel} is in both {owner[rel]} and {f}")
            owner[rel] = f
generated = {"ferry/version.h"}  # configured into the build tree; owned by no folder

include_re = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
deps = {f: {} for f in folders}  # folder -> {dependency folder: [(file, header)]}
errors = []
for f in folders:
    for dirpath, _, files in os.walk(os.path.join(root, f)):
        for name in files:
            if not name.endswith((".h", ".hpp", ".c", ".cc", ".cpp")):
                continue
            path = os.path.join(dirpath, name)
            with open(path, encoding="utf-8", errors="replace") as fh:
                text = fh.read()
            for header in include_re.findall(text):
                if header in generated or "/" not in header:
                    continue  # a file's own private header sits beside it
                dep = owner.get(header)
                if dep is None:
                    errors.append(f"{os.path.relpath(path, root)}: includes \"{header}\", which no folder owns")
                elif dep != f:
                    deps[f].setdefault(dep, []).append((os.path.relpath(path, root), header))

# A cycle: a path from dep back to f.
def reaches(a, b, seen):
    if a == b:
        return True
    seen.add(a)
    return any(reaches(n, b, seen) for n in deps[a] if n not in seen)

for f in folders:
    print(f"{f:14} -> {', '.join(sorted(deps[f])) or '(nothing)'}")
    for d, uses in deps[f].items():
        if reaches(d, f, set()):
            for path, header in uses:
                errors.append(f"{path}: includes \"{header}\" from {d}, which depends on {f} (a cycle)")

for e in errors:
    print("LAYERING:", e)
sys.exit(1 if errors else 0)
