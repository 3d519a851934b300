"""Dense exact synapses: the event-driven kernels' sums, computed without event lists.

The semantics are those of :mod:`refsnn.synapses.linear` and :mod:`refsnn.synapses.conv`: per
output, start at 0, add ``x * w`` for each event (non-zero input) in ascending flat input
index, then add the bias. The dense kernels add ``x * w`` for **every** input in ascending flat
index, and for finite weights that is the same result, bit for bit:

* a non-event is a zero (``+0`` or ``-0``), and its product with a finite weight is ``+0`` or
  ``-0``;
* adding ``+0`` or ``-0`` leaves an accumulator unchanged unless the accumulator is ``-0``;
* an accumulator starts at ``+0``, and under round-to-nearest a sum is ``-0`` only when both
  terms are ``-0``, so it is never ``-0``.

Every event still gets its one product and one rounded addition, in the same order; the
extra additions change nothing. (With an infinite weight ``0 * inf`` is NaN, so the choice of
kernel in :func:`use_dense` requires finite weights; refsnn's loaders refuse others anyway.)

Dense kernels cost ``inputs x fan-out`` whatever the activity, and the event-driven ones
``events x fan-out`` plus the event scan; but the dense loops have no indirection, so each job
keeps its accumulators in vector registers (:func:`refsnn.jit.register_block`) and reuses
each weight vector it loads for several outputs. Measured on this project's 2-core machine,
they win from an event density of 0.2-0.4, per kernel and dtype (:data:`DENSE_FROM`,
``benchmarks/density_crossover.py``): where signGD layers live (their neurons send a value
every step), and layers reading average-pooled spikes.

A NumPy twin of each kernel (:func:`linear_dense_numpy`, :func:`conv_dense_numpy`) spells the
dense order out plainly; tests check both against the event-driven references.
"""

from __future__ import annotations

import numpy as np

from refsnn.jit import VECTOR_BYTES, macs, parallel, prange, register_block
from refsnn.synapses.weights import Weights, prepared

#: Output features (linear) or channels (conv) per job, held in registers; a multiple of the
#: vector width (16 float32 / 8 float64 with AVX-512, half with AVX2).
TILE = 64
#: Rows (samples x stacked steps) of a linear job, sharing each weight vector they load.
LINEAR_ROWS = 4
#: Output positions along a row of a conv job, sharing each weight vector they load.
CONV_POSITIONS = 2
#: The dense conv kernel's tile for layers of at most this many output channels (the digits
#: CNN's 16 and 32; a 64-wide tile would be half or more zero padding): measured 1.6-2.6x
#: faster per call than the 64-wide tile on the digits CNN's conv2 (32 channels), 1.2-1.5x on
#: its conv1 (16), serial, 2026-12-04 under load. A 16-wide tile was slower than both.
NARROW_TILE = 32
#: The dense conv kernel's tile in float32 on 512-bit vectors (:data:`refsnn.jit.VECTOR_BYTES`
#: 64) for layers of more than :data:`TILE` output channels: TILE x CONV_POSITIONS float32
#: accumulators take 8 of the 32 vector registers there, this tile 16, and each input loaded
#: serves twice the outputs. float64's TILE already takes 16 (and AVX2 has 16 registers in
#: all), so both keep :data:`TILE`. Measured 1.5x faster per call on the VGG's conv 64->128
#: 16x16 and 128->256 8x8 (docs/performance.md, round 4).
WIDE_TILE = 128
#: ... as long as one wide tile's packed weights (``C x kh x kw x WIDE_TILE`` elements, all of
#: which every group of positions reads) take at most this many bytes: a job streams them
#: from the L2 cache (2 MB per core on the Xeon measured) once per group of positions, and
#: from 224 input channels x 3 x 3 on (1 MB) the wide tile was 1.1-1.2x slower than TILE.
WIDE_WEIGHT_BYTES = 896 << 10
#: Linear layers of at most this many outputs take a kernel of their own
#: (``_linear_dense_narrow``).
NARROW_OUT = 16

