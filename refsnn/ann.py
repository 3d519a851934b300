"""The plain NumPy reference forward pass of a :class:`~refsnn.model.graph.Graph`.

Written for obviousness, in the graph's dtype (float64 by default). Every SNN result in refsnn
is compared with this. Arrays carry a leading batch axis: ``(B, *shape)``.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
from scipy.special import erf, expit

from refsnn.checks import check_batch
from refsnn.model.graph import INPUT, Graph, Node
from refsnn.model.ops import (axis_index, mean_axes, parse_perm, parse_shape, pool_overhang,
                              pool_size)


def _linear(node: Node, x):
    # Over the last axis, whatever the rank, like torch.nn.Linear.
    return x @ node.params["weight"].T + node.params["bias"]


def _windows(x, kh, kw, sh, sw, ho, wo):
    """Yield ``(ky, kx, view)``: the input values seen by kernel position (ky, kx)."""
    for ky in range(kh):
        for kx in range(kw):
            yield ky, kx, x[:, :, ky:ky + sh * (ho - 1) + 1:sh, kx:kx + sw * (wo - 1) + 1:sw]


def _conv2d(node: Node, x):
    w, b = node.params["weight"], node.params["bias"]
    o, cg, kh, kw = w.shape
    g = node.attrs["groups"]
    sh, sw = node.attrs["stride"]
    ph, pw = node.attrs["padding"]
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    ho = (xp.shape[2] - kh) // sh + 1
    wo = (xp.shape[3] - kw) // sw + 1
    og = o // g
    out = np.zeros((x.shape[0], o, ho, wo), dtype=x.dtype)
    for gi in range(g):
        xg = xp[:, gi * cg:(gi + 1) * cg]
        wg = w[gi * og:(gi + 1) * og]
        for ky, kx, view in _windows(xg, kh, kw, sh, sw, ho, wo):
            out[:, gi * og:(gi + 1) * og] += np.einsum("bchw,oc->bohw", view, wg[:, :, ky, kx])
    return out + b[None, :, None, None]


def _batchnorm(node: Node, x):
    p = node.params
    scale = p["gamma"] / np.sqrt(p["var"] + node.attrs["eps"])
    mean, scale, beta = (_along(v, 1, x.ndim) for v in (p["mean"], scale, p["beta"]))
    return (x - mean) * scale + beta


def _pool(node: Node, x, pad_value, reduce):
    kh, kw = node.attrs["kernel"]
    sh, sw = node.attrs["stride"]
    ph, pw = node.attrs["padding"]
    ceil = node.attrs.get("ceil_mode", 0)
    ho = pool_size(x.shape[2], kh, sh, ph, ceil)
    wo = pool_size(x.shape[3], kw, sw, pw, ceil)
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph + pool_overhang(x.shape[2], kh, sh, ph, ho)),
                    (pw, pw + pool_overhang(x.shape[3], kw, sw, pw, wo))),
                constant_values=pad_value)
    return reduce([view for _, _, view in _windows(xp, kh, kw, sh, sw, ho, wo)])


def _avgpool2d(node: Node, x):
    # Padding counts as zeros and the divisor is always the kernel area (PyTorch's default).
    kh, kw = node.attrs["kernel"]
    return _pool(node, x, 0.0, lambda views: sum(views) / (kh * kw))


def _maxpool2d(node: Node, x):
    return _pool(node, x, -np.inf, lambda views: np.maximum.reduce(views))


def _add(node: Node, *xs):
    out = xs[0]
    for x in xs[1:]:
        out = out + x
    return out


def _gelu(node: Node, x):
    # math (not numpy) constants are Python floats, which keep float32 arrays float32
    if node.attrs["approximate"] == "tanh":
        return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))  # x * Phi(x), Phi the normal CDF


def _leaky_relu(node: Node, x):
    return np.where(x >= 0, x, node.attrs["slope"] * x)


def _hardtanh(node: Node, x):
    return np.clip(x, node.attrs["min_value"], node.attrs["max_value"])


def qcfs(x, clip, levels: int):
    """The QCFS activation ``clip · floor(min(max(x / clip, 0), 1) · levels + 1/2) / levels``.

    ``x / clip`` is clamped to ``[0, 1]`` *before* the floor, the form the NQ authors' code
    uses; it equals ``clip/levels · clip(floor(x·levels/clip + 1/2), 0, levels)``.
    ``clip`` broadcasts against ``x`` (a scalar or shape (1,) per layer).
    """
    q = np.floor(np.clip(x / clip, 0.0, 1.0) * levels + 0.5)
    return (clip * q / levels).astype(x.dtype, copy=False)


def _qcfs(node: Node, x):
    return qcfs(x, node.params["clip"], node.attrs["levels"])


def _sample_axis(node: Node, x):
    """The batched axis of ``x`` a node's ``axis`` attribute ("last" or "channel") names."""
    return 1 + axis_index(node.attrs["axis"], x.shape[1:])


def _along(v, axis, ndim):
    """``v`` of shape (D,) reshaped to broadcast along ``axis`` of an ``ndim``-array."""
    shape = [1] * ndim
    shape[axis] = -1
    return v.reshape(shape)


