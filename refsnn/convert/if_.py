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

#: Operators the IF method converts: ReLU and clipped ReLU (hardtanh with min_value 0, e.g.
#: ReLU6) become neurons, the rest are synapses.
SUPPORTED = ("linear", "conv2d", "batchnorm", "relu", "hardtanh", "avgpool2d", "maxpool2d",
             "flatten", "add", "identity", "transpose", "mean", "reshape", "scale", "affine",
             "concat", "expand", "slice", "upsample", "pad")
#: Output operators that preserve the argmax of their input: a rate-coded readout stops before
#: them (:func:`argmax_readout`).
ARGMAX_PRESERVING = ("softmax", "log_softmax")
#: Operators that become rate-coded neurons.
NEURON_SOURCES = ("relu", "hardtanh")
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
    graph, readout_before = argmax_readout(graph)
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
               "calibration_samples": int(x.shape[0]), "adjust": adjust, **adjusted,
               **readout_before}
    return SpikingNetwork(snn_graph, "if", encoding, MappingProxyType(options))


def argmax_readout(graph: Graph) -> tuple[Graph, dict]:
    """Drop an output ``softmax`` / ``log_softmax``: a rate-coded readout reads its input.

    Both are strictly increasing along their axis, so the argmax of the readout (the predicted
    class) is the ANN's; the readout's *values* are the logits, not probabilities. Returns the
    graph without that node and ``{"readout_before": <dropped node's name>}`` (empty when
    nothing was dropped), which the converted network keeps among its options and
    :func:`refsnn.evaluate.evaluate` uses to compare the readout with the logits.
    """
    out = graph.node(graph.output)
    if out.op not in ARGMAX_PRESERVING or out.inputs[0] == INPUT:
        return graph, {}
    dicts = [d for d in graph_to_dicts(graph) if d["name"] != out.name]
    trimmed = make_graph(graph.input_shape, dicts, out.inputs[0], dtype=graph.dtype)
    return trimmed, {"readout_before": out.name}


def _check_clip(node) -> None:
    if node.op == "hardtanh" and node.attrs["min_value"] != 0:
        raise ConversionError(
            f"node '{node.name}': hardtanh with min_value={node.attrs['min_value']!r} cannot be "
            f"an IF neuron, which represents clip(x, 0, theta): only min_value 0 (ReLU6 and "
            f"other clipped ReLUs) converts; use --method signgd")


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
                f"(supported: {', '.join(SUPPORTED)}); " + (
                    "use --method noise, made for QCFS networks (each qcfs node becomes IF "
                    "neurons with threshold λ)" if node.op == "qcfs" else
                    "use --method signgd, which converts GELU, SiLU, LayerNorm, softmax and "
                    "other nonlinearities"))
        _check_clip(node)
    folded = pool_absorbs_pad(pool_before_batchnorm(fold_batchnorm(graph)))
    check_maxpool_reads(folded, NEURON_SOURCES,
                        "; spiking max pooling compares the spike counts of one neuron layer, "
                        "so it must come right after the ReLU (max pooling before a ReLU can "
                        "move after it: the same ANN, since ReLU is monotone; a batchnorm "
                        "between them moves after the pooling by itself only if all its "
                        "scales are positive)")
    x = check_batch(calibration, graph.input_shape, what="calibration data")
    out, acts = ann.forward(folded, x, all_nodes=True)
    dicts = graph_to_dicts(folded)
    for d in dicts:
        if d["op"] in NEURON_SOURCES:
            theta = balance(acts[d["name"]], percentile, per_channel)
            if d["op"] == "hardtanh":
                # clip(clip(x, 0, m), 0, theta) = clip(x, 0, theta) for theta <= m: a neuron
                # with theta <= m represents the clipped ReLU exactly as it does a ReLU. The
                # percentile of activations <= m is <= m already; a silent layer's 1.0 is not.
                theta = np.minimum(theta, d["attrs"]["max_value"]).astype(theta.dtype)
            d.update(op=neuron_op, attrs=dict(neuron_attrs), params={"threshold": theta})
    return folded, out, dicts


