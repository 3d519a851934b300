"""Print the README's table of Poisson-input accuracy with and without ``--adjust l4``.

    python benchmarks/l4_table.py [--steps 16,32,64,128] [--models mlp,cnn] [--seeds 0,1]

Each row is one ``refsnn evaluate MODEL --data data/digits.h5 --method if --encoding poisson
--seed S --steps ... --json`` run (plus ``--adjust l4`` for the adjusted rows); nothing here
computes accuracies itself. The test split has 450 samples, so one sample is 0.22 points, and
runs with different seeds differ by about that much: compare rows of the same seed.
"""

from __future__ import annotations

import argparse

from evaluate_json import ROOT, evaluate_json
MODELS = ("mlp", "cnn", "cnn_maxpool", "resnet")
SETTINGS = {"none": [], "l4": ["--adjust", "l4"]}


def evaluate(model: str, steps: str, seed: int, extra: list[str]) -> dict:
    return evaluate_json(ROOT / "data/models" / f"{model}.h5", steps,
                         ["--method", "if", "--encoding", "poisson", "--seed", str(seed), *extra])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", default="16,32,64,128")
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--seeds", default="0,1")
    args = p.parse_args()
    steps = [int(s) for s in args.steps.split(",")]
    print("| model | --adjust | seed | ANN | " + " | ".join(f"T={t}" for t in steps) + " |")
    print("|---|---|---|---|" + "---|" * len(steps))
    for model in args.models.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            for name, extra in SETTINGS.items():
                r = evaluate(model, args.steps, seed, extra)
                acc = {x["steps"]: x["accuracy"] for x in r["results"]}
                cells = " | ".join(f"{100 * acc[t]:.2f}" for t in steps)
                print(f"| {model} | {name} | {seed} | {100 * r['ann_accuracy']:.2f} | {cells} |",
                      flush=True)


if __name__ == "__main__":
    main()
