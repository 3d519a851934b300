"""A compiled twin of the reference forward's convolution, for calibration.

:func:`refsnn.ann.forward` (the oracle) computes a convolution as NumPy ``einsum`` calls, one
per kernel position: for each position ``(ky, kx)`` in row-major order, the sum over the input
channels of the group, ``c = 0, 1, ...`` in order, is added to the output; the bias is added at
the end. On a LeNet that is 80 % of the forward's time (NumPy's einsum loop for a handful of
channels is dominated by its per-element overhead). :func:`conv2d` makes the same additions in
the same order (each a rounded IEEE operation, no fused multiply-add: refsnn's jit policy), so
its result is the reference's bit for bit: tests/test_calibration.py checks it on random
shapes, strides, paddings and groups, float32 and float64, 1 and 2 threads, and on the shipped
models. Should a NumPy release sum differently, that test fails rather than a threshold
changing unnoticed. Where einsum's channel loop can be contiguous (a single output position)
it sums with several partial sums, another order: there the reference itself runs. (The only difference the order allows is the sign of a zero partial sum,
which adding it to the output, which starts at +0, removes.)

:data:`FORWARD_OPS` is passed as ``forward_ops`` to :func:`refsnn.ann.forward`.
"""

from __future__ import annotations

import numpy as np

from refsnn.ann import FORWARD
from refsnn.jit import parallel, prange
from refsnn.model.graph import Node


#: The reference convolution, used where einsum's order is not the one compiled here.
REFERENCE_CONV = FORWARD["conv2d"]

#: Output channels per group from which the kernel vectorises over them (else over a row).
BY_CHANNEL_FROM = 8


@parallel
def _conv_kernel(xp, w, groups, sh, sw, out):  # pragma: no cover - compiled
    b_count, o_count, ho, wo = out.shape
    cg, kh, kw = w.shape[1], w.shape[2], w.shape[3]
    og = o_count // groups
    for b in prange(b_count):
        part = np.empty((ho, wo), dtype=out.dtype)
        for o in range(o_count):
            c0 = (o // og) * cg
            for ky in range(kh):
                for kx in range(kw):
                    # the einsum over channels: first product, then the rest in order
                    wv = w[o, 0, ky, kx]
                    for y in range(ho):
                        src = xp[b, c0, y * sh + ky]
                        for x in range(wo):
                            part[y, x] = src[x * sw + kx] * wv
                    for c in range(1, cg):
                        wv = w[o, c, ky, kx]
                        for y in range(ho):
                            src = xp[b, c0 + c, y * sh + ky]
                            if sw == 1:  # unit stride: a loop LLVM vectorises
                                for x in range(wo):
                                    part[y, x] += src[x + kx] * wv
                            else:
                                for x in range(wo):
                                    part[y, x] += src[x * sw + kx] * wv
                    for y in range(ho):
                        for x in range(wo):
                            out[b, o, y, x] += part[y, x]


@parallel
def _conv_kernel_by_channel(xp, wt, groups, sh, sw, out):  # pragma: no cover - compiled
    # the same additions, vectorised over the output channels of a group (wt: the weights
    # as (groups, C/groups, kh, kw, O/groups), contiguous along those channels)
    b_count, o_count, ho, wo = out.shape
    cg, kh, kw, og = wt.shape[1], wt.shape[2], wt.shape[3], wt.shape[4]
    for b in prange(b_count):
        part = np.empty(og, dtype=out.dtype)
        acc = np.empty(og, dtype=out.dtype)
        for gi in range(groups):
            c0 = gi * cg
            for y in range(ho):
                for x in range(wo):
                    for o in range(og):
                        acc[o] = 0.0
                    for ky in range(kh):
                        for kx in range(kw):
                            v = xp[b, c0, y * sh + ky, x * sw + kx]
                            for o in range(og):
                                part[o] = v * wt[gi, 0, ky, kx, o]
                            for c in range(1, cg):
                                v = xp[b, c0 + c, y * sh + ky, x * sw + kx]
                                for o in range(og):
                                    part[o] += v * wt[gi, c, ky, kx, o]
                            for o in range(og):
                                acc[o] += part[o]
                    for o in range(og):
                        out[b, gi * og + o, y, x] = acc[o]


def conv2d(node: Node, x: np.ndarray) -> np.ndarray:
    """``conv2d`` as :func:`refsnn.ann.forward` computes it (bit for bit), compiled.

    Parameters
    ----------
    node : Node
        A ``conv2d`` node (weight (O, C/groups, kh, kw), bias (O,), stride, padding, groups).
    x : ndarray, shape (B, C, H, W)

    Returns
    -------
    ndarray, shape (B, O, Ho, Wo)
    """
    w, b = node.params["weight"], node.params["bias"]
    sh, sw = node.attrs["stride"]
    ph, pw = node.attrs["padding"]
    kh, kw = w.shape[2], w.shape[3]
    ho = (x.shape[2] + 2 * ph - kh) // sh + 1
    wo = (x.shape[3] + 2 * pw - kw) // sw + 1
    if ho * wo == 1:
        # one output position: einsum's loop over the channels can be contiguous there, and
        # then it sums with several partial sums (another order): use the reference itself
        return REFERENCE_CONV(node, x)
    xp = np.ascontiguousarray(np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw))))
    groups = int(node.attrs["groups"])
    out = np.zeros((x.shape[0], w.shape[0], ho, wo), dtype=x.dtype)
    og = w.shape[0] // groups
    if og >= BY_CHANNEL_FROM:
        wt = w.reshape(groups, og, w.shape[1], kh, kw).transpose(0, 2, 3, 4, 1)
        _conv_kernel_by_channel(xp, np.ascontiguousarray(wt, dtype=x.dtype), groups,
                                int(sh), int(sw), out)
    else:
        _conv_kernel(xp, np.ascontiguousarray(w, dtype=x.dtype), groups, int(sh), int(sw),
                     out)
    return out + b[None, :, None, None]


#: Replacement operators for :func:`refsnn.ann.forward`: the same results, faster.
FORWARD_OPS = {"conv2d": conv2d}
