"""NIR's threshold (``nir.Threshold``), op ``threshold``: a stateless Heaviside step.

``z = 1 if I > threshold else 0`` (strict, as NIR writes it), per element, every step.
``current`` and the events have shape (B, N); ``threshold`` (N,).
"""

from __future__ import annotations

import numpy as np

from refsnn.jit import parallel, prange
from refsnn.model.ops import OpSpec
from refsnn.neurons.base import Kind, NirSpec, StepOp, register, with_out
from refsnn.neurons.nir_base import flat, full, same


def threshold_step_numpy(current, threshold):
    """Reference step: the events (0 or 1), shape (B, N)."""
    return (current > threshold).astype(current.dtype)


@parallel(work=lambda current, threshold, out: current.size)
def _threshold_kernel(current, threshold, out):
    for b in prange(current.shape[0]):
        for i in range(current.shape[1]):
            out[b, i] = 1.0 if current[b, i] > threshold[i] else 0.0


#: Numba twin of :func:`threshold_step_numpy`; bit-identical.
threshold_step_numba = with_out(_threshold_kernel)


class Threshold(StepOp):
    """A stateless Heaviside step; its state keeps the last input, shown as its potential."""

    is_neuron, spike_sign, stateless = True, 1, False
    KERNELS = {"numpy": {"step": threshold_step_numpy}, "numba": {"step": threshold_step_numba}}

    def __init__(self, node, graph, backend, schedule):
        super().__init__(node, graph, backend, schedule)
        self.theta = flat(node, "threshold")

    def init(self, batch):
        return {"last": np.zeros((batch, self.theta.size), self.theta.dtype)}

    def step(self, state, x):
        current = np.ascontiguousarray(x.reshape(state["last"].shape))
        state["last"] = current.copy()
        return self.kernels["step"](current, self.theta).reshape(x.shape)

    def potential(self, state):
        last = state["last"]
        return last.reshape((last.shape[0],) + self.shape)


register(Kind("threshold", Threshold,
              spec=OpSpec("threshold", 1, params=("threshold",),
                          param_shapes=full("threshold"), out_shape=same),
              nir=NirSpec("Threshold")))
