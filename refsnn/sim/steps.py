"""Per-operator step functions: what each node does with its inputs' values of one step.

Every node of a converted graph becomes one :class:`StepOp`: ``init(batch)`` makes its state,
``step(state, *inputs)`` returns its value for this step (shape ``(B, *shape)``). The kernels
come from a :class:`Backend`, so the NumPy reference and the Numba simulator share this file
and differ only in the kernels they call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from refsnn import ann
from refsnn.model.graph import Graph, Node
from refsnn.neurons.bistable import (cycle_state, fire_numba, fire_numpy, integrate_numba,
                                     integrate_numpy)
from refsnn.neurons.if_ import if_block_numba, if_step_numba, if_step_numpy
from refsnn.neurons.signgd import (reach, signgd_fire_numba, signgd_fire_numpy, step_size,
                                   target_value)
from refsnn.sim.counting import count_block_numba, count_spikes_numba, count_spikes_numpy
from refsnn.synapses.conv import avgpool_numba, avgpool_numpy, conv_numba, conv_numpy
from refsnn.synapses.linear import linear_numba, linear_numpy
from refsnn.synapses.maxpool import maxpool_spikes_numba, maxpool_spikes_numpy
from refsnn.synapses.weights import Weights
from refsnn.synapses.window import spread_forward, window_forward


@dataclass(frozen=True)
class Backend:
    """The kernels one simulator uses; every field has the signature of its NumPy version."""

    name: str
    linear: Callable
    conv: Callable
    avgpool: Callable
    maxpool_spikes: Callable
    if_step: Callable
    signgd_fire: Callable
    bistable_integrate: Callable
    bistable_fire: Callable
    count_spikes: Callable
    #: ``weights(w)``: what a layer passes as the weight of ``linear`` / ``conv`` on every
    #: step. The NumPy reference takes the array itself; the numba kernels take a
    #: :class:`~refsnn.synapses.weights.Weights`, so their layouts are made once per layer.
    weights: Callable
    #: ``K`` steps of ``if_step`` / ``count_spikes`` in one call (inputs stacked on a leading
    #: step axis), or None: then a block of steps makes one call per step, as the NumPy
    #: reference does (and a test replacing ``if_step`` reaches every step).
    if_block: Callable | None = None
    count_block: Callable | None = None


def _as_is(w):
    return w


BACKENDS = {
    "numpy": Backend("numpy", linear_numpy, conv_numpy, avgpool_numpy, maxpool_spikes_numpy,
                     if_step_numpy, signgd_fire_numpy, integrate_numpy, fire_numpy,
                     count_spikes_numpy, _as_is),
    "numba": Backend("numba", linear_numba, conv_numba, avgpool_numba, maxpool_spikes_numba,
                     if_step_numba, signgd_fire_numba, integrate_numba, fire_numba,
                     count_spikes_numba, Weights, if_block_numba, count_block_numba),
}


class StepOp:
    """A stateless node; subclasses override :meth:`step` and, if stateful, :meth:`init`
    and set :attr:`stateless` to False."""

    is_neuron = False
    #: The step's value is a function of the inputs' values of that step only (no state), so
    #: equal inputs give an equal value: the simulator may reuse it (see ``Simulator.run``).
    stateless = True
    #: Stateless, and each sample's value computed from that sample's inputs alone, by the same
    #: arithmetic whatever the batch size: the simulator may then stack several steps' inputs
    #: along the batch axis and make one call for them (see ``Simulator``'s ``step_block``).
    stackable = False
    #: A neuron node that can run a block of steps in one call (:meth:`step_block`).
    block_steps = False

    def __init__(self, node: Node, graph: Graph, backend: Backend, schedule):
        self.node = node
        self.shape = graph.shapes[node.name]
        self.backend = backend

    def init(self, batch: int):
        return None

    #: Neuron nodes: a neuron spiked at a step where its value has this sign (1: ``> 0``,
    #: -1: ``< 0``); see :mod:`refsnn.sim.counting`.
    spike_sign = 0

    def fired(self, value):
        """Which neurons of a neuron node spiked, from one step's value: bool, same shape."""
        return value > 0 if self.spike_sign > 0 else value < 0

    def step(self, state, *xs):
        raise NotImplementedError


class Linear(StepOp):
    stackable = True

    def __init__(self, node, graph, backend, schedule):
        super().__init__(node, graph, backend, schedule)
        self.w_t = backend.weights(np.ascontiguousarray(node.params["weight"].T))
        self.bias = np.asarray(node.params["bias"])

    def step(self, state, x):
        # over the last axis: every leading axis is a row of its own
        rows = np.ascontiguousarray(x.reshape(-1, x.shape[-1]))
        out = self.backend.linear(rows, self.w_t, self.bias)
        return out.reshape(x.shape[:-1] + (out.shape[-1],))


