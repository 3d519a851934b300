"""One kernel position of a pooling window, as its own (affine) synapse operation.

Max pooling under signGD becomes a tree of two-input max neurons whose inputs are these
windows: ``out[c, y, x] = in[c, y*sh + oy - ph, x*sw + ox - pw]``, or ``pad_value`` outside
the input. The op is a gather, so it has no kernel: NumPy slicing serves both backends.
"""

from __future__ import annotations

import numpy as np


def window_forward(node, x: np.ndarray) -> np.ndarray:
    """Apply a ``window`` node to ``x`` (B, C, H, W); returns (B, C, Ho, Wo), contiguous."""
    (kh, kw), (sh, sw), (ph, pw) = (node.attrs["kernel"], node.attrs["stride"],
                                    node.attrs["padding"])
    oy, ox = node.attrs["offset"]
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=node.attrs["pad_value"])
    ho = (xp.shape[2] - kh) // sh + 1
    wo = (xp.shape[3] - kw) // sw + 1
    return np.ascontiguousarray(xp[:, :, oy:oy + sh * (ho - 1) + 1:sh,
                                   ox:ox + sw * (wo - 1) + 1:sw])
