"""signGD neurons (Oh & Lee, ICML 2024), op ``sgd``: neurons that run sign gradient descent.

Each neuron keeps an input estimate ``x_hat`` (one per input) and an output estimate ``v``.
All neurons, the encoder and the decoder share the step sizes ``eta_t = eta0 * gamma**(t-1)``
(``t = 1, 2, ...``). One step, per neuron, in this order (``docs/semantics.md`` is the written
version):

1. charge: ``x_hat <- x_hat + I`` for each input (``I``: the increment its synapses deliver);
2. fire:   ``s = 1 if v >= f(x_hat) / scale else 0`` (``>`` for a strict tie rule);
3. update: ``v <- v - eta_t * (2 s - 1)``, i.e. ``v`` moves by ``-eta_t`` when it spiked and by
   ``+eta_t`` when it did not: the spike is the sign of the gradient of ``(v - target)**2 / 2``;
4. emit:   the increment ``scale * (v_new - v_old)``, so downstream synapses see the change of the
   estimate ``scale * v`` of ``f(x_hat)``.

The target ``f(x_hat) / scale`` is computed with NumPy/SciPy for both backends (so they agree
bit for bit); the compare-and-update is the kernel. ``scale`` (> 0, one per neuron) keeps targets
inside the reach ``eta0 / (1 - gamma)`` of ``v``. ``compare`` replays a layer's recorded targets
through :func:`signgd_fire_numpy` with departures (:func:`replay_signgd`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy.special import erf, expit

from refsnn.jit import parallel, prange
from refsnn.model.ops import AttrSpec, OpSpec, ShapeRuleError
from refsnn.neurons.base import Kind, StepOp, TraceSpec, positive_number, register
from refsnn.neurons.replay import delay, first_mismatch, guarded


@dataclass(frozen=True)
class Target:
    """A function a signGD neuron tracks.

    Attributes
    ----------
    n_inputs : int
    fn : callable
        ``fn(attrs, *x_hat) -> f``; element-wise, NumPy, any dtype.
    """

    n_inputs: int
    fn: Callable


def _gelu(attrs, x):
    return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))


def _gelu_tanh(attrs, x):
    return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x ** 3)))


def _gelu_sigmoid(attrs, x):
    # The reference code's approximation x * sigmoid(1.702 x); within ~0.02 of the exact GELU.
    return x * expit(1.702 * x)


def _hardsigmoid(attrs, x):
    return np.clip(x + 3.0, 0.0, 6.0) / 6.0


TARGETS: dict[str, Target] = {
    "relu": Target(1, lambda a, x: np.maximum(x, 0.0)),
    "leaky_relu": Target(1, lambda a, x: np.where(x >= 0, x, a["slope"] * x)),
    "gelu": Target(1, _gelu),
    "gelu_tanh": Target(1, _gelu_tanh),
    "gelu_sigmoid": Target(1, _gelu_sigmoid),
    "silu": Target(1, lambda a, x: x * expit(x)),
    "sigmoid": Target(1, lambda a, x: expit(x)),
    "tanh": Target(1, lambda a, x: np.tanh(x)),
    "hardtanh": Target(1, lambda a, x: np.clip(x, a["min_value"], a["max_value"])),
    "abs": Target(1, lambda a, x: np.abs(x)),
    "square": Target(1, lambda a, x: x * x),
    "exp": Target(1, lambda a, x: np.exp(x)),
    "hardsigmoid": Target(1, _hardsigmoid),
    "hardswish": Target(1, lambda a, x: x * np.clip(x + 3.0, 0.0, 6.0) / 6.0),
    # log_softmax's log of the sum; an estimate below eps counts as eps.
    "log": Target(1, lambda a, x: np.log(np.maximum(x, a["eps"]))),
    "max": Target(2, lambda a, x, y: np.maximum(x, y)),
    "multiply": Target(2, lambda a, x, y: x * y),
    # LayerNorm's a / sqrt(b + eps); an estimate of the variance b below 0 counts as 0.
    "normalize": Target(2, lambda a, x, y: x / np.sqrt(np.maximum(y, 0.0) + a["eps"])),
    # softmax's a / b; an estimate of the sum b below eps counts as eps.
    "divide": Target(2, lambda a, x, y: x / np.maximum(y, a["eps"])),
}
"""Target name -> function; the ``fn`` attribute of an ``sgd`` node picks one."""


def target_value(fn: str, attrs, x_hats) -> np.ndarray:
    """``f(x_hat)`` for the target ``fn`` with the node's attributes."""
    return TARGETS[fn].fn(attrs, *x_hats)


def signgd_fire_numpy(v, target, eta: float, inclusive: bool, scale):
    """Reference fire-and-update; ``v``, ``target``, ``scale`` of shape (B, N), (B, N), (N,).

    Updates ``v`` in place and returns the emitted increments ``scale * delta_v``, (B, N).
    """
    fired = v >= target if inclusive else v > target
    delta = np.where(fired, -eta, eta).astype(v.dtype)
    v += delta
    return delta * scale


