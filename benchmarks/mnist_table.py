"""The README's MNIST results: every applicable method at T = 1, 2, 4, ..., 256, timings, checks.

    python benchmarks/mnist_table.py [--dataset mnist|fashion] [--limit 10000]
                                     [--timing-limit 10000]
                                     [--models lenet,vgg] [--rows vgg:if,...] [--skip-rows]
                                     [--skip-checks] [--skip-timing]

``--dataset fashion`` makes the Fashion-MNIST table the same way: ``data/fashion.h5``, the
models ``data/models/fashion_*.h5`` (``data/train_mnist.py --dataset fashion``), its rows
``FASHION_ROWS`` and points ``FASHION_CHECKS``, written to ``benchmarks/fashion/`` and
``benchmarks/fashion_results.json`` (the paths below with ``fashion`` for ``mnist``).

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
from dataclasses import dataclass
from pathlib import Path

from refsnn.cli.main import main as refsnn

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "data" / "models"
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
#: Fashion-MNIST: every method on the LeNets that carry it on MNIST (the larger models would
#: not add a method, and the full test split at T = 256 costs minutes per row), one point per
#: method checked (T where the Fashion-MNIST accuracy is still rising) on the first 300 test
#: images (``Dataset.check_samples``), no timing (the networks are MNIST's: the same speed).
FASHION_ROWS = [
    ("lenet", "if", IF),
    ("lenet", "if --per-channel", IF + ["--per-channel"]),
    ("lenet", "if --encoding poisson", IF + ["--encoding", "poisson"]),
    ("lenet", "if --encoding poisson --adjust l4", IF + ["--encoding", "poisson",
                                                         "--adjust", "l4"]),
    ("lenet", "bsnn", ["--method", "bsnn"]),
    ("lenet", "signgd", ["--method", "signgd"]),
    ("qcfs", "noise", ["--method", "noise"]),
    ("nq", "noise", ["--method", "noise"]),
]
#: T up to 64 only: on the shared 2-core machine of 2026-12-06 (load 9 to 13) the rows to
#: T = 256 on the full test split would not have finished in the session's time.
FASHION_STEPS = "1,2,4,8,16,32,64"
FASHION_CHECKS = [("lenet", "if", 8), ("lenet", "if --encoding poisson --adjust l4", 8),
                  ("lenet", "bsnn", 32), ("lenet", "signgd", 2), ("qcfs", "noise", 1),
                  ("nq", "noise", 1)]


@dataclass(frozen=True)
class Dataset:
    """One table: its data file ``data/<name>.h5``, models ``data/models/<name>_<model>.h5``,
    outputs ``benchmarks/<name>/`` and ``benchmarks/<name>_results.json``."""

    name: str
    rows: list
    checks: list
    timed: list
    #: T values of every row (one run to the largest, read out at each)
    steps: str = STEPS
    #: None: each check is its row's value at T (on the row's images); else a run of the
    #: row's options to T on the first check_samples test images (a test repeats it quickly)
    check_samples: int | None = None

    @property
    def data(self) -> Path:
        return ROOT / "data" / f"{self.name}.h5"

    @property
    def out(self) -> Path:
        return ROOT / "benchmarks" / self.name

    @property
    def results(self) -> Path:
        return ROOT / "benchmarks" / f"{self.name}_results.json"

    def model(self, model: str) -> str:
        """The model's name (its file name in ``data/models`` without ``.h5``)."""
        return f"{self.name}_{model}"


DATASETS = {"mnist": Dataset("mnist", ROWS, CHECKS, TIMED),
            "fashion": Dataset("fashion", FASHION_ROWS, FASHION_CHECKS, [],
                               steps=FASHION_STEPS, check_samples=300)}


def options(ds: Dataset, model: str, label: str) -> list[str]:
    for m, lab, opts in ds.rows:
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


