"""Bistable integrate-and-fire neurons (BSNN, Li et al. 2021), as refsnn defines them.

Op ``bistable``. A bistable neuron is in one of two states for a whole *cycle* of ``P`` steps
(the schedule, the pipeline and why this removes spikes of inactivated neurons are in
``docs/semantics.md``; :class:`BistableNeurons` picks the state from the step count). One
step of a layer, per neuron:

- **integrate** state: ``u <- u + I``; no spike (the event value is 0);
- **fire** state: the input is not integrated; ``s = 1 if u >= theta else 0``,
  ``u <- u - theta * s``, the event value is ``s * theta``;
- **rest** (before the neuron's first integrate cycle): nothing happens and the value is 0.

So a neuron emits, in the fire cycle after an integrate cycle, ``min(P, floor(u / theta))``
spikes of its accumulated potential ``u``, and keeps the remainder: the inputs of a whole cycle
cancel before anything is sent, whatever order they arrived in.

Kernels take arrays flattened per sample: ``u``, ``current`` and the returned events have
shape (B, N); ``theta`` has shape (N,). ``compare`` replays a layer through the NumPy steps
with departures (:func:`replay_bistable`).
"""

from __future__ import annotations

import numpy as np

from refsnn.jit import parallel, prange
from refsnn.model.ops import AttrSpec, OpSpec
from refsnn.neurons.base import (Kind, StepOp, TraceSpec, channel_param, per_neuron,
                                 positive, register, threshold_shape, with_out)
from refsnn.neurons.if_ import clip_forward, fire_numpy
from refsnn.neurons.replay import count_ratio, delay, guarded, threshold_margins


def integrate_numpy(u, current):
    """Integrate state: ``u += current`` in place; returns the events (all 0), shape (B, N)."""
    u += current
    return np.zeros_like(u)


@parallel(work=lambda u, current: u.size)
def _integrate_kernel(u, current):
    for b in prange(u.shape[0]):
        for i in range(u.shape[1]):
            u[b, i] = u[b, i] + current[b, i]


@parallel(work=lambda u, theta, out: u.size)
def _fire_kernel(u, theta, out):
    for b in prange(u.shape[0]):
        for i in range(u.shape[1]):
            if u[b, i] >= theta[i]:
                out[b, i] = theta[i]
                u[b, i] = u[b, i] - theta[i]
            else:
                out[b, i] = 0.0


def integrate_numba(u, current):
    """Numba twin of :func:`integrate_numpy`; bit-identical."""
    _integrate_kernel(u, current)
    return np.zeros_like(u)


#: Numba twin of :func:`fire_numpy` (refsnn's rule, without departures); bit-identical.
fire_numba = with_out(_fire_kernel)


def cycle_state(t: int, period: int, stage: int) -> str:
    """The state of a neuron of pipeline stage ``stage`` at step ``t`` (``t >= 1``).

    Cycle ``c = (t - 1) // period`` (from 0). A neuron of stage ``s >= 1`` rests in cycles
    ``c < s - 1``, integrates in cycles ``s - 1, s + 1, s + 3, ...`` and fires in cycles
    ``s, s + 2, ...``: it emits its ``k``-th packet (k = 0, 1, ...) in cycle ``s + 2k``.

    Returns
    -------
    {"rest", "integrate", "fire"}
    """
    cycle = (t - 1) // period
    if cycle < stage - 1:
        return "rest"
    return "integrate" if (cycle - stage + 1) % 2 == 0 else "fire"


