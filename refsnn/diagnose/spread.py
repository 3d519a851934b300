"""Spread of the pre-firing membrane potential per layer: predicted versus measured.

For each neuron node, the pre-firing potential ``V_t = I_1 + ... + I_t`` (the potential without
the initial value, threshold or reset) is rebuilt from a trace as
``V_t = u_t + θ N_t - u0`` (``u_t`` after reset, ``N_t`` the spikes so far; reset by
subtraction only, where this identity holds).

Its *temporal* spread is measured without knowing its mean: for increments that are
independent with per-step variance ``σ²``, the bridge ``B_t = V_t - (t/T) V_T`` has
``E[B_t²] = σ² t (T - t) / T``, whatever the drift. The measured per-step variance is
``σ̂² = Σ_t B_t² / Σ_t t(T - t)/T``, pooled over samples and neurons. The prediction is
``σ² = Var[I]`` of :func:`refsnn.theory.l4.current_moments`, with every source taken as a
Bernoulli train at its measured rate (``count / T``; the input at ``|x|``). The table gives
both as the sd of ``V_T`` (``sqrt(T σ²)``), and the L4 bound.

For the first layer under Poisson encoding the prediction is exact, so the ratio is 1 up to
sampling error. Deeper layers receive IF spike trains, for which two assumptions of the
prediction fail in opposite directions: an IF train is more regular than a Bernoulli train of
the same rate (less variance), but neurons of one layer share their inputs, so their trains are
correlated and the covariances the prediction ignores add variance (when the weights of the
next layer do not cancel them). Measured on the shipped models (README): ratio 0.6-0.75 in the
conv layers, 1.04-1.2 in the MLP's second layer.
"""

from __future__ import annotations

import numpy as np

from refsnn.diagnose.registry import Probe, Table, register
from refsnn.theory.l4 import current_moments, source_spikes


def bridge_variance(v: np.ndarray) -> np.ndarray:
    """Per-step variance estimate of each walk from its bridge.

    Parameters
    ----------
    v : ndarray, shape (T, ...)
        ``V_1 .. V_T`` of each walk.

    Returns
    -------
    ndarray, shape (...)
        ``Σ_t (V_t - (t/T) V_T)² / Σ_t t(T - t)/T``; unbiased for independent increments of
        equal variance. Needs ``T >= 2``.
    """
    steps = v.shape[0]
    t = np.arange(1, steps + 1, dtype=np.float64).reshape((-1,) + (1,) * (v.ndim - 1))
    bridge = v - (t / steps) * v[-1]
    return np.sum(bridge ** 2, axis=0) / np.sum(t * (steps - t) / steps)


def prefiring(probe: Probe, name: str) -> np.ndarray:
    """``V_t`` of every neuron of a node, shape (T, B, *node_shape), from a trace."""
    node = probe.net.graph.node(name)
    run = probe.trace(name)
    shape = (1, 1, -1) + (1,) * (run.potentials[name].ndim - 3)
    theta = node.params["threshold"].reshape(shape)
    u0 = theta / 2 if node.attrs["v_init"] == "half" else 0.0
    return run.potentials[name] + theta * np.cumsum(run.rasters[name], axis=0) - u0


@register("spread", methods=("if",),
          help="predicted (Bernoulli inputs) vs measured spread of the pre-firing potential")
def spread_table(probe: Probe) -> Table:
    net, t = probe.net, probe.steps
    if t < 2:
        raise ValueError("spread: needs T >= 2")
    rates = {n: probe.run.counts[n] / t for n in net.neuron_nodes()}
    src_rates, values = source_spikes(net, probe.x, rates)
    rows = []
    for name in net.neuron_nodes():
        node = net.graph.node(name)
        m = current_moments(net.graph, name, src_rates, values)
        row = {"layer": name, "neurons": int(m.mean.size), "mean_V_T": None,
               "predicted_sd": None, "measured_sd": None, "ratio": None, "l4_bound": None}
        if node.attrs["reset"] == "subtract":
            measured = float(np.sqrt(t * bridge_variance(prefiring(probe, name)).mean()))
            row["measured_sd"] = measured
        row["mean_V_T"] = float(np.abs(t * m.mean).mean())
        if m.var is not None:
            predicted = float(np.sqrt(t * m.var.mean()))
            row["predicted_sd"] = predicted
            row["l4_bound"] = float(np.sqrt(t * m.l4_bound.mean()))
            if row["measured_sd"] is not None and predicted > 0:
                row["ratio"] = row["measured_sd"] / predicted
        rows.append(row)
    notes = (f"over {probe.x.shape[0]} samples, T = {t}; sd of V_T = sqrt(T * per-step variance), "
             "pooled over samples and neurons (root mean square)",
             "predicted: every source a Bernoulli train at its measured rate (input: |x|); "
             "measured: from the bridge V_t - (t/T) V_T of a trace",
             "l4_bound: sqrt(T ||c||_4^2 ||r(1-r)||_2), Cauchy-Schwarz; ratio = measured / "
             "predicted (exact only for Bernoulli sources: IF trains are more regular, but "
             "correlated with each other)",
             "'-': max pooling of spikes on the way (not linear), or reset to zero (V_t is "
             "not recoverable from the trace)")
    return Table(f"spread of the pre-firing potential (encoding {net.encoding})",
                 ("layer", "neurons", "mean_V_T", "predicted_sd", "measured_sd", "ratio",
                  "l4_bound"), rows, notes)
