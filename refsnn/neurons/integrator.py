"""NIR's integrator (``nir.I``), discretised by forward Euler: op ``integrator`` (no spikes).

NIR states ``dv/dt = R·I`` and no spikes: the node's output is ``v``. One step per neuron
(``g = fl(dt·r)``)::

    v <- v + g·I;   value = v

Arrays are flattened per sample: ``v``, ``current`` have shape (B, N); ``gain`` (N,).
"""

from __future__ import annotations

from refsnn.jit import parallel, prange
from refsnn.model.ops import OpSpec
from refsnn.neurons.base import Kind, NirSpec, register, with_out
from refsnn.neurons.nir_base import NirState, flat, full, same


def integrator_step_numpy(v, current, gain):
    """Reference step; updates ``v`` in place and returns a copy of it, shape (B, N)."""
    v += gain * current
    return v.copy()


@parallel(work=lambda v, current, gain, out: v.size)
def _integrator_kernel(v, current, gain, out):
    for b in prange(v.shape[0]):
        for i in range(v.shape[1]):
            x = v[b, i] + gain[i] * current[b, i]
            v[b, i] = x
            out[b, i] = x


#: Numba twin of :func:`integrator_step_numpy`; bit-identical.
integrator_step_numba = with_out(_integrator_kernel)


class Integrator(NirState):
    KERNELS = {"numpy": {"step": integrator_step_numpy}, "numba": {"step": integrator_step_numba}}

    def constants_of(self, node, dt):
        return {"gain": dt * flat(node, "r")}


register(Kind("integrator", Integrator,
              spec=OpSpec("integrator", 1, params=("r",), param_shapes=full("r"),
                          out_shape=same),
              nir=NirSpec("I", timed=True)))
