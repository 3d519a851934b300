"""The README's MNIST results: every applicable method at T = 1, 2, 4, ..., 256, timings, checks.

    python benchmarks/mnist_table.py [--limit 10000] [--timing-limit 10000]
                                     [--models lenet,vgg] [--rows vgg:if,...] [--skip-rows]
                                     [--skip-checks] [--skip-timing]

Every number comes from ``refsnn evaluate MODEL --data data/mnist.h5 ... --json`` run
in-process (nothing here computes an accuracy). Rows use the first ``--limit`` test images
(default: all 10,000) and thresholds / scales calibrated on the first ``CALIBRATION``
training images. Writes:

- ``benchmarks/mnist/<row>.json``: each row's ``evaluate --json`` output (what
  ``refsnn plot`` draws), and ``<row>.meta.json`` its table entry; ``checks.json`` and
  ``timing.json`` likewise (several runs, e.g. one per model, can fill them side by side);
- ``benchmarks/mnist_results.json``: all of it assembled: the rows, the timings (images/s of
  ``refsnn evaluate NET.h5 --steps 128`` on the converted network, float64 and float32, wall
  time including the ANN-limit pass, on the first ``--timing-limit`` test images), and
  ``checks``: one point of the table per method (a small T), which ``tests/test_mnist.py``
  repeats;
- the Markdown table on stdout (pasted into the README).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from refsnn.cli.main import main as refsnn

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "mnist.h5"
MODELS = ROOT / "data" / "models"
OUT = ROOT / "benchmarks" / "mnist"
RESULTS = ROOT / "benchmarks" / "mnist_results.json"
STEPS = "1,2,4,8,16,32,64,128,256"
CALIBRATION = 2000
TIMING_STEPS = 128

IF = ["--method", "if"]
#: (model, label, options). The label is the row's name in the table and its file name.
ROWS = [
    ("lenet", "if", IF),
    ("lenet", "if --per-channel", IF + ["--per-channel"]),
    ("lenet", "if --v-init half", IF + ["--v-init", "half"]),
    ("lenet", "if --reset zero", IF + ["--reset", "zero"]),
    ("lenet", "if --readout count", IF + ["--readout", "count"]),
    ("lenet", "if --encoding poisson", IF + ["--encoding", "poisson"]),
    ("lenet", "if --encoding poisson --adjust l4", IF + ["--encoding", "poisson",
                                                         "--adjust", "l4"]),
    ("lenet", "bsnn", ["--method", "bsnn"]),
    ("lenet", "signgd", ["--method", "signgd"]),
    ("vgg", "if", IF),
    ("vgg", "if --per-channel", IF + ["--per-channel"]),
    ("vgg", "bsnn", ["--method", "bsnn"]),
    ("vgg", "signgd", ["--method", "signgd"]),
    ("resnet", "if", IF),
    ("resnet", "if --per-channel", IF + ["--per-channel"]),
    ("resnet", "bsnn", ["--method", "bsnn"]),
    ("resnet", "signgd", ["--method", "signgd"]),
    ("convnext", "if", IF),  # refused: GELU and LayerNorm (the row says so)
    ("convnext", "signgd", ["--method", "signgd"]),
    ("qcfs", "noise", ["--method", "noise"]),
    ("nq", "noise", ["--method", "noise"]),  # rows skipped while mnist_nq.h5 is not made
    ("nq", "noise --encoding poisson", ["--method", "noise", "--encoding", "poisson"]),
]
#: One point of the table per method that tests/test_mnist.py repeats: (model, label of a
#: row, T). Small T where the accuracy is still rising, so that a change in the dynamics
#: shows, and cheap enough to run on the row's whole sample set in a test.
CHECKS = [("lenet", "if", 8), ("lenet", "if --encoding poisson --adjust l4", 8),
          ("lenet", "bsnn", 32), ("lenet", "signgd", 2), ("qcfs", "noise", 1),
          ("nq", "noise", 1)]
#: Timed per method (one model each) at T = TIMING_STEPS.
TIMED = [("lenet", "if"), ("lenet", "if --encoding poisson --adjust l4"), ("lenet", "bsnn"),
         ("lenet", "signgd"), ("qcfs", "noise")]


def options(model: str, label: str) -> list[str]:
    for m, lab, opts in ROWS:
        if (m, lab) == (model, label):
            return opts
    raise KeyError((model, label))


def calibration(opts: list[str]) -> list[str]:
    return [] if "noise" in opts else ["--calibration-limit", str(CALIBRATION)]


def run(argv: list[str]):
    """``(exit code, stdout, stderr)`` of one in-process ``refsnn`` call."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = refsnn([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue().strip()


