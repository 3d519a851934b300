"""Event-driven 2-D convolution (and average pooling, a depthwise convolution with ones).

Semantics, shared by both implementations: for sample ``b`` and output ``(o, oy, ox)``, the
accumulator starts at 0, then for each event ``(c, iy, ix)`` of ``o``'s group, in ascending flat
index, ``x[b, c, iy, ix] * w[o, c - g*C_g, ky, kx]`` is added, where ``(ky, kx)`` is the one
kernel position linking the two (``iy + pad_y = oy*stride_y + ky``), then ``bias[o]`` is added.
Work is proportional to events x fan-out.
"""

from __future__ import annotations

import numpy as np

from refsnn.jit import parallel, prange
from refsnn.synapses.events import events_numba, events_numpy


def out_size(size: int, kernel: int, stride: int, pad: int) -> int:
    """Output length of a window op along one axis."""
    return (size + 2 * pad - kernel) // stride + 1


def conv_numpy(x, w, bias, stride, padding, groups):
    """Reference event-driven convolution.

    Parameters
    ----------
    x : ndarray, shape (B, C, H, W)
    w : ndarray, shape (O, C // groups, kh, kw)
    bias : ndarray, shape (O,)
    stride, padding : tuple of two int
    groups : int

    Returns
    -------
    ndarray, shape (B, O, Ho, Wo)
    """
    B, C, H, W = x.shape
    O, cg, kh, kw = w.shape
    og = O // groups
    ho, wo = out_size(H, kh, stride[0], padding[0]), out_size(W, kw, stride[1], padding[1])
    out = np.zeros((B, O, ho, wo), dtype=x.dtype)
    for b, events in enumerate(events_numpy(x.reshape(B, -1))):
        for flat in events:
            c, iy, ix = np.unravel_index(flat, (C, H, W))
            g = c // cg
            outs = slice(g * og, (g + 1) * og)
            for ky in range(kh):
                ny = iy + padding[0] - ky
                if ny < 0 or ny % stride[0] or ny // stride[0] >= ho:
                    continue
                for kx in range(kw):
                    nx = ix + padding[1] - kx
                    if nx < 0 or nx % stride[1] or nx // stride[1] >= wo:
                        continue
                    out[b, outs, ny // stride[0], nx // stride[1]] += \
                        x[b, c, iy, ix] * w[outs, c - g * cg, ky, kx]
        out[b] += bias[:, None, None]
    return out


@parallel
def _conv_kernel(x, w, bias, idx, count, sy, sx, py, px, groups, out):
    B, C, H, W = x.shape
    O, cg, kh, kw = w.shape
    ho, wo = out.shape[2], out.shape[3]
    og = O // groups
    hw = H * W
    # One job per (sample, output channel): it alone writes out[b, o], so no races.
    for job in prange(B * O):
        b = job // O
        o = job % O
        g = o // og
        c_lo = g * cg
        c_hi = c_lo + cg
        for oy in range(ho):
            for ox in range(wo):
                out[b, o, oy, ox] = 0.0
        for e in range(count[b]):
            flat = idx[b, e]
            c = flat // hw
            if c < c_lo:
                continue
            if c >= c_hi:
                break  # events are in ascending order: the group's channels are done
            rest = flat - c * hw
            iy = rest // W
            ix = rest - iy * W
            v = x[b, c, iy, ix]
            for ky in range(kh):
                ny = iy + py - ky
                if ny < 0 or ny % sy != 0 or ny // sy >= ho:
                    continue
                oy = ny // sy
                for kx in range(kw):
                    nx = ix + px - kx
                    if nx < 0 or nx % sx != 0 or nx // sx >= wo:
                        continue
                    out[b, o, oy, nx // sx] += v * w[o, c - c_lo, ky, kx]
        for oy in range(ho):
            for ox in range(wo):
                out[b, o, oy, ox] += bias[o]


def conv_numba(x, w, bias, stride, padding, groups):
    """Numba twin of :func:`conv_numpy`; same arguments, bit-identical result."""
    B, C, H, W = x.shape
    O, _, kh, kw = w.shape
    flat = x.reshape(B, -1)
    idx = np.empty(flat.shape, dtype=np.int64)
    count = np.empty(B, dtype=np.int64)
    events_numba(flat, idx, count)
    ho, wo = out_size(H, kh, stride[0], padding[0]), out_size(W, kw, stride[1], padding[1])
    out = np.empty((B, O, ho, wo), dtype=x.dtype)
    _conv_kernel(x, w, bias, idx, count, stride[0], stride[1], padding[0], padding[1],
                 groups, out)
    return out


def _ones_depthwise(channels, kernel, dtype):
    return np.ones((channels, 1, kernel[0], kernel[1]), dtype=dtype), np.zeros(channels, dtype)


def avgpool_numpy(x, kernel, stride, padding):
    """Reference average pooling on events: the window's event sum, divided by its area.

    Padding counts as zero and the divisor is always ``kh * kw``.
    """
    w, zero = _ones_depthwise(x.shape[1], kernel, x.dtype)
    return conv_numpy(x, w, zero, stride, padding, x.shape[1]) / (kernel[0] * kernel[1])


def avgpool_numba(x, kernel, stride, padding):
    """Numba twin of :func:`avgpool_numpy`; bit-identical result."""
    w, zero = _ones_depthwise(x.shape[1], kernel, x.dtype)
    return conv_numba(x, w, zero, stride, padding, x.shape[1]) / (kernel[0] * kernel[1])
