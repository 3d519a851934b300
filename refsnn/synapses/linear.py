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


@parallel
def _linear_kernel(x, w_t, bias, idx, count, out):
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
    """Numba twin of :func:`linear_numpy`; same arguments, bit-identical result."""
    idx = np.empty(x.shape, dtype=np.int64)
    count = np.empty(x.shape[0], dtype=np.int64)
    events_numba(x, idx, count)
    out = np.empty((x.shape[0], w_t.shape[1]), dtype=x.dtype)
    _linear_kernel(x, w_t, bias, idx, count, out)
    return out
