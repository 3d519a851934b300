"""The README's NIR table: each framework that reads NIR, on each case of
benchmarks/nir_cases.py, against refsnn's simulation of the same graph.

    .venv/bin/python benchmarks/nir_frameworks.py [--json] [--traces DIR]

With ``--traces DIR`` it also writes refsnn's and each framework's trace of every case that
runs (``<case>.refsnn.h5``, ``<case>.<framework>.h5``), for ``refsnn compare``.

A second table runs NIR's published graphs (``published_cases``: the files under
``data/nir/`` or ``$REFSNN_NIR_FILES``), one row per graph: refsnn, then each framework
against refsnn, or, where refsnn refuses the graph, against Norse's run.

Needs torch, nir and the frameworks (installed as in .ci/run). A few seconds per cell.
"""

from __future__ import annotations

import json
import sys

from nir_cases import STEPS, cases, cell, published_cases, reference, run, write_traces
from refsnn.errors import RefsnnError
from refsnn.nir.frameworks import FRAMEWORKS, FrameworkError


def published_rows() -> dict:
    """Case name -> {"refsnn": text, framework key: Cell} for the published graphs."""
    rows = {}
    for case in published_cases():
        ref = reference(case)
        try:
            peer = ("Norse", run("norse", case)) if isinstance(ref, str) else None
        except FrameworkError:
            peer = None
        row = {"refsnn": (f"refuses: {ref}" if isinstance(ref, str) else
                          f"runs ({sum(int(v.spikes.sum()) for v in ref[0].layers.values())} "
                          f"spikes)")}
        for key in FRAMEWORKS:
            row[key] = cell(key, case, ref, peer if key != "norse" else None)
        rows[case.name] = row
    return rows


def main(argv):
    all_cases = cases()
    rows = {}
    for key, fw in FRAMEWORKS.items():
        rows[key] = {c.name: cell(key, c) for c in all_cases}
    published = published_rows()
    if "--traces" in argv:
        directory = argv[argv.index("--traces") + 1]
        for key in FRAMEWORKS:
            for c in all_cases + published_cases():
                try:
                    write_traces(key, c, directory)
                except (FrameworkError, RefsnnError):
                    pass  # the table says why
    if "--json" in argv:
        print(json.dumps({"cases": {k: {n: vars(c) for n, c in r.items()}
                                    for k, r in rows.items()},
                          "published": {n: {k: c if isinstance(c, str) else vars(c)
                                            for k, c in r.items()}
                                        for n, r in published.items()}}))
        return
    names = [c.name for c in all_cases]
    print(f"T = {STEPS} steps, 4 inputs, float32; refsnn: `from_nir`, forward Euler.\n")
    print("| framework | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for key, fw in FRAMEWORKS.items():
        print(f"| {fw.name} {fw.version()} | "
              + " | ".join(rows[key][n].text.replace("|", "\\|") for n in names) + " |")
    if not published:
        return
    print("\nNIR's published graphs, on seeded random spike sequences (benchmarks/nir_cases.py):"
          "\n")
    print("| graph | refsnn | " + " | ".join(f"{fw.name} {fw.version()}"
                                           for fw in FRAMEWORKS.values()) + " |")
    print("|---|---|" + "---|" * len(FRAMEWORKS))
    for name, row in published.items():
        print(f"| {name} | {row['refsnn']} | "
              + " | ".join(row[k].text.replace("|", "\\|") for k in FRAMEWORKS) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
