"""The QCFS-vs-SNN gap and the residual membrane potentials of a ``noise`` network.

Per neuron layer: the mean and spread of ``gap = h(x) − count·θ/T`` over the probe batch
(:func:`refsnn.conversion.noise.gap_from_counts`, the same definition the NQ training uses to set
its noise scale ``σ_l``; run with ``--steps`` equal to the training's ``T_n``, 4 by default, to
see the numbers training saw), and the residual membrane potential ``u_T`` after the last step:
what the neurons integrated but never expressed. ``u_T`` is reported in units of ``θ``. A
neuron whose count is the QCFS count of its total input ends in ``[0, 1)``; below 0 it sent
more spikes than its total input justifies (negative input arrived late, or the total is
negative: then the count is 0 and the excess is clipped, as by ``h``), at 1 or above it left
spikes unsent (input arrived in bursts, or the total exceeds ``T·θ``: clipped).
"""

from __future__ import annotations

import numpy as np

from refsnn.conversion.noise import gap_from_counts, network_levels
from refsnn.diagnose.registry import Probe, Table, register


@register("gap", methods=("noise",),
          help="per layer: mean and spread of h(x) - SNN rate, residual potentials u_T/theta")
def gap_table(probe: Probe) -> Table:
    net, t = probe.net, probe.steps
    levels = network_levels(net)
    gaps = gap_from_counts(net, probe.x, probe.run.counts, t)
    rows = []
    for name, gap in gaps.items():
        theta = net.graph.node(name).params["threshold"][0]
        u_raw = probe.trace(name).potentials[name][-1]  # (B, *shape), after reset at step T
        u = u_raw / theta
        rows.append({
            "layer": name, "levels": levels[name], "theta": float(theta),
            "gap_mean": gap.mean, "gap_sigma": gap.sigma,
            "u_T_mean": float(np.mean(u)), "u_T_sd": float(np.std(u)),
            # compared in the neuron's own units: u/θ could round up to 1 just below θ
            "u_T_below": float(np.mean(u_raw < 0)), "u_T_above": float(np.mean(u_raw >= theta)),
        })
    notes = (f"over {probe.x.shape[0]} samples and T = {t} steps; gap = h(x) - count*theta/T "
             "with x the layer's input in the QCFS ANN; gap_sigma is the method's sigma_l "
             "when T is the training's T_n",
             "u_T: membrane potential after step T in units of theta; u_T_below / u_T_above: "
             "share of neurons with u_T < 0 (spikes sent in excess, or a negative total) and "
             "u_T >= 1 (spikes left unsent, or a total above T*theta)")
    return Table(f"QCFS gap and residual potentials (method {net.method})",
                 ("layer", "levels", "theta", "gap_mean", "gap_sigma", "u_T_mean", "u_T_sd",
                  "u_T_below", "u_T_above"), rows, notes)