class Conv2d(StepOp):
    stackable = True

    def __init__(self, node, graph, backend, schedule):
        super().__init__(node, graph, backend, schedule)
        self.weight = backend.weights(np.asarray(node.params["weight"]))
        self.bias = np.asarray(node.params["bias"])

    def step(self, state, x):
        a = self.node.attrs
        return self.backend.conv(x, self.weight, self.bias, a["stride"], a["padding"],
                                 a["groups"])


class AvgPool2d(StepOp):
    stackable = True

    def step(self, state, x):
        a = self.node.attrs
        return self.backend.avgpool(x, a["kernel"], a["stride"], a["padding"])


class BatchNorm(StepOp):
    """An unfolded batchnorm: a per-channel affine map ``x * scale + shift`` of each step."""

    stackable = True

    def __init__(self, node, graph, backend, schedule):
        super().__init__(node, graph, backend, schedule)
        p = node.params
        scale = p["gamma"] / np.sqrt(p["var"] + node.attrs["eps"])
        extra = (1,) * (len(self.shape) - 1)
        self.scale = scale.reshape((1, -1) + extra)
        self.shift = (p["beta"] - p["mean"] * scale).reshape((1, -1) + extra)

    def step(self, state, x):
        return x * self.scale + self.shift


class ForwardStep(StepOp):
    """Operators whose step is their ANN function applied to the step's value: transpose,
    mean, reshape, layer scale, per-axis affine, concatenation, broadcasting, nearest
    upsampling, zero padding, and signGD's window and spread. They have no
    kernel (NumPy data movement, reductions or element-wise products, the same for both
    backends); being affine, they map time averages (IF) and increments plus constants
    (signGD) correctly."""

    FORWARD = {**ann.FORWARD, "window": window_forward, "spread": spread_forward}

    def step(self, state, *xs):
        return self.FORWARD[self.node.op](self.node, *xs)


class Flatten(StepOp):
    stackable = True

    def step(self, state, x):
        return x.reshape(x.shape[0], -1)


class Identity(StepOp):
    stackable = True

    def step(self, state, x):
        return x


class Delay(StepOp):
    """``delay``: the input's value of ``steps`` steps before (0 until then). A copy through a
    ring buffer, so no kernel (and no twin) is needed: both backends run this code.

    State: ``buffer`` (steps, B, *shape), the last ``steps`` inputs, and ``t``, the steps
    done. At step ``t`` (from 1), slot ``(t - 1) % steps`` holds the input of step
    ``t - steps`` (zeros before any was written): it is returned, then overwritten with the
    input of step ``t``.
    """

    stateless = False

    def __init__(self, node, graph, backend, schedule):
        super().__init__(node, graph, backend, schedule)
        self.steps = node.attrs["steps"]
        self.dtype = graph.dtype

    def init(self, batch):
        return {"buffer": np.zeros((self.steps, batch) + self.shape, self.dtype), "t": 0}

    def step(self, state, x):
        slot = state["t"] % self.steps
        out = state["buffer"][slot].copy()  # the input of step t + 1 - steps (0 before)
        state["buffer"][slot] = x
        state["t"] += 1
        return out


class Add(StepOp):
    stackable = True

    def step(self, state, *xs):
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out


def channel_thresholds(graph: Graph, name: str) -> np.ndarray:
    """The per-channel thresholds (C,) of a neuron node, or of a channel concatenation of
    neuron nodes (the spikes max pooling reads)."""
    node = graph.node(name)
    if node.op == "concat":
        return np.concatenate([channel_thresholds(graph, i) for i in node.inputs])
    return np.asarray(node.params["threshold"])


class MaxPoolSpikes(StepOp):
    """Max pooling of spike trains (see :mod:`refsnn.synapses.maxpool`)."""

    stateless = False

    def __init__(self, node, graph, backend, schedule):
        super().__init__(node, graph, backend, schedule)
        self.in_shape = graph.shapes[node.inputs[0]]
        self.theta = channel_thresholds(graph, node.inputs[0])

    def init(self, batch):
        return (np.zeros((batch,) + self.in_shape, np.int64),
                np.zeros((batch,) + self.shape, np.int64))

    def step(self, state, x):
        a = self.node.attrs
        return self.backend.maxpool_spikes(x, state[0], state[1], self.theta, a["kernel"],
                                           a["stride"], a["padding"])


def per_neuron(per_channel: np.ndarray, shape: tuple) -> np.ndarray:
    """A per-channel parameter, shape (C,), repeated for every neuron of a (C, ...) node: (N,)."""
    return np.ascontiguousarray(np.repeat(np.asarray(per_channel), int(np.prod(shape[1:]))))


