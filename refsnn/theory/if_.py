"""Closed forms for integrate-and-fire (IF) neurons, written from the method notes.

Nothing here runs a neuron: every result is computed from a formula or a recursion, so tests
can hold the simulator's kernels (:mod:`refsnn.neurons.if_`) against them. The neuron is the
one of :mod:`refsnn.neurons.if_`: per step ``u <- u + I``, fire if ``u >= theta`` (a potential
exactly at threshold fires), then ``u <- u - theta`` (reset by subtraction) or ``u <- 0``
(reset to zero). The derivations are in ``proofs/if_subgradient.ipynb``.

Notation (reset by subtraction, initial potential ``u0``, ``S(t) = I(1) + ... + I(t)``,
``N(t) = s(1) + ... + s(t)``)::

    u(t)      = u0 + S(t) - theta * N(t)
    x_hat(t)  = S(t) / (theta * t)                       t >= 1
    f_til(t)  = (N(t) + 1 - u0 / theta) / (t + 1)        t >= 0, so f_til(0) = 1 - u0 / theta
    s(t + 1)  = H(x_hat(t + 1) - f_til(t))               with H(0) = 1
    f_til(t + 1) = f_til(t) - (f_til(t) - s(t + 1)) / (t + 2)
              = f_til(t) - alpha_t * dL/dy(f_til(t); x_hat(t + 1)),  alpha_t = 1 / (t + 2)

with ``L(y; x) = max(x - y, 0) + y**2 / 2`` whose minimiser is ``clip(x, 0, 1)``.

All identities are exact in real arithmetic. The float64 kernels round, so they can disagree
with an exact count where a potential lands within rounding distance of the threshold (for
example ``I = 0.1``, ``theta = 1``: ten float additions of ``0.1`` give ``0.9999999999999999``,
so the kernel does not fire at step 10 although the exact potential, ``10 * 0.1000000000000000055``,
is above threshold).
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import NamedTuple

import numpy as np

from refsnn.checks import check_choice
from refsnn.errors import OptionError

__all__ = ["constant_input_count", "rate_error_bound", "subgradient_iterates",
           "SubgradientIterates", "rate_loss", "rate_loss_subgradient", "V_INITS", "RESETS"]

V_INITS = ("zero", "half")
RESETS = ("subtract", "zero")


def _u0_over_theta(v_init: str) -> Fraction:
    check_choice("v_init", v_init, V_INITS)
    return Fraction(1, 2) if v_init == "half" else Fraction(0)


def _check_theta(theta) -> np.ndarray:
    t = np.asarray(theta, dtype=np.float64)
    if not np.all(np.isfinite(t)) or np.any(t <= 0):
        raise OptionError(f"theta: expected finite positive thresholds, found {theta!r}")
    return t


def _count_one(current: Fraction, theta: Fraction, steps: int, u0: Fraction,
               reset: str) -> int:
    """Exact spike count of one neuron; all arguments exact rationals."""
    if steps == 0 or current <= 0:
        # u never exceeds u0 < theta: it stays put (I = 0) or falls (I < 0).
        return 0
    if reset == "subtract":
        # 0 <= u(t) < theta after every step while 0 <= I <= theta, and
        # u(T) = u0 + T I - theta N_T, so N_T = floor((u0 + T I) / theta). For I > theta
        # the neuron fires every step and the floor exceeds T, hence the min.
        return min(steps, math.floor((u0 + steps * current) / theta))
    # Reset to zero: the first spike is at the first t >= 1 with u0 + t I >= theta, then
    # the potential restarts at 0 and the neuron fires every ceil(theta / I) steps.
    first = max(1, math.ceil((theta - u0) / current))
    period = math.ceil(theta / current)
    return 0 if steps < first else 1 + (steps - first) // period


def constant_input_count(current, theta, steps, v_init: str = "zero",
                         reset: str = "subtract"):
    """Exact spike count of one IF neuron driven by a constant current.

    The count is computed in exact rational arithmetic on the given (float) values, i.e. it
    is the count of the ideal neuron, not of a float64 simulation (see Notes).

    Parameters
    ----------
    current : float or array_like
        The constant input current ``I``, added every step.
    theta : float or array_like
        Positive threshold(s).
    steps : int or array_like of int
        Number of steps ``T >= 0``.
    v_init : {"zero", "half"}
        Initial potential ``u0 = 0`` or ``u0 = theta / 2``.
    reset : {"subtract", "zero"}
        Reset by subtraction or to zero.

    Returns
    -------
    int or ndarray of int64
        ``N_T``, the number of spikes in steps ``1..T``; an array of the broadcast shape of
        ``current``, ``theta`` and ``steps`` if any of them is an array. With reset by
        subtraction::

            N_T = 0                                  if I <= 0
            N_T = min(T, floor((u0 + T I) / theta))  if I > 0

        (for ``0 <= I <= theta`` the floor alone; a potential exactly at the threshold fires,
        which is why it is a floor and not ``ceil(.) - 1``). With reset to zero:
        ``N_T = 0`` if ``T < t1`` else ``1 + (T - t1) // p`` with
        ``t1 = max(1, ceil((theta - u0) / I))`` and ``p = ceil(theta / I)``.

    Notes
    -----
    The float64 kernels agree with this count whenever their arithmetic is exact (e.g. all
    values are multiples of a common power of two and small enough); otherwise they can be
    off by one where ``(u0 + T I) / theta`` lies within rounding distance of an integer.
    """
    check_choice("reset", reset, RESETS)
    u0_frac = _u0_over_theta(v_init)
    cur = np.asarray(current, dtype=np.float64)
    th = _check_theta(theta)
    st = np.asarray(steps)
    if st.dtype.kind not in "iu" or np.any(st < 0):
        raise OptionError(f"steps: expected non-negative integers, found {steps!r}")
    if not np.all(np.isfinite(cur)):
        raise OptionError(f"current: expected finite values, found {current!r}")
    cur_b, th_b, st_b = np.broadcast_arrays(cur, th, st)
    out = np.empty(cur_b.shape, dtype=np.int64)
    for idx in np.ndindex(out.shape):
        t = Fraction(float(th_b[idx]))
        out[idx] = _count_one(Fraction(float(cur_b[idx])), t, int(st_b[idx]), u0_frac * t,
                              reset)
    return int(out) if out.ndim == 0 else out


def rate_error_bound(theta, steps, v_init: str = "zero"):
    """Worst-case rate error of an IF neuron (reset by subtraction) under constant input.

    Parameters
    ----------
    theta : float or array_like
        Positive threshold(s).
    steps : int or array_like of int
        Number of steps ``T >= 1``.
    v_init : {"zero", "half"}
        Initial potential ``0`` or ``theta / 2``.

    Returns
    -------
    float or ndarray
        ``theta / T`` for ``v_init="zero"`` and ``theta / (2 T)`` for ``v_init="half"``: for
        every constant current ``I`` the spike count satisfies
        ``|N_T theta / T - clip(I, 0, theta)| <= rate_error_bound(theta, T, v_init)`` in exact
        arithmetic (with ``u0 = 0`` the rate never exceeds ``clip(I, 0, theta)``).
    """
    half = _u0_over_theta(v_init) == Fraction(1, 2)
    th = _check_theta(theta)
    st = np.asarray(steps)
    if st.dtype.kind not in "iu" or np.any(st < 1):
        raise OptionError(f"steps: expected positive integers, found {steps!r}")
    bound = th / (2.0 * st if half else st)
    return float(bound) if np.ndim(bound) == 0 else bound


def rate_loss(y, x):
    """The loss ``L(y; x) = max(x - y, 0) + y**2 / 2`` minimised by the rate ``y``.

    Its minimiser over ``y`` is ``clip(x, 0, 1)``.
    """
    return np.maximum(x - y, 0) + y * y / 2


def rate_loss_subgradient(y, x):
    """The subgradient ``y - H(x - y)`` of :func:`rate_loss` in ``y``, with ``H(0) = 1``.

    ``H(0) = 1`` picks, at the kink ``y = x``, the subgradient ``y - 1`` of the interval
    ``[y - 1, y]``; it matches the inclusive firing rule ``u >= theta``.
    """
    return y - np.asarray(x - y >= 0).astype(np.asarray(y).dtype)


class SubgradientIterates(NamedTuple):
    """Sequences of the subgradient recursion, for ``T`` input steps.

    Attributes
    ----------
    x_hat : ndarray, shape (T, *shape)
        ``x_hat[t - 1] = x_hat(t) = S(t) / (theta t)`` for ``t = 1..T``.
    f_tilde : ndarray, shape (T + 1, *shape)
        ``f_tilde[t] = f_til(t)`` for ``t = 0..T``; ``f_tilde[0] = 1 - u0 / theta``.
    spikes : ndarray of int64, shape (T, *shape)
        ``spikes[t - 1] = s(t) = H(x_hat(t) - f_til(t - 1))``.
    counts : ndarray of int64, shape (T, *shape)
        ``counts[t - 1] = N(t)``, the running spike count.
    """

    x_hat: np.ndarray
    f_tilde: np.ndarray
    spikes: np.ndarray
    counts: np.ndarray


def subgradient_iterates(currents, theta, v_init: str = "zero",
                         exact: bool = False) -> SubgradientIterates:
    """Run the subgradient recursion of an IF neuron (reset by subtraction) on an input.

    Computed from the recursion alone, never from a neuron::

        f_til(0) = 1 - u0 / theta
        s(t + 1) = H(x_hat(t + 1) - f_til(t))                     (H(0) = 1)
        f_til(t + 1) = f_til(t) - (f_til(t) - s(t + 1)) / (t + 2)

    for ``t = 0..T-1``, with ``x_hat(t) = (I(1) + ... + I(t)) / (theta t)``. In exact
    arithmetic ``s`` is the spike train of the neuron and
    ``f_til(t) = (N(t) + 1 - u0 / theta) / (t + 1)``.

    Parameters
    ----------
    currents : array_like, shape (T, *shape)
        Input current of each step (axis 0 is time); one neuron per trailing index.
    theta : float or array_like broadcastable to ``shape``
        Positive threshold(s).
    v_init : {"zero", "half"}
        Initial potential ``0`` or ``theta / 2``.
    exact : bool
        Compute in exact rational arithmetic (``fractions.Fraction`` on the given float
        values; the arrays then have dtype object), so ties are decided exactly.

    Returns
    -------
    SubgradientIterates
    """
    u0_frac = _u0_over_theta(v_init)
    cur = np.asarray(currents, dtype=np.float64)
    if cur.ndim < 1:
        raise OptionError("currents: expected an array with time on axis 0")
    if not np.all(np.isfinite(cur)):
        raise OptionError("currents: expected finite values")
    th = np.broadcast_to(_check_theta(theta), cur.shape[1:])
    steps = cur.shape[0]
    time = np.arange(1, steps + 1).reshape((steps,) + (1,) * (cur.ndim - 1))
    if exact:
        to_frac = np.vectorize(lambda v: Fraction(float(v)), otypes=[object])
        cur = to_frac(cur) if cur.size else cur.astype(object)
        th = to_frac(th) if th.size else th.astype(object)
        time = time.astype(object)
        f0 = 1 - u0_frac
    else:
        f0 = 1.0 - float(u0_frac)
    x_hat = np.cumsum(cur, axis=0) / (th * time)
    f_tilde = np.empty((steps + 1,) + cur.shape[1:], dtype=object if exact else np.float64)
    f_tilde[0] = f0
    spikes = np.zeros(cur.shape, dtype=np.int64)
    for t in range(steps):  # from f_til(t) and x_hat(t + 1) to s(t + 1) and f_til(t + 1)
        spikes[t] = np.asarray(x_hat[t] - f_tilde[t] >= 0, dtype=bool)
        grad = rate_loss_subgradient(f_tilde[t], x_hat[t])
        f_tilde[t + 1] = f_tilde[t] - grad / (t + 2)
    return SubgradientIterates(x_hat, f_tilde, spikes, np.cumsum(spikes, axis=0))