def evaluate(model: str, opts: list[str], steps: str, limit: int):
    code, out, err = run(["evaluate", MODELS / f"mnist_{model}.h5", "--data", DATA,
                          "--limit", limit, "--steps", steps, "--json", *opts,
                          *calibration(opts)])
    return (json.loads(out), None) if code == 0 else (None, err.removeprefix("refsnn: error: "))


def slug(model: str, label: str) -> str:
    return f"mnist_{model}__" + label.replace("--", "").replace(" ", "_")


def timing(model: str, label: str, limit: int) -> dict:
    """images/s of ``refsnn evaluate NET.h5 --steps 128`` in float64 and float32."""
    opts = options(model, label)
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for dtype in ("float64", "float32"):
            net = Path(tmp) / f"{dtype}.h5"
            code, _, err = run(["convert", MODELS / f"mnist_{model}.h5", "-o", net, *opts,
                                "--dtype", dtype, *(calibration(opts) and
                                                    ["--calibration", DATA,
                                                     *calibration(opts)])])
            if code:
                raise SystemExit(f"convert {model} {label}: {err}")
            t0 = time.perf_counter()
            code, _, err = run(["evaluate", net, "--data", DATA, "--limit", limit, "--steps",
                                TIMING_STEPS, "--json"])
            seconds = time.perf_counter() - t0
            if code:
                raise SystemExit(f"evaluate {model} {label}: {err}")
            out[dtype] = {"seconds": round(seconds, 2), "images_per_s": round(limit / seconds, 2)}
            print(f"  timed {model} {label} {dtype}: {limit / seconds:.1f} images/s",
                  file=sys.stderr, flush=True)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=10000)
    parser.add_argument("--timing-limit", type=int, default=10000)
    parser.add_argument("--models", default=None,
                        help="comma-separated models whose rows to (re)run; other rows keep their "
                             "meta files (default: all)")
    parser.add_argument("--rows", default=None,
                        help="comma-separated MODEL:LABEL rows to (re)run, e.g. "
                             "'vgg:if,vgg:signgd' (default: every row of --models)")
    parser.add_argument("--skip-rows", action="store_true")
    parser.add_argument("--skip-timing", action="store_true")
    parser.add_argument("--skip-checks", action="store_true")
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    results = {}
    results.update({"data": "data/mnist.h5", "split": "test", "calibration":
                    f"first {CALIBRATION} images of the train split", "steps": STEPS})

    def save():
        # merge into what is on disk: another run may have written other keys meanwhile
        merged = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
        merged.update(results)
        tmp = RESULTS.with_name(f".{RESULTS.name}.{os.getpid()}.partial")
        tmp.write_text(json.dumps(merged, indent=1) + "\n")
        tmp.replace(RESULTS)

    order = [(m, lab) for m, lab, _ in ROWS]

    def collect():
        """The rows in table order, from their meta files (several runs may fill them)."""
        results["rows"] = [json.loads(p.read_text()) for p in
                           (OUT / f"{slug(m, lab)}.meta.json" for m, lab in order)
                           if p.exists()]
        for key in ("checks", "timing"):  # written by their phases, possibly another run
            if (OUT / f"{key}.json").exists():
                results[key] = json.loads((OUT / f"{key}.json").read_text())
        save()

    if not args.skip_rows:
        todo = [r for r in ROWS if args.models is None or r[0] in args.models.split(",")]
        if args.rows is not None:
            picked = set(args.rows.split(","))
            unknown = picked - {f"{m}:{lab}" for m, lab, _ in ROWS}
            if unknown:
                raise SystemExit(f"--rows: no such row {sorted(unknown)}")
            todo = [r for r in todo if f"{r[0]}:{r[1]}" in picked]
        missing = sorted({m for m, _, _ in todo if not (MODELS / f"mnist_{m}.h5").exists()})
        if missing:  # e.g. mnist_nq.h5 before data/train_mnist.py has made it: no row
            print(f"skipping the rows of {', '.join(missing)}: no model file", file=sys.stderr)
            todo = [r for r in todo if r[0] not in missing]
        for k, (model, label, opts) in enumerate(todo, 1):
            t0 = time.perf_counter()
            result, error = evaluate(model, opts, STEPS, args.limit)
            row = {"model": f"mnist_{model}", "label": label, "options": opts,
                   "samples": args.limit, "seconds": round(time.perf_counter() - t0, 1)}
            if result is None:
                row["refused"] = error
            else:
                row["file"] = f"benchmarks/mnist/{slug(model, label)}.json"
                (ROOT / row["file"]).write_text(json.dumps(result) + "\n")
                row["ann_accuracy"] = result["ann_accuracy"]
                row["accuracy"] = {str(r["steps"]): r["accuracy"] for r in result["results"]}
            (OUT / f"{slug(model, label)}.meta.json").write_text(json.dumps(row) + "\n")
            print(f"[{k}/{len(todo)}] {model} {label}: {row['seconds']} s"
                  + (f", refused: {error}" if result is None else ""), file=sys.stderr,
                  flush=True)
            collect()
    collect()
    if not args.skip_checks:
        path = OUT / "checks.json"
        done = {(c["model"], c["label"]): c for c in
                (json.loads(path.read_text()) if path.exists() else [])}
        for model, label, t in CHECKS:
            # a point of the table itself: its row's samples, options and accuracy at T
            meta = OUT / f"{slug(model, label)}.meta.json"
            if (args.models is not None and model not in args.models.split(",")) \
                    or not meta.exists():
                continue
            row = json.loads(meta.read_text())
            if "accuracy" not in row:
                raise SystemExit(f"check {model} {label}: its row was refused: {row['refused']}")
            done[(f"mnist_{model}", label)] = ({"model": f"mnist_{model}", "label": label,
                           "options": options(model, label) + calibration(options(model, label)),
                           "samples": row["samples"], "steps": t,
                           "ann_accuracy": row["ann_accuracy"],
                           "accuracy": row["accuracy"][str(t)]})
        if path.exists():  # merge with what another run wrote meanwhile
            done = {**{(c["model"], c["label"]): c for c in json.loads(path.read_text())},
                    **{k: v for k, v in done.items()
                       if args.models is None or v["model"].removeprefix("mnist_")
                       in args.models.split(",")}}
        checks = [done[(f"mnist_{m}", lab)] for m, lab, _ in CHECKS
                  if (f"mnist_{m}", lab) in done]
        path.write_text(json.dumps(checks, indent=1) + "\n")
        collect()
    if not args.skip_timing:
        path = OUT / "timing.json"
        old = json.loads(path.read_text()) if path.exists() else {}
        if old.get("samples") != args.timing_limit:
            old = {}  # other settings: measured again
        done = {(r["model"], r["label"]): r for r in old.get("rows", [])}
        for m, lab in TIMED:
            if args.models is None or m in args.models.split(","):
                done[(f"mnist_{m}", lab)] = {"model": f"mnist_{m}", "label": lab,
                                             **timing(m, lab, args.timing_limit)}
        timed = {"samples": args.timing_limit, "steps": TIMING_STEPS,
                 "rows": [done[(f"mnist_{m}", lab)] for m, lab in TIMED
                          if (f"mnist_{m}", lab) in done]}
        path.write_text(json.dumps(timed, indent=1) + "\n")
        collect()
    print_table(json.loads(RESULTS.read_text()))
    return 0


