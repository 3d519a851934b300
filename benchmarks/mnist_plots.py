"""Draw the README's MNIST figures (needs matplotlib: pip install -e '.[plot]').

    python benchmarks/mnist_plots.py          # after benchmarks/mnist_table.py
    python benchmarks/mnist_plots.py --dataset fashion  # after mnist_table.py --dataset fashion

Only ``refsnn`` commands draw:

- ``docs/img/mnist_methods.png``: ``refsnn plot`` of one row per method (LeNet: IF, IF with
  Poisson input and L4, BSNN, signGD; the NQ LeNet with the noise method), from the
  ``evaluate --json`` files ``benchmarks/mnist_table.py`` wrote;
- ``docs/img/mnist_if.png``: ``refsnn plot`` of the IF rows of every ReLU model and option;
- ``docs/img/mnist_signgd.png``: ``refsnn plot`` of the signGD and BSNN rows of every model;
- ``docs/img/mnist_lenet_fidelity.png`` and ``docs/img/mnist_qcfs_fidelity.png``:
  ``refsnn diagnose --only fidelity --plot`` (per-layer relative error, and per layer against
  t = 1..T) for the LeNet under IF and the QCFS LeNet under the noise method, on the first
  ``FIDELITY_SAMPLES`` test images with T = 256.
- with ``--dataset fashion``, ``docs/img/fashion_methods.png`` only: ``refsnn plot`` of every
  row of ``benchmarks/fashion_results.json`` (one LeNet row per method and option).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from refsnn.cli.main import main as refsnn

ROOT = Path(__file__).resolve().parents[1]
IMG = ROOT / "docs" / "img"
RESULTS = ROOT / "benchmarks" / "mnist_results.json"
FASHION_RESULTS = ROOT / "benchmarks" / "fashion_results.json"
FIDELITY_SAMPLES = 64
FIGURES = {  # file -> (title, [(model, label)] or a predicate on rows)
    "mnist_methods.png": ("MNIST, one row per method (all 10,000 test images)", [
        ("mnist_lenet", "if"), ("mnist_lenet", "if --encoding poisson --adjust l4"),
        ("mnist_lenet", "bsnn"), ("mnist_lenet", "signgd"), ("mnist_nq", "noise"),
        ("mnist_qcfs", "noise")]),
    "mnist_if.png": ("MNIST, IF conversion (all 10,000 test images)",
                     lambda r: r["label"].startswith("if")),
    "mnist_signgd.png": ("MNIST, signGD and BSNN (all 10,000 test images)",
                         lambda r: r["label"] in ("signgd", "bsnn")),
}


def fashion() -> int:
    """``docs/img/fashion_methods.png``: every Fashion-MNIST row."""
    rows = [r for r in json.loads(FASHION_RESULTS.read_text())["rows"] if "file" in r]
    return refsnn(["plot", *[str(ROOT / r["file"]) for r in rows], "-o",
                   str(IMG / "fashion_methods.png"), "--title",
                   "Fashion-MNIST, LeNets, every method (all 10,000 test images)"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=["mnist", "fashion"], default="mnist",
                        help="whose figures to draw (default mnist)")
    args = parser.parse_args()
    IMG.mkdir(parents=True, exist_ok=True)
    if args.dataset == "fashion":
        return fashion()
    rows = [r for r in json.loads(RESULTS.read_text())["rows"] if "file" in r]
    for name, (title, pick) in FIGURES.items():
        chosen = ([r for key in pick for r in rows if (r["model"], r["label"]) == key]
                  if isinstance(pick, list) else [r for r in rows if pick(r)])
        code = refsnn(["plot", *[str(ROOT / r["file"]) for r in chosen], "-o", str(IMG / name),
                       "--title", title])
        if code:
            return code
    data = str(ROOT / "data" / "mnist.h5")
    for model, method, extra in (("lenet", "if", ["--calibration-limit", "2000"]),
                                 ("qcfs", "noise", [])):
        code = refsnn(["diagnose", str(ROOT / "data" / "models" / f"mnist_{model}.h5"),
                       "--data", data, "--method", method, "--only", "fidelity", "--steps",
                       "256", "--limit", str(FIDELITY_SAMPLES), *extra,
                       "--plot", str(IMG / f"mnist_{model}_fidelity.png")])
        if code:
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
