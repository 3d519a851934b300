"""The classic conversion: ReLU neurons become integrate-and-fire neurons (rate coding)."""

from __future__ import annotations

from types import MappingProxyType

import numpy as np

from refsnn import ann
from refsnn.checks import check_batch, check_choice
from refsnn.convert.bnfold import fold_batchnorm
from refsnn.convert.l4 import ADJUSTMENTS, apply_shifts, check_adjust
from refsnn.convert.threshold import balance
from refsnn.errors import ConversionError
from refsnn.model.graph import INPUT, Graph, graph_to_dicts, make_graph
from refsnn.sim.network import SNN_OPS, SpikingNetwork

#: Operators the IF method converts: ReLU becomes neurons, the rest are synapses.
SUPPORTED = ("linear", "conv2d", "batchnorm", "relu", "avgpool2d", "maxpool2d", "flatten",
             "add", "identity", "transpose", "mean", "reshape", "scale", "affine")
READOUTS = ("potential", "count")
ENCODINGS = ("analog", "poisson")
READOUT_NODE = "readout_neurons"


def convert_if(
    graph: Graph,
    calibration: np.ndarray,
    percentile: float = 99.9,
    per_channel: bool = False,
    reset: str = "subtract",
    v_init: str = "zero",
    encoding: str = "analog",
    readout: str = "potential",
    adjust: str = "none",
    adjust_steps: int | None = None,
    dtype=np.float64,
) -> SpikingNetwork:
    """Convert a ReLU network into a network of IF neurons.

    Parameters
    ----------
    graph : Graph
        The trained ANN.
    calibration : ndarray, shape (B, *graph.input_shape)
        Inputs whose ANN activations set the thresholds.
    percentile : float
        Threshold = this percentile of each ReLU's activations (100 = max).
    per_channel : bool
        One threshold per channel instead of per layer.
    reset : {"subtract", "zero"}
        Reset by subtraction or to zero.
    v_init : {"zero", "half"}
        Initial membrane potential 0 or theta/2.
    encoding : {"analog", "poisson"}
        How the input drives the network.
    readout : {"potential", "count"}
        ``potential``: the output node integrates without firing, the readout is its mean
        value. ``count``: IF neurons are added after the output and the readout is their
        spike count x theta / T.
    adjust : {"none", "l4"}
        ``l4``: lower each neuron's bias by the excess its Poisson-driven spread adds at
        ``adjust_steps`` steps (:mod:`refsnn.convert.l4`; derived here, not the paper's formula).
    adjust_steps : int, optional
        The reference horizon ``T_ref`` of ``adjust="l4"`` (default 32); refused otherwise.
    dtype : {numpy.float64, numpy.float32}
        Precision of the converted network's parameters and of its simulation.

    Raises
    ------
    ConversionError
        If the graph holds an operator the method cannot convert, or max pooling reads
        something other than ReLU neurons.
    """
    check_choice("--reset", reset, ("subtract", "zero"))
    check_choice("--v-init", v_init, ("zero", "half"))
    check_choice("--encoding", encoding, ENCODINGS)
    check_choice("--readout", readout, READOUTS)
    check_choice("--dtype", np.dtype(dtype).name, ("float64", "float32"))
    adjust_steps = check_adjust(adjust, adjust_steps, encoding)
    folded, out, dicts = relu_to_neurons(graph, calibration, percentile, per_channel, "if",
                                         "if", {"reset": reset, "v_init": v_init})
    x = check_batch(calibration, graph.input_shape, what="calibration data")
    output = folded.output
    if readout == "count" and folded.node(output).op != "relu":
        theta = balance(np.maximum(out, 0.0), percentile, per_channel)
        dicts.append({"name": READOUT_NODE, "op": "if", "inputs": [output],
                      "attrs": {"reset": reset, "v_init": v_init}, "params": {"threshold": theta}})
        output = READOUT_NODE
    snn_graph = make_graph(graph.input_shape, dicts, output, dtype=dtype, ops=SNN_OPS)
    adjusted = {}
    if adjust != "none":
        shifts = ADJUSTMENTS[adjust](SpikingNetwork(snn_graph, "if", encoding), x, adjust_steps)
        snn_graph = apply_shifts(snn_graph, shifts, SNN_OPS)
        adjusted = {"adjust_steps": int(adjust_steps)}
    options = {"percentile": float(percentile), "per_channel": int(per_channel), "reset": reset,
               "v_init": v_init, "readout": readout, "dtype": np.dtype(dtype).name,
               "calibration_samples": int(x.shape[0]), "adjust": adjust, **adjusted}
    return SpikingNetwork(snn_graph, "if", encoding, MappingProxyType(options))


def relu_to_neurons(graph: Graph, calibration, percentile: float, per_channel: bool,
                    method: str, neuron_op: str, neuron_attrs: dict):
    """The part every rate-coded method shares: check, fold BN, balance thresholds.

    Every ReLU becomes a ``neuron_op`` node with ``neuron_attrs`` and a per-layer (or
    per-channel) threshold at the ``percentile`` of its calibration activations.

    Returns
    -------
    folded : Graph
        The graph with batchnorms folded.
    out : ndarray, shape (B, *output_shape)
        The folded graph's output on the calibration data.
    dicts : list of dict
        The converted nodes, as :func:`refsnn.model.graph.graph_to_dicts` gives them.

    Raises
    ------
    ConversionError
        For an operator the method cannot convert, or max pooling of anything but ReLU neurons.
    """
    for node in graph.nodes:
        if node.op not in SUPPORTED:
            raise ConversionError(
                f"node '{node.name}': op '{node.op}' cannot be converted with --method {method} "
                f"(supported: {', '.join(SUPPORTED)}); use --method signgd, which converts "
                f"GELU, SiLU, LayerNorm, softmax and other nonlinearities")
    folded = fold_batchnorm(graph)
    check_maxpool_reads(folded, "relu", "; move the max pooling after the ReLU, which gives "
                                        "the same ANN since ReLU is monotone")
    x = check_batch(calibration, graph.input_shape, what="calibration data")
    out, acts = ann.forward(folded, x, all_nodes=True)
    dicts = graph_to_dicts(folded)
    for d in dicts:
        if d["op"] == "relu":
            theta = balance(acts[d["name"]], percentile, per_channel)
            d.update(op=neuron_op, attrs=dict(neuron_attrs), params={"threshold": theta})
    return folded, out, dicts


def check_maxpool_reads(graph: Graph, op: str, hint: str = "") -> None:
    """Max pooling of spikes needs one threshold per window: every ``maxpool2d`` must read an
    ``op`` node (whose neurons share a per-channel threshold).

    Raises
    ------
    ConversionError
        Naming the max pooling node and what it reads, followed by ``hint``.
    """
    for node in graph.nodes:
        if node.op == "maxpool2d":
            src = node.inputs[0]
            if src == INPUT or graph.node(src).op != op:
                raise ConversionError(f"node '{node.name}': maxpool2d must read a {op} node to "
                                      f"be converted (it reads '{src}'){hint}")
