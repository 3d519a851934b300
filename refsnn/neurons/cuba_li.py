"""NIR's current-based leaky integrator (``nir.CubaLI``): op ``cuba_li`` (no spikes).

NIR states ``τ_syn·dI/dt = −I + w_in·x``, ``τ_mem·dv/dt = (v_leak − v) + r·I`` and no spikes:
the node's output is ``v``. The update is ``cuba_lif``'s (:mod:`refsnn.neurons.cuba_lif`,
the same constants, the same ``discretisation`` attribute, the same operations in the same
order) without steps 3–5::

    I' = p·I + q·(w_in·x);   v <- v + d·((v_leak − v) + r·J);   I <- I';   value = v

with ``J = I`` (``euler``, ``exact``) or ``J = I'`` (``euler-same-step``).

Arrays are flattened per sample: ``i``, ``v``, ``current`` have shape (B, N); the constants
(N,).
"""

from __future__ import annotations

from refsnn.jit import parallel, prange
from refsnn.model.ops import OpSpec
from refsnn.neurons.base import Kind, NirSpec, register, with_out
from refsnn.neurons.cuba_lif import (CubaState, check_rates, exporter, refuse_discretisation,
                                     synapse_constants)
from refsnn.neurons.nir_base import DISCRETISATION, full, nonzero


def cuba_li_step_numpy(i, v, current, same_step, p, q, w_in, decay, r, v_leak):
    """Reference step; updates ``i`` and ``v`` in place and returns a copy of ``v``, shape
    (B, N)."""
    new = p * i + q * (w_in * current)
    v += decay * ((v_leak - v) + r * (new if same_step else i))
    i[...] = new
    return v.copy()


@parallel(work=lambda i, v, current, same_step, p, q, w_in, decay, r, v_leak, out:
          2 * v.size)
def _cuba_li_kernel(i, v, current, same_step, p, q, w_in, decay, r, v_leak, out):
    for b in prange(v.shape[0]):
        for k in range(v.shape[1]):
            old = i[b, k]
            new = p[k] * old + q[k] * (w_in[k] * current[b, k])
            drive = new if same_step else old
            x = v[b, k]
            x = x + decay[k] * ((v_leak[k] - x) + r[k] * drive)
            i[b, k] = new
            v[b, k] = x
            out[b, k] = x


#: Numba twin of :func:`cuba_li_step_numpy`; bit-identical.
cuba_li_step_numba = with_out(_cuba_li_kernel)


class CubaLi(CubaState):
    KERNELS = {"numpy": {"step": cuba_li_step_numpy}, "numba": {"step": cuba_li_step_numba}}

    def constants_of(self, node, dt):
        return synapse_constants(node, dt)


_PARAMS = ("tau_syn", "tau_mem", "r", "v_leak", "w_in")

register(Kind("cuba_li", CubaLi,
              spec=OpSpec("cuba_li", 1, attrs=DISCRETISATION, params=_PARAMS,
                          param_shapes=full(*_PARAMS), out_shape=nonzero("tau_syn", "tau_mem")),
              nir=NirSpec("CubaLI", timed=True, export=exporter(_PARAMS),
                          refuse=refuse_discretisation, check=check_rates)))
