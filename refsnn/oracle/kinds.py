"""Replays and mismatch hypotheses for bistable (BSNN) and signGD neuron layers.

``refsnn compare`` classifies the first diverging layer by replaying the reference's recorded
inputs of that layer through variants of its neuron rule (``docs/semantics.md``, "Comparing
traces"). The IF replay and hypotheses are in :mod:`refsnn.oracle.compare`; this module has
the other two neuron kinds, one registry each (:data:`BISTABLE_HYPOTHESES`,
:data:`SIGNGD_HYPOTHESES`). A hypothesis is ``test(ref_layer, other_spikes, rtol) ->
(explained, detail)``; ``ref_layer`` is a :class:`refsnn.oracle.trace.Layer`.

What a replay needs from the reference trace (written by ``refsnn trace``):

- bistable: ``current`` (T, B, *shape), the node's input at every step (also in rest and fire
  steps, where it is not integrated), ``threshold`` (C,), ``v_init`` and
  ``params = {"period": P, "stage": s}``;
- sgd: ``target`` (T, B, *shape), the target ``tau = f(x_hat) / scale`` of every step, and
  ``params = {"eta0", "gamma", "tie"}``.
"""

from __future__ import annotations

import numpy as np

from refsnn.neurons.bistable import cycle_state
from refsnn.neurons.signgd import step_size


def delayed(spikes):
    """``spikes`` one step later: ``D[t] = spikes[t-1]``, ``D[1] = 0``; shape (T, B, ...)."""
    out = np.zeros_like(spikes)
    out[1:] = spikes[:-1]
    return out


def _delay(ref, other, rtol):
    return bool(np.array_equal(delayed(ref.spikes), other)), "other's spikes are one step late"


def first_mismatch(ref_spikes, other):
    """Per (sample, neuron) with a mismatch: the index of its first mismatching step.

    Returns
    -------
    t, idx : ndarray of int, tuple of ndarrays
        ``t[k]`` is the 0-based step of mismatch ``k`` and ``idx`` indexes its (B, *shape)
        position, so ``a[(t,) + idx]`` picks the values of a (T, B, *shape) array there.
    """
    diff = ref_spikes != other
    first = np.where(diff.any(0), diff.argmax(0), -1)
    idx = np.nonzero(first >= 0)
    return first[idx], idx


# ---------------------------------------------------------------------------- bistable

def replay_bistable(current, threshold, v_init, period, stage, strict=False, reset="subtract",
                    scale=1.0, shift=0):
    """Replay a bistable layer on recorded inputs (refsnn's rule; variants by keyword).

    Parameters
    ----------
    current : ndarray, shape (T, B, C, ...)
        The layer's input at every step.
    threshold : ndarray, shape (C,)
    v_init : {"zero", "half"}
    period, stage : int
    strict : bool
        Fire on ``u > theta`` instead of ``u >= theta``.
    reset : {"subtract", "zero"}
    scale : float
        Factor on the threshold.
    shift : int
        The layer's cycles start ``shift`` steps late (negative: early): step ``t`` is in the
        state refsnn gives step ``t - shift`` (a state before step 1 is rest). A stage off by
        one is ``shift = ±period``.

    Returns
    -------
    spikes : bool ndarray, shape (T, B, C, ...)
    pre : ndarray, shape (T, B, C, ...)
        The potential compared with the threshold at fire steps; NaN at other steps.
    """
    dtype = current.dtype
    theta = (scale * np.asarray(threshold, np.float64)).astype(dtype).reshape(
        (-1,) + (1,) * (current.ndim - 3))
    u = np.broadcast_to(theta / 2 if v_init == "half" else 0 * theta,
                        current.shape[1:]).astype(dtype)
    spikes = np.zeros(current.shape, bool)
    pre = np.full(current.shape, np.nan, dtype)
    for t in range(1, current.shape[0] + 1):
        s = t - shift
        state = "rest" if s < 1 else cycle_state(s, period, stage)
        if state == "integrate":
            u = u + current[t - 1]
        elif state == "fire":
            pre[t - 1] = u
            fired = u > theta if strict else u >= theta
            spikes[t - 1] = fired
            u = np.where(fired, np.zeros_like(u) if reset == "zero" else u - theta, u)
    return spikes, pre


def _bistable_replayable(ref):
    return (ref.current is not None and ref.threshold is not None
            and {"period", "stage"} <= set(ref.params))


def _bistable(ref, **variant):
    return replay_bistable(ref.current, ref.threshold, ref.v_init or "zero",
                           int(ref.params["period"]), int(ref.params["stage"]), **variant)


def _bistable_exact(**variant):
    def test(ref, other, rtol):
        if not _bistable_replayable(ref):
            return False, ""
        spikes, _ = _bistable(ref, **variant)
        return bool(np.array_equal(spikes, other)), f"replay with {variant} reproduces it"
    return test


