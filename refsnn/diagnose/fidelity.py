"""Per-layer fidelity of a rate-coded conversion: how far each layer's represented output
after ``T`` steps is from its value in the ANN limit.

For every neuron node: the represented output (IF: ``count·theta/T``,
:func:`refsnn.sim.network.represented_output`) against the node's ANN-limit value
``clip(x, 0, theta)``, over all neuron-sample pairs: mean and max absolute error, relative
error (mean |error| / mean |ANN value|), Pearson correlation, *silent* pairs (no spike though
the ANN value is positive), *always firing* pairs (a spike every step) and *saturated* pairs
(ANN value at the threshold, where clipping loses information). The layer where the relative
error first jumps is where fidelity is lost.
"""

from __future__ import annotations

import numpy as np

from refsnn.diagnose.registry import Probe, Table, register
from refsnn.sim.network import represented_output


def _theta(net, name: str, shape) -> np.ndarray:
    """The node's threshold broadcast to (B, *node_shape) (one per channel, axis 1)."""
    theta = np.asarray(net.graph.node(name).params["threshold"], np.float64)
    return np.broadcast_to(theta.reshape((1, -1) + (1,) * (len(shape) - 2)), shape)


def _corr(a: np.ndarray, b: np.ndarray) -> float | None:
    a, b = a.ravel() - a.mean(), b.ravel() - b.mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > 0 else None  # undefined for a constant layer


@register("fidelity", methods=("if", "noise"),
          help="per-layer error and correlation of rates vs the ANN limit; silent, "
               "always-firing and saturated neurons")
def fidelity_table(probe: Probe) -> Table:
    net, run, t = probe.net, probe.run, probe.steps
    rows = []
    for name in net.neuron_nodes():
        counts = run.counts[name]
        out = represented_output(net, name, counts, t)
        ann = np.asarray(probe.limit[name], np.float64)
        err = np.abs(out - ann)
        scale = float(np.abs(ann).mean())
        rows.append({
            "layer": name,
            "neurons": int(ann.size),
            "mean_abs_error": float(err.mean()),
            "max_abs_error": float(err.max()),
            "relative_error": float(err.mean() / scale) if scale > 0 else None,
            "correlation": _corr(out, ann),
            "silent": int(((counts == 0) & (ann > 0)).sum()),
            "always_firing": int((counts >= t).sum()),
            "saturated": int((ann >= _theta(net, name, ann.shape)).sum()),
        })
    rel = [r["relative_error"] or 0.0 for r in rows]
    jumps = np.diff([0.0] + rel)
    worst = rows[int(np.argmax(jumps))]["layer"] if rows else None
    notes = (f"over {probe.x.shape[0]} samples and T = {t} steps; neurons counts neuron-sample "
             f"pairs; error = |represented output at T - ANN-limit value|",
             f"largest rise in relative error: {worst}")
    return Table(f"fidelity per layer (method {net.method})",
                 ("layer", "neurons", "mean_abs_error", "max_abs_error", "relative_error",
                  "correlation", "silent", "always_firing", "saturated"), rows, notes)
