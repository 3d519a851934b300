"""BSNN conversion (Li, Zhao and Zeng 2021): bistable neurons, synchronous neurons on shortcuts.

Every ReLU becomes a layer of bistable neurons (:mod:`refsnn.neurons.bistable`) with the
IF method's thresholds. The layers form a pipeline of cycles of ``period`` steps: a layer
integrates while the layer below fires and fires while the layer above integrates, so each
neuron layer gets a *stage*, the cycle in which it first fires:

- the input has stage 0 (its value is the same in every cycle, so it fits any stage);
- a synapse (linear, conv, pooling, flatten, add, ...) has the largest stage of its inputs;
- a neuron layer has the stage of its input plus one.

Where the inputs of an ``add`` (or a ``concat``) have different stages (a residual shortcut
skips the layers of the main path), a chain of *synchronous neurons* is inserted on the shallower input, one per
missing cycle: each is a bistable neuron with identity weight and the threshold of the neuron
layer it relays, that integrates one cycle's spikes and fires them the next, so both halves of
the sum belong to the same packet. With ``sync=False`` nothing is inserted and the shortcut's
packets arrive in cycles in which the layer after the add is firing, not integrating, so they
are lost: the variant shows what synchronous neurons are for.

A shallower input that is not a neuron layer (a shortcut through a 1x1 convolution, a
pooling or a slice of spikes) carries currents, not spikes, which a synchronous neuron would
clip and quantise. It gets a ``delay`` node instead (refsnn's addition; the paper's shortcuts
are identities): its values of ``missing * period`` steps earlier, which moves each of its
packets by whole cycles onto the main path's, exactly.
"""

from __future__ import annotations

from types import MappingProxyType

import numpy as np

from refsnn.checks import check_choice
from refsnn.conversion.if_ import argmax_readout, relu_to_neurons
from refsnn.errors import ConversionError, OptionError
from refsnn.model.graph import INPUT, Graph, make_graph
from refsnn.sim.network import SNN_OPS, SpikingNetwork

ENCODINGS = ("analog", "poisson")


def convert_bsnn(
    graph: Graph,
    calibration: np.ndarray,
    percentile: float = 99.9,
    per_channel: bool = False,
    period: int = 4,
    v_init: str = "half",
    sync: bool = True,
    encoding: str = "analog",
    dtype=np.float64,
) -> SpikingNetwork:
    """Convert a ReLU network into a pipeline of bistable neurons.

    Parameters
    ----------
    graph : Graph
        The trained ANN (ReLU; the operators the IF method converts).
    calibration : ndarray, shape (B, *graph.input_shape)
        Inputs whose ANN activations set the thresholds (as for IF).
    percentile : float
        Threshold = this percentile of each ReLU's activations (100 = max).
    per_channel : bool
        One threshold per channel instead of per layer.
    period : int
        ``P``, the steps of one integrate or fire cycle: a packet carries at most ``P``
        spikes per neuron, so activations are quantised to ``theta / P`` per packet.
    v_init : {"half", "zero"}
        Initial membrane potential ``theta/2`` (default: a packet's count is the rounded,
        not the floored, accumulated input) or 0. Synchronous neurons always start at
        ``theta/2``, which makes their relay exact despite rounding in the sums of spikes.
    sync : bool
        Insert synchronous neurons on residual shortcuts (default; see the module doc).
    encoding : {"analog", "poisson"}
        How the input drives the network.
    dtype : {numpy.float64, numpy.float32}

    Raises
    ------
    ConversionError
        For operators the method cannot convert, and when the name of a relay node
        (``<source>_sync<k>``, ``<source>_delay<k>``) is taken by a node of the model.
    """
    if isinstance(period, bool) or not isinstance(period, (int, np.integer)) or period < 1:
        raise OptionError(f"--period: expected a positive integer, found {period!r}")
    check_choice("--v-init", v_init, ("zero", "half"))
    check_choice("--encoding", encoding, ENCODINGS)
    check_choice("--dtype", np.dtype(dtype).name, ("float64", "float32"))
    graph, readout_before = argmax_readout(graph)
    folded, _, dicts = relu_to_neurons(graph, calibration, percentile, per_channel, "bsnn",
                                       "bistable", {"period": int(period), "v_init": v_init,
                                                    "role": "neuron"})
    dicts, stages = assign_stages(dicts, sync, int(period))
    snn_graph = make_graph(graph.input_shape, dicts, folded.output, dtype=dtype, ops=SNN_OPS)
    options = {"percentile": float(percentile), "per_channel": int(per_channel),
               "period": int(period), "v_init": v_init, "sync": int(sync),
               "dtype": np.dtype(dtype).name,
               "calibration_samples": int(np.asarray(calibration).shape[0]), **readout_before}
    schedule = {"period": float(period), "readout_stage": float(stages[folded.output])}
    return SpikingNetwork(snn_graph, "bsnn", encoding, MappingProxyType(options),
                          decoder="packet", schedule=MappingProxyType(schedule))


