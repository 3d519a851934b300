"""Replays and mismatch hypotheses for the neurons of NIR graphs (``nir_if``, ``lif``).

A NIR node has one meaning (``docs/semantics.md``, "NIR graphs"); a framework that runs the
graph may implement another. ``refsnn compare`` replays the reference's recorded input
current of the first diverging layer through variants of the node's update and names the
smallest set of departures that reproduces the other trace's spikes exactly:

``delay``        the other's spikes are the reference's one step later (a delay per layer)
``comparison``   fires on ``v ≥ v_threshold`` instead of ``v > v_threshold`` (another tie rule)
``reset``        resets by subtracting the threshold (``subtract``), several thresholds at
                 once (``multi``, several spikes per step) or to 0 ignoring ``v_reset``
                 (``zero``) instead of to ``v_reset``
``bound``        the potential is kept at or above ``−v_threshold`` or 0 (a bound)
``gain``         the input is not multiplied by ``r`` (nor, for IF, by ``dt``)
``leak``         ``v ← β·v + …`` with a leak ``β`` the graph does not have (IF) or
                 another discretisation of the LIF's leak (``exp``: ``β = e^{−dt/τ}``;
                 ``exp-dt1``: ``β = e^{−1/τ}``, the input not scaled)
``threshold``    the threshold times ``k`` reproduces the spikes (``k`` in 0.5, 0.55, ..., 2),
                 or the count ratio ``k`` the counts within one (a scaled threshold)
``rounding``     each neuron's first mismatch has the reference's potential within
                 ``rtol·|v_threshold|`` of the threshold (a tie broken by rounding; benign)

Departures are tried one at a time (each its own class), then two to four together
(``combined``): the first setting found is reported, e.g. ``reset=multi + bound=-theta``.

What a replay needs from the reference trace: ``current`` (T, B, *shape) and ``params``
with the node's per-neuron constants, flattened: ``gain``, ``v_threshold``, ``v_reset``
(``nir_if``); ``decay``, ``r``, ``v_leak``, ``v_threshold``, ``v_reset``, ``dt``, ``tau``
(``lif``).
"""

from __future__ import annotations

import itertools

import numpy as np

from refsnn.oracle.kinds import _delay, first_mismatch

#: Candidate leaks of an IF layer that has none (snnTorch's default beta is 0.9).
LEAKS = (0.9, 0.95, 0.99, 0.5, 0.8, 0.999)

#: Departure name -> the values tried, the reference's own value first.
DEPARTURES = {
    "comparison": (">", ">="),
    "reset": ("value", "subtract", "multi", "zero"),
    "bound": (None, "-theta", "0"),
    "gain": (None, "1"),
    "leak": (None,) + LEAKS + ("exp", "exp-dt1"),
}


def _p(layer, name, shape):
    return np.asarray(layer.params[name]).reshape(shape)


def replay_nir(layer, comparison=">", reset="value", bound=None, leak=None, scale=1.0,
               gain=None):
    """Replay a ``nir_if`` or ``lif`` layer on its recorded current.

    With every keyword at its default this is the layer's own update (the same operations
    as its kernel). Departures: ``gain="1"`` ignores ``r`` (and ``dt`` for IF);
    ``leak=β`` (IF) multiplies the potential by ``β`` before charging; for LIF,
    ``leak="exp"`` is ``v ← β·v + (1 − β)·(v_leak + r·I)`` with ``β = e^{−dt/τ}`` and
    ``leak="exp-dt1"`` is ``v ← β·v + (1 − β)·v_leak + r·I`` with ``β = e^{−1/τ}`` (τ read
    in steps, the input not scaled).

    Returns
    -------
    spikes : bool ndarray, shape (T, B, *shape)
    pre : ndarray, shape (T, B, *shape)
        The potential before firing.
    """
    cur = layer.current
    shape, dt = cur.shape[2:], cur.dtype
    thr = (_p(layer, "v_threshold", shape) * scale).astype(dt)
    v_reset = _p(layer, "v_reset", shape).astype(dt)
    v = np.zeros(cur.shape[1:], dt)
    spikes, pre = np.zeros(cur.shape, bool), np.zeros_like(cur)
    one = gain == "1"
    for t in range(cur.shape[0]):
        if layer.kind == "nir_if":
            g = np.ones(shape, dt) if one else _p(layer, "gain", shape).astype(dt)
            v = (v if leak is None else np.asarray(leak, dt) * v) + g * cur[t]
        else:
            r = np.ones(shape, dt) if one else _p(layer, "r", shape).astype(dt)
            v_leak = _p(layer, "v_leak", shape).astype(dt)
            if leak is None:
                decay = _p(layer, "decay", shape).astype(dt)
                v = v + decay * ((v_leak - v) + r * cur[t])
            else:
                tau = _p(layer, "tau", shape)
                step = np.float64(layer.params["dt"]) if leak == "exp" else 1.0
                beta = np.exp(-step / tau).astype(dt)
                drive = r * cur[t] if leak == "exp-dt1" else (1 - beta) * r * cur[t]
                v = beta * v + (1 - beta) * v_leak + drive
        if bound is not None:
            v = np.maximum(v, -thr if bound == "-theta" else np.zeros_like(v))
        pre[t] = v
        fired = v > thr if comparison == ">" else v >= thr
        spikes[t] = fired
        if reset == "value":
            v = np.where(fired, v_reset, v)
        elif reset == "subtract":
            v = np.where(fired, v - thr, v)
        elif reset == "multi":
            v = np.where(fired, v - np.floor(v / thr) * thr, v)
        else:
            v = np.where(fired, np.zeros_like(v), v)
        v = v.astype(dt)
    return spikes, pre


