"""The classic conversion: ReLU neurons become integrate-and-fire neurons (rate coding)."""

from __future__ import annotations

from types import MappingProxyType

import numpy as np

from refsnn.checks import check_batch, check_choice
from refsnn.conversion.bnfold import fold_batchnorm
from refsnn.conversion.calibrate import Progress, StreamedPercentiles, forward_passes
from refsnn.conversion.l4 import ADJUSTMENTS, apply_shifts, check_adjust
from refsnn.conversion.threshold import balance, check_percentile, thresholds
from refsnn.errors import ConversionError
from refsnn.model.graph import INPUT, Graph
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
    progress: Progress | None = None,
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
        ``adjust_steps`` steps (:mod:`refsnn.conversion.l4`; derived here, not the paper's formula).
    adjust_steps : int, optional
        The reference horizon ``T_ref`` of ``adjust="l4"`` (default 32); refused otherwise.
    dtype : {numpy.float64, numpy.float32}
        Precision of the converted network's parameters and of its simulation.
    progress : callable, optional
        ``progress(pass_index, samples_done, samples_total)`` while calibrating
        (:mod:`refsnn.conversion.calibrate`); not an option: it changes no result.

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
    passes_seen = [-1]  # the adjustment's pass is numbered after the thresholds' passes

    def seen(index, done, total):
        passes_seen[0] = index
        progress(index, done, total)

    folded, out, edit = relu_to_neurons(graph, calibration, percentile, per_channel, "if",
                                        "if", {"reset": reset, "v_init": v_init},
                                        None if progress is None else seen)
    x = check_batch(calibration, graph.input_shape, what="calibration data")
    if readout == "count" and folded.node(folded.output).op != "relu":
        theta = balance(np.maximum(out, 0.0), percentile, per_channel)
        edit.insert_after(folded.output, READOUT_NODE, "if", {"reset": reset, "v_init": v_init},
                          {"threshold": theta})
    snn_graph = edit.commit(dtype=dtype, ops=SNN_OPS)
    adjusted = {}
    if adjust != "none":
        after = None if progress is None else (
            lambda index, done, total: progress(passes_seen[0] + 1 + index, done, total))
        shifts = ADJUSTMENTS[adjust](SpikingNetwork(snn_graph, "if", encoding), x, adjust_steps,
                                     after)
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
    :func:`refsnn.evaluation.evaluate` uses to compare the readout with the logits.
    """
    out = graph.node(graph.output)
    if out.op not in ARGMAX_PRESERVING or out.inputs[0] == INPUT:
        return graph, {}
    edit = graph.edit()
    edit.remove(out.name)
    return edit.commit(), {"readout_before": out.name}


def _check_clip(node) -> None:
    if node.op == "hardtanh" and node.attrs["min_value"] != 0:
        raise ConversionError(
            f"node '{node.name}': hardtanh with min_value={node.attrs['min_value']!r} cannot be "
            f"an IF neuron, which represents clip(x, 0, theta): only min_value 0 (ReLU6 and "
            f"other clipped ReLUs) converts; use --method signgd")


def relu_to_neurons(graph: Graph, calibration, percentile: float, per_channel: bool,
                    method: str, neuron_op: str, neuron_attrs: dict,
                    progress: Progress | None = None):
    """The part every rate-coded method shares: check, fold BN, balance thresholds.

    Every ReLU becomes a ``neuron_op`` node with ``neuron_attrs`` and a per-layer (or
    per-channel) threshold at the ``percentile`` of its calibration activations, found by
    streamed exact selection over chunks of the calibration data
    (:mod:`refsnn.conversion.calibrate`: the value ``np.percentile`` gives on all of them,
    in memory that does not grow with their number); ``progress`` reports the passes.

    Returns
    -------
    folded : Graph
        The graph with batchnorms folded.
    out : ndarray, shape (B, *output_shape)
        The folded graph's output on the calibration data.
    edit : Rewrite
        ``folded`` with its ReLUs made neuron nodes, not yet committed.

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
    check_percentile(percentile)
    names = [node.name for node in folded.nodes if node.op in NEURON_SOURCES]
    outputs: list = []
    passes = forward_passes(folded, x, names, progress, outputs=outputs)
    found = StreamedPercentiles(passes, x.shape[0], percentile,
                                names if per_channel else ()).run()
    out = np.concatenate(outputs)
    edit = folded.edit()
    for node in folded.nodes:
        if node.op in NEURON_SOURCES:
            layer, per_c, dtype = found[node.name]
            theta = thresholds(layer, per_c, folded.shapes[node.name][0], dtype)
            if node.op == "hardtanh":
                # clip(clip(x, 0, m), 0, theta) = clip(x, 0, theta) for theta <= m: a neuron
                # with theta <= m represents the clipped ReLU exactly as it does a ReLU. The
                # percentile of activations <= m is <= m already; a silent layer's 1.0 is not.
                theta = np.minimum(theta, node.attrs["max_value"]).astype(theta.dtype)
            edit.replace(node.name, neuron_op, attrs=neuron_attrs, params={"threshold": theta})
    return folded, out, edit


def pool_before_batchnorm(graph: Graph) -> Graph:
    """Keras' order ReLU -> BatchNormalization -> MaxPool as ReLU -> MaxPool -> BatchNorm.

    A batchnorm is ``a * x + b`` per channel; with every ``a > 0`` it is strictly increasing,
    so ``max_i(a * x_i + b) = a * max_i(x_i) + b`` exactly (rounding is monotone too, and
    padding never wins either way). The swap is made only when the batchnorm reads a ReLU
    (or clipped ReLU), feeds only the max pooling, and all its scales are positive; any other
    max pooling is left for :func:`check_maxpool_reads` to refuse.
    """
    edit = graph.edit()
    for pool in graph.nodes:
        bn = graph.node(pool.inputs[0]) if pool.inputs[0] != INPUT else None
        if (pool.op != "maxpool2d" or bn is None or bn.op != "batchnorm"
                or bn.inputs[0] == INPUT or bn.name == graph.output):
            continue
        scale = bn.params["gamma"] / np.sqrt(bn.params["var"] + bn.attrs["eps"])
        if (graph.node(bn.inputs[0]).op not in NEURON_SOURCES or np.any(scale <= 0)
                or len(graph.consumers(bn.name)) != 1):
            continue
        # relu -> pool -> bn, and whatever read the pool reads the batchnorm
        edit.rewire(pool.name, bn.name)
        edit.replace(pool.name, inputs=bn.inputs)
        edit.replace(bn.name, inputs=[pool.name])
    if all(a.inputs == b.inputs for a, b in zip(edit.nodes, graph.nodes)):
        return graph
    # in waves (those reading only the input, then those reading only those, ...; list order
    # within a wave): the order this pass has always given, so converted files stay the same
    done, pending, edit.nodes = {INPUT}, edit.nodes, []
    while pending:
        edit.nodes += [n for n in pending if all(i in done for i in n.inputs)]
        done.update(n.name for n in edit.nodes)
        pending = [n for n in pending if n.name not in done]
    return edit.commit()


def pool_absorbs_pad(graph: Graph) -> Graph:
    """Keras' ZeroPadding2D -> MaxPooling2D after a ReLU as one max pooling with padding.

    On ReLU (or clipped ReLU) outputs, all ``>= 0``, a zero pad never changes a window's max
    unless the window holds padding only, which padding of at most half the kernel rules out:
    so a symmetric ``pad`` that only a ``maxpool2d`` (without padding of its own) reads folds
    into the pooling's ``-inf`` padding, exactly.
    """
    edit = graph.edit()
    for pool in graph.nodes:
        pad = graph.node(pool.inputs[0]) if pool.inputs[0] != INPUT else None
        if (pool.op != "maxpool2d" or pad is None or any(pool.attrs["padding"])
                or pad.op != "pad" or pad.inputs[0] == INPUT or pad.name == graph.output):
            continue
        (top, bottom), (left, right) = pad.attrs["rows"], pad.attrs["cols"]
        kh, kw = pool.attrs["kernel"]
        if (top != bottom or left != right or 2 * top > kh or 2 * left > kw
                or graph.node(pad.inputs[0]).op not in NEURON_SOURCES
                or len(graph.consumers(pad.name)) != 1):
            continue
        edit.remove(pad.name)
        edit.replace(pool.name, attrs={**pool.attrs, "padding": (top, left)})
    return graph if len(edit.nodes) == len(graph.nodes) else edit.commit()


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