@parallel(work=lambda v, target, eta, inclusive, scale, out: v.size)
def _fire_kernel(v, target, eta, inclusive, scale, out):
    for b in prange(v.shape[0]):
        for i in range(v.shape[1]):
            if inclusive:
                fired = v[b, i] >= target[b, i]
            else:
                fired = v[b, i] > target[b, i]
            delta = -eta if fired else eta
            v[b, i] += delta
            out[b, i] = delta * scale[i]


def signgd_fire_numba(v, target, eta: float, inclusive: bool, scale):
    """Numba twin of :func:`signgd_fire_numpy`; bit-identical."""
    out = np.empty_like(v)
    _fire_kernel(v, target, v.dtype.type(eta), inclusive, scale, out)
    return out


def step_size(eta0: float, gamma: float, t: int) -> float:
    """``eta_t = eta0 * gamma ** (t - 1)``, for ``t >= 1`` (float64, the one definition)."""
    return float(eta0) * float(gamma) ** (t - 1)


def reach(eta0: float, gamma: float) -> float:
    """How far ``v`` can ever move from ``v_0``: ``eta0 / (1 - gamma)`` (the sum of all steps)."""
    return float(eta0) / (1.0 - float(gamma))


KERNELS = {"numpy": {"fire": signgd_fire_numpy}, "numba": {"fire": signgd_fire_numba}}


class SignGDNeurons(StepOp):
    """signGD neurons. State: ``x`` (one input estimate per input, (B, *shape) each), ``v``
    (B, N), the step counter ``t`` and the last target (B, N), kept to report saturation.
    """

    is_neuron = True
    stateless = False
    spike_sign = -1  # a spike (s = 1) lowers the estimate: its increment is negative
    KERNELS = KERNELS

    def __init__(self, node, graph, backend, schedule):
        super().__init__(node, graph, backend, schedule)
        self.fn = node.attrs["fn"]
        self.inclusive = node.attrs["tie"] == "inclusive"
        self.scale = np.ascontiguousarray(np.asarray(node.params["scale"]).reshape(-1))
        self.x_init = np.asarray(node.params["x_init"])
        self.eta0, self.gamma = schedule["eta0"], schedule["gamma"]
        self.reach = reach(self.eta0, self.gamma)

    def init(self, batch):
        n = self.scale.size
        return {"x": [np.repeat(xi[None], batch, axis=0) for xi in self.x_init],
                "v": np.zeros((batch, n), self.scale.dtype), "t": 0,
                "target": np.zeros((batch, n), self.scale.dtype)}

    def step(self, state, *xs):
        state["t"] += 1
        for x_hat, increment in zip(state["x"], xs):
            x_hat += increment
        target = target_value(self.fn, self.node.attrs, state["x"])
        target = np.ascontiguousarray((target / self.scale.reshape(self.shape)).reshape(
            state["v"].shape), dtype=state["v"].dtype)
        state["target"] = target
        eta = step_size(self.eta0, self.gamma, state["t"])
        out = self.kernels["fire"](state["v"], target, eta, self.inclusive, self.scale)
        return out.reshape((out.shape[0],) + self.shape)

    def potential(self, state):
        return (state["v"] * self.scale).reshape((state["v"].shape[0],) + self.shape)

    def saturated(self, state):
        """Neurons that can no longer reach their last target, (B, *shape) bool.

        After step ``t`` the estimate can still travel ``sum_{k > t} eta_k =
        gamma * eta_t / (1 - gamma)``; a neuron further than that from its target (beyond the
        reach, or stuck because its target moved away while the steps shrank) is saturated.
        """
        t = state["t"]
        left = self.gamma * step_size(self.eta0, self.gamma, t) / (1.0 - self.gamma) if t \
            else self.reach
        return (np.abs(state["target"] - state["v"]) > left).reshape((-1,) + self.shape)


def _sgd_params(attrs, in_shapes):
    shape = in_shapes[0]
    return {"scale": shape, "x_init": (len(in_shapes),) + shape}


def _sgd_out(attrs, in_shapes, params):
    target = TARGETS.get(attrs["fn"])
    if target is None:
        raise ShapeRuleError("fn", f"one of {sorted(TARGETS)}", repr(attrs["fn"]))
    if target.n_inputs != len(in_shapes):
        raise ShapeRuleError("inputs", f"{target.n_inputs} input(s) for {attrs['fn']}",
                             str(len(in_shapes)))
    for s in in_shapes[1:]:
        if s != in_shapes[0]:
            raise ShapeRuleError("inputs", f"equal shapes {in_shapes[0]}", str(s))
    if "scale" in params and np.any(params["scale"] <= 0):  # a draft has no params yet
        raise ShapeRuleError("scale", "positive scales", "a value <= 0")
    if attrs["min_value"] >= attrs["max_value"]:
        raise ShapeRuleError("min_value", f"less than max_value={attrs['max_value']}",
                             str(attrs["min_value"]))
    return in_shapes[0]


