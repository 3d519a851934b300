"""Spikes of inactivated neurons (SIN): spikes emitted by neurons whose ANN activation is 0.

Li et al. (BSNN, 2021) name these as a cause of slow, lossy conversion: a neuron the ANN
leaves at 0 still fires when the positive part of its input arrives before the negative part
(phase lead), and a spike, once sent, is never taken back. Here a neuron is *inactive* for a
sample when its value in the network's ANN limit (:func:`refsnn.sim.network.ann_limit`) is
exactly 0; for IF and bistable neurons that is ``clip(x, 0, theta) == 0``, i.e. the ANN's ReLU
output is 0.

Rate-coded methods (``if``, ``bsnn``, ``noise``) report the spikes those neurons emitted. signGD neurons
emit ``±eta_t`` every step by design (a spike there means "lower the estimate"), so spike
counts do not transfer; for every method the table also reports ``inactive_output``, the mean
``|output|`` the inactive neurons represent after ``T`` steps (IF: ``count·theta/T``; BSNN: the
same per delivered packet; signGD: the output estimate), which is 0 for a perfect conversion.
"""

from __future__ import annotations

import numpy as np

from refsnn.diagnose.registry import Probe, Table, register
from refsnn.sim.network import represented_output

#: Methods whose spikes are rate-coded, so that a spike of an inactive neuron is an error.
RATE_CODED = ("if", "bsnn", "noise")


def sin_counts(net, limit: dict, counts: dict) -> dict[str, int]:
    """Spikes of inactivated neurons per neuron node (rate-coded methods only).

    Parameters
    ----------
    net : SpikingNetwork
    limit : dict of str to ndarray, shape (B, *node_shape)
        Node values in the ANN limit, as returned by ``ann_limit(net, x, all_nodes=True)``.
    counts : dict of str to int64 ndarray, shape (B, *node_shape)
        Spike counts per neuron (``Run.counts``) of the same samples.
    """
    if net.method not in RATE_CODED:
        raise ValueError(f"SIN counts are defined for {RATE_CODED}, not {net.method!r}")
    return {name: int(counts[name][limit[name] == 0].sum()) for name in counts}


@register("sin", methods=("if", "bsnn", "noise", "signgd"),
          help="spikes of inactivated neurons (ANN activation 0) per layer")
def sin_table(probe: Probe) -> Table:
    net, run, t = probe.net, probe.run, probe.steps
    spiking = net.method in RATE_CODED
    rows = []
    for name in net.neuron_nodes():
        inactive = probe.limit[name] == 0
        n_inactive = int(inactive.sum())
        counts = run.counts[name]
        if spiking:
            output = represented_output(net, name, counts, t)
        else:
            output = probe.trace(name).potentials[name][-1]
        sin = int(counts[inactive].sum()) if spiking else None
        total = int(counts.sum())
        rows.append({
            "layer": name,
            "neurons": int(inactive.size),
            "inactive": n_inactive,
            "sin_spikes": sin,
            "sin_share": (sin / total if total else 0.0) if spiking else None,
            "sin_per_inactive": (sin / n_inactive if n_inactive else 0.0) if spiking else None,
            "inactive_output": float(np.abs(output[inactive]).mean()) if n_inactive else 0.0,
        })
    notes = (f"over {probe.x.shape[0]} samples and T = {t} steps; inactive = value 0 in the "
             f"ANN limit; neurons counts neuron-sample pairs",
             "sin_share: SIN / all spikes of the layer; inactive_output: mean |represented "
             "output| of the inactive neurons at T")
    if not spiking:
        notes += ("signGD neurons emit ±eta every step, so SIN counts do not apply; "
                  "inactive_output is |output estimate|",)
    return Table(f"spikes of inactivated neurons (method {net.method})",
                 ("layer", "neurons", "inactive", "sin_spikes", "sin_share", "sin_per_inactive",
                  "inactive_output"), rows, notes)