def _bistable_phase(ref, other, rtol):
    """Cycles shifted by ``d`` steps, ``0 < |d| <= 2 P``, smallest ``|d|`` first, late (d > 0)
    before early: with an input that is the same every step, a layer one stage late and one
    whose first cycle is an (empty) fire cycle emit the same spikes."""
    if not _bistable_replayable(ref):
        return False, ""
    period = int(ref.params["period"])
    shifts = sorted((d for d in range(-2 * period, 2 * period + 1) if d),
                    key=lambda d: (abs(d), -d))
    for d in shifts:
        spikes, _ = _bistable(ref, shift=d)
        if np.array_equal(spikes, other):
            stage = f" (stage off by {d // period:+d})" if d % period == 0 else ""
            return True, f"cycles {abs(d)} step(s) {'late' if d > 0 else 'early'}{stage}"
    return False, ""


def _bistable_rounding(ref, other, rtol):
    if not _bistable_replayable(ref):
        return False, ""
    _, pre = _bistable(ref)
    theta = np.broadcast_to(np.asarray(ref.threshold).reshape((-1,) + (1,) * (pre.ndim - 3)),
                            pre.shape[2:])
    t, idx = first_mismatch(ref.spikes, other)
    margins = np.abs(pre[(t,) + idx] - theta[idx[1:]])  # NaN (not a tie) outside fire steps
    ok = bool(np.all(margins <= rtol * theta[idx[1:]]))
    return ok, f"largest margin |u - theta| = {np.nanmax(margins, initial=0.0):.3g}"


def _bistable_threshold(ref, other, rtol):
    if not _bistable_replayable(ref) or not other.any():
        return False, ""
    k = ref.spikes.sum() / other.sum()
    spikes, _ = _bistable(ref, scale=k)
    ok = np.abs(spikes.sum(0).astype(int) - other.sum(0)).max() <= 1
    return bool(ok and abs(k - 1) > rtol), f"threshold x {k:.4g} reproduces the counts"


#: Bistable layers: name -> (test, benign), tried in order.
BISTABLE_HYPOTHESES = {
    "delay": (_delay, False),
    "phase": (_bistable_phase, False),
    "comparison": (_bistable_exact(strict=True), False),
    "reset": (_bistable_exact(reset="zero"), False),
    "rounding": (_bistable_rounding, True),
    "threshold": (_bistable_threshold, False),
}


# ------------------------------------------------------------------------------ signGD

def replay_signgd(target, eta0, gamma, tie="inclusive", offset=0):
    """Replay a signGD layer on its recorded targets (refsnn's rule; variants by keyword).

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
    dtype = target.dtype
    v = np.zeros(target.shape[1:], dtype)
    spikes = np.zeros(target.shape, bool)
    pre = np.zeros_like(target)
    for t in range(1, target.shape[0] + 1):
        eta = step_size(eta0, gamma, t + offset)
        pre[t - 1] = v
        fired = v >= target[t - 1] if tie == "inclusive" else v > target[t - 1]
        spikes[t - 1] = fired
        v = v + np.where(fired, -eta, eta).astype(dtype)
    return spikes, pre


def _signgd_replayable(ref):
    return ref.target is not None and {"eta0", "gamma", "tie"} <= set(ref.params)


def _signgd(ref, **variant):
    p = ref.params
    kw = {"tie": str(p["tie"]), **variant}
    return replay_signgd(ref.target, float(p["eta0"]), float(p["gamma"]), **kw)


_OTHER_TIE = {"inclusive": "strict", "strict": "inclusive"}


def _signgd_tie(ref, other, rtol):
    if not _signgd_replayable(ref):
        return False, ""
    tie = _OTHER_TIE[str(ref.params["tie"])]
    spikes, _ = _signgd(ref, tie=tie)
    return bool(np.array_equal(spikes, other)), f"replay with the {tie} tie rule reproduces it"


def _signgd_rounding(ref, other, rtol):
    if not _signgd_replayable(ref):
        return False, ""
    _, v = _signgd(ref)
    t, idx = first_mismatch(ref.spikes, other)
    at = (t,) + idx
    margins = np.abs(v[at] - ref.target[at])
    limit = rtol * np.maximum(np.abs(v[at]), np.abs(ref.target[at]))
    return bool(np.all(margins <= limit)), \
        f"largest margin |v - target| = {margins.max(initial=0.0):.3g}"


def _signgd_schedule(ref, other, rtol):
    if not _signgd_replayable(ref):
        return False, ""
    for offset in (1, -1, 2, -2):
        spikes, _ = _signgd(ref, offset=offset)
        if np.array_equal(spikes, other):
            return True, f"step sizes eta0 * gamma^(t - 1 {'+' if offset > 0 else '-'} " \
                         f"{abs(offset)}) reproduce it"
    return False, ""


#: signGD layers: name -> (test, benign), tried in order.
SIGNGD_HYPOTHESES = {
    "delay": (_delay, False),
    "comparison": (_signgd_tie, False),
    "rounding": (_signgd_rounding, True),
    "schedule": (_signgd_schedule, False),
}

#: For a layer of unknown kind (e.g. a trace written by another tool): only what needs no
#: replay.
UNKNOWN_HYPOTHESES = {"delay": (_delay, False)}
