"""``refsnn plot``: accuracy against T (log scale) from ``refsnn evaluate --json`` outputs.

Needs matplotlib (extra ``plot``), imported only when drawing (:mod:`refsnn.diagnose.plot`'s
pattern: the object interface, no pyplot, an atomic PNG write). Each input file holds one
``evaluate --json`` object; its curve is the SNN accuracy per T, labelled by model, method and
options, and each model's ANN accuracy is a dotted line in the curve's colour.
"""

from __future__ import annotations

import json
from pathlib import Path

from refsnn.diagnose.plot import require_matplotlib
from refsnn.errors import DataFormatError
from refsnn.io import atomic_path

def read_run(path) -> dict:
    """One ``evaluate --json`` object, checked for the keys the plot reads.

    Raises
    ------
    DataFormatError
        Naming the file and the missing or malformed key.
    """
    path = Path(path)
    try:
        run = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataFormatError(f"{path}: no such file") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise DataFormatError(f"{path}: not a JSON file written by 'refsnn evaluate --json' "
                              f"({str(e).splitlines()[0]})") from None
    if not isinstance(run, dict):
        raise DataFormatError(f"{path}: expected one JSON object of 'refsnn evaluate --json'")
    for key in ("ann_accuracy", "results", "model", "method"):
        if key not in run:
            raise DataFormatError(f"{path}: key {key!r}: expected it (an 'evaluate --json' "
                                  f"output), found nothing")
    res = run["results"]
    if not isinstance(res, list) or not res or not all(
            isinstance(r, dict) and isinstance(r.get("steps"), int)
            and isinstance(r.get("accuracy"), (int, float)) for r in res):
        raise DataFormatError(f"{path}: key 'results': expected a list of {{steps, accuracy}}")
    return run


#: Option -> (value that is the default for every method that takes it, flag shown otherwise).
_SHOWN = {"per_channel": (False, "--per-channel"), "reset": ("subtract", "--reset"),
          "readout": ("potential", "--readout"), "adjust": ("none", "--adjust"),
          "dtype": ("float64", "--dtype")}


def label(run: dict) -> str:
    """``model: method [encoding] [the flags that differ from the defaults]``."""
    opts = run.get("options", {})
    parts = [f"{Path(run['model']).stem}: {run['method']}"]
    if run.get("encoding") not in (None, "analog", "exact"):
        parts.append(f"--encoding {run['encoding']}")
    for key, (default, flag) in _SHOWN.items():
        if key in opts and opts[key] != default and not (default is False and not opts[key]):
            parts.append(flag if default is False else f"{flag} {opts[key]}")
    v_default = {"if": "zero", "bsnn": "half"}.get(run["method"])
    if v_default and opts.get("v_init", v_default) != v_default:
        parts.append(f"--v-init {opts['v_init']}")
    return " ".join(parts)


def save_accuracy_plot(path, runs: list[dict], title: str | None = None) -> None:
    """Draw accuracy (%) against T, log-scale T, one curve per run, to a PNG at ``path``."""
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 5.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ann_drawn = set()
    for k, run in enumerate(runs):
        colour = f"C{k % 10}"
        steps = [r["steps"] for r in run["results"]]
        acc = [100 * r["accuracy"] for r in run["results"]]
        ax.plot(steps, acc, "o-", color=colour, markersize=3, label=label(run))
        if run["model"] not in ann_drawn:
            ann_drawn.add(run["model"])
            ax.axhline(100 * run["ann_accuracy"], color=colour, linestyle=":", linewidth=1)
    ax.set_xscale("log", base=2)
    ticks = sorted({r["steps"] for run in runs for r in run["results"]})
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.set_xlabel("time steps T")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 101)
    ax.grid(True, which="major", alpha=0.3)
    samples = {r.get("samples") for r in runs}
    ax.set_title(title or ("SNN accuracy against T (dotted: the ANN)"
                           + (f", {samples.pop()} samples" if len(samples) == 1 else "")))
    ax.legend(fontsize="small", loc="lower right")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
