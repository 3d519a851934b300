"""Comparing two spike traces layer by layer and classifying the first divergence.

Rules (``docs/semantics.md``, section "Comparing traces"). Layers are compared in the
reference's order; mismatches in layers after the first diverging one are reported as
``downstream`` (their inputs already differ). The first diverging layer is classified by the
first hypothesis of :data:`HYPOTHESES`, tried in order, that explains the other trace's spikes
of that layer. The hypotheses replay the reference's recorded input current through a variant
IF neuron (:func:`replay`), so they need a reference trace written by refsnn (IF layers):

``delay``       the other's spikes are the reference's one step later (``O[t] = R[t-1]``).
``comparison``  replaying with ``v > theta`` instead of ``v >= theta`` reproduces them exactly.
``reset``       replaying with the other reset (to zero instead of by subtraction, or by
                subtraction for a reference that resets to zero) reproduces them exactly.
``rounding``    every neuron's first mismatching step has the reference's pre-reset potential
                within ``rtol * theta`` of the threshold (a tie; benign, the margin is shown).
``threshold``   replaying with the threshold times ``k`` (``k`` = reference spikes / other
                spikes) reproduces every neuron's spike count within one.
``channel threshold``
                replaying with one factor ``k_c`` per channel (axis 1; found by bisection so
                that channel ``c``'s spike total is the other's) reproduces every neuron's
                count within one, and the factors differ (e.g. another tool's threshold for a
                channel that was silent on the calibration data).
``unexplained`` none of the above.

Bistable (BSNN) and signGD layers have their own registries (:mod:`refsnn.oracle.kinds`);
:data:`BY_KIND` picks one by the layer's ``kind`` attribute.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from refsnn.oracle.kinds import BISTABLE_HYPOTHESES, SIGNGD_HYPOTHESES, UNKNOWN_HYPOTHESES
from refsnn.oracle.nir_kinds import NIR_HYPOTHESES


def replay(current, threshold, v_init="zero", strict=False, reset="subtract", scale=1.0):
    """Replay an IF layer on recorded currents.

    Parameters
    ----------
    current : ndarray, shape (T, B, C, ...)
    threshold : ndarray, shape (C,)
    strict : bool
        Fire on ``v > theta`` instead of refsnn's ``v >= theta``.
    reset : {"subtract", "zero"}
    scale : float
        Factor on the threshold.

    Returns
    -------
    spikes : bool ndarray, shape (T, B, C, ...)
    pre : ndarray, shape (T, B, C, ...)
        The potential before firing (after adding the current).
    """
    theta = scale * np.asarray(threshold, np.float64).reshape(
        (-1,) + (1,) * (current.ndim - 3))
    u = np.broadcast_to(theta / 2 if v_init == "half" else 0 * theta, current.shape[1:]).copy()
    u = u.astype(current.dtype)
    spikes = np.zeros(current.shape, bool)
    pre = np.zeros_like(current)
    for t in range(current.shape[0]):
        u += current[t]
        pre[t] = u
        fired = u > theta if strict else u >= theta
        spikes[t] = fired
        u = np.where(fired, 0.0 if reset == "zero" else u - theta, u).astype(current.dtype)
    return spikes, pre


def _replayable(ref):
    return ref.current is not None and ref.threshold is not None


def _delay(ref, other, rtol):
    shifted = np.zeros_like(ref.spikes)
    shifted[1:] = ref.spikes[:-1]
    return bool(np.array_equal(shifted, other)), "other's spikes are one step late"


def _own_reset(ref) -> str:
    """The reference layer's reset (traces without one are by subtraction)."""
    return ref.reset or "subtract"


def _exact(**variant):
    def test(ref, other, rtol):
        if not _replayable(ref):
            return False, ""
        spikes, _ = replay(ref.current, ref.threshold, ref.v_init,
                           **{"reset": _own_reset(ref), **variant})
        return bool(np.array_equal(spikes, other)), f"replay with {variant} reproduces it"
    return test


def _other_reset(ref, other, rtol):
    """The reset the reference does not use: to zero for subtraction, and back."""
    if not _replayable(ref):
        return False, ""
    variant = "subtract" if ref.reset == "zero" else "zero"
    spikes, _ = replay(ref.current, ref.threshold, ref.v_init, reset=variant)
    return bool(np.array_equal(spikes, other)), f"replay with reset {variant!r} reproduces it"


