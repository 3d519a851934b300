"""Where Sinabs' integrate-and-fire neurons depart from refsnn's IF, named by replay.

Sinabs 3.1's ``sinabs.from_model`` turns every ``nn.ReLU`` into ``sinabs.layers.IAFSqueeze``
with its defaults (read from its 3.1.3 source): a spike threshold of 1 for every layer (the
weights carry the scale: ``sinabs.utils.normalize_weights``), ``MultiSpike`` (a step emits
``trunc(v / θ)`` spikes when ``v > 0``: several spikes per step), ``MembraneSubtract`` (``v``
loses ``θ`` per spike) and ``min_v_mem = -1`` (after the reset, ``v`` is clipped at ``-θ``: a
membrane floor). refsnn's IF (``docs/semantics.md``) fires at most once a step when
``u ≥ θ``, subtracts ``θ`` once, and has no floor.

:func:`departures` replays the current refsnn recorded for a layer (a trace layer: its
``current``, ``threshold``, ``v_init``) through refsnn's IF with each of Sinabs' departures
and their combinations, smallest set first, and names the first set that reproduces Sinabs'
spike *counts* per step exactly. Nothing here imports torch or Sinabs; running Sinabs is
``benchmarks/sinabs_converter.py``'s.
"""

from __future__ import annotations

import itertools

import numpy as np

#: Sinabs' departures from refsnn's IF, in the order they are tried (alone, then together).
DEPARTURES = ("several spikes per step", "floor -theta")


def replay_iaf(current, threshold, v_init="zero", multi=False, floor=False):
    """refsnn's IF on a recorded current, with Sinabs' departures switched on or off.

    Parameters
    ----------
    current : ndarray, shape (T, B, C, ...)
        The input current of each step (a refsnn trace layer's ``current``).
    threshold : ndarray, shape (C,)
        The threshold per channel (axis 2 of ``current``).
    v_init : {"zero", "half"}
        The initial potential: 0 or ``θ/2``.
    multi : bool
        Emit ``floor(u / θ)`` spikes when ``u ≥ θ`` and subtract ``θ`` per spike (Sinabs'
        ``MultiSpike`` with ``MembraneSubtract``); else at most one spike a step.
    floor : bool
        After the reset, clip the potential at ``-θ`` (Sinabs' ``min_v_mem = -1`` in units
        of its threshold).

    Returns
    -------
    counts : int ndarray, shape (T, B, C, ...)
        Spikes per step.
    pre : ndarray, shape (T, B, C, ...)
        The potential before firing, in units of ``θ``.
    """
    current = np.asarray(current, np.float64)
    theta = np.asarray(threshold, np.float64).reshape((-1,) + (1,) * (current.ndim - 3))
    theta = np.broadcast_to(theta, current.shape[2:])
    u = np.broadcast_to(theta / 2 if v_init == "half" else 0 * theta, current.shape[1:]).copy()
    counts = np.zeros(current.shape, np.int64)
    pre = np.zeros(current.shape)
    for t in range(current.shape[0]):
        u = u + current[t]
        pre[t] = u / theta
        fired = u >= theta
        n = np.where(fired, np.floor(u / theta), 0.0) if multi else fired.astype(np.float64)
        # floor(u / θ) can round to one less than the spikes u holds only when u is within
        # rounding of a multiple of θ: at least one spike whenever u ≥ θ, as refsnn fires
        n = np.maximum(n, fired)
        u = u - n * theta
        if floor:
            u = np.maximum(u, -theta)
        counts[t] = n.astype(np.int64)
    return counts, pre


def departures(layer, counts, rtol: float = 1e-5) -> tuple[tuple[str, ...] | None, str]:
    """The smallest set of :data:`DEPARTURES` whose replay of ``layer`` gives ``counts``.

    Parameters
    ----------
    layer : refsnn.oracle.trace.Layer
        A refsnn IF trace layer with ``current`` (T, B, C, ...), ``threshold`` (C,) and
        ``v_init``.
    counts : ndarray, shape (T, B, C, ...)
        The other simulator's spikes per step at that layer.
    rtol : float
        A replay whose every neuron's first mismatch has the potential within ``rtol · θ`` of
        a multiple of ``θ`` (a tie broken the other way by rounding, e.g. float32 sums) is
        said to reproduce the counts "up to rounding ties".

    Returns
    -------
    found : tuple of str or None
        ``()`` when refsnn's own IF reproduces the counts, the departures that do, or None.
    detail : str
        One line: what reproduces the counts, or how close the best replay came.
    """
    if layer.current is None or layer.threshold is None:
        raise ValueError("the reference layer has no recorded current or threshold to replay")
    counts = np.asarray(counts)
    best = (-1.0, ())
    most = f"up to {int(counts.max(initial=0))} spikes per step"
    for tied in (False, True):  # exact replays first, then up to rounding ties
        for size in range(len(DEPARTURES) + 1):
            for chosen in itertools.combinations(DEPARTURES, size):
                replay, pre = replay_iaf(layer.current, layer.threshold, layer.v_init or "zero",
                                         multi=DEPARTURES[0] in chosen,
                                         floor=DEPARTURES[1] in chosen)
                what = " + ".join(chosen) if chosen else "refsnn's IF"
                agree = float(np.mean(replay == counts))
                if agree == 1.0:
                    return chosen, f"replay with {what} reproduces the counts ({most})"
                if tied and _ties(replay, counts, pre, rtol):
                    return chosen, (f"replay with {what} reproduces the counts up to rounding "
                                    f"ties ({100 * agree:.4f} % agree; {most})")
                best = max(best, (agree, chosen))
    what = " + ".join(best[1]) if best[1] else "refsnn's IF"
    return None, f"no replay reproduces the counts (best: {what}, {100 * best[0]:.4f} % agree)"


def _ties(replay, counts, pre, rtol):
    """True when at every (sample, neuron)'s first mismatching step the replayed potential
    (in units of θ, before firing) is within ``rtol`` of a whole number: a tie."""
    diff = replay != counts
    first = np.where(diff.any(0), diff.argmax(0), -1)
    idx = np.nonzero(first >= 0)
    u = pre[(first[idx],) + idx]
    return bool(np.all(np.abs(u - np.rint(u)) <= rtol * np.maximum(1.0, np.abs(u))))
