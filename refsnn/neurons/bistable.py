"""Bistable integrate-and-fire neurons (BSNN, Li et al. 2021), as refsnn defines them.

A bistable neuron is in one of two states for a whole *cycle* of ``P`` steps (the schedule,
the pipeline and why this removes spikes of inactivated neurons are in
``docs/semantics.md``; :class:`refsnn.sim.steps.BistableNeurons` picks the state from the
step count). One step of a layer, per neuron:

- **integrate** state: ``u <- u + I``; no spike (the event value is 0);
- **fire** state: the input is not integrated; ``s = 1 if u >= theta else 0``,
  ``u <- u - theta * s``, the event value is ``s * theta``;
- **rest** (before the neuron's first integrate cycle): nothing happens and the value is 0.

So a neuron emits, in the fire cycle after an integrate cycle, ``min(P, floor(u / theta))``
spikes of its accumulated potential ``u``, and keeps the remainder: the inputs of a whole cycle
cancel before anything is sent, whatever order they arrived in.

Arrays are flattened per sample: ``u``, ``current`` and the returned events have shape (B, N);
``theta`` has shape (N,).
"""

from __future__ import annotations

import numpy as np

from refsnn.jit import parallel, prange


def integrate_numpy(u, current):
    """Integrate state: ``u += current`` in place; returns the events (all 0), shape (B, N)."""
    u += current
    return np.zeros_like(u)


def fire_numpy(u, theta):
    """Fire state: one spike where ``u >= theta``, reset by subtraction; returns the events."""
    fired = u >= theta
    u -= np.where(fired, theta, 0.0)
    return np.where(fired, theta, 0.0).astype(u.dtype)


@parallel(work=lambda u, current: u.size)
def _integrate_kernel(u, current):
    for b in prange(u.shape[0]):
        for i in range(u.shape[1]):
            u[b, i] = u[b, i] + current[b, i]


@parallel(work=lambda u, theta, out: u.size)
def _fire_kernel(u, theta, out):
    for b in prange(u.shape[0]):
        for i in range(u.shape[1]):
            if u[b, i] >= theta[i]:
                out[b, i] = theta[i]
                u[b, i] = u[b, i] - theta[i]
            else:
                out[b, i] = 0.0


def integrate_numba(u, current):
    """Numba twin of :func:`integrate_numpy`; bit-identical."""
    _integrate_kernel(u, current)
    return np.zeros_like(u)


def fire_numba(u, theta):
    """Numba twin of :func:`fire_numpy`; bit-identical."""
    out = np.empty_like(u)
    _fire_kernel(u, theta, out)
    return out


def cycle_state(t: int, period: int, stage: int) -> str:
    """The state of a neuron of pipeline stage ``stage`` at step ``t`` (``t >= 1``).

    Cycle ``c = (t - 1) // period`` (from 0). A neuron of stage ``s >= 1`` rests in cycles
    ``c < s - 1``, integrates in cycles ``s - 1, s + 1, s + 3, ...`` and fires in cycles
    ``s, s + 2, ...``: it emits its ``k``-th packet (k = 0, 1, ...) in cycle ``s + 2k``.

    Returns
    -------
    {"rest", "integrate", "fire"}
    """
    cycle = (t - 1) // period
    if cycle < stage - 1:
        return "rest"
    return "integrate" if (cycle - stage + 1) % 2 == 0 else "fire"


def packets_started(steps: int, period: int, stage: int) -> int:
    """How many fire cycles (packets) a stage-``stage`` neuron has begun within ``steps`` steps."""
    cycles = -(-steps // period)  # cycles with at least one step run
    return max(0, (cycles - stage + 1) // 2)


def packets_completed(steps: int, period: int, stage: int) -> int:
    """How many of the packets arriving at stage ``stage`` (in cycles ``stage, stage + 2, ...``)
    are complete after ``steps`` steps."""
    return max(0, (steps // period - stage + 1) // 2)