def _rounding(ref, other, rtol):
    if not _replayable(ref):
        return False, ""
    _, pre = replay(ref.current, ref.threshold, ref.v_init, reset=_own_reset(ref))
    theta = np.broadcast_to(np.asarray(ref.threshold).reshape((-1,) + (1,) * (pre.ndim - 3)),
                            pre.shape[2:])
    diff = ref.spikes != other
    first = np.where(diff.any(0), diff.argmax(0), -1)  # (B, ...): first mismatching step
    b_idx = np.nonzero(first >= 0)
    t_idx = first[b_idx]
    margins = np.abs(pre[(t_idx,) + b_idx] - theta[b_idx[1:]])
    limit = rtol * theta[b_idx[1:]]
    worst = float(margins.max())
    return bool((margins <= limit).all()), f"largest margin |v - theta| = {worst:.3g}"


def _threshold(ref, other, rtol):
    if not _replayable(ref) or not other.any():
        return False, ""
    k = ref.spikes.sum() / other.sum()
    spikes, _ = replay(ref.current, ref.threshold, ref.v_init, scale=k, reset=_own_reset(ref))
    ok = np.abs(spikes.sum(0).astype(int) - other.sum(0)).max() <= 1
    return bool(ok and abs(k - 1) > rtol), f"threshold x {k:.4g} reproduces the counts"


def _channel_factors(ref, other, c: int, bits: int = 40, rounds: int = 60):
    """The factors ``k`` on channel ``c``'s threshold whose replay fires as often as ``other``
    in that channel, as an interval ``(lo, hi)`` within ``[2**-bits, 2**bits]`` found by
    ``rounds`` bisections of ``log2 k`` each: ``lo`` the smallest ``k`` firing at most as
    often, ``hi`` the largest firing at least as often. Replayed counts fall as the threshold
    grows; a neuron that fires at most once a step fires as often for any smaller ``k``, so
    ``lo`` can be the bound."""
    current = ref.current[:, :, c:c + 1]
    theta = np.asarray(ref.threshold)[c:c + 1]
    target = int(other[:, :, c].sum())

    def count(log_k):
        spikes, _ = replay(current, theta, ref.v_init, scale=2.0 ** log_k)
        return int(spikes.sum())

    def bisect(above):
        # the edge where above(count) turns false as log2 k grows: (last true, first false)
        lo, hi = -float(bits), float(bits)
        for _ in range(rounds):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if above(count(mid)) else (lo, mid)
        return lo, hi

    _, first_at_most = bisect(lambda n: n > target)
    last_at_least, _ = bisect(lambda n: n >= target)
    return 2.0 ** first_at_most, 2.0 ** last_at_least


def _show_factor(lo, hi, bits: int = 40) -> str:
    if hi <= lo * (1 + 1e-3):
        return f"x {lo:.3g}"
    if lo <= 2.0 ** -bits:
        return f"x <= {hi:.3g}"
    if hi >= 2.0 ** bits:
        return f"x >= {lo:.3g}"
    return f"x {lo:.3g}..{hi:.3g}"


def _channel_threshold(ref, other, rtol):
    if not _replayable(ref) or ref.spikes.ndim < 3:
        return False, ""
    differ = [c for c in range(ref.spikes.shape[2])
              if not np.array_equal(ref.spikes[:, :, c], other[:, :, c])]
    factors = {}
    for c in differ:
        lo, hi = _channel_factors(ref, other, c)
        if lo > hi:
            return False, ""  # no factor gives the other's total for this channel
        spikes, _ = replay(ref.current[:, :, c:c + 1], np.asarray(ref.threshold)[c:c + 1],
                           ref.v_init, scale=float(np.sqrt(lo * hi)))
        if np.abs(spikes.sum(0).astype(int) - other[:, :, c:c + 1].sum(0)).max() > 1:
            return False, ""
        factors[c] = (lo, hi)
    if not factors or len(factors) == ref.spikes.shape[2] and \
            max(lo for lo, _ in factors.values()) <= min(hi for _, hi in factors.values()):
        return False, ""  # no difference, or one factor fits all: ``threshold``'s case
    shown = ", ".join(f"{c}: {_show_factor(*k)}" for c, k in list(factors.items())[:4])
    more = f" and {len(factors) - 4} more" if len(factors) > 4 else ""
    return True, (f"{len(factors)} channel(s) with another threshold reproduce the counts "
                  f"({shown}{more})")


