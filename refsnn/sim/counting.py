"""Spike counting: the simulator's per-step bookkeeping of every neuron node.

A neuron node's step value says which neurons spiked by its sign (``StepOp.spike_sign``: IF
and bistable spikes carry ``+theta``, a signGD spike is a negative increment). Each step adds
1 to the count of every neuron that spiked and returns how many did. The NumPy version is the
definition; the Numba twin does the same in one parallel pass (per sample: each job owns its
sample's counts), which matters on wide layers, where the comparison, the count update and
the sum were three passes over memory.
"""

from __future__ import annotations

import numpy as np

from refsnn.jit import parallel, prange


def count_spikes_numpy(value: np.ndarray, sign: int, counts: np.ndarray) -> int:
    """Add this step's spikes to ``counts`` and return their number.

    Parameters
    ----------
    value : ndarray, shape (B, *shape)
        The neuron node's step value.
    sign : {1, -1}
        A neuron spiked where ``value > 0`` (1) or ``value < 0`` (-1).
    counts : int64 ndarray, shape (B, *shape)
        Spikes per neuron so far; updated in place.
    """
    fired = value > 0 if sign > 0 else value < 0
    counts += fired
    return int(fired.sum())


def count_block_numpy(values: np.ndarray, sign: int, counts: np.ndarray) -> np.ndarray:
    """:func:`count_spikes_numpy` for ``K`` steps in order: ``values`` (K, B, *shape) ->
    the spikes of each step, int64 (K,)."""
    return np.array([count_spikes_numpy(v, sign, counts) for v in values], np.int64)


@parallel(work=lambda values, positive, counts, per_sample: values.size)
def _count_kernel(values, positive, counts, per_sample):
    # values (K, B, N); a job owns one sample's counts and its entries of per_sample (K, B)
    for b in prange(values.shape[1]):
        for k in range(values.shape[0]):
            n = 0
            for i in range(values.shape[2]):
                v = values[k, b, i]
                spiked = 1 if (v > 0 if positive else v < 0) else 0
                counts[b, i] += spiked
                n += spiked
            per_sample[k, b] = n


def count_block_numba(values: np.ndarray, sign: int, counts: np.ndarray) -> np.ndarray:
    """Numba twin of :func:`count_block_numpy`; same counts and totals."""
    steps, rows = values.shape[0], values.shape[1]
    per_sample = np.empty((steps, rows), np.int64)
    _count_kernel(np.ascontiguousarray(values).reshape(steps, rows, -1), sign > 0,
                  counts.reshape(rows, -1), per_sample)
    return per_sample.sum(axis=1)


def count_spikes_numba(value: np.ndarray, sign: int, counts: np.ndarray) -> int:
    """Numba twin of :func:`count_spikes_numpy`; same arguments, same counts and total."""
    return int(count_block_numba(value[None], sign, counts)[0])
