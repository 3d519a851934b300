"""Integrate-and-fire neurons (the rate-coding baseline).

One step of a layer of IF neurons, per neuron, in this order (written once, in ``docs/``):

1. charge: ``u <- u + I``
2. fire:   ``s = 1 if u >= theta else 0``  (inclusive: a potential exactly at threshold fires)
3. reset:  ``u <- u - theta`` if ``s`` (reset by subtraction) or ``u <- 0`` (reset to zero)
4. emit:   the event value is ``s * theta`` (a spike carries the threshold, so downstream
   weights stay the ANN's and a rate ``r`` stands for the activation ``r * theta``)

Arrays are flattened per sample: ``u``, ``current``, ``out`` have shape (B, N) and ``theta``
shape (N,).
"""

from __future__ import annotations

import numpy as np

from refsnn.jit import parallel, prange

RESETS = ("subtract", "zero")


def if_step_numpy(u, current, theta, reset_zero: bool):
    """Reference step; updates ``u`` in place and returns the events, shape (B, N)."""
    u += current
    fired = u >= theta
    if reset_zero:
        u[fired] = 0.0
    else:
        u -= np.where(fired, theta, 0.0)
    return np.where(fired, theta, 0.0).astype(u.dtype)


@parallel
def _if_kernel(u, current, theta, reset_zero, out):
    for b in prange(u.shape[0]):
        for i in range(u.shape[1]):
            v = u[b, i] + current[b, i]
            if v >= theta[i]:
                out[b, i] = theta[i]
                v = 0.0 if reset_zero else v - theta[i]
            else:
                out[b, i] = 0.0
            u[b, i] = v


def if_step_numba(u, current, theta, reset_zero: bool):
    """Numba twin of :func:`if_step_numpy`; bit-identical."""
    out = np.empty_like(u)
    _if_kernel(u, current, theta, reset_zero, out)
    return out
