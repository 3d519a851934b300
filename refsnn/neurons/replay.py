"""What the neuron kinds' hypotheses for ``refsnn compare`` share (``docs/semantics.md``,
"Comparing traces"). A hypothesis is ``test(ref_layer, other_spikes, rtol) -> (explained,
detail)``; ``ref_layer`` is a :class:`refsnn.oracle.trace.Layer`, ``other_spikes`` bool
(T, B, *shape).
"""

from __future__ import annotations

import numpy as np


def delayed(spikes):
    """``spikes`` one step later: ``D[t] = spikes[t-1]``, ``D[1] = 0``; shape (T, B, ...)."""
    out = np.zeros_like(spikes)
    out[1:] = spikes[:-1]
    return out


def delay(ref, other, rtol):
    """Hypothesis ``delay``: the other's spikes are the reference's one step later."""
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


def count_ratio(ref, other, rtol, spikes_at):
    """Hypothesis ``threshold`` by counts: with ``k`` = reference spikes / other spikes,
    ``spikes_at(k)`` (the replay with the threshold times ``k``) gives every neuron's count
    within one, and ``k`` is not 1. Explains nothing when the other never fires."""
    if not other.any():
        return False, ""
    k = ref.spikes.sum() / other.sum()
    ok = np.abs(spikes_at(k).sum(0).astype(int) - other.sum(0)).max() <= 1
    return bool(ok and abs(k - 1) > rtol), f"threshold x {k:.4g} reproduces the counts"


def threshold_margins(ref, other, pre, rtol, symbol: str):
    """Hypothesis ``rounding`` of threshold neurons: at every first mismatch, the potential
    ``symbol`` compared with the threshold, ``pre`` (T, B, C, ...), lies within
    ``rtol * theta`` of it (``ref.threshold``, (C,)). A NaN in ``pre`` (no comparison at
    that step) is not a tie."""
    theta = np.broadcast_to(np.asarray(ref.threshold).reshape((-1,) + (1,) * (pre.ndim - 3)),
                            pre.shape[2:])
    t, idx = first_mismatch(ref.spikes, other)
    margins = np.abs(pre[(t,) + idx] - theta[idx[1:]])
    ok = bool(np.all(margins <= rtol * theta[idx[1:]]))
    return ok, f"largest margin |{symbol} - theta| = {np.nanmax(margins, initial=0.0):.3g}"


def guarded(replayable, tests: dict) -> dict:
    """``tests`` (name -> (test, benign)) made to explain nothing for a reference layer that
    ``replayable(layer)`` says lacks what the replay needs."""
    def guard(test):
        return lambda ref, other, rtol: test(ref, other, rtol) if replayable(ref) else (False, "")
    return {name: (guard(test), benign) for name, (test, benign) in tests.items()}
