"""Print the README's BSNN table: IF against BSNN on the shipped ReLU models.

    python benchmarks/bsnn_table.py [--steps 8,16,24,32,64,128] [--models mlp,cnn,...]

Each row comes from one ``refsnn evaluate MODEL --data data/digits.h5 --steps ... --json`` with
the row's options (nothing here computes accuracies itself). Columns: accuracy at each T; the
first listed T at which the row reaches the accuracy of plain IF at the largest T ("IF's best");
and the spikes of inactivated neurons (SIN) over the whole run, summed over the layers after
the first (the first sees a constant current and has none with either method). A second table
gives the SIN of every layer.
"""

from __future__ import annotations

import argparse

from evaluate_json import ROOT, evaluate_json

MODELS = ("mlp", "cnn", "cnn_maxpool", "resnet")
SETTINGS = {
    "if": ["--method", "if"],
    "if --v-init half": ["--method", "if", "--v-init", "half"],
    "bsnn": ["--method", "bsnn"],
    "bsnn --period 2": ["--method", "bsnn", "--period", "2"],
    "bsnn --period 8": ["--method", "bsnn", "--period", "8"],
    "bsnn --no-sync": ["--method", "bsnn", "--no-sync"],
}
RESIDUAL_ONLY = {"bsnn --no-sync"}


def evaluate(model: str, steps: str, extra: list[str]) -> dict:
    return evaluate_json(ROOT / "data/models" / f"{model}.h5", steps, extra)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", default="8,16,24,32,64,128")
    parser.add_argument("--models", default=",".join(MODELS))
    args = parser.parse_args()
    steps = [int(s) for s in args.steps.split(",")]
    sin_rows = []
    print("| model | method, options | ANN | " + " | ".join(f"T={t}" for t in steps)
          + f" | first T at IF's T={steps[-1]} accuracy | SIN (layers 2+) |")
    print("|---|---|---|" + "---|" * (len(steps) + 2))
    for model in args.models.split(","):
        best = None
        for label, extra in SETTINGS.items():
            if label in RESIDUAL_ONLY and model != "resnet":
                continue
            r = evaluate(model, args.steps, extra)
            acc = {row["steps"]: row["accuracy"] for row in r["results"]}
            if best is None:
                best = acc[steps[-1]]  # the first row is plain IF
            reach = next((t for t in steps if acc[t] >= best - 1e-12), None)
            first_layer = next(iter(r["sin"]))
            sin = sum(v for k, v in r["sin"].items() if k != first_layer)
            print(f"| {model} | {label} | {100 * r['ann_accuracy']:.2f} | "
                  + " | ".join(f"{100 * acc[t]:.2f}" for t in steps)
                  + f" | {reach if reach is not None else 'not within ' + str(steps[-1])} "
                    f"| {sin} |", flush=True)
            sin_rows.append((model, label, r["sin"]))
    print(f"\nSpikes of inactivated neurons per layer over T = {steps[-1]} steps, all "
          f"{r['samples']} test images:\n")
    print("| model | method, options | SIN per layer |")
    print("|---|---|---|")
    for model, label, sin in sin_rows:
        print(f"| {model} | {label} | " + ", ".join(f"{k} {v}" for k, v in sin.items()) + " |")


if __name__ == "__main__":
    main()
