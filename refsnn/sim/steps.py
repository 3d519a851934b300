"""The synapse ops' step functions: what each non-neuron node does with its inputs' values
of one step, registered in the kind registry (:mod:`refsnn.neurons.base`) beside the neuron
kinds of :mod:`refsnn.neurons`.

Every node of a converted graph becomes one :class:`~refsnn.neurons.base.StepOp`:
``init(batch)`` makes its state, ``step(state, *inputs)`` returns its value for this step
(shape ``(B, *shape)``). The synapse kernels come from a :class:`Backend`, so the NumPy
reference and the Numba simulator share this file and differ only in the kernels they call; a
neuron kind picks its own kernels by the backend's name.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Callable

import numpy as np

import refsnn.neurons  # noqa: F401  (registers the neuron kinds)
from refsnn import ann
from refsnn.model.graph import Graph
from refsnn.model.ops import (POOL_ATTRS, AttrSpec, OpSpec, ShapeRuleError, parse_shape,
                              pool_out, pool_size)
from refsnn.neurons.base import Kind, NirSpec, StepOp, lookup, register
from refsnn.neurons.nir_base import full, same
from refsnn.sim.counting import count_block_numba, count_spikes_numba, count_spikes_numpy
from refsnn.synapses.conv import avgpool_numba, avgpool_numpy, conv_numba, conv_numpy
from refsnn.synapses.linear import linear_numba, linear_numpy
from refsnn.synapses.maxpool import maxpool_spikes_numba, maxpool_spikes_numpy
from refsnn.synapses.weights import Weights
from refsnn.synapses.window import PADS, spread_forward, window_forward


@dataclass(frozen=True)
class Backend:
    """The synapse kernels one simulator uses; every field has the signature of its NumPy
    version. ``name`` also picks each neuron kind's kernels (``StepOp.KERNELS``)."""

    name: str
    linear: Callable
    conv: Callable
    avgpool: Callable
    maxpool_spikes: Callable
    count_spikes: Callable
    #: ``weights(w)``: what a layer passes as the weight of ``linear`` / ``conv`` on every
    #: step. The NumPy reference takes the array itself; the numba kernels take a
    #: :class:`~refsnn.synapses.weights.Weights`, so their layouts are made once per layer.
    weights: Callable
    #: ``K`` steps of ``count_spikes`` in one call (values stacked on a leading step axis), or
    #: None: then a block of steps makes one call per step, as the NumPy reference does.
    count_block: Callable | None = None


def _as_is(w):
    return w


BACKENDS = {
    "numpy": Backend("numpy", linear_numpy, conv_numpy, avgpool_numpy, maxpool_spikes_numpy,
                     count_spikes_numpy, _as_is),
    "numba": Backend("numba", linear_numba, conv_numba, avgpool_numba, maxpool_spikes_numba,
                     count_spikes_numba, Weights, count_block_numba),
}


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

    def __init__(self, node, graph, backend, schedule):
        super().__init__(node, graph, backend, schedule)
        self.forward = ann.FORWARD.get(node.op) or lookup(node.op).forward

    def step(self, state, *xs):
        return self.forward(self.node, *xs)


class StackedForward(ForwardStep):
    """A :class:`ForwardStep` whose ANN function treats every sample alike (flatten,
    identity, add, sum pooling, Hadamard product), so steps may be stacked."""

    stackable = True


class Delay(StepOp):
    """The input's value of ``D = attrs["steps"]`` steps earlier, 0 during steps ``1..D``.

    State: the last inputs, oldest first (at most ``D + 1``). Data movement only, the same
    for both backends; each input is copied, so that a producer reusing its output array
    cannot change what is held.
    """

    stateless = False

    def init(self, batch):
        return deque()

    def step(self, held, x):
        held.append(np.array(x, copy=True))
        return held.popleft() if len(held) > self.node.attrs["steps"] else np.zeros_like(x)


class Recurrent(StepOp):
    """A recurrent edge: the value at step ``t`` is the input's value at step ``t - 1``, zero
    at step 1 (``docs/semantics.md``, "NIR graphs").

    State: one array, the value to give at the next step, set by :meth:`end_step` once every
    node has run the step (the simulator calls it; its input may come after it in the graph's
    order). Data movement only, the same for both backends; the input is copied, so that a
    producer reusing its output array cannot change what is held.
    """

    stateless = False

    def __init__(self, node, graph, backend, schedule):
        super().__init__(node, graph, backend, schedule)
        self.dtype = graph.dtype

    def init(self, batch):
        return [np.zeros((batch,) + self.shape, self.dtype)]

    def step(self, held):
        return held[0]

    def end_step(self, held, x):
        """Hold ``x``, the input's value of the step just simulated, for the next step."""
        held[0] = np.array(x, dtype=self.dtype, copy=True)


def _recurrent_out(attrs, in_shapes, params):
    return parse_shape(attrs["shape"])


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


