"""signGD neurons (Oh & Lee, ICML 2024): neurons that run sign gradient descent.

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
inside the reach ``eta0 / (1 - gamma)`` of ``v``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy.special import erf, expit

from refsnn.jit import parallel, prange


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
