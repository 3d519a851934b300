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
from refsnn.model.graph import INPUT, Graph, Node, Rewrite
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
    progress=None,
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
    progress : callable, optional
        ``progress(pass_index, samples_done, samples_total)`` while calibrating (as for IF).

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
    folded, _, edit = relu_to_neurons(graph, calibration, percentile, per_channel, "bsnn",
                                      "bistable", {"period": int(period), "v_init": v_init,
                                                   "role": "neuron"}, progress)
    _, stages = assign_stages(edit, sync, int(period))
    snn_graph = edit.commit(dtype=dtype, ops=SNN_OPS)
    options = {"percentile": float(percentile), "per_channel": int(per_channel),
               "period": int(period), "v_init": v_init, "sync": int(sync),
               "dtype": np.dtype(dtype).name,
               "calibration_samples": int(np.asarray(calibration).shape[0]), **readout_before}
    schedule = {"period": float(period), "readout_stage": float(stages[folded.output])}
    return SpikingNetwork(snn_graph, "bsnn", encoding, MappingProxyType(options),
                          decoder="packet", schedule=MappingProxyType(schedule))


def assign_stages(edit: Rewrite | list[dict], sync: bool,
                  period: int) -> tuple[list[Node], dict[str, int]]:
    """Give every bistable node its stage and synchronise the inputs of every ``add`` and
    ``concat``.

    Parameters
    ----------
    edit : Rewrite or list of dict
        Converted nodes in topological order (edited in place, if a Rewrite); bistable
        nodes lack ``stage``.
    sync : bool
        Synchronise where the inputs of an ``add`` or ``concat`` differ in stage:
        synchronous neurons on a neuron layer, a ``delay`` node on anything else.
    period : int
        Steps per cycle (a delay of ``k`` cycles is ``k * period`` steps).

    Returns
    -------
    nodes : list of Node
        The nodes with stages set and synchronous neurons inserted (in topological order).
    stages : dict of str to int
        Every node's stage, ``"input"`` included.
    """
    edit = edit if isinstance(edit, Rewrite) else Rewrite((), edit, None)
    stages = {INPUT: 0}
    for node in list(edit.nodes):
        inputs = node.inputs
        if node.op in ("add", "concat") and sync:
            target = max(stages[i] for i in inputs)
            inputs = [_relay(edit, i, target - stages[i], period, stages, node.name)
                      if 0 < stages[i] < target else i for i in inputs]
        stages[node.name] = stage = max(stages[i] for i in inputs) + (node.op == "bistable")
        attrs = {**node.attrs, "stage": stage} if node.op == "bistable" else None
        edit.replace(node.name, inputs=inputs, attrs=attrs)
    return edit.nodes, stages


def _relay(edit: Rewrite, src: str, missing: int, period: int, stages, before: str) -> str:
    """Add (or reuse) the relay of ``src`` by ``missing`` cycles before node ``before``: a
    ``delay`` node of ``missing * period`` steps, or, for a bistable layer, ``missing``
    synchronous neurons (a synchronous neuron relays spikes, multiples of the threshold,
    exactly). Return the relay's last node's name."""
    node, name = edit.node(src), src
    if node.op != "bistable":
        steps = [(f"{src}_delay{missing}", "delay", {"steps": missing * period}, None, missing)]
    else:
        steps = [(f"{src}_sync{k}", "bistable", {**node.attrs, "v_init": "half", "role": "sync"},
                  {"threshold": node.params["threshold"]}, 1) for k in range(1, missing + 1)]
    for new, op, attrs, params, cycles in steps:
        # another shortcut of the same layer may have built this relay already: share it
        if new in edit and (edit.node(new).op, edit.node(new).inputs) != (op, (name,)):
            raise ConversionError(f"cannot name a relay node '{new}' (BSNN shortcut): the "
                                  f"model already has a node of that name")
        if new not in edit:
            stages[new] = stages[name] + cycles
            attrs = {**attrs, "stage": stages[new]} if op == "bistable" else attrs
            edit.add(new, op, [name], attrs, params, before=before)
        name = new
    return name
