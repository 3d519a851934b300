"""Integrate-and-fire neurons (the rate-coding baseline): op ``if``.

One step of a layer of IF neurons, per neuron, in this order (written once, in ``docs/``):

1. charge: ``u <- u + I``
2. fire:   ``s = 1 if u >= theta else 0``  (inclusive: a potential exactly at threshold fires)
3. reset:  ``u <- u - theta`` if ``s`` (reset by subtraction) or ``u <- 0`` (reset to zero)
4. emit:   the event value is ``s * theta`` (a spike carries the threshold, so downstream
   weights stay the ANN's and a rate ``r`` stands for the activation ``r * theta``)

Kernels take arrays flattened per sample: ``u``, ``current``, ``out`` have shape (B, N) and
``theta`` shape (N,). ``compare`` replays a layer through :func:`if_step_numpy` with
departures (:func:`replay`): a strict comparison, the other reset, a scaled threshold.
"""

from __future__ import annotations

import numpy as np

from refsnn.jit import parallel, prange
from refsnn.model.ops import AttrSpec, OpSpec
from refsnn.neurons.base import (Kind, NirSpec, StepOp, TraceSpec, channel_param, per_neuron,
                                 positive, register, threshold_shape)
from refsnn.neurons.replay import count_ratio, delay, guarded, threshold_margins

RESETS = ("subtract", "zero")


def fire_numpy(u, theta, strict: bool = False, reset_zero: bool = False):
    """Fire: a spike where ``u >= theta``, reset by subtraction (or to zero with
    ``reset_zero``); updates ``u`` in place and returns the events, shape (B, N).

    ``strict`` (fire on ``u > theta``), and ``reset_zero`` in bistable neurons, are
    departures ``compare`` replays, not refsnn's rule.
    """
    fired = u > theta if strict else u >= theta
    if reset_zero:
        u[fired] = 0.0
    else:
        u -= np.where(fired, theta, 0.0)
    return np.where(fired, theta, 0.0).astype(u.dtype)


def if_step_numpy(u, current, theta, reset_zero: bool, strict: bool = False):
    """Reference step: ``u += current``, then :func:`fire_numpy`; events (B, N)."""
    u += current
    return fire_numpy(u, theta, strict, reset_zero)


def if_block_numpy(u, currents, theta, reset_zero: bool):
    """``K`` steps of :func:`if_step_numpy` in order: ``currents`` (K, B, N) -> events (K, B, N)."""
    return np.stack([if_step_numpy(u, current, theta, reset_zero) for current in currents])


@parallel(work=lambda u, currents, theta, reset_zero, out: currents.size)
def _if_kernel(u, currents, theta, reset_zero, out):
    # each sample's steps in order; a job owns a sample's potentials and events
    for b in prange(u.shape[0]):
        for k in range(currents.shape[0]):
            for i in range(u.shape[1]):
                v = u[b, i] + currents[k, b, i]
                if v >= theta[i]:
                    out[k, b, i] = theta[i]
                    v = 0.0 if reset_zero else v - theta[i]
                else:
                    out[k, b, i] = 0.0
                u[b, i] = v


def if_block_numba(u, currents, theta, reset_zero: bool):
    """Numba twin of :func:`if_block_numpy`: ``K`` steps in one call, bit-identical.

    The simulator hands a neuron node a block of steps at once (``Simulator(step_block=K)``)
    so that a small layer costs one call per block instead of one per step.
    """
    out = np.empty(currents.shape, u.dtype)
    _if_kernel(u, currents, theta, reset_zero, out)
    return out


def if_step_numba(u, current, theta, reset_zero: bool):
    """Numba twin of :func:`if_step_numpy`; bit-identical."""
    return if_block_numba(u, current[None], theta, reset_zero)[0]


#: Backend -> kernels; without a ``block`` kernel a block of steps is one call per step.
KERNELS = {"numpy": {"step": if_step_numpy},
           "numba": {"step": if_step_numba, "block": if_block_numba}}


