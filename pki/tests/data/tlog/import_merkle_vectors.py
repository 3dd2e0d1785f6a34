#!/usr/bin/env python3
"""Collects the RFC 6962 inclusion and consistency proof vectors of transparency-dev/merkle
(testdata/inclusion/** and testdata/consistency/**, Apache-2.0) into one JSON file, each
vector keeping the path it came from.

    git clone https://github.com/transparency-dev/merkle /tmp/merkle
    python3 import_merkle_vectors.py /tmp/merkle > merkle-vectors.json
"""
import json
import pathlib
import subprocess
import sys

repo = pathlib.Path(sys.argv[1])
commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                        check=True).stdout.strip()
files = subprocess.run(["git", "-C", str(repo), "ls-tree", "-r", "--name-only", "HEAD", "testdata"],
                       capture_output=True, text=True, check=True).stdout.split()
out = {"source": "https://github.com/transparency-dev/merkle", "commit": commit, "license": "Apache-2.0",
       "inclusion": [], "consistency": []}
for name in sorted(files):
    kind = name.split("/")[1]
    if kind not in ("inclusion", "consistency") or not name.endswith(".json"):
        continue
    text = subprocess.run(["git", "-C", str(repo), "show", "HEAD:" + name], capture_output=True, text=True,
                          check=True).stdout
    vector = json.loads(text)
    vector["path"] = name
    if vector.get("proof") is None:
        vector["proof"] = []
    out[kind].append(vector)
json.dump(out, sys.stdout, indent=1)
print()