#: Name -> (test(ref_layer, other_spikes, rtol) -> (explained, detail), benign), tried in order.
HYPOTHESES = {
    "delay": (_delay, False),
    "comparison": (_exact(strict=True), False),
    "reset": (_other_reset, False),
    "rounding": (_rounding, True),
    "threshold": (_threshold, False),
    "channel threshold": (_channel_threshold, False),
}


#: Neuron kind (the trace layer's ``kind``) -> its hypotheses, each name -> (test, benign).
BY_KIND = {"if": HYPOTHESES, "bistable": BISTABLE_HYPOTHESES, "sgd": SIGNGD_HYPOTHESES,
           "nir_if": NIR_HYPOTHESES, "lif": NIR_HYPOTHESES}


def hypotheses_for(layer) -> dict:
    """The hypotheses for a reference layer: by its ``kind``; a layer without one that has
    IF attributes (a trace written before ``kind`` existed) is IF; else only ``delay``."""
    kind = layer.kind or ("if" if layer.reset is not None else None)
    return BY_KIND.get(kind, UNKNOWN_HYPOTHESES)


@dataclass
class LayerResult:
    name: str
    agreement: float          # fraction of (step, sample, neuron) with the same spike
    rate_error: float         # max |rate_other - rate_ref| over neurons, spikes per step
    first: tuple | None       # (step 1-based, sample, neuron index) of the first mismatch
    kind: str                 # "same", a HYPOTHESES key, "unexplained", "downstream", "missing"
    detail: str = ""
    benign: bool = False      # a benign class (a rounding tie)


@dataclass
class Comparison:
    layers: list[LayerResult]

    @property
    def first_divergence(self):
        return next((r for r in self.layers if r.kind != "same"), None)

    @property
    def real(self) -> bool:
        """True when the first divergence is not a benign rounding tie."""
        first = self.first_divergence
        return first is not None and not first.benign


def compare(ref, other, rtol: float = 1e-5) -> Comparison:
    """Compare trace ``other`` against reference trace ``ref`` (both :class:`Trace`)."""
    results, diverged = [], False
    for name, layer in ref.layers.items():
        theirs = other.layers.get(name)
        if theirs is None or theirs.spikes.shape != layer.spikes.shape:
            found = "absent" if theirs is None else f"shape {theirs.spikes.shape}"
            results.append(LayerResult(name, 0.0, float("nan"), None, "missing", found))
            diverged = True
            continue
        o = theirs.spikes
        diff = layer.spikes != o
        rate = np.abs(o.mean(0) - layer.spikes.mean(0)).max(initial=0.0)
        first = None
        if diff.any():
            t = int(np.argmax(diff.reshape(diff.shape[0], -1).any(1)))
            flat = np.flatnonzero(diff[t].reshape(-1))[0]
            b, i = divmod(int(flat), int(np.prod(diff.shape[2:])))
            first = (t + 1, b, i)
        if first is None:
            kind, detail = "same", ""
        elif diverged:
            kind, detail = "downstream", "inputs already differ"
        else:
            kind, detail, benign = "unexplained", "", False
            for key, (test, harmless) in hypotheses_for(layer).items():
                ok, why = test(layer, o, rtol)
                if ok:
                    kind, detail, benign = key, why, harmless
                    break
            diverged = True
        results.append(LayerResult(name, float(1 - diff.mean()), float(rate), first, kind,
                                   detail, kind == "same" or benign))
    return Comparison(results)


def format_table(c: Comparison) -> str:
    """The per-layer table ``refsnn compare`` prints."""
    lines = [f"{'layer':<16} {'agreement':>10} {'rate err':>9}  {'first (t,b,i)':<16} class"]
    for r in c.layers:
        first = "-" if r.first is None else ",".join(map(str, r.first))
        lines.append(f"{r.name:<16} {100 * r.agreement:9.4f}% {r.rate_error:9.4f}  "
                     f"{first:<16} {r.kind}{': ' + r.detail if r.detail else ''}")
    f = c.first_divergence
    lines.append("no divergence" if f is None else
                 f"first divergence: layer {f.name}, step {f.first[0] if f.first else '-'}: "
                 f"{f.kind}" + ("" if c.real else " (benign)"))
    return "\n".join(lines)
