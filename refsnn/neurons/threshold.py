"""NIR's threshold (``nir.Threshold``): a stateless Heaviside step.

``z = 1 if I > threshold else 0`` (strict, as NIR writes it), per element, every step.
``current`` and the events have shape (B, N); ``threshold`` (N,).
"""

from __future__ import annotations

import numpy as np

from refsnn.jit import parallel, prange


def threshold_step_numpy(current, threshold):
    """Reference step: the events (0 or 1), shape (B, N)."""
    return (current > threshold).astype(current.dtype)


@parallel(work=lambda current, threshold, out: current.size)
def _threshold_kernel(current, threshold, out):
    for b in prange(current.shape[0]):
        for i in range(current.shape[1]):
            out[b, i] = 1.0 if current[b, i] > threshold[i] else 0.0


def threshold_step_numba(current, threshold):
    """Numba twin of :func:`threshold_step_numpy`; bit-identical."""
    out = np.empty_like(current)
    _threshold_kernel(current, threshold, out)
    return out