def sgd_forward(node, *xs):
    """ANN meaning of an ``sgd`` node: its target function."""
    return target_value(node.attrs["fn"], node.attrs, xs)


def _with_constants(node, *xs):
    """An ``sgd`` node in a converted network's ANN limit: the synapses of a converted file
    carry no constants, so the node computes ``f`` of its inputs plus its ``x_init``."""
    shifted = [xi + c for xi, c in zip(xs, node.params["x_init"])]
    return target_value(node.attrs["fn"], node.attrs, shifted)


# ------------------------------------------------------------------- compare's replays

def replay_signgd(target, eta0, gamma, tie="inclusive", offset=0):
    """Replay a signGD layer on its recorded targets through :func:`signgd_fire_numpy`
    (refsnn's rule; departures by keyword).

    Parameters
    ----------
    target : ndarray, shape (T, B, ...)
        ``tau = f(x_hat) / scale`` at every step.
    eta0, gamma : float
    tie : {"inclusive", "strict"}
        Fire on ``v >= tau`` or on ``v > tau``.
    offset : int
        Step sizes ``eta0 * gamma ** (t - 1 + offset)`` (0 is refsnn's schedule).

    Returns
    -------
    spikes : bool ndarray, shape (T, B, ...)
    pre : ndarray, shape (T, B, ...)
        The estimate ``v`` compared with the target at each step.
    """
    v = np.zeros(target.shape[1:], target.dtype)
    spikes = np.zeros(target.shape, bool)
    pre = np.zeros_like(target)
    for t in range(1, target.shape[0] + 1):
        pre[t - 1] = v
        out = signgd_fire_numpy(v, target[t - 1], step_size(eta0, gamma, t + offset),
                                tie == "inclusive", 1.0)
        spikes[t - 1] = np.signbit(out)  # a spike's increment is -eta (-0.0 if eta is 0)
    return spikes, pre


def _replayable(ref):
    return ref.target is not None and {"eta0", "gamma", "tie"} <= set(ref.params)


def _replay(ref, **variant):
    p = ref.params
    kw = {"tie": str(p["tie"]), **variant}
    return replay_signgd(ref.target, float(p["eta0"]), float(p["gamma"]), **kw)


_OTHER_TIE = {"inclusive": "strict", "strict": "inclusive"}


def _tie(ref, other, rtol):
    tie = _OTHER_TIE[str(ref.params["tie"])]
    spikes, _ = _replay(ref, tie=tie)
    return bool(np.array_equal(spikes, other)), f"replay with the {tie} tie rule reproduces it"


def _rounding(ref, other, rtol):
    _, v = _replay(ref)
    t, idx = first_mismatch(ref.spikes, other)
    at = (t,) + idx
    margins = np.abs(v[at] - ref.target[at])
    limit = rtol * np.maximum(np.abs(v[at]), np.abs(ref.target[at]))
    return bool(np.all(margins <= limit)), \
        f"largest margin |v - target| = {margins.max(initial=0.0):.3g}"


def _schedule(ref, other, rtol):
    for offset in (1, -1, 2, -2):
        spikes, _ = _replay(ref, offset=offset)
        if np.array_equal(spikes, other):
            return True, f"step sizes eta0 * gamma^(t - 1 {'+' if offset > 0 else '-'} " \
                         f"{abs(offset)}) reproduce it"
    return False, ""


register(Kind(
    "sgd", SignGDNeurons,
    spec=OpSpec("sgd", -1,
                attrs={"fn": AttrSpec("str"),
                       "tie": AttrSpec("str", default="inclusive",
                                       choices=("inclusive", "strict")),
                       "slope": AttrSpec("float", default=0.01),
                       "min_value": AttrSpec("float", default=-1.0),
                       "max_value": AttrSpec("float", default=1.0),
                       "eps": AttrSpec("float", default=0.0)},
                params=("scale", "x_init"), param_shapes=_sgd_params, out_shape=_sgd_out),
    forward=sgd_forward, limit=_with_constants,
    trace=TraceSpec("target", lambda state, xs, out: state["target"].reshape(out.shape),
                    lambda op: {"eta0": float(op.eta0), "gamma": float(op.gamma),
                                "tie": str(op.node.attrs["tie"])},
                    {"eta0": (positive_number, "a positive finite number"),
                     "gamma": (positive_number, "a positive finite number"),
                     "tie": (lambda v: isinstance(v, str) and v in _OTHER_TIE,
                             "'inclusive' or 'strict'")}),
    hypotheses={"delay": (delay, False), **guarded(_replayable, {
        "comparison": (_tie, False), "rounding": (_rounding, True),
        "schedule": (_schedule, False)})},
    nir_refusal="a signGD neuron has no NIR equivalent; convert with --method if --reset zero"))