def print_table(results: dict) -> None:
    steps = results["steps"].split(",")
    print("| model | method, options | test images | ANN | "
          + " | ".join(f"T={t}" for t in steps) + " |")
    print("|---|---|---:|---|" + "---|" * len(steps))
    for row in results.get("rows", []):
        name = row["model"].removeprefix("mnist_")
        if "refused" in row:
            reason = row["refused"].split(" (supported")[0]
            print(f"| {name} | {row['label']} | | | refused: {reason} |")
            continue
        # two decimals on the full split (one image = 0.01 points), one on a prefix of 1,000
        digits = 2 if row["samples"] >= 10000 else 1
        cells = " | ".join(f"{100 * row['accuracy'][t]:.{digits}f}" for t in steps)
        print(f"| {name} | {row['label']} | {row['samples']:,} | "
              f"{100 * row['ann_accuracy']:.{digits}f} | {cells} |")
    if "timing" in results:
        t = results["timing"]
        print(f"\n({t['samples']:,} test images, T = {t['steps']})\n\n"
              f"| model | method | images/s float64 | images/s float32 |")
        print("|---|---|---|---|")
        for r in t["rows"]:
            print(f"| {r['model'].removeprefix('mnist_')} | {r['label']} | "
                  f"{r['float64']['images_per_s']:.1f} | {r['float32']['images_per_s']:.1f} |")


if __name__ == "__main__":
    sys.exit(main())