class IFNeurons(StepOp):
    """IF neurons; the state is the membrane potential, shape (B, N)."""

    is_neuron = True
    stateless = False
    spike_sign = 1  # a spike carries +theta

    def __init__(self, node, graph, backend, schedule):
        super().__init__(node, graph, backend, schedule)
        self.theta = per_neuron(node.params["threshold"], self.shape)
        self.reset_zero = node.attrs["reset"] == "zero"
        self.u0 = self.theta / 2 if node.attrs["v_init"] == "half" else np.zeros_like(self.theta)

    def init(self, batch):
        return np.repeat(self.u0[None, :], batch, axis=0)

    block_steps = True

    def step(self, u, x):
        out = self.backend.if_step(u, np.ascontiguousarray(x.reshape(u.shape)), self.theta,
                                   self.reset_zero)
        return out.reshape(x.shape)

    def step_block(self, u, x):
        """Steps ``1..K`` of a block in order: ``x`` (K, B, *shape) -> values (K, B, *shape)."""
        currents = np.ascontiguousarray(x.reshape((x.shape[0],) + u.shape))
        if self.backend.if_block is None:
            out = np.stack([self.backend.if_step(u, c, self.theta, self.reset_zero)
                            for c in currents])
        else:
            out = self.backend.if_block(u, currents, self.theta, self.reset_zero)
        return out.reshape(x.shape)

    def potential(self, u):
        return u.reshape((u.shape[0],) + self.shape)

    def saturated(self, u):
        """IF neurons cannot saturate silently: clipping at theta is part of the method."""
        return None


class BistableNeurons(StepOp):
    """Bistable neurons (see :mod:`refsnn.neurons.bistable`).

    State: ``u`` (B, N), the membrane potentials, and the step counter ``t``; the layer's
    state (rest, integrate or fire) follows from ``t``, the period and the node's stage.
    """

    is_neuron = True
    stateless = False
    spike_sign = 1  # a spike carries +theta

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
        return self.backend.bistable_integrate(u, np.ascontiguousarray(x.reshape(u.shape)))

    def _fire(self, u, x):
        return self.backend.bistable_fire(u, self.theta)

    def potential(self, state):
        u = state["u"]
        return u.reshape((u.shape[0],) + self.shape)

    def saturated(self, state):
        """Like IF neurons, bistable neurons clip at theta per step by design."""
        return None


class SignGDNeurons(StepOp):
    """signGD neurons (see :mod:`refsnn.neurons.signgd`).

    State: ``x`` (one input estimate per input, (B, *shape) each), ``v`` (B, N), the step
    counter ``t`` and the last target (B, N), kept to report saturation.
    """

    is_neuron = True
    stateless = False
    spike_sign = -1  # a spike (s = 1) lowers the estimate: its increment is negative

    def __init__(self, node, graph, backend, schedule):
        super().__init__(node, graph, backend, schedule)
        self.fn = node.attrs["fn"]
        self.inclusive = node.attrs["tie"] == "inclusive"
        self.scale = np.ascontiguousarray(np.asarray(node.params["scale"]).reshape(-1))
        self.x_init = np.asarray(node.params["x_init"])
        self.eta0, self.gamma = schedule["eta0"], schedule["gamma"]
        self.reach = reach(self.eta0, self.gamma)

    def init(self, batch):
        n = self.scale.size
        return {"x": [np.repeat(xi[None], batch, axis=0) for xi in self.x_init],
                "v": np.zeros((batch, n), self.scale.dtype), "t": 0,
                "target": np.zeros((batch, n), self.scale.dtype)}

    def step(self, state, *xs):
        state["t"] += 1
        for x_hat, increment in zip(state["x"], xs):
            x_hat += increment
        target = target_value(self.fn, self.node.attrs, state["x"])
        target = np.ascontiguousarray((target / self.scale.reshape(self.shape)).reshape(
            state["v"].shape), dtype=state["v"].dtype)
        state["target"] = target
        eta = step_size(self.eta0, self.gamma, state["t"])
        out = self.backend.signgd_fire(state["v"], target, eta, self.inclusive, self.scale)
        return out.reshape((out.shape[0],) + self.shape)

    def potential(self, state):
        return (state["v"] * self.scale).reshape((state["v"].shape[0],) + self.shape)

    def saturated(self, state):
        """Neurons that can no longer reach their last target, (B, *shape) bool.

        After step ``t`` the estimate can still travel ``sum_{k > t} eta_k =
        gamma * eta_t / (1 - gamma)``; a neuron further than that from its target (beyond the
        reach, or stuck because its target moved away while the steps shrank) is saturated.
        """
        t = state["t"]
        left = self.gamma * step_size(self.eta0, self.gamma, t) / (1.0 - self.gamma) if t \
            else self.reach
        return (np.abs(state["target"] - state["v"]) > left).reshape((-1,) + self.shape)


STEP_OPS: dict[str, type[StepOp]] = {
    "linear": Linear, "conv2d": Conv2d, "avgpool2d": AvgPool2d, "batchnorm": BatchNorm,
    "flatten": Flatten, "identity": Identity, "add": Add, "maxpool2d": MaxPoolSpikes,
    "if": IFNeurons, "bistable": BistableNeurons, "sgd": SignGDNeurons, "delay": Delay,
    **{op: ForwardStep for op in ("transpose", "mean", "reshape", "scale", "affine", "window",
                                  "spread", "concat", "expand", "slice", "upsample", "pad")},
}