def _layernorm(node: Node, x):
    axis = _sample_axis(node, x)
    mean = np.mean(x, axis=axis, keepdims=True)
    var = np.mean((x - mean) ** 2, axis=axis, keepdims=True)  # biased, as torch
    y = (x - mean) / np.sqrt(var + node.attrs["eps"])
    return y * _along(node.params["weight"], axis, x.ndim) + \
        _along(node.params["bias"], axis, x.ndim)


def _softmax(node: Node, x):
    e = np.exp(x - np.max(x, axis=-1, keepdims=True))  # at most exp(0) = 1: no overflow
    return e / np.sum(e, axis=-1, keepdims=True)


def _transpose(node: Node, x):
    perm = parse_perm(node.attrs["perm"], x.ndim - 1)
    return np.transpose(x, (0,) + tuple(1 + i for i in perm))


def _mean(node: Node, x):
    axes = tuple(1 + i for i in mean_axes(node.attrs["axis"], x.ndim - 1))
    return np.mean(x, axis=axes, keepdims=bool(node.attrs["keepdims"]))


def _scale(node: Node, x):
    return x * _along(node.params["weight"], _sample_axis(node, x), x.ndim)


def _affine(node: Node, x):
    axis = _sample_axis(node, x)
    return x * _along(node.params["weight"], axis, x.ndim) + \
        _along(node.params["bias"], axis, x.ndim)


def _log_softmax(node: Node, x):
    shifted = x - np.max(x, axis=-1, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=-1, keepdims=True))


def _concat(node: Node, *xs):
    return np.concatenate(xs, axis=1 + node.attrs["axis"])


def _slice(node: Node, x):
    index = [slice(None)] * x.ndim
    index[1 + node.attrs["axis"]] = slice(node.attrs["start"], node.attrs["stop"])
    return np.ascontiguousarray(x[tuple(index)])


def _expand(node: Node, x):
    return np.ascontiguousarray(np.broadcast_to(x, (x.shape[0],) + parse_shape(
        node.attrs["shape"])))


def _upsample(node: Node, x):
    sh, sw = node.attrs["scale"]
    return np.repeat(np.repeat(x, sh, axis=2), sw, axis=3)


def _zero_pad(node: Node, x):
    return np.pad(x, ((0, 0), (0, 0), node.attrs["rows"], node.attrs["cols"]))


def hardsigmoid(x):
    """``relu6(x + 3) / 6`` as torch computes it: clip, then divide."""
    return np.clip(x + 3.0, 0.0, 6.0) / 6.0


FORWARD: dict[str, Callable] = {
    "linear": _linear,
    "conv2d": _conv2d,
    "batchnorm": _batchnorm,
    "relu": lambda node, x: np.maximum(x, 0.0),
    "avgpool2d": _avgpool2d,
    "maxpool2d": _maxpool2d,
    "flatten": lambda node, x: x.reshape(x.shape[0], -1),
    "add": _add,
    "identity": lambda node, x: x,
    "gelu": _gelu,
    "silu": lambda node, x: x * expit(x),
    "sigmoid": lambda node, x: expit(x),  # no overflow for large |x|
    "tanh": lambda node, x: np.tanh(x),
    "leaky_relu": _leaky_relu,
    "hardtanh": _hardtanh,
    "qcfs": _qcfs,
    "abs": lambda node, x: np.abs(x),
    "square": lambda node, x: x * x,
    "exp": lambda node, x: np.exp(x),
    "layernorm": _layernorm,
    "softmax": _softmax,
    "multiply": lambda node, x, y: x * y,
    "transpose": _transpose,
    "mean": _mean,
    "scale": _scale,
    "affine": _affine,
    "reshape": lambda node, x: x.reshape((x.shape[0],) + parse_shape(node.attrs["shape"])),
    "concat": _concat,
    "expand": _expand,
    "slice": _slice,
    "upsample": _upsample,
    "pad": _zero_pad,
    "hardsigmoid": lambda node, x: hardsigmoid(x),
    "hardswish": lambda node, x: x * np.clip(x + 3.0, 0.0, 6.0) / 6.0,  # torch's order
    "log_softmax": _log_softmax,
}
"""Operator name -> ``f(node, *inputs) -> output``, all batched."""


def forward(graph: Graph, x: np.ndarray, all_nodes: bool = False, forward_ops=None):
    """Run the ANN on a batch.

    Parameters
    ----------
    graph : Graph
        The network.
    x : ndarray, shape (B, *graph.input_shape)
        Input batch; converted to the parameters' dtype.
    all_nodes : bool
        Also return every node's activation.
    forward_ops : mapping, optional
        Extra or replacement operator implementations (used for converted graphs).

    Returns
    -------
    ndarray, shape (B, *graph.shapes[graph.output])
        The output; with ``all_nodes`` a tuple ``(output, {name: activation})`` whose dict also
        holds ``"input"``.
    """
    ops = FORWARD if forward_ops is None else {**FORWARD, **forward_ops}
    values = {INPUT: check_batch(x, graph.input_shape, dtype=graph.dtype)}
    for node in graph.nodes:
        values[node.name] = ops[node.op](node, *(values[i] for i in node.inputs))
    out = values[graph.output]
    return (out, values) if all_nodes else out
