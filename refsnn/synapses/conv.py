"""Event-driven 2-D convolution (and average pooling, a depthwise convolution with ones).

Semantics, shared by both implementations: for sample ``b`` and output ``(o, oy, ox)``, the
accumulator starts at 0, then for each event ``(c, iy, ix)`` of ``o``'s group, in ascending flat
index, ``x[b, c, iy, ix] * w[o, c - g*C_g, ky, kx]`` is added, where ``(ky, kx)`` is the one
kernel position linking the two (``iy + pad_y = oy*stride_y + ky``), then ``bias[o]`` is added.
Work is proportional to events x fan-out.
"""

from __future__ import annotations

import numpy as np

from refsnn.jit import VECTOR_BYTES, macs, parallel, prange
from refsnn.synapses.dense import conv_dense_numba, use_dense
from refsnn.synapses.events import count_events_numba, events_numba, events_numpy
from refsnn.synapses.weights import prepared


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


#: Output channels per parallel job. Any value gives the same bits (every output element keeps
#: its own addition order); 64 keeps the inner loop long enough to vectorise (measured 1.3-1.5x
#: faster than 32 on 64- to 256-channel layers, one thread) and still leaves several jobs per
#: sample for batch 1.
CHANNEL_BLOCK = 64
#: Output channels per job for float32 groups of more than CHANNEL_BLOCK channels when the
#: kernels are compiled for 512-bit vectors (:data:`refsnn.jit.VECTOR_BYTES` 64, 16 float32
#: lanes): each event and tap's loop overhead then serves 8 vectors of work instead of 4.
#: Measured per call, float32, batch 32, density 0.13, one thread, against CHANNEL_BLOCK: 0.60x
#: the time on conv 256->256 8x8, 0.85x on 128->128 16x16 (Intel Xeon, 2026-12-06,
#: docs/performance.md round 4). AVX2 builds and float64 keep CHANNEL_BLOCK, as measured.
WIDE_BLOCK = 128


def channel_block(group_channels: int, dtype) -> int:
    """Output channels per job of the event-driven conv kernel for groups of
    ``group_channels`` in ``dtype``: :data:`WIDE_BLOCK` or :data:`CHANNEL_BLOCK` (see there;
    ``VECTOR_BYTES`` of this module is read per call so that tests can try either width).
    Every block gives the same bits; this decides speed only."""
    if (VECTOR_BYTES == 64 and np.dtype(dtype) == np.float32
            and group_channels > CHANNEL_BLOCK):
        return WIDE_BLOCK
    return CHANNEL_BLOCK


#: Bytes of accumulators a conv job aims for: its output rows are cut into strips of that
#: size (at least one row), so the accumulators a job adds into stay close to the core, and a
#: single sample still makes several jobs for the threads (measured per call on the VGG's
#: layers: up to 1.2x faster at batch 32, 2.4x at batch 1; in whole runs, where step blocks
#: already stack samples, within noise). Any value gives the same bits: each output element
#: is in exactly one strip.
STRIP_BYTES = 64 * 1024