def packets_started(steps: int, period: int, stage: int) -> int:
    """How many fire cycles (packets) a stage-``stage`` neuron has begun within ``steps`` steps."""
    cycles = -(-steps // period)  # cycles with at least one step run
    return max(0, (cycles - stage + 1) // 2)


def packets_completed(steps: int, period: int, stage: int) -> int:
    """How many of the packets arriving at stage ``stage`` (in cycles ``stage, stage + 2, ...``)
    are complete after ``steps`` steps."""
    return max(0, (steps // period - stage + 1) // 2)


KERNELS = {"numpy": {"integrate": integrate_numpy, "fire": fire_numpy},
           "numba": {"integrate": integrate_numba, "fire": fire_numba}}


class BistableNeurons(StepOp):
    """Bistable neurons. State: ``u`` (B, N), the membrane potentials, and the step counter
    ``t``; the layer's state (rest, integrate or fire) follows from ``t``, the period and the
    node's stage.
    """

    is_neuron = True
    stateless = False
    spike_sign = 1  # a spike carries +theta
    KERNELS = KERNELS

    def __init__(self, node, graph, backend, schedule):
        super().__init__(node, graph, backend, schedule)
        self.theta = per_neuron(node.params["threshold"], self.shape)
        self.u0 = self.theta / 2 if node.attrs["v_init"] == "half" else np.zeros_like(self.theta)
        self.period, self.stage = node.attrs["period"], node.attrs["stage"]
        self.actions = {"rest": self._rest, "integrate": self._integrate, "fire": self._fire}

    def init(self, batch):
        return {"u": np.repeat(self.u0[None, :], batch, axis=0), "t": 0}

    def step(self, state, x):
        state["t"] += 1
        out = self.actions[cycle_state(state["t"], self.period, self.stage)](state["u"], x)
        return out.reshape(x.shape)

    def _rest(self, u, x):
        return np.zeros_like(u)

    def _integrate(self, u, x):
        return self.kernels["integrate"](u, np.ascontiguousarray(x.reshape(u.shape)))

    def _fire(self, u, x):
        return self.kernels["fire"](u, self.theta)

    def potential(self, state):
        u = state["u"]
        return u.reshape((u.shape[0],) + self.shape)


def _represents(node, counts, steps):
    # a bistable neuron's spikes come in packets of at most `period` per fire cycle
    theta = channel_param(node, "threshold", counts.ndim)
    packets = packets_started(steps, node.attrs["period"], node.attrs["stage"])
    return counts * theta / (node.attrs["period"] * packets) if packets else 0.0 * counts


# ------------------------------------------------------------------- compare's replays

def replay_bistable(current, threshold, v_init, period, stage, strict=False, reset="subtract",
                    scale=1.0, shift=0):
    """Replay a bistable layer on recorded inputs through :func:`integrate_numpy` and
    :func:`fire_numpy` (refsnn's rule; departures by keyword).

    Parameters
    ----------
    current : ndarray, shape (T, B, C, ...)
        The layer's input at every step.
    threshold : ndarray, shape (C,)
    v_init : {"zero", "half"}
    period, stage : int
    strict : bool
        Fire on ``u > theta`` instead of ``u >= theta``.
    reset : {"subtract", "zero"}
    scale : float
        Factor on the threshold.
    shift : int
        The layer's cycles start ``shift`` steps late (negative: early): step ``t`` is in the
        state refsnn gives step ``t - shift`` (a state before step 1 is rest). A stage off by
        one is ``shift = ±period``.

    Returns
    -------
    spikes : bool ndarray, shape (T, B, C, ...)
    pre : ndarray, shape (T, B, C, ...)
        The potential compared with the threshold at fire steps; NaN at other steps.
    """
    dtype = current.dtype
    theta = (scale * np.asarray(threshold, np.float64)).astype(dtype).reshape(
        (-1,) + (1,) * (current.ndim - 3))
    u = np.broadcast_to(theta / 2 if v_init == "half" else 0 * theta,
                        current.shape[1:]).astype(dtype)
    spikes = np.zeros(current.shape, bool)
    pre = np.full(current.shape, np.nan, dtype)
    for t in range(1, current.shape[0] + 1):
        s = t - shift
        state = "rest" if s < 1 else cycle_state(s, period, stage)
        if state == "integrate":
            integrate_numpy(u, current[t - 1])
        elif state == "fire":
            pre[t - 1] = u
            # thresholds are positive (schema, trace reader): a spike's event is > 0
            spikes[t - 1] = fire_numpy(u, theta, strict, reset == "zero") > 0
    return spikes, pre


def _replayable(ref):
    return (ref.current is not None and ref.threshold is not None
            and {"period", "stage"} <= set(ref.params))


def _replay(ref, **variant):
    return replay_bistable(ref.current, ref.threshold, ref.v_init or "zero",
                           int(ref.params["period"]), int(ref.params["stage"]), **variant)


def _exact(**variant):
    def test(ref, other, rtol):
        spikes, _ = _replay(ref, **variant)
        return bool(np.array_equal(spikes, other)), f"replay with {variant} reproduces it"
    return test


def _phase(ref, other, rtol):
    """Cycles shifted by ``d`` steps, ``0 < |d| <= 2 P``, smallest ``|d|`` first, late (d > 0)
    before early: with an input that is the same every step, a layer one stage late and one
    whose first cycle is an (empty) fire cycle emit the same spikes."""
    period = int(ref.params["period"])
    shifts = sorted((d for d in range(-2 * period, 2 * period + 1) if d),
                    key=lambda d: (abs(d), -d))
    for d in shifts:
        spikes, _ = _replay(ref, shift=d)
        if np.array_equal(spikes, other):
            stage = f" (stage off by {d // period:+d})" if d % period == 0 else ""
            return True, f"cycles {abs(d)} step(s) {'late' if d > 0 else 'early'}{stage}"
    return False, ""


def _rounding(ref, other, rtol):
    _, pre = _replay(ref)  # NaN (not a tie) outside fire steps
    return threshold_margins(ref, other, pre, rtol, "u")


def _threshold(ref, other, rtol):
    return count_ratio(ref, other, rtol, lambda k: _replay(ref, scale=k)[0])


def _is_count(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1


register(Kind(
    "bistable", BistableNeurons,
    # integrate for a cycle of `period` steps, then fire for one; `stage` is the cycle of the
    # first fire state (pipeline position). role "sync": a synchronous neuron, a relay that
    # delays a residual shortcut by one cycle.
    spec=OpSpec("bistable", 1,
                attrs={"period": AttrSpec("int", minimum=1), "stage": AttrSpec("int", minimum=1),
                       "v_init": AttrSpec("str", default="half", choices=("zero", "half")),
                       "role": AttrSpec("str", default="neuron", choices=("neuron", "sync"))},
                params=("threshold",), param_shapes=threshold_shape,
                out_shape=positive("threshold", expected="positive thresholds")),
    forward=clip_forward, represents=_represents,
    trace=TraceSpec(params=lambda op: {"period": int(op.period), "stage": int(op.stage)},
                    checks={"period": (_is_count, "an integer >= 1"),
                            "stage": (_is_count, "an integer >= 1")}),
    hypotheses={"delay": (delay, False), **guarded(_replayable, {
        "phase": (_phase, False), "comparison": (_exact(strict=True), False),
        "reset": (_exact(reset="zero"), False), "rounding": (_rounding, True),
        "threshold": (_threshold, False)})},
    nir_refusal="a BSNN bistable neuron (integrate/fire cycles) has no NIR equivalent; "
                "convert with --method if --reset zero"))
