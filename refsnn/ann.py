"""The plain NumPy reference forward pass of a :class:`~refsnn.model.graph.Graph`.

Written for obviousness, in the graph's dtype (float64 by default). Every SNN result in refsnn
is compared with this. Arrays carry a leading batch axis: ``(B, *shape)``.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from refsnn.checks import check_batch
from refsnn.model.graph import INPUT, Graph, Node


def _linear(node: Node, x):
    return x @ node.params["weight"].T + node.params["bias"]


def _pad(x, ph, pw, value):
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=value)


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
    xp = _pad(x, ph, pw, 0.0)
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


def _channel(v, ndim):
    return v.reshape((1, -1) + (1,) * (ndim - 2))


def _batchnorm(node: Node, x):
    p = node.params
    scale = p["gamma"] / np.sqrt(p["var"] + node.attrs["eps"])
    return (x - _channel(p["mean"], x.ndim)) * _channel(scale, x.ndim) + _channel(p["beta"], x.ndim)


def _pool(node: Node, x, pad_value, reduce):
    kh, kw = node.attrs["kernel"]
    sh, sw = node.attrs["stride"]
    ph, pw = node.attrs["padding"]
    xp = _pad(x, ph, pw, pad_value)
    ho = (xp.shape[2] - kh) // sh + 1
    wo = (xp.shape[3] - kw) // sw + 1
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