def assign_stages(dicts: list[dict], sync: bool,
                  period: int) -> tuple[list[dict], dict[str, int]]:
    """Give every bistable node its stage and synchronise the inputs of every ``add`` and
    ``concat``.

    Parameters
    ----------
    dicts : list of dict
        Converted nodes in topological order; bistable nodes lack ``stage``.
    sync : bool
        Synchronise where the inputs of an ``add`` or ``concat`` differ in stage:
        synchronous neurons on a neuron layer, a ``delay`` node on anything else.
    period : int
        Steps per cycle (a delay of ``k`` cycles is ``k * period`` steps).

    Returns
    -------
    dicts : list of dict
        The nodes with stages set and synchronous neurons inserted (in topological order).
    stages : dict of str to int
        Every node's stage, ``"input"`` included.
    """
    by_name = {d["name"]: d for d in dicts}
    stages = {INPUT: 0}
    out = []
    for d in dicts:
        if d["op"] in ("add", "concat") and sync:
            target = max(stages[i] for i in d["inputs"])
            inputs = []
            for i in d["inputs"]:
                if 0 < stages[i] < target:
                    relay = _sync_chain if by_name[i]["op"] == "bistable" else _delay
                    i = relay(i, target - stages[i], period, by_name, stages, out)
                inputs.append(i)
            d = {**d, "inputs": inputs}
        in_stage = max(stages[i] for i in d["inputs"])
        if d["op"] == "bistable":
            d = {**d, "attrs": {**d["attrs"], "stage": in_stage + 1}}
            stages[d["name"]] = in_stage + 1
        else:
            stages[d["name"]] = in_stage
        out.append(d)
    return out, stages


def _unused_name(name: str, by_name, expected: dict) -> None:
    """Refuse to reuse ``name`` unless it is the relay node ``expected`` describes."""
    existing = by_name.get(name)
    if existing is not None and any(existing.get(k) != v for k, v in expected.items()):
        raise ConversionError(f"cannot name a relay node '{name}' (BSNN shortcut): the model "
                              f"already has a node of that name")


def _delay(src: str, missing: int, period: int, by_name, stages, out) -> str:
    """Append (or reuse) a ``delay`` node of ``missing * period`` steps on ``src``."""
    name = f"{src}_delay{missing}"
    _unused_name(name, by_name, {"op": "delay", "inputs": [src]})
    if name not in by_name:
        out.append({"name": name, "op": "delay", "inputs": [src],
                    "attrs": {"steps": missing * period}})
        by_name[name] = out[-1]
        stages[name] = stages[src] + missing
    return name


def _sync_chain(src: str, missing: int, period: int, by_name, stages, out) -> str:
    """Append ``missing`` synchronous neurons relaying ``src`` (a bistable layer: a synchronous
    neuron relays spikes, multiples of the threshold, exactly); return the last one's name."""
    node = by_name[src]
    name = src
    for k in range(1, missing + 1):
        sync_name = f"{src}_sync{k}"
        # another shortcut of the same layer may have built this relay already: share it
        _unused_name(sync_name, by_name, {"op": "bistable", "inputs": [name]})
        if sync_name not in by_name:
            out.append({"name": sync_name, "op": "bistable", "inputs": [name],
                        "attrs": {**node["attrs"], "stage": stages[name] + 1, "v_init": "half",
                                  "role": "sync"},
                        "params": {"threshold": node["params"]["threshold"]}})
            by_name[sync_name] = out[-1]
            stages[sync_name] = stages[name] + 1
        name = sync_name
    return name