@parallel(work=lambda x, wt, bias, idx, count, sy, sx, py, px, groups, strip, block, out:
          macs(out.size * (wt.size // wt.shape[-1])))  # the dense bound: no event sum needed
def _conv_kernel(x, wt, bias, idx, count, sy, sx, py, px, groups, strip, block, out):
    """Event-major convolution into ``out`` of shape (B, O, Ho, Wo).

    ``wt`` is the weight moved to shape (C_g, kh, kw, O), so the weights an event sends to a
    block of output channels are contiguous, as are the accumulators they land in. Each job
    owns one (sample, ``block`` output channels, strip of ``strip`` output rows), accumulates in its own
    scratch of shape (rows, Wo, block) and walks, channel by channel of its group, the events
    of the input rows that reach its strip, in ascending order. Per output element that is one
    product and one rounded addition per event, in event order, then the bias, as the module
    docstring says: a strip only leaves out events that cannot reach it.
    """
    B, C, H, W = x.shape
    cg, kh, kw, O = wt.shape
    ho, wo = out.shape[2], out.shape[3]
    og = O // groups
    hw = H * W
    nblk = (og + block - 1) // block
    n_strips = (ho + strip - 1) // strip
    jobs_per_sample = groups * nblk * n_strips
    for job in prange(B * jobs_per_sample):
        b = job // jobs_per_sample
        r = job - b * jobs_per_sample
        s = r // (groups * nblk)
        r -= s * groups * nblk
        g = r // nblk
        o_lo = g * og + (r - g * nblk) * block
        o_hi = min(o_lo + block, (g + 1) * og)
        nb = o_hi - o_lo
        oy0 = s * strip
        oy1 = min(oy0 + strip, ho)
        acc = np.zeros((oy1 - oy0, wo, nb), dtype=out.dtype)
        # the input rows that reach output rows oy0 .. oy1 - 1
        iy_lo = max(0, oy0 * sy - py)
        iy_hi = min(H, (oy1 - 1) * sy - py + kh)
        c_lo = g * cg
        n = count[b]
        events = idx[b, :n]
        e = 0
        for cl in range(cg):
            c = c_lo + cl
            end = c * hw + iy_hi * W
            # events are ascending: a binary search finds this channel's first row
            e += np.searchsorted(events[e:], c * hw + iy_lo * W)
            while e < n:
                flat = events[e]
                if flat >= end:
                    break  # this channel's rows are done
                e += 1
                rest = flat - c * hw
                iy = rest // W
                ix = rest - iy * W
                v = x[b, c, iy, ix]
                for ky in range(kh):
                    ny = iy + py - ky
                    if ny < 0:
                        break  # ny only decreases with ky
                    if sy == 1:
                        # stride 1 (most layers) without the integer divisions by a run-time
                        # stride, 10-40 cycles each, one per tap, against a few cycles of
                        # vector work per tap: 1.2-1.4x per call on the VGG's event-driven
                        # layers (Intel Xeon, 2026-12-06); a branch that always goes the same
                        # way costs next to nothing on any CPU
                        oy = ny
                    elif ny % sy != 0:
                        continue
                    else:
                        oy = ny // sy
                    if oy >= oy1:
                        continue
                    if oy < oy0:
                        break  # and so does oy
                    for kx in range(kw):
                        nx = ix + px - kx
                        if nx < 0:
                            break
                        if sx == 1:
                            ox = nx
                        elif nx % sx != 0:
                            continue
                        else:
                            ox = nx // sx
                        if ox >= wo:
                            continue
                        a = acc[oy - oy0, ox]
                        ws = wt[cl, ky, kx, o_lo:o_hi]
                        if nb == CHANNEL_BLOCK:
                            # a constant trip count: LLVM emits straight vector code, without
                            # the run-time length and overlap checks (20-27% faster, same sums)
                            for k in range(CHANNEL_BLOCK):
                                a[k] += v * ws[k]
                        elif nb == WIDE_BLOCK:
                            for k in range(WIDE_BLOCK):
                                a[k] += v * ws[k]
                        else:
                            for k in range(nb):
                                a[k] += v * ws[k]
        for k in range(nb):
            for oy in range(oy0, oy1):
                for ox in range(wo):
                    out[b, o_lo + k, oy, ox] = acc[oy - oy0, ox, k] + bias[o_lo + k]


def _channels_last(w):
    return np.ascontiguousarray(w.transpose(1, 2, 3, 0))


def conv_numba(x, w, bias, stride, padding, groups):
    """Numba twin of :func:`conv_numpy`; same arguments, bit-identical result.

    ``w`` may be a :class:`~refsnn.synapses.weights.Weights` (prepared once per layer). Calls
    without groups whose event density reaches :data:`~refsnn.synapses.dense.DENSE_FROM` run
    the dense kernel, which gives the same bits (:mod:`refsnn.synapses.dense`).
    """
    weights = prepared(w)
    B, C, H, W = x.shape
    O, _, kh, kw = weights.weight.shape
    # counted before the event lists are built: a dense call needs none
    if groups == 1 and use_dense("conv", count_events_numba(x), x.size, weights):
        return conv_dense_numba(x, weights, bias, stride, padding)
    flat = x.reshape(B, -1)
    idx = np.empty(flat.shape, dtype=np.int64)
    count = np.empty(B, dtype=np.int64)
    events_numba(flat, idx, count)
    ho, wo = out_size(H, kh, stride[0], padding[0]), out_size(W, kw, stride[1], padding[1])
    wt = weights.layout(_channels_last)
    out = np.empty((B, O, ho, wo), dtype=x.dtype)
    block = channel_block(O // groups, x.dtype)
    strip = max(1, STRIP_BYTES // (wo * min(O // groups, block) * x.itemsize))
    _conv_kernel(x, wt, bias, idx, count, stride[0], stride[1], padding[0], padding[1],
                 groups, strip, block, out)
    return out


def _ones_depthwise(channels, kernel, dtype):
    return np.ones((channels, 1, kernel[0], kernel[1]), dtype=dtype), np.zeros(channels, dtype)


def avgpool_numpy(x, kernel, stride, padding):
    """Reference average pooling on events: the window's event sum, divided by its area.

    Padding counts as zero and the divisor is always ``kh * kw``.
    """
    w, zero = _ones_depthwise(x.shape[1], kernel, x.dtype)
    return conv_numpy(x, w, zero, stride, padding, x.shape[1]) / (kernel[0] * kernel[1])


@parallel(work=lambda x, kh, kw, sy, sx, py, px, zero, out: out.size * kh * kw)
def _window_sum_kernel(x, kh, kw, sy, sx, py, px, zero, out):
    """Per output ``(b, c, oy, ox)``: 0, plus each input of its window in ascending
    ``(iy, ix)`` (= ascending flat index, the event order), plus 0 (the zero bias).

    The same additions as the event-major convolution with a depthwise kernel of ones
    (``v * 1 == v`` exactly), gathered per output instead: a pooling window has no channel
    fan-out, so the event-major kernel's per-channel jobs had nothing to share. Non-events are
    added too, without a branch: adding a zero changes nothing, because the accumulator
    starts at +0 and a sum of finite values is never -0 unless every term is (inputs are
    finite: checked at load and encode). Jobs are (sample, channel) planes; each owns its
    outputs.
    """
    B, C, H, W = x.shape
    ho, wo = out.shape[2], out.shape[3]
    for job in prange(B * C):
        b = job // C
        c = job - b * C
        for oy in range(ho):
            y0 = oy * sy - py
            ky_lo = max(0, -y0)
            ky_hi = min(kh, H - y0)
            for ox in range(wo):
                x0 = ox * sx - px
                kx_lo = max(0, -x0)
                kx_hi = min(kw, W - x0)
                acc = zero[0]  # of x's dtype, so float32 sums stay float32
                for ky in range(ky_lo, ky_hi):  # padding rows/columns: zeros, skipped
                    for kx in range(kx_lo, kx_hi):
                        acc += x[b, c, y0 + ky, x0 + kx]
                out[b, c, oy, ox] = acc + zero[0]


@parallel(work=lambda x, kh, kw, sy, sx, zero, out: out.size * kh * kw)
def _window_sum_rows(x, kh, kw, sy, sx, zero, out):
    """:func:`_window_sum_kernel` without padding, on planes: ``x`` (P, H, W) -> ``out``
    (P, ho, wo), a row of outputs at a time: for each
    window offset ``(ky, kx)`` in ascending order, add it to every output of the row. Each
    output gets the same additions in the same order (0, its window in ascending ``(iy, ix)``,
    0), but the innermost loop runs along a row with no bounds to compute (measured 1.2-2.8x
    faster per call on the digits CNN's and the VGG's 2x2 pooling; indexing ``out`` and ``x``
    directly instead of through row views was slower on the VGG's 32x32 planes). 2x2 windows
    at stride 2 now take :func:`_window_sum_2x2`."""
    for p in prange(x.shape[0]):
        for oy in range(out.shape[1]):
            o = out[p, oy]
            for ox in range(o.shape[0]):
                o[ox] = zero[0]
            for ky in range(kh):
                row = x[p, oy * sy + ky]
                for kx in range(kw):
                    for ox in range(o.shape[0]):
                        o[ox] += row[ox * sx + kx]
            for ox in range(o.shape[0]):
                o[ox] = o[ox] + zero[0]


@parallel(work=lambda x, zero, out: out.size * 4)
def _window_sum_2x2(x, zero, out):
    """:func:`_window_sum_rows` for 2x2 windows at stride 2 (the usual pooling), each
    output's four additions written out in the same order: no loops over the window, which on
    the digits CNN's 4- and 8-wide planes cost more than the additions."""
    for p in prange(x.shape[0]):
        for oy in range(out.shape[1]):
            r0 = x[p, 2 * oy]
            r1 = x[p, 2 * oy + 1]
            o = out[p, oy]
            for ox in range(o.shape[0]):
                acc = zero[0] + r0[2 * ox]
                acc += r0[2 * ox + 1]
                acc += r1[2 * ox]
                acc += r1[2 * ox + 1]
                o[ox] = acc + zero[0]


def avgpool_numba(x, kernel, stride, padding):
    """Numba twin of :func:`avgpool_numpy`; bit-identical result."""
    B, C, H, W = x.shape
    ho = out_size(H, kernel[0], stride[0], padding[0])
    wo = out_size(W, kernel[1], stride[1], padding[1])
    out = np.empty((B, C, ho, wo), dtype=x.dtype)
    zero = np.zeros(1, x.dtype)
    if tuple(kernel) == (2, 2) and tuple(stride) == (2, 2) and tuple(padding) == (0, 0):
        _window_sum_2x2(np.ascontiguousarray(x).reshape(B * C, H, W), zero,
                        out.reshape(B * C, ho, wo))
    elif padding[0] == 0 and padding[1] == 0:
        _window_sum_rows(np.ascontiguousarray(x).reshape(B * C, H, W), kernel[0], kernel[1],
                         stride[0], stride[1], zero, out.reshape(B * C, ho, wo))
    else:
        _window_sum_kernel(x, kernel[0], kernel[1], stride[0], stride[1], padding[0],
                           padding[1], zero, out)
    # in place: the same division (NumPy's rules for an array and a Python int) into the
    # array just made, instead of a new one
    return np.divide(out, kernel[0] * kernel[1], out=out)
