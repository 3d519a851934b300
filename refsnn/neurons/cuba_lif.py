"""NIR's current-based leaky integrate-and-fire neuron (``nir.CubaLIF``): op ``cuba_lif``.

NIR states ``τ_syn·dI/dt = −I + w_in·x``, ``τ_mem·dv/dt = (v_leak − v) + r·I``, a spike
``z = 1`` when ``v > v_threshold`` and then ``v ← v_reset``. Both states start at 0. With the
time step ``dt`` chosen at import and the node's ``discretisation`` attribute
(:data:`refsnn.neurons.nir_base.DISCRETISATIONS`, default ``euler``), the per-neuron
constants are computed once per layer by :func:`refsnn.neurons.nir_base.rates`:
``(p, q) = rates(dt, τ_syn)`` and ``(_, d) = rates(dt, τ_mem)`` (``euler``: ``q = fl(dt/τ_syn)``,
``p = fl(1 − q)``, ``d = fl(dt/τ_mem)``; ``exact``: ``p = e^{−dt/τ_syn}``, ``q = 1 − p``,
``d = 1 − e^{−dt/τ_mem}``, each rounded once). One step per neuron, in this order, every
operation rounded once (no fused multiply-add):

1. synapse: ``I' = p·I + q·(w_in·x)``, evaluated as ``fl(fl(p·I) + fl(q·fl(w_in·x)))``
2. membrane: ``v <- v + d·((v_leak − v) + r·J)``, evaluated as
   ``fl(v + fl(d·fl(fl(v_leak − v) + fl(r·J))))``, where ``J = I`` (the previous step's
   current: ``euler``, ``exact``) or ``J = I'`` (``euler-same-step``, as Norse and snnTorch
   do); then ``I <- I'``
3. fire:  ``z = 1 if v > v_threshold else 0`` (strict)
4. reset: ``v <- v_reset`` if ``z``
5. emit:  the event value is ``z``

The synapse is written ``p·I + q·u`` so that ``τ_syn = dt`` under ``euler`` gives
``I' = w_in·x`` exactly (``p = 0``, ``q = 1``): the node is then a ``lif`` on its input one
step late (or, ``euler-same-step``, on its input of the same step), bit for bit. The membrane
update is the ``lif`` kind's. ``exact`` solves each equation exactly over the step with its
input (``x``, resp. ``I``) held at the value the step reads: the exponential integrator.

Kernels take arrays flattened per sample: ``i``, ``v``, ``current`` and the events have shape
(B, N); the constants shape (N,).
"""

from __future__ import annotations

import numpy as np

from refsnn.jit import parallel, prange
from refsnn.model.ops import OpSpec, ShapeRuleError
from refsnn.neurons import nir_base
from refsnn.neurons.base import Kind, NirSpec, TraceSpec, register, with_out
from refsnn.neurons.nir_base import (DISCRETISATION, DISCRETISATION_CHECK, NirState, flat,
                                     full, nonzero, param, rates)


def cuba_lif_step_numpy(i, v, current, same_step, p, q, w_in, decay, r, v_leak, v_threshold,
                        v_reset):
    """Reference step; updates ``i`` and ``v`` in place and returns the events (0 or 1),
    shape (B, N). ``same_step``: the membrane reads the new current."""
    new = p * i + q * (w_in * current)
    v += decay * ((v_leak - v) + r * (new if same_step else i))
    i[...] = new
    fired = v > v_threshold
    np.copyto(v, np.broadcast_to(v_reset, v.shape), where=fired)
    return fired.astype(v.dtype)


@parallel(work=lambda i, v, current, same_step, p, q, w_in, decay, r, v_leak, v_threshold,
          v_reset, out: 2 * v.size)
def _cuba_lif_kernel(i, v, current, same_step, p, q, w_in, decay, r, v_leak, v_threshold,
                     v_reset, out):
    for b in prange(v.shape[0]):
        for k in range(v.shape[1]):
            old = i[b, k]
            new = p[k] * old + q[k] * (w_in[k] * current[b, k])
            drive = new if same_step else old
            x = v[b, k]
            x = x + decay[k] * ((v_leak[k] - x) + r[k] * drive)
            i[b, k] = new
            if x > v_threshold[k]:
                out[b, k] = 1.0
                x = v_reset[k]
            else:
                out[b, k] = 0.0
            v[b, k] = x


#: Numba twin of :func:`cuba_lif_step_numpy`; bit-identical.
cuba_lif_step_numba = with_out(_cuba_lif_kernel)

KERNELS = {"numpy": {"step": cuba_lif_step_numpy}, "numba": {"step": cuba_lif_step_numba}}


def synapse_constants(node, dt) -> dict:
    """The constants of a current-based node (``cuba_lif``, ``cuba_li``) in its kernel's
    order up to ``r``: ``p``, ``q`` (synapse), ``w_in``, ``decay`` (membrane), ``r``,
    ``v_leak``; each (N,)."""
    how = node.attrs["discretisation"]
    try:
        p, q = rates(dt, flat(node, "tau_syn"), how)
        _, decay = rates(dt, flat(node, "tau_mem"), how)
    except ValueError as e:
        raise ValueError(f"node '{node.name}': {e}") from None
    return {"p": p, "q": q, "w_in": flat(node, "w_in"), "decay": decay, "r": flat(node, "r"),
            "v_leak": flat(node, "v_leak")}


