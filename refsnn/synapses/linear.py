"""Event-driven dense (linear) synapses.

Semantics, shared by both implementations: for each sample ``b`` and output ``j``,
``out[b, j]`` starts at 0, then ``x[b, i] * w_t[i, j]`` is added for each event ``i`` in
ascending order, then ``bias[j]`` is added. Work is proportional to events x fan-out.
"""

from __future__ import annotations

import numpy as np

from refsnn.jit import parallel, prange
from refsnn.synapses.events import events_numba, events_numpy

_BLOCK = 64  # outputs per parallel job: enough work per job, many jobs for small batches


def linear_numpy(x: np.ndarray, w_t: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Reference: ``x`` (B, N_in), ``w_t`` (N_in, N_out) -> (B, N_out)."""
    out = np.zeros((x.shape[0], w_t.shape[1]), dtype=x.dtype)
    for b, events in enumerate(events_numpy(x)):
        for i in events:
            out[b] += x[b, i] * w_t[i]
        out[b] += bias
    return out


_SAMPLES = 8  # samples per parallel job: they share every weight row the job loads
#: Weight entries from which the input-major kernel is used. Below, the weights stay in cache
#: anyway and the sample-major kernel's smaller overhead wins (measured on the digits MLP).
_SHARED_MIN = 65536


@parallel
def _linear_kernel(xt, w_t, bias, out):
    """Input-major event-driven product: ``xt`` is the input moved to shape (N_in, B).

    A job owns a block of outputs for a block of samples and walks the inputs once in
    ascending order; each weight row slice it loads serves every sample with an event there.
    Per output element that is still one product and one rounded addition per event, in
    ascending event order, then the bias, as the module docstring says.
    """
    n_in, n_b = xt.shape
    n_out = out.shape[1]
    n_blocks = (n_out + _BLOCK - 1) // _BLOCK
    n_sblocks = (n_b + _SAMPLES - 1) // _SAMPLES
    # Each job owns out[b0:b1, j0:j1]: no two threads share an accumulator.
    for job in prange(n_sblocks * n_blocks):
        s = job // n_blocks
        b0 = s * _SAMPLES
        b1 = min(b0 + _SAMPLES, n_b)
        j0 = (job - s * n_blocks) * _BLOCK
        j1 = min(j0 + _BLOCK, n_out)
        nj = j1 - j0
        acc = np.zeros((b1 - b0, nj), dtype=out.dtype)
        for i in range(n_in):
            ws = w_t[i, j0:j1]
            for b in range(b0, b1):
                v = xt[i, b]
                if v != 0:
                    a = acc[b - b0]
                    for k in range(nj):
                        a[k] += v * ws[k]
        for b in range(b0, b1):
            for k in range(nj):
                out[b, j0 + k] = acc[b - b0, k] + bias[j0 + k]


@parallel
def _sample_kernel(x, w_t, bias, idx, count, out):
    """Sample-major kernel for narrow layers (fewer outputs than one block): a job per
    sample walks that sample's event list, so no weight reuse is lost and no zeros scanned."""
    n_out = out.shape[1]
    n_blocks = (n_out + _BLOCK - 1) // _BLOCK
    # Each job owns a block of outputs of one sample: no two threads share an accumulator.
    for job in prange(x.shape[0] * n_blocks):
        b = job // n_blocks
        j0 = (job % n_blocks) * _BLOCK
        j1 = min(j0 + _BLOCK, n_out)
        for j in range(j0, j1):
            out[b, j] = 0.0
        for e in range(count[b]):
            i = idx[b, e]
            v = x[b, i]
            for j in range(j0, j1):
                out[b, j] += v * w_t[i, j]
        for j in range(j0, j1):
            out[b, j] += bias[j]


def linear_numba(x: np.ndarray, w_t: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Numba twin of :func:`linear_numpy`; same arguments, bit-identical result.

    Both kernels keep the documented addition order, so the choice changes speed only:
    input-major (weight rows shared across samples) for weights of at least ``_SHARED_MIN``
    entries and at least one full block of outputs, sample-major (event lists) otherwise.
    """
    out = np.empty((x.shape[0], w_t.shape[1]), dtype=x.dtype)
    if w_t.shape[1] >= _BLOCK and w_t.size >= _SHARED_MIN:
        _linear_kernel(np.ascontiguousarray(x.T), w_t, bias, out)
        return out
    idx = np.empty(x.shape, dtype=np.int64)
    count = np.empty(x.shape[0], dtype=np.int64)
    events_numba(x, idx, count)
    _sample_kernel(x, w_t, bias, idx, count, out)
    return out
