"""``refsnn diagnose --plot``: draw the fidelity diagnostic (needs matplotlib, extra ``plot``).

matplotlib is imported inside the functions that draw, never at module level, so the core and
the command line work without it; :func:`require_matplotlib` turns its absence into an
:class:`~refsnn.errors.OptionError` naming the extra. Figures are built with matplotlib's
object interface (``Figure`` + the Agg canvas), not ``pyplot``, so no global state or GUI
backend is touched, and the PNG is written atomically (temporary file + rename, like
:func:`refsnn.io.atomic_h5`).
"""

from __future__ import annotations


import numpy as np

from refsnn.errors import OptionError
from refsnn.io import atomic_path
from refsnn.sim.network import represented_output


def require_matplotlib() -> None:
    """Raise an OptionError naming the ``plot`` extra when matplotlib is not installed."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise OptionError("--plot needs matplotlib, which is not installed: "
                          "pip install 'refsnn[plot]' (or pip install matplotlib)") from None


def fidelity_per_step(probe) -> dict[str, np.ndarray]:
    """Each neuron layer's relative error after every step ``t = 1 .. T``.

    The fidelity diagnostic's ``relative_error`` (mean |represented output - ANN-limit value|
    / mean |ANN-limit value|) with the represented output taken after ``t`` steps instead of
    ``T``; at ``t = T`` it is the table's value. Simulates the batch again with every neuron
    layer's raster recorded.

    Returns
    -------
    dict of str to ndarray, shape (T,)
        NaN where the layer's ANN values are all 0 (the relative error is undefined).
    """
    net = probe.net
    names = net.neuron_nodes()
    run = probe.simulate(rasters=names)
    out = {}
    for name in names:
        ann = np.asarray(probe.limit[name], np.float64)
        scale = float(np.abs(ann).mean())
        counts = np.zeros(ann.shape, np.int64)
        errors = np.full(probe.steps, np.nan)
        for t in range(1, probe.steps + 1):
            counts += run.rasters[name][t - 1]
            if scale > 0:
                rep = represented_output(net, name, counts, t)
                errors[t - 1] = float(np.abs(rep - ann).mean() / scale)
        out[name] = errors
    return out


def _draw_fidelity(fig, probe, table) -> None:
    """Three panels: relative error and correlation per layer, the silent / always-firing /
    saturated fractions per layer, and the relative error per step of every layer."""
    rows = table.rows
    layers = [r["layer"] for r in rows]
    pos = np.arange(len(rows))
    nan = lambda v: np.nan if v is None else v
    ax1, ax2, ax3 = fig.subplots(1, 3)

    ax1.plot(pos, [nan(r["relative_error"]) for r in rows], "o-", color="C3",
             label="relative error")
    ax1.set_ylabel("relative error (mean |SNN - ANN| / mean |ANN|)")
    twin = ax1.twinx()
    twin.plot(pos, [nan(r["correlation"]) for r in rows], "s--", color="C0",
              label="correlation")
    twin.set_ylabel("correlation with the ANN")
    twin.set_ylim(min(0.0, np.nanmin([nan(r["correlation"]) for r in rows] + [0.0])), 1.05)
    ax1.set_ylim(bottom=0.0)
    ax1.set_title("error and correlation per layer")
    lines = ax1.get_lines() + twin.get_lines()
    ax1.legend(lines, [line.get_label() for line in lines], fontsize="small", loc="lower right")

    width = 0.27
    for k, (key, label) in enumerate((("silent", "silent"), ("always_firing", "always firing"),
                                      ("saturated", "saturated"))):
        ax2.bar(pos + (k - 1) * width, [r[key] / r["neurons"] for r in rows], width,
                label=label)
    ax2.set_ylabel("fraction of neuron-sample pairs")
    ax2.set_title("silent / always firing / saturated")
    ax2.legend(fontsize="small")

    for name, errors in fidelity_per_step(probe).items():
        ax3.plot(np.arange(1, errors.size + 1), errors, label=name)
    ax3.set_xscale("log")
    ax3.set_yscale("log")
    ax3.set_xlabel("step t")
    ax3.set_ylabel("relative error after t steps")
    ax3.set_title("relative error per step")
    ax3.legend(fontsize="small")

    for ax in (ax1, ax2):
        ax.set_xticks(pos, layers, rotation=45, ha="right")
    fig.suptitle(f"{table.title}: {probe.x.shape[0]} samples, T = {probe.steps}")


#: Diagnostic name -> draw(figure, probe, table); ``--plot`` draws the first that ran.
PLOTS = {"fidelity": _draw_fidelity}


def save_plot(path, probe, tables) -> str:
    """Draw the first plottable diagnostic of ``tables`` (name -> Table) to a PNG at ``path``.

    Returns
    -------
    str
        The name of the diagnostic drawn.
    """
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    name = next((n for n in tables if n in PLOTS), None)
    if name is None:
        raise OptionError(f"--plot draws {', '.join(PLOTS)}; none of them ran")
    fig = Figure(figsize=(15, 4.8), layout="constrained")
    FigureCanvasAgg(fig)
    PLOTS[name](fig, probe, tables[name])
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return name
