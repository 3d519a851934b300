"""NIR's leaky integrate-and-fire neuron (``nir.LIF``), discretised by forward Euler.

NIR states ``τ·dv/dt = (v_leak − v) + R·I``, a spike ``z = 1`` when ``v > v_threshold`` and
then ``v ← v_reset``. With the time step ``dt`` chosen at import, one step per neuron, in this
order (every operation rounded once, no fused multiply-add):

1. charge: ``v <- v + d·((v_leak − v) + r·I)`` with ``d = fl(dt / τ)``
2. fire:   ``z = 1 if v > v_threshold else 0`` (strict)
3. reset:  ``v <- v_reset`` if ``z``
4. emit:   the event value is ``z``

Arrays are flattened per sample: ``v``, ``current`` and the events have shape (B, N); the
parameters shape (N,).
"""

from __future__ import annotations

import numpy as np

from refsnn.jit import parallel, prange


def lif_step_numpy(v, current, decay, r, v_leak, threshold, v_reset):
    """Reference step; updates ``v`` in place and returns the events (0 or 1), shape (B, N)."""
    v += decay * ((v_leak - v) + r * current)
    fired = v > threshold
    np.copyto(v, np.broadcast_to(v_reset, v.shape), where=fired)
    return fired.astype(v.dtype)


@parallel(work=lambda v, current, decay, r, v_leak, threshold, v_reset, out: v.size)
def _lif_kernel(v, current, decay, r, v_leak, threshold, v_reset, out):
    for b in prange(v.shape[0]):
        for i in range(v.shape[1]):
            x = v[b, i]
            x = x + decay[i] * ((v_leak[i] - x) + r[i] * current[b, i])
            if x > threshold[i]:
                out[b, i] = 1.0
                x = v_reset[i]
            else:
                out[b, i] = 0.0
            v[b, i] = x


def lif_step_numba(v, current, decay, r, v_leak, threshold, v_reset):
    """Numba twin of :func:`lif_step_numpy`; bit-identical."""
    out = np.empty_like(v)
    _lif_kernel(v, current, decay, r, v_leak, threshold, v_reset, out)
    return out