class IFNeurons(StepOp):
    """IF neurons; the state is the membrane potential, shape (B, N)."""

    is_neuron = True
    stateless = False
    spike_sign = 1  # a spike carries +theta
    block_steps = True
    KERNELS = KERNELS

    def __init__(self, node, graph, backend, schedule):
        super().__init__(node, graph, backend, schedule)
        self.theta = per_neuron(node.params["threshold"], self.shape)
        self.reset_zero = node.attrs["reset"] == "zero"
        self.u0 = self.theta / 2 if node.attrs["v_init"] == "half" else np.zeros_like(self.theta)

    def init(self, batch):
        return np.repeat(self.u0[None, :], batch, axis=0)

    def step(self, u, x):
        out = self.kernels["step"](u, np.ascontiguousarray(x.reshape(u.shape)), self.theta,
                                   self.reset_zero)
        return out.reshape(x.shape)

    def step_block(self, u, x):
        """Steps ``1..K`` of a block in order: ``x`` (K, B, *shape) -> values (K, B, *shape)."""
        currents = np.ascontiguousarray(x.reshape((x.shape[0],) + u.shape))
        block = self.kernels.get("block")
        if block is None:
            out = np.stack([self.kernels["step"](u, c, self.theta, self.reset_zero)
                            for c in currents])
        else:
            out = block(u, currents, self.theta, self.reset_zero)
        return out.reshape(x.shape)


def clip_forward(node, x):
    """ANN meaning of an ``if`` (or bistable) node: ``clip(x, 0, threshold)`` per channel."""
    theta = channel_param(node, "threshold", x.ndim)
    return np.minimum(np.maximum(x, 0.0), theta)


def _represents(node, counts, steps):
    return counts * channel_param(node, "threshold", counts.ndim) / steps


# ------------------------------------------------------------------- compare's replays

def replay(current, threshold, v_init="zero", strict=False, reset="subtract", scale=1.0):
    """Replay an IF layer on recorded currents through :func:`if_step_numpy`.

    Parameters
    ----------
    current : ndarray, shape (T, B, C, ...)
    threshold : ndarray, shape (C,)
    strict : bool
        Fire on ``v > theta`` instead of refsnn's ``v >= theta``.
    reset : {"subtract", "zero"}
    scale : float
        Factor on the threshold.

    Returns
    -------
    spikes : bool ndarray, shape (T, B, C, ...)
    pre : ndarray, shape (T, B, C, ...)
        The potential before firing (after adding the current).
    """
    theta = scale * np.asarray(threshold, np.float64).reshape(
        (-1,) + (1,) * (current.ndim - 3))
    u = np.broadcast_to(theta / 2 if v_init == "half" else 0 * theta, current.shape[1:]).copy()
    u = u.astype(current.dtype)
    spikes = np.zeros(current.shape, bool)
    pre = np.zeros_like(current)
    for t in range(current.shape[0]):
        pre[t] = u + current[t]
        # thresholds are positive (the schema and the trace reader check it): a spike's
        # event is > 0
        spikes[t] = if_step_numpy(u, current[t], theta, reset == "zero", strict) > 0
    return spikes, pre


def _replayable(ref):
    return ref.current is not None and ref.threshold is not None


def _own_reset(ref) -> str:
    """The reference layer's reset (traces without one are by subtraction)."""
    return ref.reset or "subtract"


def _strict(ref, other, rtol):
    variant = {"strict": True}
    spikes, _ = replay(ref.current, ref.threshold, ref.v_init, reset=_own_reset(ref), **variant)
    return bool(np.array_equal(spikes, other)), f"replay with {variant} reproduces it"


def _other_reset(ref, other, rtol):
    """The reset the reference does not use: to zero for subtraction, and back."""
    variant = "subtract" if ref.reset == "zero" else "zero"
    spikes, _ = replay(ref.current, ref.threshold, ref.v_init, reset=variant)
    return bool(np.array_equal(spikes, other)), f"replay with reset {variant!r} reproduces it"


def _rounding(ref, other, rtol):
    _, pre = replay(ref.current, ref.threshold, ref.v_init, reset=_own_reset(ref))
    return threshold_margins(ref, other, pre, rtol, "v")


def _threshold(ref, other, rtol):
    return count_ratio(ref, other, rtol, lambda k: replay(
        ref.current, ref.threshold, ref.v_init, scale=k, reset=_own_reset(ref))[0])


def _channel_factors(ref, other, c: int, bits: int = 40, rounds: int = 60):
    """The factors ``k`` on channel ``c``'s threshold whose replay fires as often as ``other``
    in that channel, as an interval ``(lo, hi)`` within ``[2**-bits, 2**bits]`` found by
    ``rounds`` bisections of ``log2 k`` each: ``lo`` the smallest ``k`` firing at most as
    often, ``hi`` the largest firing at least as often. Replayed counts fall as the threshold
    grows; a neuron that fires at most once a step fires as often for any smaller ``k``, so
    ``lo`` can be the bound."""
    current = ref.current[:, :, c:c + 1]
    theta = np.asarray(ref.threshold)[c:c + 1]
    target = int(other[:, :, c].sum())

    def count(log_k):
        spikes, _ = replay(current, theta, ref.v_init, scale=2.0 ** log_k)
        return int(spikes.sum())

    def bisect(above):
        # the edge where above(count) turns false as log2 k grows: (last true, first false)
        lo, hi = -float(bits), float(bits)
        for _ in range(rounds):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if above(count(mid)) else (lo, mid)
        return lo, hi

    _, first_at_most = bisect(lambda n: n > target)
    last_at_least, _ = bisect(lambda n: n >= target)
    return 2.0 ** first_at_most, 2.0 ** last_at_least


