"""Event-driven dense (linear) synapses.

Semantics, shared by both implementations: for each sample ``b`` and output ``j``,
``out[b, j]`` starts at 0, then ``x[b, i] * w_t[i, j]`` is added for each event ``i`` in
ascending order, then ``bias[j]`` is added. Work is proportional to events x fan-out.
"""

from __future__ import annotations

import numpy as np

from refsnn.jit import inline, macs, parallel, prange
from refsnn.synapses.dense import linear_dense_numba, use_dense
from refsnn.synapses.events import count_events_numba, events_numba, events_numpy
from refsnn.synapses.weights import prepared

#: Outputs per parallel job. Wide blocks keep the inner loop long and contiguous (measured
#: best on 512-wide layers); a job is one sample's block, so a batch still gives many jobs.
_BLOCK = 512


def linear_numpy(x: np.ndarray, w_t: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Reference: ``x`` (B, N_in), ``w_t`` (N_in, N_out) -> (B, N_out)."""
    out = np.zeros((x.shape[0], w_t.shape[1]), dtype=x.dtype)
    for b, events in enumerate(events_numpy(x)):
        for i in events:
            out[b] += x[b, i] * w_t[i]
        out[b] += bias
    return out


@inline
def _axpy(acc, v, row):
    """``acc += v * row``, element by element: one product and one rounded addition each.

    Both are 1-D contiguous views, which lets LLVM vectorise the loop across outputs (each
    output element still gets exactly one product and one addition, so the order of additions
    per element is unchanged). Written on 2-D indices instead, the loop ran 3x slower.
    """
    for k in range(acc.shape[0]):
        acc[k] += v * row[k]


@parallel(work=lambda x, w_t, bias, idx, count, out: macs(x.size * out.shape[1]))  # dense
def _linear_kernel(x, w_t, bias, idx, count, out):
    """One job per (sample, block of outputs): walk that sample's event list in ascending
    order, adding each event's weight row slice to the block's accumulator, then the bias.
    The job owns ``out[b, j0:j1]``: no two threads share an accumulator."""
    n_out = out.shape[1]
    n_blocks = (n_out + _BLOCK - 1) // _BLOCK
    for job in prange(x.shape[0] * n_blocks):
        b = job // n_blocks
        j0 = (job - b * n_blocks) * _BLOCK
        j1 = min(j0 + _BLOCK, n_out)
        acc = np.zeros(j1 - j0, dtype=out.dtype)
        for e in range(count[b]):
            i = idx[b, e]
            _axpy(acc, x[b, i], w_t[i, j0:j1])
        o = out[b, j0:j1]
        bias_block = bias[j0:j1]
        for k in range(j1 - j0):
            o[k] = acc[k] + bias_block[k]


def linear_numba(x: np.ndarray, w_t, bias: np.ndarray) -> np.ndarray:
    """Numba twin of :func:`linear_numpy`; same arguments, bit-identical result.

    ``w_t`` may be a :class:`~refsnn.synapses.weights.Weights` (prepared once per layer).
    Calls whose event density reaches :data:`~refsnn.synapses.dense.DENSE_FROM` run the dense
    kernel, which gives the same bits (:mod:`refsnn.synapses.dense`).
    """
    weights = prepared(w_t)
    # counted before the event lists are built: a dense call needs none
    if use_dense("linear", count_events_numba(x), x.size, weights):
        return linear_dense_numba(x, weights, bias)
    idx = np.empty(x.shape, dtype=np.int64)
    count = np.empty(x.shape[0], dtype=np.int64)
    events_numba(x, idx, count)
    w_t = weights.layout(np.ascontiguousarray)
    out = np.empty((x.shape[0], w_t.shape[1]), dtype=x.dtype)
    _linear_kernel(x, w_t, np.ascontiguousarray(bias), idx, count, out)
    return out
