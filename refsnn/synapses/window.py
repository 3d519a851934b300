"""Synapse operations that only converted signGD networks use: pooling windows and spreads.

Both are gathers or reductions with no arithmetic order to fix, so they have no kernel: NumPy
serves both backends.

- ``window``: one kernel position of a pooling window. Max pooling under signGD becomes a tree
  of two-input max neurons whose inputs are these windows:
  ``out[c, y, x] = in[c, y*sh + oy - ph, x*sw + ox - pw]``, or ``pad_value`` outside the input.
- ``spread``: a reduction along one axis broadcast back to the input's shape (``mean``, ``sum``
  or ``center`` = x minus the mean), for LayerNorm and softmax.
"""

from __future__ import annotations

import numpy as np

from refsnn.model.ops import pool_overhang, pool_size


def window_forward(node, x: np.ndarray) -> np.ndarray:
    """Apply a ``window`` node to ``x`` (B, C, H, W); returns (B, C, Ho, Wo), contiguous."""
    (kh, kw), (sh, sw), (ph, pw) = (node.attrs["kernel"], node.attrs["stride"],
                                    node.attrs["padding"])
    oy, ox = node.attrs["offset"]
    ceil = node.attrs.get("ceil_mode", 0)
    ho = pool_size(x.shape[2], kh, sh, ph, ceil)
    wo = pool_size(x.shape[3], kw, sw, pw, ceil)
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph + pool_overhang(x.shape[2], kh, sh, ph, ho)),
                    (pw, pw + pool_overhang(x.shape[3], kw, sw, pw, wo))),
                constant_values=node.attrs["pad_value"])
    return np.ascontiguousarray(xp[:, :, oy:oy + sh * (ho - 1) + 1:sh,
                                   ox:ox + sw * (wo - 1) + 1:sw])


def spread_forward(node, x: np.ndarray) -> np.ndarray:
    """Apply a ``spread`` node to ``x`` (B, ...); the result has ``x``'s shape."""
    axis = x.ndim - 1 if node.attrs["axis"] == "last" else 1
    reduce = node.attrs["reduce"]
    if reduce == "sum":
        return np.broadcast_to(np.sum(x, axis=axis, keepdims=True), x.shape).copy()
    mean = np.broadcast_to(np.mean(x, axis=axis, keepdims=True), x.shape)
    return x - mean if reduce == "center" else mean.copy()
