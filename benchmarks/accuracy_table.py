"""Print the README's accuracy table: every shipped model, ANN vs SNN, for a few settings.

    python benchmarks/accuracy_table.py [--steps 8,16,32,64,128,256]

Each cell comes from ``refsnn evaluate MODEL --data data/digits.h5 --steps ... --json`` with the
row's options; nothing here computes accuracies itself.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
from pathlib import Path

from refsnn.cli.main import main as refsnn

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("mlp", "cnn", "cnn_maxpool", "resnet")
SETTINGS = {
    "default (analog, per layer, potential)": [],
    "--per-channel": ["--per-channel"],
    "--readout count": ["--readout", "count"],
    "--encoding poisson": ["--encoding", "poisson"],
}


def evaluate(model: str, steps: str, extra: list[str]) -> dict:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = refsnn(["evaluate", str(ROOT / "data/models" / f"{model}.h5"), "--data",
                       str(ROOT / "data/digits.h5"), "--steps", steps, "--json", *extra])
    if code:
        raise SystemExit(code)
    return json.loads(out.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", default="8,16,32,64,128,256")
    args = parser.parse_args()
    steps = [int(s) for s in args.steps.split(",")]
    print("| model | settings | ANN | " + " | ".join(f"T={t}" for t in steps) + " |")
    print("|---|---|---|" + "---|" * len(steps))
    for model in MODELS:
        for label, extra in SETTINGS.items():
            r = evaluate(model, args.steps, extra)
            cells = " | ".join(f"{100 * x['accuracy']:.2f}" for x in r["results"])
            print(f"| {model} | {label} | {100 * r['ann_accuracy']:.2f} | {cells} |")


if __name__ == "__main__":
    main()
