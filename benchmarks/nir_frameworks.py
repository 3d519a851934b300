"""The README's NIR table: each framework that reads NIR, on each case of
benchmarks/nir_cases.py, against refsnn's simulation of the same graph.

    .venv/bin/python benchmarks/nir_frameworks.py [--json] [--traces DIR]

With ``--traces DIR`` it also writes refsnn's and each framework's trace of every case that
runs (``<case>.refsnn.h5``, ``<case>.<framework>.h5``), for ``refsnn compare``.

Needs torch, nir and the frameworks (installed as in .ci/run). A few seconds per cell.
"""

from __future__ import annotations

import json
import sys

from nir_cases import STEPS, cases, cell, write_traces
from refsnn.nir.frameworks import FRAMEWORKS, FrameworkError


def main(argv):
    all_cases = cases()
    rows = {}
    for key, fw in FRAMEWORKS.items():
        rows[key] = {c.name: cell(key, c) for c in all_cases}
    if "--traces" in argv:
        directory = argv[argv.index("--traces") + 1]
        for key in FRAMEWORKS:
            for c in all_cases:
                try:
                    write_traces(key, c, directory)
                except FrameworkError:
                    pass  # the table says why
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