def evaluate(ds: Dataset, model: str, opts: list[str], steps: str, limit: int):
    code, out, err = run(["evaluate", MODELS / f"{ds.model(model)}.h5", "--data", ds.data,
                          "--limit", limit, "--steps", steps, "--json", *opts,
                          *calibration(opts)])
    return (json.loads(out), None) if code == 0 else (None, err.removeprefix("refsnn: error: "))


def slug(ds: Dataset, model: str, label: str) -> str:
    return f"{ds.model(model)}__" + label.replace("--", "").replace(" ", "_")


def timing(ds: Dataset, model: str, label: str, limit: int) -> dict:
    """images/s of ``refsnn evaluate NET.h5 --steps 128`` in float64 and float32."""
    opts = options(ds, model, label)
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for dtype in ("float64", "float32"):
            net = Path(tmp) / f"{dtype}.h5"
            code, _, err = run(["convert", MODELS / f"{ds.model(model)}.h5", "-o", net, *opts,
                                "--dtype", dtype, *(calibration(opts) and
                                                    ["--calibration", ds.data,
                                                     *calibration(opts)])])
            if code:
                raise SystemExit(f"convert {model} {label}: {err}")
            t0 = time.perf_counter()
            code, _, err = run(["evaluate", net, "--data", ds.data, "--limit", limit, "--steps",
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
    parser.add_argument("--dataset", choices=list(DATASETS), default="mnist",
                        help="which table (default mnist)")
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
    ds = DATASETS[args.dataset]
    out_dir, results_path = ds.out, ds.results
    out_dir.mkdir(exist_ok=True)
    results = {}
    results.update({"data": f"data/{ds.name}.h5", "split": "test", "calibration":
                    f"first {CALIBRATION} images of the train split", "steps": ds.steps})

    def save():
        # merge into what is on disk: another run may have written other keys meanwhile
        merged = json.loads(results_path.read_text()) if results_path.exists() else {}
        merged.update(results)
        tmp = results_path.with_name(f".{results_path.name}.{os.getpid()}.partial")
        tmp.write_text(json.dumps(merged, indent=1) + "\n")
        tmp.replace(results_path)

    order = [(m, lab) for m, lab, _ in ds.rows]

    def collect():
        """The rows in table order, from their meta files (several runs may fill them)."""
        results["rows"] = [json.loads(p.read_text()) for p in
                           (out_dir / f"{slug(ds, m, lab)}.meta.json" for m, lab in order)
                           if p.exists()]
        for key in ("checks", "timing"):  # written by their phases, possibly another run
            if (out_dir / f"{key}.json").exists():
                results[key] = json.loads((out_dir / f"{key}.json").read_text())
        save()

    if not args.skip_rows:
        todo = [r for r in ds.rows if args.models is None or r[0] in args.models.split(",")]
        if args.rows is not None:
            picked = set(args.rows.split(","))
            unknown = picked - {f"{m}:{lab}" for m, lab, _ in ds.rows}
            if unknown:
                raise SystemExit(f"--rows: no such row {sorted(unknown)}")
            todo = [r for r in todo if f"{r[0]}:{r[1]}" in picked]
        missing = sorted({m for m, _, _ in todo
                          if not (MODELS / f"{ds.model(m)}.h5").exists()})
        if missing:  # e.g. mnist_nq.h5 before data/train_mnist.py has made it: no row
            print(f"skipping the rows of {', '.join(missing)}: no model file", file=sys.stderr)
            todo = [r for r in todo if r[0] not in missing]
        for k, (model, label, opts) in enumerate(todo, 1):
            t0 = time.perf_counter()
            result, error = evaluate(ds, model, opts, ds.steps, args.limit)
            row = {"model": ds.model(model), "label": label, "options": opts,
                   "samples": args.limit, "seconds": round(time.perf_counter() - t0, 1)}
            if result is None:
                row["refused"] = error
            else:
                row["file"] = f"benchmarks/{ds.name}/{slug(ds, model, label)}.json"
                (ROOT / row["file"]).write_text(json.dumps(result) + "\n")
                row["ann_accuracy"] = result["ann_accuracy"]
                row["accuracy"] = {str(r["steps"]): r["accuracy"] for r in result["results"]}
            (out_dir / f"{slug(ds, model, label)}.meta.json").write_text(json.dumps(row) + "\n")
            print(f"[{k}/{len(todo)}] {model} {label}: {row['seconds']} s"
                  + (f", refused: {error}" if result is None else ""), file=sys.stderr,
                  flush=True)
            collect()
    collect()
    if not args.skip_checks:
        path = out_dir / "checks.json"
        done = {(c["model"], c["label"]): c for c in
                (json.loads(path.read_text()) if path.exists() else [])}
        for model, label, t in ds.checks:
            # MNIST: a point of the table itself (its row's samples, options and accuracy at
            # T); Fashion-MNIST: the row's options on the first check_samples images, run to T
            meta = out_dir / f"{slug(ds, model, label)}.meta.json"
            if (args.models is not None and model not in args.models.split(",")) \
                    or not meta.exists():
                continue
            row = json.loads(meta.read_text())
            if "accuracy" not in row:
                raise SystemExit(f"check {model} {label}: its row was refused: {row['refused']}")
            opts = options(ds, model, label)
            samples, ann, acc = row["samples"], row["ann_accuracy"], row["accuracy"][str(t)]
            if ds.check_samples is not None:
                samples = ds.check_samples
                result, error = evaluate(ds, model, opts, str(t), samples)
                if result is None:
                    raise SystemExit(f"check {model} {label}: {error}")
                ann, acc = result["ann_accuracy"], result["results"][0]["accuracy"]
            done[(ds.model(model), label)] = ({"model": ds.model(model), "label": label,
                           "options": opts + calibration(opts),
                           "samples": samples, "steps": t,
                           "ann_accuracy": ann, "accuracy": acc})
        if path.exists():  # merge with what another run wrote meanwhile
            done = {**{(c["model"], c["label"]): c for c in json.loads(path.read_text())},
                    **{k: v for k, v in done.items()
                       if args.models is None or v["model"].removeprefix(f"{ds.name}_")
                       in args.models.split(",")}}
        checks = [done[(ds.model(m), lab)] for m, lab, _ in ds.checks
                  if (ds.model(m), lab) in done]
        path.write_text(json.dumps(checks, indent=1) + "\n")
        collect()
    if not args.skip_timing and ds.timed:  # Fashion-MNIST: none
        path = out_dir / "timing.json"
        old = json.loads(path.read_text()) if path.exists() else {}
        if old.get("samples") != args.timing_limit:
            old = {}  # other settings: measured again
        done = {(r["model"], r["label"]): r for r in old.get("rows", [])}
        for m, lab in ds.timed:
            if args.models is None or m in args.models.split(","):
                done[(ds.model(m), lab)] = {"model": ds.model(m), "label": lab,
                                            **timing(ds, m, lab, args.timing_limit)}
        timed = {"samples": args.timing_limit, "steps": TIMING_STEPS,
                 "rows": [done[(ds.model(m), lab)] for m, lab in ds.timed
                          if (ds.model(m), lab) in done]}
        path.write_text(json.dumps(timed, indent=1) + "\n")
        collect()
    print_table(json.loads(results_path.read_text()), ds)
    return 0


def print_table(results: dict, ds: Dataset) -> None:
    steps = results["steps"].split(",")
    print("| model | method, options | test images | ANN | "
          + " | ".join(f"T={t}" for t in steps) + " |")
    print("|---|---|---:|---|" + "---|" * len(steps))
    for row in results.get("rows", []):
        name = row["model"].removeprefix(f"{ds.name}_")
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
            print(f"| {r['model'].removeprefix(f'{ds.name}_')} | {r['label']} | "
                  f"{r['float64']['images_per_s']:.1f} | {r['float32']['images_per_s']:.1f} |")


if __name__ == "__main__":
    sys.exit(main())
