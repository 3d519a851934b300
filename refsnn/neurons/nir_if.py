"""NIR's integrate-and-fire neuron (``nir.IF``), discretised by forward Euler.

NIR states ``dv/dt = R·I``, a spike ``z = 1`` when ``v > v_threshold`` and then
``v ← v_reset``. With the time step ``dt`` chosen at import (``docs/semantics.md``, "NIR
graphs"), one step per neuron, in this order:

1. charge: ``v <- v + g·I`` with ``g = fl(dt·r)`` (one rounded product, then one rounded sum)
2. fire:   ``z = 1 if v > v_threshold else 0`` (strict: a potential exactly at threshold does
   not fire)
3. reset:  ``v <- v_reset`` if ``z``
4. emit:   the event value is ``z`` (a spike is 1, not the threshold)

Arrays are flattened per sample: ``v``, ``current`` and the events have shape (B, N); ``gain``,
``threshold`` and ``v_reset`` shape (N,).
"""

from __future__ import annotations

import numpy as np

from refsnn.jit import parallel, prange


def nir_if_step_numpy(v, current, gain, threshold, v_reset):
    """Reference step; updates ``v`` in place and returns the events (0 or 1), shape (B, N)."""
    v += gain * current
    fired = v > threshold
    np.copyto(v, np.broadcast_to(v_reset, v.shape), where=fired)
    return fired.astype(v.dtype)


@parallel(work=lambda v, current, gain, threshold, v_reset, out: v.size)
def _nir_if_kernel(v, current, gain, threshold, v_reset, out):
    for b in prange(v.shape[0]):
        for i in range(v.shape[1]):
            x = v[b, i] + gain[i] * current[b, i]
            if x > threshold[i]:
                out[b, i] = 1.0
                x = v_reset[i]
            else:
                out[b, i] = 0.0
            v[b, i] = x


def nir_if_step_numba(v, current, gain, threshold, v_reset):
    """Numba twin of :func:`nir_if_step_numpy`; bit-identical."""
    out = np.empty_like(v)
    _nir_if_kernel(v, current, gain, threshold, v_reset, out)
    return out
