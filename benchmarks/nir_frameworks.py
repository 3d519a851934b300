"""The README's NIR table: each framework that reads NIR, on each case of
refsnn.interop.nir_cases, against refsnn's simulation of the same graph.

    .venv/bin/python benchmarks/nir_frameworks.py [--json]

Needs torch, nir and the frameworks (installed as in .ci/run). A few seconds per cell.
"""

from __future__ import annotations

import json
import sys

from refsnn.interop.nir_cases import STEPS, cases, cell
from refsnn.interop.nir_frameworks import FRAMEWORKS


def main(argv):
    all_cases = cases()
    rows = {}
    for key, fw in FRAMEWORKS.items():
        rows[key] = {c.name: cell(key, c) for c in all_cases}
    if "--json" in argv:
        print(json.dumps({k: {n: vars(c) for n, c in r.items()} for k, r in rows.items()}))
        return
    names = [c.name for c in all_cases]
    print(f"T = {STEPS} steps, 4 inputs, float32; refsnn: `from_nir`, forward Euler.\n")
    print("| framework | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for key, fw in FRAMEWORKS.items():
        print(f"| {fw.name} {fw.version()} | "
              + " | ".join(rows[key][n].text.replace("|", "\\|") for n in names) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