def _replayable(ref):
    return ref.current is not None and "v_threshold" in ref.params


def _describe(changes: dict) -> str:
    return " + ".join(f"{k}={'-theta' if v == '-theta' else v}" for k, v in changes.items())


def _variants(kind, keys):
    """Every setting of departures ``keys`` away from the reference's own values."""
    for values in itertools.product(*(DEPARTURES[k][1:] for k in keys)):
        changes = dict(zip(keys, values))
        leak = changes.get("leak")
        if leak is not None and (kind == "lif") != isinstance(leak, str):
            continue  # a LIF's leak can only be discretised otherwise; an IF gets one
        yield changes


def _search(keys_list):
    """A hypothesis: the first setting of any of ``keys_list`` that reproduces the spikes."""
    def test(ref, other, rtol):
        if not _replayable(ref):
            return False, ""
        for keys in keys_list:
            for changes in _variants(ref.kind, keys):
                spikes, _ = replay_nir(ref, **changes)
                if np.array_equal(spikes, other):
                    return True, f"replay with {_describe(changes)} reproduces it"
        return False, ""
    return test


#: Two to four departures together, for the ``combined`` hypothesis.
_COMBINED = [keys for size in (2, 3, 4) for keys in
             itertools.combinations(("comparison", "reset", "bound", "gain", "leak"), size)]


def _rounding(ref, other, rtol):
    if not _replayable(ref):
        return False, ""
    _, pre = replay_nir(ref)
    thr = np.broadcast_to(_p(ref, "v_threshold", pre.shape[2:]), pre.shape[1:])
    t, idx = first_mismatch(ref.spikes, other)
    margins = np.abs(pre[(t,) + idx] - thr[idx])
    worst = float(margins.max(initial=0.0))
    return bool((margins <= rtol * np.abs(thr[idx])).all()), \
        f"largest margin |v - v_threshold| = {worst:.3g}"


#: Threshold factors tried for an exact reproduction (then the count ratio, within one).
SCALES = tuple(np.round(np.arange(0.5, 2.0001, 0.05), 2))


def _threshold(ref, other, rtol):
    if not _replayable(ref) or not other.any():
        return False, ""
    for k in SCALES:
        if abs(k - 1) > rtol and np.array_equal(replay_nir(ref, scale=k)[0], other):
            return True, f"threshold x {k:.4g} reproduces it"
    k = ref.spikes.sum() / other.sum()
    spikes, _ = replay_nir(ref, scale=k)
    ok = np.abs(spikes.sum(0).astype(int) - other.sum(0)).max() <= 1
    return bool(ok and abs(k - 1) > rtol), f"threshold x {k:.4g} reproduces the counts"


#: Name -> (test, benign), tried in order.
NIR_HYPOTHESES = {
    "delay": (_delay, False),
    "comparison": (_search([("comparison",)]), False),
    "reset": (_search([("reset",)]), False),
    "bound": (_search([("bound",)]), False),
    "gain": (_search([("gain",)]), False),
    "leak": (_search([("leak",)]), False),
    "combined": (_search(_COMBINED), False),
    "rounding": (_rounding, True),
    "threshold": (_threshold, False),
}
