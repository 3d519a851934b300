"""Print the README's accuracy table: every shipped model, ANN vs SNN, per method and setting.

    python benchmarks/accuracy_table.py [--steps 8,16,32,64,128] [--models cnn,mlp]

Each row comes from one ``refsnn evaluate MODEL --data data/digits.h5 --steps ... --json`` with
the row's options; nothing here computes accuracies itself. A model the method refuses gets a
row saying so.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
from pathlib import Path

from refsnn.cli.main import main as refsnn

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("mlp", "cnn", "cnn_maxpool", "resnet", "cnn_silu", "convnext", "mixer", "resmlp",
          "resnet_stem")
SETTINGS = {
    "if": ["--method", "if"],
    "if --per-channel": ["--method", "if", "--per-channel"],
    "if --readout count": ["--method", "if", "--readout", "count"],
    "if --encoding poisson": ["--method", "if", "--encoding", "poisson"],
    "signgd": ["--method", "signgd"],
    "signgd --compat": ["--method", "signgd", "--compat"],
}


def evaluate(model: str, steps: str, extra: list[str]):
    """The JSON result, or the one-line error message when refsnn refuses."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = refsnn(["evaluate", str(ROOT / "data/models" / f"{model}.h5"), "--data",
                       str(ROOT / "data/digits.h5"), "--steps", steps, "--json", *extra])
    return (json.loads(out.getvalue()), None) if code == 0 else (None, err.getvalue().strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", default="8,16,32,64,128")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--settings", default=",".join(SETTINGS))
    args = parser.parse_args()
    steps = [int(s) for s in args.steps.split(",")]
    print("| model | method, options | ANN | " + " | ".join(f"T={t}" for t in steps)
          + f" | max abs. logit error at T={steps[-1]} |")
    print("|---|---|---|" + "---|" * (len(steps) + 1))
    for model in args.models.split(","):
        if not (ROOT / "data/models" / f"{model}.h5").exists():
            continue
        refused = set()  # methods that refused this model: one row says so
        for label in args.settings.split(","):
            method = label.split()[0]
            if method in refused:
                continue
            result, error = evaluate(model, args.steps, SETTINGS[label])
            if result is None:
                reason = error.removeprefix("refsnn: error: ").split(" (supported")[0]
                if label == method:  # the method itself refuses: no option will help
                    refused.add(method)
                    label = f"{method} (any options)"
                print(f"| {model} | {label} | | refused: {reason} |")
                continue
            cells = " | ".join(f"{100 * r['accuracy']:.2f}" for r in result["results"])
            worst = result["results"][-1]["max_abs_error"]
            print(f"| {model} | {label} | {100 * result['ann_accuracy']:.2f} | {cells} | "
                  f"{worst:.3g} |")


if __name__ == "__main__":
    main()
