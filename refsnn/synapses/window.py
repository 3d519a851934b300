"""Synapse operations that only converted signGD networks use: pooling windows and spreads.

Both are gathers or reductions with no arithmetic order to fix, so they have no kernel: NumPy
serves both backends.

- ``window``: one kernel position of a pooling window. Max pooling under signGD becomes a tree
  of two-input max neurons whose inputs are these windows:
  ``out[c, y, x] = in[c, y*sh + oy - ph, x*sw + ox - pw]``; outside the input ``pad_value``
  (``pad_mode`` "constant") or the nearest input element (``pad_mode`` "edge": row and column
  clamped into the input). With padding at most half the kernel, as max pooling requires, the
  nearest input element of a padded position lies in the same pooling window, so edge padding
  repeats a value the window already has: the max over the window is the max over its input
  positions, exactly, and no value that is not an activation enters the max tree.
- ``spread``: a reduction along one axis broadcast back to the input's shape (``mean``, ``sum``
  or ``center`` = x minus the mean), for LayerNorm and softmax.
"""

from __future__ import annotations

import numpy as np

from refsnn.model.ops import pool_overhang, pool_size


#: ``pad_mode`` -> ``pad(x, widths, node)``.
PADS = {
    "constant": lambda x, widths, node: np.pad(x, widths,
                                               constant_values=node.attrs["pad_value"]),
    "edge": lambda x, widths, node: np.pad(x, widths, mode="edge"),
}


def window_forward(node, x: np.ndarray) -> np.ndarray:
    """Apply a ``window`` node to ``x`` (B, C, H, W); returns (B, C, Ho, Wo), contiguous."""
    (kh, kw), (sh, sw), (ph, pw) = (node.attrs["kernel"], node.attrs["stride"],
                                    node.attrs["padding"])
    oy, ox = node.attrs["offset"]
    ceil = node.attrs.get("ceil_mode", 0)
    ho = pool_size(x.shape[2], kh, sh, ph, ceil)
    wo = pool_size(x.shape[3], kw, sw, pw, ceil)
    widths = ((0, 0), (0, 0), (ph, ph + pool_overhang(x.shape[2], kh, sh, ph, ho)),
              (pw, pw + pool_overhang(x.shape[3], kw, sw, pw, wo)))
    xp = PADS[node.attrs["pad_mode"]](x, widths, node)
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