#: Event density (events / inputs, over the whole call) from which the numba kernels switch
#: to the dense kernels, per kernel and dtype: where the two took the same time in
#: ``benchmarks/density_crossover.py`` (2026-11-26, idle 2-core AMD EPYC, 2 threads; the
#: README's performance section has the table). Either choice gives the same bits.
DENSE_FROM = {
    "linear": {np.dtype(np.float32): 0.2, np.dtype(np.float64): 0.4},
    "conv": {np.dtype(np.float32): 0.22, np.dtype(np.float64): 0.26},
}

_scratch_linear = register_block(TILE * LINEAR_ROWS)
_scratch_conv = register_block(TILE * CONV_POSITIONS)
_scratch_narrow = register_block(2 * NARROW_TILE)
_scratch_wide = register_block(WIDE_TILE * CONV_POSITIONS)
_scratch_linear_narrow = register_block(4 * NARROW_OUT)


def use_dense(kernel: str, events: int, inputs: int, weights: Weights) -> bool:
    """Whether a call of ``kernel`` ("linear" or "conv") with ``events`` non-zeros among
    ``inputs`` should run densely.

    From the density of :data:`DENSE_FROM` on, for its dtypes, and only with finite weights
    (see the module docstring): both kernels give the same bits, so this decides speed, never
    a result.
    """
    start = DENSE_FROM[kernel].get(weights.weight.dtype)
    return (start is not None and weights.finite and inputs > 0
            and int(events) >= start * inputs)


# --------------------------------------------------------------------------- linear

