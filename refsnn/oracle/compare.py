"""Comparing two spike traces layer by layer and classifying the first divergence.

Rules (``docs/semantics.md``, section "Comparing traces"). Layers are compared in the
reference's order; mismatches in layers after the first diverging one are reported as
``downstream`` (their inputs already differ). The first diverging layer is classified by the
first hypothesis, tried in order, that explains the other trace's spikes of that layer. The
hypotheses are the layer's kind's (``Kind.hypotheses``, :mod:`refsnn.neurons.base`, picked by
the layer's ``kind`` attribute; e.g. ``delay``, ``comparison``, ``reset``, ``rounding``,
``threshold`` for IF layers, :data:`refsnn.neurons.if_.HYPOTHESES`): they replay the
reference's recorded input (current or target) through the kind's reference step with
departures, so they need a reference trace written by refsnn. Given the reference's network,
a first divergence none of them explains is tried last against the network re-simulated under
each other discretisation (``discretisation``, :mod:`refsnn.oracle.rediscretise`: a recurrent
layer's recorded input is not the other's after their first differing spike).
``unexplained``: none of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from refsnn.neurons.base import KINDS
from refsnn.neurons.replay import delay
from refsnn.oracle import rediscretise

#: For a layer of unknown kind (e.g. a trace written by another tool), or of a kind without
#: hypotheses: only what needs no replay.
UNKNOWN_HYPOTHESES = {"delay": (delay, False)}


def hypotheses_for(layer) -> dict:
    """The hypotheses for a reference layer: by its ``kind``; a layer without one that has a
    kind's ``legacy`` attribute (a trace written before ``kind`` existed: IF's ``reset``) is
    of that kind; else only ``delay``."""
    op = layer.kind or next((op for op, k in KINDS.items()
                             if k.legacy and getattr(layer, k.legacy, None) is not None), None)
    kind = KINDS.get(op)
    return (kind.hypotheses if kind is not None else None) or UNKNOWN_HYPOTHESES


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


def compare(ref, other, rtol: float = 1e-5, network=None) -> Comparison:
    """Compare trace ``other`` against reference trace ``ref`` (both :class:`Trace`).

    ``network``: the SpikingNetwork ``ref`` was recorded from (e.g. ``refsnn.load`` of its
    NIR graph with the same ``dt`` and dtype), optional. A first divergence that no replay of
    its layer explains is then tried against it under each other discretisation
    (:func:`refsnn.oracle.rediscretise.explain`; class ``discretisation``); before that, the
    network must reproduce ``ref`` on ``ref``'s recorded input (else OptionError).
    """
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
            if kind == "unexplained" and network is not None:
                rediscretise.check_reference(network, ref)
                ok, why = rediscretise.explain(network, ref, other)
                kind, detail = (rediscretise.ATTR, why) if ok else (kind, detail)
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
