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


def if_block_numpy(u, currents, theta, reset_zero: bool):
    """``K`` steps of :func:`if_step_numpy` in order: ``currents`` (K, B, N) -> events (K, B, N)."""
    return np.stack([if_step_numpy(u, current, theta, reset_zero) for current in currents])


@parallel(work=lambda u, currents, theta, reset_zero, out: currents.size)
def _if_kernel(u, currents, theta, reset_zero, out):
    # each sample's steps in order; a job owns a sample's potentials and events
    for b in prange(u.shape[0]):
        for k in range(currents.shape[0]):
            for i in range(u.shape[1]):
                v = u[b, i] + currents[k, b, i]
                if v >= theta[i]:
                    out[k, b, i] = theta[i]
                    v = 0.0 if reset_zero else v - theta[i]
                else:
                    out[k, b, i] = 0.0
                u[b, i] = v


def if_block_numba(u, currents, theta, reset_zero: bool):
    """Numba twin of :func:`if_block_numpy`: ``K`` steps in one call, bit-identical.

    The simulator hands a neuron node a block of steps at once (``Simulator(step_block=K)``)
    so that a small layer costs one call per block instead of one per step.
    """
    out = np.empty(currents.shape, u.dtype)
    _if_kernel(u, currents, theta, reset_zero, out)
    return out


def if_step_numba(u, current, theta, reset_zero: bool):
    """Numba twin of :func:`if_step_numpy`; bit-identical."""
    return if_block_numba(u, current[None], theta, reset_zero)[0]
