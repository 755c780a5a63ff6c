#!/usr/bin/env python3
"""The shape of the code, checked: a function crate (functions/*) depends
only on shared crates, and no shared crate (shared/*) depends on a function
crate. Use cases live in shared crates by bounded context; a function is an
adapter. Exits 1 and names each offending dependency otherwise."""

import json
import subprocess
import sys

metadata = json.loads(
    subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--no-deps"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
)
packages = metadata["packages"]
functions = {p["name"] for p in packages if "/functions/" in p["manifest_path"]}
bad = []
for package in packages:
    path = package["manifest_path"]
    if "/functions/" not in path and "/shared/" not in path:
        continue
    for dependency in package["dependencies"]:
        if dependency.get("kind") in (None, "build") and dependency["name"] in functions:
            if dependency["name"] != package["name"]:
                bad.append(f"{package['name']} -> {dependency['name']}")
if bad:
    print("crates that depend on a function crate (move the workflow into a shared use-case crate):")
    for line in bad:
        print("  " + line)
    sys.exit(1)
print(f"shape: {len(functions)} function crates, none depended on by a function or shared crate")
