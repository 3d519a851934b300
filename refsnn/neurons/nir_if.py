"""NIR's integrate-and-fire neuron (``nir.IF``), discretised by forward Euler: op ``nir_if``.

NIR states ``dv/dt = R·I``, a spike ``z = 1`` when ``v > v_threshold`` and then
``v ← v_reset``. With the time step ``dt`` chosen at import (``docs/semantics.md``, "NIR
graphs"), one step per neuron, in this order:

1. charge: ``v <- v + g·I`` with ``g = fl(dt·r)`` (one rounded product, then one rounded sum)
2. fire:   ``z = 1 if v > v_threshold else 0`` (strict: a potential exactly at threshold does
   not fire)
3. reset:  ``v <- v_reset`` if ``z``
4. emit:   the event value is ``z`` (a spike is 1, not the threshold)

Kernels take arrays flattened per sample: ``v``, ``current`` and the events have shape (B, N);
``gain``, ``v_threshold`` and ``v_reset`` shape (N,).
"""

from __future__ import annotations

import numpy as np

from refsnn.jit import parallel, prange
from refsnn.model.ops import OpSpec
from refsnn.neurons import nir_base
from refsnn.neurons.base import Kind, NirSpec, TraceSpec, register, with_out
from refsnn.neurons.nir_base import NirState, flat, full, param, same


def nir_if_step_numpy(v, current, gain, v_threshold, v_reset):
    """Reference step; updates ``v`` in place and returns the events (0 or 1), shape (B, N)."""
    v += gain * current
    fired = v > v_threshold
    np.copyto(v, np.broadcast_to(v_reset, v.shape), where=fired)
    return fired.astype(v.dtype)


@parallel(work=lambda v, current, gain, v_threshold, v_reset, out: v.size)
def _nir_if_kernel(v, current, gain, v_threshold, v_reset, out):
    for b in prange(v.shape[0]):
        for i in range(v.shape[1]):
            x = v[b, i] + gain[i] * current[b, i]
            if x > v_threshold[i]:
                out[b, i] = 1.0
                x = v_reset[i]
            else:
                out[b, i] = 0.0
            v[b, i] = x


#: Numba twin of :func:`nir_if_step_numpy`; bit-identical.
nir_if_step_numba = with_out(_nir_if_kernel)


KERNELS = {"numpy": {"step": nir_if_step_numpy}, "numba": {"step": nir_if_step_numba}}


class NirIF(NirState):
    is_neuron, spike_sign = True, 1
    KERNELS = KERNELS

    def constants_of(self, node, dt):
        return {"gain": dt * flat(node, "r"), "v_threshold": flat(node, "v_threshold"),
                "v_reset": flat(node, "v_reset")}


#: Leaks ``compare`` tries on an IF layer that has none (snnTorch's default beta is 0.9):
#: ``v <- β·v + g·I``.
LEAKS = (0.9, 0.95, 0.99, 0.5, 0.8, 0.999)


def charge(layer, v, current, one, leak):
    """The replay's charge step: ``v <- v + g·I``; departures: ``g = 1`` (``one``), a leak."""
    shape, dt = current.shape[1:], current.dtype
    g = np.ones(shape, dt) if one else param(layer, "gain", shape).astype(dt)
    return (v if leak is None else np.asarray(leak, dt) * v) + g * current


_PARAMS = ("gain", "v_threshold", "v_reset")

register(Kind(
    "nir_if", NirIF,
    spec=OpSpec("nir_if", 1, params=("r", "v_threshold", "v_reset"),
                param_shapes=full("r", "v_threshold", "v_reset"), out_shape=same),
    trace=TraceSpec(params=lambda op: dict(op.constants),
                    checks={k: (nir_base.finite, "finite real numbers") for k in _PARAMS}),
    hypotheses=nir_base.hypotheses(charge, LEAKS), nir=NirSpec("IF", timed=True)))