def pool_before_batchnorm(graph: Graph) -> Graph:
    """Keras' order ReLU -> BatchNormalization -> MaxPool as ReLU -> MaxPool -> BatchNorm.

    A batchnorm is ``a * x + b`` per channel; with every ``a > 0`` it is strictly increasing,
    so ``max_i(a * x_i + b) = a * max_i(x_i) + b`` exactly (rounding is monotone too, and
    padding never wins either way). The swap is made only when the batchnorm reads a ReLU
    (or clipped ReLU), feeds only the max pooling, and all its scales are positive; any other
    max pooling is left for :func:`check_maxpool_reads` to refuse.
    """
    dicts = graph_to_dicts(graph)
    by_name = {d["name"]: d for d in dicts}
    changed, output = False, graph.output
    for d in dicts:
        if d["op"] != "maxpool2d" or d["inputs"][0] == INPUT:
            continue
        bn = by_name[d["inputs"][0]]
        if bn["op"] != "batchnorm" or bn["inputs"][0] == INPUT or bn["name"] == graph.output:
            continue
        p = bn["params"]
        scale = p["gamma"] / np.sqrt(p["var"] + bn["attrs"]["eps"])
        if (by_name[bn["inputs"][0]]["op"] not in NEURON_SOURCES or np.any(scale <= 0)
                or len(graph.consumers(bn["name"])) != 1):
            continue
        # relu -> pool -> bn, and whatever read the pool reads the batchnorm
        pool_name, bn_name = d["name"], bn["name"]
        for other in dicts:
            other["inputs"] = [bn_name if i == pool_name else i for i in other["inputs"]]
        d["inputs"], bn["inputs"] = list(bn["inputs"]), [pool_name]
        output = bn_name if output == pool_name else output
        changed = True
    if not changed:
        return graph
    return make_graph(graph.input_shape, _topological(dicts), output, dtype=graph.dtype)


def pool_absorbs_pad(graph: Graph) -> Graph:
    """Keras' ZeroPadding2D -> MaxPooling2D after a ReLU as one max pooling with padding.

    On ReLU (or clipped ReLU) outputs, all ``>= 0``, a zero pad never changes a window's max
    unless the window holds padding only, which padding of at most half the kernel rules out:
    so a symmetric ``pad`` that only a ``maxpool2d`` (without padding of its own) reads folds
    into the pooling's ``-inf`` padding, exactly.
    """
    dicts = graph_to_dicts(graph)
    by_name = {d["name"]: d for d in dicts}
    drop = set()
    for d in dicts:
        if d["op"] != "maxpool2d" or d["inputs"][0] == INPUT or any(d["attrs"]["padding"]):
            continue
        pad = by_name[d["inputs"][0]]
        if pad["op"] != "pad" or pad["inputs"][0] == INPUT or pad["name"] == graph.output:
            continue
        (top, bottom), (left, right) = pad["attrs"]["rows"], pad["attrs"]["cols"]
        kh, kw = d["attrs"]["kernel"]
        if (top != bottom or left != right or 2 * top > kh or 2 * left > kw
                or by_name[pad["inputs"][0]]["op"] not in NEURON_SOURCES
                or len(graph.consumers(pad["name"])) != 1):
            continue
        d["inputs"] = list(pad["inputs"])
        d["attrs"] = {**d["attrs"], "padding": (top, left)}
        drop.add(pad["name"])
    if not drop:
        return graph
    return make_graph(graph.input_shape, [d for d in dicts if d["name"] not in drop],
                      graph.output, dtype=graph.dtype)


def _topological(dicts: list[dict]) -> list[dict]:
    done, out, pending = {INPUT}, [], list(dicts)
    while pending:
        ready = [d for d in pending if all(i in done for i in d["inputs"])]
        for d in ready:
            out.append(d)
            done.add(d["name"])
        pending = [d for d in pending if d["name"] not in done]
    return out


def _neuron_channels(graph: Graph, name: str, ops) -> bool:
    """Whether every channel of ``name`` is a neuron layer of ``ops``: the node itself, or a
    concatenation along the channels of such nodes (whose thresholds then line up)."""
    if name == INPUT:
        return False
    node = graph.node(name)
    if node.op == "concat" and node.attrs["axis"] == 0:
        return all(_neuron_channels(graph, i, ops) for i in node.inputs)
    return node.op in ops


def check_maxpool_reads(graph: Graph, op, hint: str = "") -> None:
    """Max pooling of spikes needs one threshold per window: every ``maxpool2d`` must read an
    ``op`` node (``op`` a name or a tuple of names; its neurons share a per-channel
    threshold), or a channel concatenation of such nodes.

    Raises
    ------
    ConversionError
        Naming the max pooling node and what it reads, followed by ``hint``.
    """
    for node in graph.nodes:
        if node.op == "maxpool2d":
            src = node.inputs[0]
            ops = (op,) if isinstance(op, str) else tuple(op)
            if not _neuron_channels(graph, src, ops):
                what = "" if src == INPUT else f", a {graph.node(src).op} node"
                also = f" (or {', '.join(ops[1:])})" if len(ops) > 1 else ""
                raise ConversionError(f"node '{node.name}': maxpool2d must read a {ops[0]} "
                                      f"node{also} to be converted (it reads '{src}'{what})"
                                      f"{hint}")
