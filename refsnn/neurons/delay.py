"""NIR's delay (``nir.Delay``): op ``nir_delay``, a stateful non-neuron node.

(BSNN's ``delay`` op, :mod:`refsnn.sim.steps`, delays a whole tensor by a whole number of
steps given as an attribute; this one delays each element by its own time, read from NIR.)

NIR states ``y(t) = x(t − τ)`` per element, ``τ`` the node's ``delay`` (time units). With the
time step ``dt`` each element's delay is ``d = τ/dt`` whole steps: the NIR reader refuses a
delay with ``|τ/dt − round(τ/dt)| > TOLERANCE·max(1, round(τ/dt))`` (:data:`TOLERANCE`) or
``τ < 0``, naming the file, the node and the field; ``d = round(τ/dt)``. At step ``t``
(1-based) the value is ``y[t] = x[t − d]``, and 0 for ``t ≤ d`` (NIR gives no history): no
arithmetic, so every value is a copy of an input value.

The state is a ring buffer of ``L = max(d) + 1`` slots per element, initially 0: step ``t``
writes ``x[t]`` into slot ``s = (t − 1) mod L`` and reads slot ``(s − d) mod L`` (a slot not
yet written holds 0). Arrays are flattened per sample: ``buffer`` (B, L, N), ``current``
and the value (B, N), ``steps`` (N,) int64.
"""

from __future__ import annotations

import numpy as np

from refsnn.jit import parallel, prange
from refsnn.model.ops import OpSpec, ShapeRuleError
from refsnn.neurons.base import Kind, NirSpec, StepOp, register
from refsnn.neurons.nir_base import full, same, time_step

#: Relative tolerance on ``delay/dt`` being a whole number of steps (float32 delays such as
#: ``fl32(0.002)/0.0001 = 20.00000095`` are off by about 5e-8).
TOLERANCE = 1e-6


def delay_step_numpy(buffer, slot, current, steps):
    """Reference step: write ``current`` into ``slot``, return the value read ``steps``
    slots back, shape (B, N)."""
    buffer[:, slot, :] = current
    back = (slot - steps) % buffer.shape[1]
    return buffer[:, back, np.arange(buffer.shape[2])]


@parallel(work=lambda buffer, slot, current, steps, out: current.size)
def _delay_kernel(buffer, slot, current, steps, out):
    length = buffer.shape[1]
    for b in prange(current.shape[0]):
        for k in range(current.shape[1]):
            buffer[b, slot, k] = current[b, k]
            out[b, k] = buffer[b, (slot - steps[k]) % length, k]


def delay_step_numba(buffer, slot, current, steps):
    """Numba twin of :func:`delay_step_numpy`; bit-identical."""
    out = np.empty_like(current)
    _delay_kernel(buffer, slot, current, steps, out)
    return out


def whole_steps(delay, dt):
    """The delays ``delay`` (time units, float64) in whole steps of ``dt``: int64, same shape;
    raises :class:`ShapeRuleError` on a negative or fractional one."""
    ratio = np.asarray(delay, np.float64) / float(dt)
    steps = np.round(ratio)
    bad = (ratio < 0) | (np.abs(ratio - steps) > TOLERANCE * np.maximum(1.0, np.abs(steps)))
    if np.any(bad):
        first = np.asarray(delay).reshape(-1)[np.flatnonzero(bad.reshape(-1))[0]]
        raise ShapeRuleError("delay", f"non-negative whole multiples of dt = {float(dt)} "
                             f"(within {TOLERANCE:g} of a step)", f"{float(first)!r}")
    return steps.astype(np.int64)


class Delay(StepOp):
    """The ring buffer of :mod:`refsnn.neurons.delay`."""

    stateless = False
    KERNELS = {"numpy": {"step": delay_step_numpy}, "numba": {"step": delay_step_numba}}

    def __init__(self, node, graph, backend, schedule):
        super().__init__(node, graph, backend, schedule)
        dt = time_step(node, schedule)
        try:
            self.steps = np.ascontiguousarray(whole_steps(node.params["delay"], dt).reshape(-1))
        except ShapeRuleError as e:
            raise ValueError(f"node '{node.name}': {e}") from None
        self.length = int(self.steps.max(initial=0)) + 1

    def init(self, batch):
        dtype = np.asarray(self.node.params["delay"]).dtype
        return {"buffer": np.zeros((batch, self.length, self.steps.size), dtype), "t": 0}

    def step(self, state, x):
        slot = state["t"] % self.length
        state["t"] += 1
        current = np.ascontiguousarray(x.reshape(x.shape[0], -1))
        return self.kernels["step"](state["buffer"], slot, current, self.steps).reshape(x.shape)


def _check(params, dt, attrs):
    whole_steps(params["delay"], dt)


register(Kind("nir_delay", Delay,
              spec=OpSpec("nir_delay", 1, params=("delay",), param_shapes=full("delay"),
                          out_shape=same),
              nir=NirSpec("Delay", timed=True, check=_check,
                          export=lambda node, shape: (
                              {"delay": np.array(node.params["delay"]).reshape(shape)}, None))))
