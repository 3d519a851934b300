"""``--adjust l4``: a bias correction of IF neurons for the spread of Poisson-driven potentials.

The paper this option is named after (Allred and Roy, arXiv 2111.09446) proposes "a weight
adjustment based on the L4-norm" of each neuron's weights; its formula was not available to
us, so this adjustment is *derived here* from the prediction of :mod:`refsnn.theory.l4`, not
copied from the paper (``proofs/l4_norm.ipynb`` has the derivation).

Mechanism. With reset by subtraction the potential is ``u_t = u0 + V_t - θ N_t`` and at most
one spike leaves per step, so a neuron has fired about ``max_{s <= t} V_s / θ`` times: spikes
sent on an early upward excursion of the random walk ``V`` are never taken back. A neuron whose
mean drive is 0 therefore represents about ``E[max_{s<=T} V_s] / T ≈ σ √(2 / (π T))`` instead
of 0 (the running maximum of a driftless walk with per-step sd ``σ``). Conversion balances the
mean only, so every neuron near the ReLU's kink is pushed up by an amount proportional to its
per-step spread ``σ_j``, and ``σ_j <= ||c_j||_4 · ||q||_2^(1/2)`` (Cauchy-Schwarz; ``c_j`` the
weights times the spike values of the neuron's sources, ``q = r(1 - r)`` the variances of the
source spikes over its receptive field).

Adjustment. Each channel's bias is lowered by that excess at a reference horizon ``T_ref``,
with ``σ`` replaced by its L4 bound averaged over the calibration samples (and positions)::

    b_c  <-  b_c - sqrt(2 / (π T_ref)) · mean_{samples, positions of c} ||c_j||_4 ||q_j||_2^(1/2)

with the rates ``r`` those of the unadjusted network's ANN limit on the calibration data
(``clip(a, 0, θ) / θ``; input: ``|x|``). Thresholds are not changed. All layers are adjusted
from the same unadjusted rates (not one after the other).
"""

from __future__ import annotations

import math

import numpy as np

from refsnn.checks import check_choice
from refsnn.conversion.calibrate import Progress, chunk_bounds, running_sum, sums_by_slab
from refsnn.errors import OptionError
from refsnn.model.graph import INPUT, Graph
from refsnn.theory.l4 import current_moments, limit_rates, source_spikes

def excess_factor(steps: int) -> float:
    """``sqrt(2 / (π T_ref))``: the represented output of a driftless unit-sd neuron at T_ref
    (the running maximum of a driftless walk of ``T`` steps with unit per-step sd is about
    ``sqrt(2 T / π)``; divided by ``T``, a rate, this is the factor)."""
    return math.sqrt(2.0 / (math.pi * steps))


def l4_shifts(net, x: np.ndarray, steps: int,
              progress: Progress | None = None) -> dict[str, np.ndarray]:
    """The bias shift of every IF neuron node, per channel.

    Parameters
    ----------
    net : SpikingNetwork
        The unadjusted IF network.
    x : ndarray, shape (B, *input_shape)
        Calibration inputs.
    steps : int
        The reference horizon ``T_ref``.
    progress : callable, optional
        ``progress(0, samples_done, samples_total)`` after each chunk (one pass).

    Returns
    -------
    dict of str to ndarray, shape (C,)
        ``sqrt(2/(π T_ref))`` times the mean L4 bound of the per-step sd; nodes whose current
        passes a non-linear synapse (max pooling of spikes) are left out (no shift).
    """
    # Streamed over chunks of the calibration set (memory of one chunk): the mean over the
    # samples is a sum continued chunk by chunk in NumPy's own order (running_sum), divided
    # by the count as np.mean divides, so the shifts are the whole-set ones bit for bit. A
    # node of one channel NumPy sums pairwise as one run (sums_by_slab): its bounds are kept
    # for the whole set and averaged as before (the only part whose memory grows with it).
    sums, counts, whole = {}, {}, {}
    for start, stop in chunk_bounds(x.shape[0]):
        xb = x[start:stop]
        rates, values = source_spikes(net, xb, limit_rates(net, xb))
        for name in net.neuron_nodes():
            m = current_moments(net.graph, name, rates, values)
            if m.l4_bound is None:
                continue
            bound_sd = np.sqrt(m.l4_bound)
            axes = (0,) + tuple(range(2, bound_sd.ndim))
            if not sums_by_slab(bound_sd.shape, axes):
                whole.setdefault(name, []).append(bound_sd)
                continue
            sums[name] = running_sum(sums.get(name), bound_sd, axes)
            counts[name] = int(np.prod([bound_sd.shape[i] for i in axes[1:]], dtype=np.int64))
        if progress is not None:
            progress(0, stop, x.shape[0])
    means = {name: np.true_divide(s, np.intp(x.shape[0] * counts[name]))
             for name, s in sums.items()}
    for name, parts in whole.items():
        bound_sd = np.concatenate(parts)
        means[name] = bound_sd.mean(axis=(0,) + tuple(range(2, bound_sd.ndim)))
    return {name: excess_factor(steps) * means[name]
            for name in net.neuron_nodes() if name in means}


def apply_shifts(graph: Graph, shifts: dict[str, np.ndarray], ops) -> Graph:
    """Lower the current of each named neuron node by its per-channel shift.

    The shift goes into the bias of the node's input when that is a ``conv2d``, or a
    ``linear`` with a 1-D output (whose bias runs along the channels), read by the neuron node
    only; otherwise an ``affine`` node (weight 1, bias ``-shift``, along the channels) is
    inserted before the neurons, named ``<neuron node>_l4``. (A ``linear`` over the last axis
    of a (C, ..., D) value has its bias along D, not along the channels.)
    """
    edit = graph.edit()
    for name, shift in shifts.items():
        src = graph.node(name).inputs[0]
        op = None if src == INPUT else graph.node(src).op
        if ((op == "conv2d" or (op == "linear" and len(graph.shapes[src]) == 1))
                and len(graph.consumers(src)) == 1):
            edit.set_params(src, bias=graph.node(src).params["bias"] - shift)
        else:
            edit.insert_before(name, f"{name}_l4", "affine", {"axis": "channel"},
                               {"weight": np.ones_like(shift), "bias": -shift})
    return edit.commit(ops=ops)


#: ``--adjust`` value -> ``f(net, calibration, steps, progress)`` -> ``{neuron node: per-channel
#: shift}``.
ADJUSTMENTS = {"l4": l4_shifts}
ADJUST_CHOICES = ("none", *ADJUSTMENTS)
DEFAULT_STEPS = 32


def check_adjust(adjust: str, steps, encoding: str) -> int | None:
    """Validate ``adjust``/``adjust_steps``; return the horizon to use (None without adjust)."""
    check_choice("--adjust", adjust, ADJUST_CHOICES)
    if adjust == "none":
        if steps is not None:
            raise OptionError("--adjust-steps applies to --adjust l4 only")
        return None
    if encoding != "poisson":
        # With analog input the current has no spread in the first layer; the correction is
        # derived for Bernoulli inputs, so refuse rather than silently shift biases.
        raise OptionError(f"--adjust {adjust} corrects the spread of Poisson inputs; it needs "
                          f"--encoding poisson (found {encoding})")
    steps = DEFAULT_STEPS if steps is None else steps
    if not isinstance(steps, (int, np.integer)) or isinstance(steps, bool) or steps < 1:
        raise OptionError(f"--adjust-steps: expected a positive integer, found {steps!r}")
    return int(steps)