class CubaState(NirState):
    """A node with a synaptic current ``I`` and a potential ``v``; its state is one (2, B, N)
    array, ``I`` then ``v``, initially 0."""

    def __init__(self, node, graph, backend, schedule):
        super().__init__(node, graph, backend, schedule)
        self.same_step = node.attrs["discretisation"] == "euler-same-step"

    def init(self, batch):
        return np.zeros((2, batch, self.n), self.constants["p"].dtype)

    def step(self, state, x):
        out = self.kernels["step"](state[0], state[1],
                                   np.ascontiguousarray(x.reshape(state[1].shape)),
                                   self.same_step, *self.constants.values())
        return out.reshape(x.shape)

    def potential(self, state):
        return state[1].reshape((state.shape[1],) + self.shape)


class CubaLif(CubaState):
    is_neuron, spike_sign = True, 1
    KERNELS = KERNELS

    def constants_of(self, node, dt):
        return {**synapse_constants(node, dt), "v_threshold": flat(node, "v_threshold"),
                "v_reset": flat(node, "v_reset")}


# ------------------------------------------------------------------- compare's replays

#: ``compare``'s departures of this kind besides the shared ones (None: the reference's own):
#: ``current`` the membrane reads the synaptic current of the ``previous`` or the ``same``
#: step; ``spike`` the input is a Dirac of area 1 (``dirac``: ``x·fl(1/dt)``) instead of 1;
#: ``w_in`` is ignored (``1``).
OWN = {"current": (None, "previous", "same"), "spike": (None, "dirac"), "w_in": (None, "1")}
#: The discretisations a framework may use instead (the ``leak`` departure).
LEAKS = ("euler", "exact")


def charging(current=None, spike=None, w_in=None):
    """A fresh replay charge step ``charge(layer, v, x, one, leak) -> v`` holding ``I`` (the
    same operations as the kernel with every argument at its default); departures: those of
    :data:`OWN`, ``r = 1`` (``one``), the ``leak`` discretisation of :data:`LEAKS`."""
    held = {}

    def charge(layer, v, x, one, leak):
        shape, dt = x.shape[1:], x.dtype
        get = lambda name: param(layer, name, shape).astype(dt)  # noqa: E731
        if leak is None:
            p, q, decay = get("p"), get("q"), get("decay")
        else:
            step = np.asarray(layer.params["dt"], dt)
            p, q = (a.reshape(shape) for a in rates(step, get("tau_syn").reshape(-1), leak))
            decay = rates(step, get("tau_mem").reshape(-1), leak)[1].reshape(shape)
        if spike == "dirac":
            x = x * (np.asarray(1, dt) / np.asarray(layer.params["dt"], dt))
        w = np.ones(shape, dt) if w_in == "1" else get("w_in")
        r = np.ones(shape, dt) if one else get("r")
        i = held.get("i", np.zeros_like(v))
        new = p * i + q * (w * x)
        same = (layer.params["discretisation"] == "euler-same-step") if current is None \
            else current == "same"
        held["i"] = new
        return v + decay * ((get("v_leak") - v) + r * (new if same else i))
    return charge


def trace_params(op) -> dict:
    """What a trace records of a current-based layer: its constants, time constants, ``dt``
    and discretisation."""
    return {**op.constants, "tau_syn": flat(op.node, "tau_syn"),
            "tau_mem": flat(op.node, "tau_mem"), "dt": float(op.dt),
            "discretisation": op.node.attrs["discretisation"]}


_FINITE = (nir_base.finite, "finite real numbers")
#: Trace checks of a current-based layer's parameters.
CHECKS = {**{k: _FINITE for k in ("p", "q", "w_in", "decay", "r", "v_leak", "v_threshold",
                                  "v_reset", "tau_syn", "tau_mem")},
          **DISCRETISATION_CHECK}
def check_rates(params, dt, attrs):
    """``NirSpec.check``: both time constants non-zero, with finite constants over the step
    (:func:`refsnn.neurons.nir_base.rates`) in the parameters' dtype."""
    how = attrs.get("discretisation", DISCRETISATION["discretisation"].default)
    for name in ("tau_syn", "tau_mem"):
        tau = np.asarray(params[name]).reshape(-1)
        if np.any(tau == 0):
            raise ShapeRuleError(name, "finite non-zero values", "0")
        try:
            rates(np.asarray(dt, tau.dtype), tau, how)
        except ValueError as e:
            raise ShapeRuleError(name, "time constants whose factors over the step are "
                                 "finite", str(e)) from None


def exporter(params):
    """``NirSpec.export`` of a current-based kind with NIR fields ``params``."""
    def export(node, shape):
        return {p: np.array(node.params[p]).reshape(shape) for p in params}, None
    return export


def refuse_discretisation(node):
    """``NirSpec.refuse``: a NIR graph has no place for a discretisation other than the
    default."""
    how = node.attrs["discretisation"]
    return None if how == "euler" else (
        f"its '{how}' discretisation is not part of a NIR graph (export the 'euler' one, or "
        f"read the file back with discretisation='{how}')")


_PARAMS = ("tau_syn", "tau_mem", "r", "v_leak", "v_threshold", "v_reset", "w_in")

register(Kind(
    "cuba_lif", CubaLif,
    spec=OpSpec("cuba_lif", 1, attrs=DISCRETISATION, params=_PARAMS, param_shapes=full(*_PARAMS),
                out_shape=nonzero("tau_syn", "tau_mem")),
    trace=TraceSpec(params=trace_params, checks=CHECKS),
    hypotheses=nir_base.hypotheses(charging, LEAKS, OWN),
    nir=NirSpec("CubaLIF", timed=True, export=exporter(_PARAMS),
                refuse=refuse_discretisation, check=check_rates)))
