"""NIR's leaky integrate-and-fire neuron (``nir.LIF``), discretised by forward Euler: op ``lif``.

NIR states ``τ·dv/dt = (v_leak − v) + R·I``, a spike ``z = 1`` when ``v > v_threshold`` and
then ``v ← v_reset``. With the time step ``dt`` chosen at import, one step per neuron, in this
order (every operation rounded once, no fused multiply-add):

1. charge: ``v <- v + d·((v_leak − v) + r·I)`` with ``d = fl(dt / τ)``; with the node's
   ``discretisation`` attribute ``exact``, ``d = fl(1 − e^{−dt/τ})``, the exponential
   (zero-order hold) step (:func:`refsnn.neurons.nir_base.rates`; ``euler-same-step`` is
   ``euler``: there is no other state)
2. fire:   ``z = 1 if v > v_threshold else 0`` (strict)
3. reset:  ``v <- v_reset`` if ``z``
4. emit:   the event value is ``z``

Kernels take arrays flattened per sample: ``v``, ``current`` and the events have shape (B, N);
the parameters shape (N,).
"""

from __future__ import annotations

import numpy as np

from refsnn.jit import parallel, prange
from refsnn.model.ops import OpSpec
from refsnn.neurons import nir_base
from refsnn.neurons.base import (Kind, NirSpec, TraceSpec, positive, positive_number,
                                 register, with_out)
from refsnn.neurons.nir_base import (DISCRETISATION, DISCRETISATION_CHECK, NirState, flat,
                                     full, param, rates)


def lif_step_numpy(v, current, decay, r, v_leak, v_threshold, v_reset):
    """Reference step; updates ``v`` in place and returns the events (0 or 1), shape (B, N)."""
    v += decay * ((v_leak - v) + r * current)
    fired = v > v_threshold
    np.copyto(v, np.broadcast_to(v_reset, v.shape), where=fired)
    return fired.astype(v.dtype)


@parallel(work=lambda v, current, decay, r, v_leak, v_threshold, v_reset, out: v.size)
def _lif_kernel(v, current, decay, r, v_leak, v_threshold, v_reset, out):
    for b in prange(v.shape[0]):
        for i in range(v.shape[1]):
            x = v[b, i]
            x = x + decay[i] * ((v_leak[i] - x) + r[i] * current[b, i])
            if x > v_threshold[i]:
                out[b, i] = 1.0
                x = v_reset[i]
            else:
                out[b, i] = 0.0
            v[b, i] = x


#: Numba twin of :func:`lif_step_numpy`; bit-identical.
lif_step_numba = with_out(_lif_kernel)


KERNELS = {"numpy": {"step": lif_step_numpy}, "numba": {"step": lif_step_numba}}


class Lif(NirState):
    is_neuron, spike_sign = True, 1
    KERNELS = KERNELS

    def constants_of(self, node, dt):
        return {"decay": rates(dt, flat(node, "tau"), node.attrs["discretisation"])[1],
                "r": flat(node, "r"),
                "v_leak": flat(node, "v_leak"), "v_threshold": flat(node, "v_threshold"),
                "v_reset": flat(node, "v_reset")}


#: Other discretisations of the leak ``compare`` tries: ``exp`` is
#: ``v ← β·v + (1 − β)·(v_leak + r·I)`` with ``β = e^{−dt/τ}``; ``exp-dt1`` is
#: ``v ← β·v + (1 − β)·v_leak + r·I`` with ``β = e^{−1/τ}`` (τ read in steps, the input not
#: scaled).
LEAKS = ("exp", "exp-dt1")


def charge(layer, v, current, one, leak):
    """The replay's charge step ``v <- v + d·((v_leak − v) + r·I)``; departures: ``r = 1``
    (``one``), a leak of :data:`LEAKS`."""
    shape, dt = current.shape[1:], current.dtype
    r = np.ones(shape, dt) if one else param(layer, "r", shape).astype(dt)
    v_leak = param(layer, "v_leak", shape).astype(dt)
    if leak is None:
        decay = param(layer, "decay", shape).astype(dt)
        return v + decay * ((v_leak - v) + r * current)
    tau = param(layer, "tau", shape)
    step = np.float64(layer.params["dt"]) if leak == "exp" else 1.0
    beta = np.exp(-step / tau).astype(dt)
    drive = r * current if leak == "exp-dt1" else (1 - beta) * r * current
    return beta * v + (1 - beta) * v_leak + drive


def _params(op):
    return {**op.constants, "tau": np.asarray(op.node.params["tau"]).reshape(-1),
            "dt": float(op.dt), "discretisation": op.node.attrs["discretisation"]}


_FINITE = (nir_base.finite, "finite real numbers")

register(Kind(
    "lif", Lif,
    spec=OpSpec("lif", 1, attrs=DISCRETISATION,
                params=("tau", "r", "v_leak", "v_threshold", "v_reset"),
                param_shapes=full("tau", "r", "v_leak", "v_threshold", "v_reset"),
                out_shape=positive("tau")),
    trace=TraceSpec(params=_params,
                    checks={**{k: _FINITE for k in ("decay", "r", "v_leak", "v_threshold",
                                                    "v_reset", "tau")},
                            "dt": (positive_number, "a positive finite number"),
                            **DISCRETISATION_CHECK}),
    hypotheses=nir_base.hypotheses(charge, LEAKS), nir=NirSpec("LIF", timed=True)))