def _show_factor(lo, hi, bits: int = 40) -> str:
    if hi <= lo * (1 + 1e-3):
        return f"x {lo:.3g}"
    if lo <= 2.0 ** -bits:
        return f"x <= {hi:.3g}"
    if hi >= 2.0 ** bits:
        return f"x >= {lo:.3g}"
    return f"x {lo:.3g}..{hi:.3g}"


def _channel_threshold(ref, other, rtol):
    if ref.spikes.ndim < 3:
        return False, ""
    differ = [c for c in range(ref.spikes.shape[2])
              if not np.array_equal(ref.spikes[:, :, c], other[:, :, c])]
    factors = {}
    for c in differ:
        lo, hi = _channel_factors(ref, other, c)
        if lo > hi:
            return False, ""  # no factor gives the other's total for this channel
        spikes, _ = replay(ref.current[:, :, c:c + 1], np.asarray(ref.threshold)[c:c + 1],
                           ref.v_init, scale=float(np.sqrt(lo * hi)))
        if np.abs(spikes.sum(0).astype(int) - other[:, :, c:c + 1].sum(0)).max() > 1:
            return False, ""
        factors[c] = (lo, hi)
    if not factors or len(factors) == ref.spikes.shape[2] and \
            max(lo for lo, _ in factors.values()) <= min(hi for _, hi in factors.values()):
        return False, ""  # no difference, or one factor fits all: ``threshold``'s case
    shown = ", ".join(f"{c}: {_show_factor(*k)}" for c, k in list(factors.items())[:4])
    more = f" and {len(factors) - 4} more" if len(factors) > 4 else ""
    return True, (f"{len(factors)} channel(s) with another threshold reproduce the counts "
                  f"({shown}{more})")


#: ``compare``'s hypotheses for IF layers (``docs/semantics.md``, "Comparing traces"), tried
#: in order: the spikes one step late (``delay``); replays with ``v > theta`` (``comparison``),
#: with the other reset (``reset``); every first mismatch within ``rtol * theta`` of the
#: threshold (``rounding``, benign); the threshold times the count ratio reproducing every
#: count within one (``threshold``), or one factor per channel (``channel threshold``).
HYPOTHESES = {"delay": (delay, False), **guarded(_replayable, {
    "comparison": (_strict, False),
    "reset": (_other_reset, False),
    "rounding": (_rounding, True),
    "threshold": (_threshold, False),
    "channel threshold": (_channel_threshold, False),
})}


# ------------------------------------------------------------------------------ NIR export

def _nir_refuse(node):
    if node.attrs["reset"] != "zero":
        return "reset by subtraction (NIR's IF resets to v_reset); convert with --reset zero"
    if node.attrs["v_init"] != "zero":
        return "initial potential θ/2 (a NIR neuron starts at 0); convert with --v-init zero"
    return None


def _nir_export(node, shape):
    """NIR's ``IF`` with ``r = 1``, ``v_reset = 0`` and ``v_threshold = θ⁻``, the largest float
    below ``θ``: ``v > θ⁻ ⇔ v ≥ θ`` for every float ``v`` (``docs/semantics.md``, "NIR
    export"); a NIR spike (1) stands for ``θ``."""
    t = np.asarray(node.params["threshold"])
    unit = np.broadcast_to(t.reshape((-1,) + (1,) * (len(shape) - 1)), shape)
    below = np.nextafter(unit, np.array(-np.inf, unit.dtype))
    return dict(r=np.ones(shape, unit.dtype), v_threshold=np.array(below),
                v_reset=np.zeros(shape, unit.dtype)), unit


#: The IF kind (other modules name its op as ``IF.op``).
IF = register(Kind(
    "if", IFNeurons,
    spec=OpSpec("if", 1,
                attrs={"reset": AttrSpec("str", default="subtract", choices=RESETS),
                       "v_init": AttrSpec("str", default="zero", choices=("zero", "half"))},
                params=("threshold",), param_shapes=threshold_shape,
                out_shape=positive("threshold", expected="positive thresholds")),
    forward=clip_forward, represents=_represents, trace=TraceSpec(), hypotheses=HYPOTHESES,
    legacy="reset", nir=NirSpec("IF", reads=False, export=_nir_export, refuse=_nir_refuse)))