def sumpool_forward(node, x):
    """Sum pooling of ``x`` (B, C, H, W), zero padding (NIR's ``SumPool2d``): each output
    starts at +0 and adds the window's inputs in row-major window order ``(dy, dx)`` (one
    rounded addition each).

    Returns
    -------
    ndarray, shape (B, C, H_out, W_out)
    """
    (kh, kw), (sh, sw), (ph, pw) = (node.attrs["kernel"], node.attrs["stride"],
                                    node.attrs["padding"])
    b, c, h, w = x.shape
    oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    xp = np.zeros((b, c, h + 2 * ph, w + 2 * pw), x.dtype)
    xp[:, :, ph:ph + h, pw:pw + w] = x
    out = np.zeros((b, c, oh, ow), x.dtype)
    for dy in range(kh):
        for dx in range(kw):
            out += xp[:, :, dy:dy + sh * (oh - 1) + 1:sh, dx:dx + sw * (ow - 1) + 1:sw]
    return out


def hadamard_forward(node, x):
    """``x · factor`` element-wise (one rounded product; NIR's ``Scale``); ``x`` (B, *shape)."""
    return x * node.params["factor"][None]


def _window_out(attrs, in_shapes, params):
    if len(in_shapes[0]) != 3:
        raise ShapeRuleError("input shape", "rank 3 (C, H, W)", str(in_shapes[0]))
    c, h, w = in_shapes[0]
    (kh, kw), (sh, sw), (ph, pw) = attrs["kernel"], attrs["stride"], attrs["padding"]
    oy, ox = attrs["offset"]
    if oy >= kh or ox >= kw:
        raise ShapeRuleError("offset", f"inside the kernel {(kh, kw)}", str((oy, ox)))
    if attrs["pad_mode"] == "edge" and attrs["pad_value"] != 0.0:
        # an edge window never reads pad_value: refuse one that is set, not ignore it
        raise ShapeRuleError("pad_value", "0 (unused) with pad_mode 'edge'",
                             repr(attrs["pad_value"]))
    ceil = attrs["ceil_mode"]
    return (c, pool_size(h, kh, sh, ph, ceil), pool_size(w, kw, sw, pw, ceil))


for _kind in [
    Kind("linear", Linear), Kind("conv2d", Conv2d), Kind("avgpool2d", AvgPool2d),
    Kind("batchnorm", BatchNorm), Kind("maxpool2d", MaxPoolSpikes),
    *(Kind(op, StackedForward) for op in ("flatten", "identity", "add")),
    *(Kind(op, ForwardStep) for op in ("transpose", "mean", "reshape", "scale", "affine",
                                       "concat", "expand", "slice", "upsample", "pad")),
    # One kernel position of a pooling window: out[c, y, x] = in[c, y*sh + oy - ph,
    # x*sw + ox - pw]; outside the input, pad_value ("constant") or the nearest input
    # position ("edge": the row and column clamped into the input). Max pooling becomes a
    # tree of two-input max neurons over these (signGD).
    Kind("window", ForwardStep, forward=window_forward, spec=OpSpec(
        "window", 1,
        attrs={"kernel": AttrSpec("pair", minimum=1), "stride": AttrSpec("pair", minimum=1),
               "padding": AttrSpec("pair", default=(0, 0), minimum=0),
               "offset": AttrSpec("pair", minimum=0),
               "pad_mode": AttrSpec("str", default="constant", choices=tuple(PADS)),
               "pad_value": AttrSpec("float", default=0.0),
               "ceil_mode": AttrSpec("int", default=0, minimum=0)},
        out_shape=_window_out)),
    # A reduction along one axis, broadcast back to the input's shape: the axis "mean", "sum",
    # or "center" (x minus the mean). Linear, so it carries increments unchanged in meaning.
    Kind("spread", ForwardStep, forward=spread_forward, spec=OpSpec(
        "spread", 1,
        attrs={"axis": AttrSpec("str", default="last", choices=("last", "channel")),
               "reduce": AttrSpec("str", choices=("mean", "sum", "center"))})),
    # The input's value of `steps` steps earlier (0 during the first `steps` steps). BSNN
    # puts one on a residual shortcut or concatenation input that comes through a synapse
    # (where no synchronous neuron can relay it) to shift its packets by whole cycles.
    Kind("delay", Delay, forward=lambda node, x: x,
         spec=OpSpec("delay", 1, attrs={"steps": AttrSpec("int", minimum=1)})),
    # A recurrent edge (NIR graphs with cycles): the input's value of the previous step, 0 at
    # step 1; "shape" (its input's shape, e.g. "4" or "2,8") is given since the input may
    # come after it in the graph's order.
    Kind("recurrent", Recurrent, spec=OpSpec(
        "recurrent", 1, attrs={"shape": AttrSpec("str")}, out_shape=_recurrent_out,
        previous=True)),
    # NIR's Scale and SumPool2d (their NIR readers: refsnn.nir.reader)
    Kind("hadamard", StackedForward, forward=hadamard_forward,
         nir=NirSpec("Scale", params={"factor": "scale"}),
         spec=OpSpec("hadamard", 1, params=("factor",), param_shapes=full("factor"),
                     out_shape=same)),
    Kind("sumpool2d", StackedForward, forward=sumpool_forward,
         spec=OpSpec("sumpool2d", 1, attrs=POOL_ATTRS, out_shape=pool_out)),
]:
    register(_kind)
