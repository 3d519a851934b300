"""Step functions of the NIR operators (:mod:`refsnn.sim.nir_ops`).

Each neuron op picks its kernel by the simulator's backend name (the NumPy reference or its
Numba twin, bit-identical); ``sumpool2d`` and ``hadamard`` are NumPy data movement and
element-wise products, the same for both backends. The derived constants of the forward
Euler step (``g = fl(dt·r)``, ``d = fl(dt/τ)``) are computed once per layer from
``schedule["dt"]``.
"""

from __future__ import annotations

import numpy as np

from refsnn.neurons.integrator import integrator_step_numba, integrator_step_numpy
from refsnn.neurons.li import li_step_numba, li_step_numpy
from refsnn.neurons.lif import lif_step_numba, lif_step_numpy
from refsnn.neurons.nir_if import nir_if_step_numba, nir_if_step_numpy
from refsnn.neurons.threshold import threshold_step_numba, threshold_step_numpy
from refsnn.sim.nir_ops import hadamard_forward, sumpool_forward
from refsnn.sim.steps import StepOp

#: Backend name -> kernel name -> kernel.
KERNELS = {
    "numpy": {"nir_if": nir_if_step_numpy, "lif": lif_step_numpy, "li": li_step_numpy,
              "integrator": integrator_step_numpy, "threshold": threshold_step_numpy},
    "numba": {"nir_if": nir_if_step_numba, "lif": lif_step_numba, "li": li_step_numba,
              "integrator": integrator_step_numba, "threshold": threshold_step_numba},
}


def _flat(node, name):
    return np.ascontiguousarray(np.asarray(node.params[name]).reshape(-1))


def _dt(node, schedule):
    """The time step from the network's schedule, as the parameters' dtype."""
    dt = schedule.get("dt") if schedule else None
    if dt is None:
        raise ValueError(f"node '{node.name}': a NIR network needs schedule['dt']")
    return np.asarray(dt, dtype=np.asarray(node.params[next(iter(node.params))]).dtype)


class _NirState(StepOp):
    """A NIR node with a potential ``v`` (B, N), initially 0 (NIR gives no initial state)."""

    stateless = False
    kernel = ""

    def __init__(self, node, graph, backend, schedule):
        super().__init__(node, graph, backend, schedule)
        self.step_kernel = KERNELS[backend.name][self.kernel]
        self.n = int(np.prod(self.shape))
        self.dt = _dt(node, schedule)
        self.args = self.constants(node, self.dt)

    def init(self, batch):
        return np.zeros((batch, self.n), self.args[0].dtype)

    def step(self, v, x):
        out = self.step_kernel(v, np.ascontiguousarray(x.reshape(v.shape)), *self.args)
        return out.reshape(x.shape)

    def potential(self, v):
        return v.reshape((v.shape[0],) + self.shape)

    def saturated(self, v):
        return None


class NirIF(_NirState):
    is_neuron, spike_sign, kernel = True, 1, "nir_if"

    def constants(self, node, dt):
        return (dt * _flat(node, "r"), _flat(node, "v_threshold"), _flat(node, "v_reset"))


class Lif(_NirState):
    is_neuron, spike_sign, kernel = True, 1, "lif"

    def constants(self, node, dt):
        return (dt / _flat(node, "tau"), _flat(node, "r"), _flat(node, "v_leak"),
                _flat(node, "v_threshold"), _flat(node, "v_reset"))


class Li(_NirState):
    kernel = "li"

    def constants(self, node, dt):
        return (dt / _flat(node, "tau"), _flat(node, "r"), _flat(node, "v_leak"))


class Integrator(_NirState):
    kernel = "integrator"

    def constants(self, node, dt):
        return (dt * _flat(node, "r"),)


class Threshold(StepOp):
    """A stateless Heaviside step; its state keeps the last input, shown as its potential."""

    is_neuron, spike_sign, stateless = True, 1, False

    def __init__(self, node, graph, backend, schedule):
        super().__init__(node, graph, backend, schedule)
        self.step_kernel = KERNELS[backend.name]["threshold"]
        self.theta = _flat(node, "threshold")

    def init(self, batch):
        return {"last": np.zeros((batch, self.theta.size), self.theta.dtype)}

    def step(self, state, x):
        current = np.ascontiguousarray(x.reshape(state["last"].shape))
        state["last"] = current.copy()
        return self.step_kernel(current, self.theta).reshape(x.shape)

    def potential(self, state):
        last = state["last"]
        return last.reshape((last.shape[0],) + self.shape)

    def saturated(self, state):
        return None


class SumPool2d(StepOp):
    stackable = True

    def step(self, state, x):
        return sumpool_forward(self.node, x)


class Hadamard(StepOp):
    stackable = True

    def step(self, state, x):
        return hadamard_forward(self.node, x)


NIR_STEP_OPS = {"nir_if": NirIF, "lif": Lif, "li": Li, "integrator": Integrator,
                "threshold": Threshold, "sumpool2d": SumPool2d, "hadamard": Hadamard}