def linear_dense_numpy(x: np.ndarray, w_t: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Reference: every input in ascending order. ``x`` (B, N_in), ``w_t`` (N_in, N_out)."""
    out = np.zeros((x.shape[0], w_t.shape[1]), dtype=x.dtype)
    for i in range(x.shape[1]):
        out += x[:, i:i + 1] * w_t[i]
    return out + bias


@parallel(work=lambda x, w_t, bias, out: macs(x.size * out.shape[1]))
def _linear_dense_kernel(x, w_t, bias, out):
    """One job per (block of LINEAR_ROWS rows, TILE outputs); a last, narrower block of
    outputs runs the same loop on an accumulator in memory."""
    rows, n_in = x.shape
    n_out = out.shape[1]
    n_row_blocks = (rows + LINEAR_ROWS - 1) // LINEAR_ROWS
    n_tiles = (n_out + TILE - 1) // TILE
    for job in prange(n_row_blocks * n_tiles):
        rb = job // n_tiles
        j0 = (job - rb * n_tiles) * TILE
        r0 = rb * LINEAR_ROWS
        nb = min(TILE, n_out - j0)
        acc = _scratch_linear(out)
        for k in range(TILE * LINEAR_ROWS):
            acc[k] = 0
        # The two branches differ only in the trip count of the innermost loop: a constant
        # one (TILE) is what lets LLVM unroll it and keep ``acc`` in registers.
        if nb == TILE:
            for i in range(n_in):
                ws = w_t[i, j0:j0 + TILE]
                for r in range(LINEAR_ROWS):
                    # rows past the end read the last row; their sums are dropped
                    v = x[min(r0 + r, rows - 1), i]
                    for k in range(TILE):
                        acc[r * TILE + k] += v * ws[k]
        else:
            for i in range(n_in):
                ws = w_t[i, j0:j0 + nb]
                for r in range(LINEAR_ROWS):
                    v = x[min(r0 + r, rows - 1), i]
                    for k in range(nb):
                        acc[r * TILE + k] += v * ws[k]
        for r in range(min(LINEAR_ROWS, rows - r0)):
            for k in range(nb):
                out[r0 + r, j0 + k] = acc[r * TILE + k] + bias[j0 + k]


def pad_narrow(w_t: np.ndarray) -> np.ndarray:
    """``w_t`` (N_in, N_out <= NARROW_OUT) -> (N_in, NARROW_OUT), zero columns appended."""
    padded = np.zeros((w_t.shape[0], NARROW_OUT), w_t.dtype)
    padded[:, :w_t.shape[1]] = w_t
    return padded


@parallel(work=lambda x, w_n, bias, out: macs(x.size * w_n.shape[1]))
def _linear_dense_narrow(x, w_n, bias, out):
    """:func:`_linear_dense_kernel` for layers of at most NARROW_OUT outputs (a classifier's
    last layer): one job per block of 4 rows, its accumulators (4 x NARROW_OUT) in registers,
    ``w_n`` the weight with zero columns up to NARROW_OUT (:func:`pad_narrow`). The same
    additions in the same order per output; the general kernel's narrow branch kept its
    accumulators in memory, a runtime trip count (measured 1.2-4.9x slower per call)."""
    rows, n_in = x.shape
    n_out = out.shape[1]
    for rb in prange((rows + 3) // 4):
        r0 = rb * 4
        # rows past the end read the last row; their sums are dropped
        r1, r2, r3 = min(r0 + 1, rows - 1), min(r0 + 2, rows - 1), min(r0 + 3, rows - 1)
        acc = _scratch_linear_narrow(out)
        for k in range(4 * NARROW_OUT):
            acc[k] = 0
        for i in range(n_in):
            ws = w_n[i]
            # the four rows' inputs, then one loop over all four accumulators: the form in
            # which LLVM vectorises a short constant loop (see _conv_dense_narrow)
            v0, v1, v2, v3 = x[r0, i], x[r1, i], x[r2, i], x[r3, i]
            for k in range(NARROW_OUT):
                acc[k] += v0 * ws[k]
                acc[NARROW_OUT + k] += v1 * ws[k]
                acc[2 * NARROW_OUT + k] += v2 * ws[k]
                acc[3 * NARROW_OUT + k] += v3 * ws[k]
        for r in range(min(4, rows - r0)):
            for k in range(n_out):
                out[r0 + r, k] = acc[r * NARROW_OUT + k] + bias[k]


def linear_dense_numba(x: np.ndarray, w_t, bias: np.ndarray) -> np.ndarray:
    """Numba twin of :func:`linear_dense_numpy` (and so of ``linear_numpy``); ``w_t`` may be
    a :class:`~refsnn.synapses.weights.Weights`, which keeps the padded layout between calls."""
    weights = prepared(w_t)
    n_out = weights.weight.shape[1]
    out = np.empty((x.shape[0], n_out), dtype=x.dtype)
    x, bias = np.ascontiguousarray(x), np.ascontiguousarray(bias)
    if n_out <= NARROW_OUT:
        _linear_dense_narrow(x, weights.layout(pad_narrow), bias, out)
    else:
        _linear_dense_kernel(x, weights.layout(np.ascontiguousarray), bias, out)
    return out


# --------------------------------------------------------------------------- conv

def conv_dense_numpy(x, w, bias, stride, padding):
    """Reference dense convolution (``groups`` 1): every input of each output's window in
    ascending flat index ``(c, iy, ix)``, padding included as zeros.

    Parameters
    ----------
    x : ndarray, shape (B, C, H, W)
    w : ndarray, shape (O, C, kh, kw)
    bias : ndarray, shape (O,)
    stride, padding : tuple of two int

    Returns
    -------
    ndarray, shape (B, O, Ho, Wo)
    """
    (sy, sx), (py, px) = stride, padding
    xp = np.pad(x, ((0, 0), (0, 0), (py, py), (px, px)))
    B, C, H, W = xp.shape
    O, _, kh, kw = w.shape
    ho, wo = (H - kh) // sy + 1, (W - kw) // sx + 1
    out = np.zeros((B, O, ho, wo), dtype=x.dtype)
    for c in range(C):
        for ky in range(kh):
            for kx in range(kw):
                window = xp[:, c, ky:ky + sy * (ho - 1) + 1:sy, kx:kx + sx * (wo - 1) + 1:sx]
                out += window[:, None] * w[None, :, c, ky, kx, None, None]
    return out + bias[:, None, None]


def conv_tile(shape, dtype) -> int:
    """Output channels per job of the dense conv kernel for a weight of ``shape`` (O, C, kh,
    kw) and ``dtype``: :data:`NARROW_TILE` if that holds all O, :data:`WIDE_TILE` for wider
    float32 layers when the kernels are compiled for 512-bit vectors (``VECTOR_BYTES`` of
    this module, read per call so that tests can try either width) and the tile's weights
    stay within :data:`WIDE_WEIGHT_BYTES`, else :data:`TILE`. Every tile gives the same bits;
    this decides speed only."""
    O, C, kh, kw = shape
    if O <= NARROW_TILE:
        return NARROW_TILE
    dtype = np.dtype(dtype)
    if (VECTOR_BYTES == 64 and dtype == np.float32 and O > TILE
            and C * kh * kw * WIDE_TILE * dtype.itemsize <= WIDE_WEIGHT_BYTES):
        return WIDE_TILE
    return TILE


def pack_conv_weight(w: np.ndarray) -> np.ndarray:
    """``w`` (O, C, kh, kw) -> (ceil(O / t), C, kh, kw, t) with ``t = conv_tile(w.shape,
    w.dtype)``, zero-padded outputs: each job's weights contiguous, in the order it reads
    them."""
    O, C, kh, kw = w.shape
    t = conv_tile(w.shape, w.dtype)
    n_tiles = (O + t - 1) // t
    padded = np.zeros((n_tiles * t, C, kh, kw), dtype=w.dtype)
    padded[:O] = w
    return np.ascontiguousarray(padded.reshape(n_tiles, t, C, kh, kw).transpose(0, 2, 3, 4, 1))


def zero_padded(x, py, px):
    """``x`` (B, C, H, W) with ``py`` zero rows and ``px`` zero columns on each side,
    C-contiguous: what ``np.pad`` gives, without its Python overhead (tens of microseconds per
    call, more than a small layer's kernel)."""
    if py == 0 and px == 0:
        return np.ascontiguousarray(x)
    B, C, H, W = x.shape
    xp = np.zeros((B, C, H + 2 * py, W + 2 * px), x.dtype)
    xp[:, :, py:py + H, px:px + W] = x
    return xp


def _conv_work(xp, wp, bias, sy, sx, out):
    # every output position times every packed weight (padded channels included)
    return macs(out.shape[0] * out.shape[2] * out.shape[3] * wp.size)


@parallel(work=_conv_work)
def _conv_dense_kernel(xp, wp, bias, sy, sx, out):
    """One job per (sample, TILE output channels, output row); it walks the row
    CONV_POSITIONS outputs at a time, each weight vector loaded once for all of them.
    (The form of :func:`_conv_dense_narrow` measured no faster for this width.)
    ``xp`` is the zero-padded input; padded output channels (weights 0) are not stored."""
    B, C, H, W = xp.shape
    n_tiles, _, kh, kw, _ = wp.shape
    O, ho, wo = out.shape[1], out.shape[2], out.shape[3]
    for job in prange(B * n_tiles * ho):
        b = job // (n_tiles * ho)
        rest = job - b * n_tiles * ho
        tile = rest // ho
        oy = rest - tile * ho
        o0 = tile * TILE
        nb = min(TILE, O - o0)
        acc = _scratch_conv(out)
        for ox0 in range(0, wo, CONV_POSITIONS):
            for k in range(TILE * CONV_POSITIONS):
                acc[k] = 0
            for c in range(C):
                for ky in range(kh):
                    row = xp[b, c, oy * sy + ky]
                    for kx in range(kw):
                        ws = wp[tile, c, ky, kx]
                        for p in range(CONV_POSITIONS):
                            # positions past the row's end read its last input; dropped below
                            v = row[min((ox0 + p) * sx + kx, W - 1)]
                            for k in range(TILE):
                                acc[p * TILE + k] += v * ws[k]
            for p in range(min(CONV_POSITIONS, wo - ox0)):
                for k in range(nb):
                    out[b, o0 + k, oy, ox0 + p] = acc[p * TILE + k] + bias[o0 + k]


@parallel(work=_conv_work)
def _conv_dense_narrow(xp, wp, bias, sy, sx, out):
    """:func:`_conv_dense_kernel` for tiles of NARROW_TILE channels (layers of at most that
    many, :func:`conv_tile`), two output positions per step: the same additions in the same
    order per output."""
    B, C, H, W = xp.shape
    n_tiles, _, kh, kw, _ = wp.shape
    O, ho, wo = out.shape[1], out.shape[2], out.shape[3]
    for job in prange(B * n_tiles * ho):
        b = job // (n_tiles * ho)
        rest = job - b * n_tiles * ho
        tile = rest // ho
        oy = rest - tile * ho
        o0 = tile * NARROW_TILE
        nb = min(NARROW_TILE, O - o0)
        acc = _scratch_narrow(out)
        for ox0 in range(0, wo, 2):
            for k in range(2 * NARROW_TILE):
                acc[k] = 0
            for c in range(C):
                for ky in range(kh):
                    row = xp[b, c, oy * sy + ky]
                    for kx in range(kw):
                        ws = wp[tile, c, ky, kx]
                        # both positions' inputs (past the row's end: its last input, the
                        # sum dropped below), then one loop updating both accumulators: in
                        # this form LLVM vectorises the narrow tile (written as the wide
                        # kernel's loop per position, it left it scalar, 2-7x slower)
                        v0 = row[min(ox0 * sx + kx, W - 1)]
                        v1 = row[min((ox0 + 1) * sx + kx, W - 1)]
                        for k in range(NARROW_TILE):
                            acc[k] += v0 * ws[k]
                            acc[NARROW_TILE + k] += v1 * ws[k]
            for p in range(min(2, wo - ox0)):
                for k in range(nb):
                    out[b, o0 + k, oy, ox0 + p] = acc[p * NARROW_TILE + k] + bias[o0 + k]


@parallel(work=_conv_work)
def _conv_dense_wide(xp, wp, bias, sy, sx, out):
    """:func:`_conv_dense_kernel` with tiles of WIDE_TILE channels (:func:`conv_tile`): the
    same additions in the same order per output, twice the accumulators per weight load."""
    B, C, H, W = xp.shape
    n_tiles, _, kh, kw, _ = wp.shape
    O, ho, wo = out.shape[1], out.shape[2], out.shape[3]
    for job in prange(B * n_tiles * ho):
        b = job // (n_tiles * ho)
        rest = job - b * n_tiles * ho
        tile = rest // ho
        oy = rest - tile * ho
        o0 = tile * WIDE_TILE
        nb = min(WIDE_TILE, O - o0)
        acc = _scratch_wide(out)
        for ox0 in range(0, wo, CONV_POSITIONS):
            for k in range(WIDE_TILE * CONV_POSITIONS):
                acc[k] = 0
            for c in range(C):
                for ky in range(kh):
                    row = xp[b, c, oy * sy + ky]
                    for kx in range(kw):
                        ws = wp[tile, c, ky, kx]
                        for p in range(CONV_POSITIONS):
                            # positions past the row's end read its last input; dropped below
                            v = row[min((ox0 + p) * sx + kx, W - 1)]
                            for k in range(WIDE_TILE):
                                acc[p * WIDE_TILE + k] += v * ws[k]
            for p in range(min(CONV_POSITIONS, wo - ox0)):
                for k in range(nb):
                    out[b, o0 + k, oy, ox0 + p] = acc[p * WIDE_TILE + k] + bias[o0 + k]


#: Tile width -> dense conv kernel.
_CONV_KERNELS = {TILE: _conv_dense_kernel, NARROW_TILE: _conv_dense_narrow,
                 WIDE_TILE: _conv_dense_wide}


def conv_dense_numba(x, w, bias, stride, padding):
    """Numba twin of :func:`conv_dense_numpy`; ``w`` may be a
    :class:`~refsnn.synapses.weights.Weights`, which keeps the packed layout between calls."""
    weights = prepared(w)
    (sy, sx), (py, px) = stride, padding
    xp = zero_padded(x, py, px)
    O, _, kh, kw = weights.weight.shape
    ho, wo = (xp.shape[2] - kh) // sy + 1, (xp.shape[3] - kw) // sx + 1
    out = np.empty((x.shape[0], O, ho, wo), dtype=x.dtype)
    wp = weights.layout(pack_conv_weight)
    _CONV_KERNELS[wp.shape[-1]](xp, wp, np.ascontiguousarray(bias), sy, sx, out)
    return out
