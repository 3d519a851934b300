"""Closed forms of the QCFS equivalence and of the residual error (NQ; see ``proofs/noise.ipynb``).

One IF neuron, threshold ``θ``, reset by subtraction, ``u₀ = θ/2``, inputs ``z_1 .. z_T``,
``S = Σ z_t``. After ``T`` steps with ``n`` spikes its membrane potential is exactly

    u_T = θ/2 + S − n·θ                                                       (1)

*QCFS count.* Let ``n_q = clip(floor(S/θ + 1/2), 0, T)``: the count whose residual
``u^q = θ/2 + S − n_q·θ`` lies in ``[0, θ)`` when ``−θ/2 ≤ S < (T + 1/2)·θ``. For a constant
input ``z ∈ [0, θ]`` and ``T = L``, ``n_q·θ/T = h(z)`` (QCFS with ``λ = θ``), and the neuron emits
exactly ``n_q`` spikes.

*Residual error.* From (1), ``n − n_q = (u^q − u_T)/θ`` exactly: whatever the neuron integrated
but did not express changes the count. The residual is bounded by the input's order:

    m ≤ u_T < M,   m = min(0, min_{0≤s<T} Σ_{k>s} z_k),
                   M = θ + max(0, max_{0≤s<T} Σ_{k>s} (z_k − θ))

(after the last spike ``u ≥ 0``, after the last silent step ``u < θ``), hence

    −M/θ < n − n_q < 1 − m/θ                                                  (2)

With every ``z_t ∈ [0, θ]``, ``m = 0`` and ``M = θ``: the count is ``n_q`` however unevenly the
input arrives. Late negative input (``m < 0``) leaves extra spikes; input above ``θ`` (``M > θ``)
leaves spikes unsent.
"""

from __future__ import annotations

import numpy as np


def qcfs_count(total: np.ndarray, theta: float, steps: int) -> np.ndarray:
    """``n_q = clip(floor(S/θ + 1/2), 0, T)``: the count QCFS assigns to a total input ``S``.

    Parameters
    ----------
    total : ndarray, any shape
        Total input ``S`` over the ``steps`` steps.
    theta : float
    steps : int

    Returns
    -------
    int64 ndarray, the shape of ``total``
    """
    return np.clip(np.floor(np.asarray(total) / theta + 0.5), 0, steps).astype(np.int64)


def residual_bounds(z: np.ndarray, theta: float) -> tuple[float, float]:
    """The bounds ``(m, M)`` with ``m ≤ u_T < M`` for one neuron's input sequence (eq. 2).

    Parameters
    ----------
    z : ndarray, shape (T,)
        Input of each step.
    theta : float

    Returns
    -------
    (float, float)
        ``m = min(0, min_s Σ_{k>s} z_k)`` and ``M = θ + max(0, max_s Σ_{k>s} (z_k − θ))``,
        ``s = 0 .. T−1``.
    """
    z = np.asarray(z, dtype=np.float64)
    suffix = np.cumsum(z[::-1])[::-1]  # suffix[s] = Σ_{k ≥ s} z_k (0-based): Σ_{k>s} 1-based
    over = np.cumsum((z - theta)[::-1])[::-1]
    return min(0.0, float(suffix.min())), theta + max(0.0, float(over.max()))
