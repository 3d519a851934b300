"""Print the README's NQ table: plain IF conversion vs QCFS vs QCFS trained with noise (NQ).

    python benchmarks/noise_table.py [--steps 1,2,4,8,16] [--models cnn,resnet] [--dir DIR]

Each row comes from one ``refsnn evaluate MODEL --data data/digits.h5 --steps ... --json`` on
the 450 test images; nothing here computes accuracies itself. For each architecture: the plain
ReLU model converted by ``--method if`` (defaults, and with ``--v-init half``, the u0 the noise
method uses), its QCFS version trained without noise (``<name>_qcfs.h5``) and with the measured
noise (``<name>_nq.h5``), both converted by ``--method noise``. The last line per architecture
gives NQ minus QCFS, in points, at each T. ``--dir`` reads the QCFS and NQ files from another
folder (e.g. models trained with ``data/train_noise.py --seed 1 --out DIR``); the ReLU models
always come from ``data/models``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from evaluate_json import ROOT, evaluate_json
MODELS = ("cnn", "resnet")
ROWS = (  # (label, file suffix, options)
    ("ReLU ANN, if", "", ["--method", "if"]),
    ("ReLU ANN, if --v-init half", "", ["--method", "if", "--v-init", "half"]),
    ("QCFS ANN (σ = 0), noise", "_qcfs", ["--method", "noise"]),
    ("QCFS + noise ANN (NQ), noise", "_nq", ["--method", "noise"]),
)


def evaluate(path: Path, steps: str, extra: list[str]) -> dict:
    return evaluate_json(path, steps, extra)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", default="1,2,4,8,16")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--dir", type=Path, default=ROOT / "data/models",
                        help="folder of the <model>_qcfs.h5 and <model>_nq.h5 files")
    args = parser.parse_args()
    steps = [int(s) for s in args.steps.split(",")]
    print("| model | ANN, conversion | ANN | " + " | ".join(f"T={t}" for t in steps) + " |")
    print("|---|---|---|" + "---|" * len(steps))
    for model in args.models.split(","):
        acc = {}
        for label, suffix, extra in ROWS:
            folder = args.dir if suffix else ROOT / "data/models"
            result = evaluate(folder / f"{model}{suffix}.h5", args.steps, extra)
            acc[suffix] = [100 * r["accuracy"] for r in result["results"]]
            cells = " | ".join(f"{a:.2f}" for a in acc[suffix])
            print(f"| {model} | {label} | {100 * result['ann_accuracy']:.2f} | {cells} |")
        diff = " | ".join(f"{n - q:+.2f}" for n, q in zip(acc["_nq"], acc["_qcfs"]))
        print(f"| {model} | NQ − QCFS (points) | | {diff} |")


if __name__ == "__main__":
    main()
