"""The QCFS-vs-SNN gap and the residual membrane potentials of a ``noise`` network.

Per neuron layer: the mean and spread of ``gap = h(x) − count·θ/T`` over the probe batch
(:func:`refsnn.convert.noise.gap_from_counts`, the same definition the NQ training uses to set
its noise scale ``σ_l``; run with ``--steps`` equal to the training's ``T_n``, 4 by default, to
see the numbers training saw), and the residual membrane potential ``u_T`` after the last step:
what the neurons integrated but never expressed. ``u_T`` is reported in units of ``θ``; with
evenly arriving input it stays in ``[0, 1)`` (the QCFS value is then exact at ``T = L``), and
the share outside that interval is the share of neurons whose count differs from what their
total input says.
"""

from __future__ import annotations

import numpy as np

from refsnn.convert.noise import gap_from_counts, network_levels
from refsnn.diagnose import Probe, Table, register


@register("gap", methods=("noise",),
          help="per layer: mean and spread of h(x) - SNN rate, residual potentials u_T/theta")
def gap_table(probe: Probe) -> Table:
    net, t = probe.net, probe.steps
    levels = network_levels(net)
    gaps = gap_from_counts(net, probe.x, probe.run.counts, t)
    rows = []
    for name, gap in gaps.items():
        theta = net.graph.node(name).params["threshold"][0]
        u = probe.trace(name).potentials[name][-1] / theta  # (B, *shape), after reset at T
        outside = (u < 0) | (u >= 1)
        rows.append({
            "layer": name, "levels": levels[name], "theta": float(theta),
            "gap_mean": gap.mean, "gap_sigma": gap.sigma,
            "u_T_mean": float(np.mean(u)), "u_T_sd": float(np.std(u)),
            "u_T_outside": float(np.mean(outside)),
        })
    notes = (f"over {probe.x.shape[0]} samples and T = {t} steps; gap = h(x) - count*theta/T "
             "with x the layer's input in the QCFS ANN; gap_sigma is the method's sigma_l "
             "when T is the training's T_n",
             "u_T: membrane potential after step T in units of theta; u_T_outside: share of "
             "neurons with u_T outside [0, 1) (residual never expressed)")
    return Table(f"QCFS gap and residual potentials (method {net.method})",
                 ("layer", "levels", "theta", "gap_mean", "gap_sigma", "u_T_mean", "u_T_sd",
                  "u_T_outside"), rows, notes)
