"""NIR's leaky integrator (``nir.LI``), discretised by forward Euler: op ``li`` (no spikes).

NIR states ``τ·dv/dt = (v_leak − v) + R·I`` and no spikes: the node's output is ``v``. One
step per neuron (``d = fl(dt / τ)``, every operation rounded once, no fused multiply-add)::

    v <- v + d·((v_leak − v) + r·I);   value = v

(``exact``, the node's ``discretisation`` attribute: ``d = fl(1 − e^{−dt/τ})``, as ``lif``.)

Arrays are flattened per sample: ``v``, ``current`` have shape (B, N); the parameters (N,).
"""

from __future__ import annotations

from refsnn.jit import parallel, prange
from refsnn.model.ops import OpSpec
from refsnn.neurons.base import Kind, NirSpec, positive, register, with_out
from refsnn.neurons.nir_base import DISCRETISATION, NirState, flat, full, rates


def li_step_numpy(v, current, decay, r, v_leak):
    """Reference step; updates ``v`` in place and returns a copy of it, shape (B, N)."""
    v += decay * ((v_leak - v) + r * current)
    return v.copy()


@parallel(work=lambda v, current, decay, r, v_leak, out: v.size)
def _li_kernel(v, current, decay, r, v_leak, out):
    for b in prange(v.shape[0]):
        for i in range(v.shape[1]):
            x = v[b, i]
            x = x + decay[i] * ((v_leak[i] - x) + r[i] * current[b, i])
            v[b, i] = x
            out[b, i] = x


#: Numba twin of :func:`li_step_numpy`; bit-identical.
li_step_numba = with_out(_li_kernel)


class Li(NirState):
    KERNELS = {"numpy": {"step": li_step_numpy}, "numba": {"step": li_step_numba}}

    def constants_of(self, node, dt):
        return {"decay": rates(dt, flat(node, "tau"), node.attrs["discretisation"])[1],
                "r": flat(node, "r"),
                "v_leak": flat(node, "v_leak")}


register(Kind("li", Li, spec=OpSpec("li", 1, attrs=DISCRETISATION,
                                    params=("tau", "r", "v_leak"),
                                    param_shapes=full("tau", "r", "v_leak"),
                                    out_shape=positive("tau")),
              nir=NirSpec("LI", timed=True)))
