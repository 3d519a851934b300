"""The frozen spiking network: a converted graph plus how it is driven and read out.

A :class:`SpikingNetwork` is what a converter returns and what the simulator runs. Its graph
holds the ANN operators that remain as synapses (linear, conv2d, pooling, add, ...) and neuron
operators in place of the nonlinearities (``if`` for IF neurons). The network's value at each
step is the output node's step value; the readout after ``T`` steps is the mean of those values
over steps ``1..T``.

File layout (``refsnn-snn``, version 1)::

    /            attrs: format = "refsnn-snn", format_version = 2, method, encoding,
                        and the conversion's options as ``option_<name>`` attributes
    /input, /nodes/<name>, output: as in the model format, with neuron operators allowed
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

import numpy as np

from refsnn import ann, checksum
from refsnn.errors import ModelFormatError
from refsnn.io import (H5_ERRORS, atomic_h5, attr_str, check_header, open_h5, read_dataset,
                       unreadable)
from refsnn.model.format import read_graph, write_graph
from refsnn.model.graph import Graph, check_param
from refsnn.model.ops import OPS, AttrSpec, OpSpec, ShapeRuleError, pool_size
from refsnn.neurons.bistable import packets_started
from refsnn.neurons.signgd import TARGETS, target_value
from refsnn.options import ALL as CONVERSIONS
from refsnn.sim.nir_ops import NIR_NEURON_OPS, NIR_SYNAPSE_OPS
from refsnn.synapses.window import PADS, spread_forward, window_forward

FORMAT = "refsnn-snn"
FORMAT_VERSION = 2  # 2: with checksums (refsnn.checksum); version 1 files still load
ENCODINGS = ("analog", "poisson", "exact", "gd")
DECODERS = ("mean", "estimate", "packet")
METHODS = (*CONVERSIONS, "nir")  # noise: QCFS + residual-error noise, IF neurons;
# nir: a NIR graph imported by refsnn.nir.reader (schedule: {"dt": time step})


def _if_params(attrs, in_shapes):
    return {"threshold": (in_shapes[0][0],)}


def _if_out(attrs, in_shapes, params):
    if np.any(params["threshold"] <= 0):
        raise ShapeRuleError("threshold", "positive thresholds", "a value <= 0")
    return in_shapes[0]


def _bistable_out(attrs, in_shapes, params):
    if "threshold" in params and np.any(params["threshold"] <= 0):
        raise ShapeRuleError("threshold", "positive thresholds", "a value <= 0")
    return in_shapes[0]


def _sgd_params(attrs, in_shapes):
    shape = in_shapes[0]
    return {"scale": shape, "x_init": (len(in_shapes),) + shape}


def _sgd_out(attrs, in_shapes, params):
    target = TARGETS.get(attrs["fn"])
    if target is None:
        raise ShapeRuleError("fn", f"one of {sorted(TARGETS)}", repr(attrs["fn"]))
    if target.n_inputs != len(in_shapes):
        raise ShapeRuleError("inputs", f"{target.n_inputs} input(s) for {attrs['fn']}",
                             str(len(in_shapes)))
    for s in in_shapes[1:]:
        if s != in_shapes[0]:
            raise ShapeRuleError("inputs", f"equal shapes {in_shapes[0]}", str(s))
    if "scale" in params and np.any(params["scale"] <= 0):  # a draft has no params yet
        raise ShapeRuleError("scale", "positive scales", "a value <= 0")
    if attrs["min_value"] >= attrs["max_value"]:
        raise ShapeRuleError("min_value", f"less than max_value={attrs['max_value']}",
                             str(attrs["min_value"]))
    return in_shapes[0]


def _window_out(attrs, in_shapes, params):
    if len(in_shapes[0]) != 3:
        raise ShapeRuleError("input shape", "rank 3 (C, H, W)", str(in_shapes[0]))
    c, h, w = in_shapes[0]
    (kh, kw), (sh, sw), (ph, pw) = attrs["kernel"], attrs["stride"], attrs["padding"]
    oy, ox = attrs["offset"]
    if oy >= kh or ox >= kw:
        raise ShapeRuleError("offset", f"inside the kernel {(kh, kw)}", str((oy, ox)))
    if attrs["pad_mode"] == "edge" and attrs["pad_value"] != 0.0:
        # an edge window never reads pad_value: refuse one that is set, not ignore it
        raise ShapeRuleError("pad_value", "0 (unused) with pad_mode 'edge'",
                             repr(attrs["pad_value"]))
    ceil = attrs["ceil_mode"]
    return (c, pool_size(h, kh, sh, ph, ceil), pool_size(w, kw, sw, pw, ceil))


#: Operators of converted networks, on top of :data:`refsnn.model.ops.OPS`.
NEURON_OPS: dict[str, OpSpec] = {
    "if": OpSpec(
        "if", 1,
        attrs={"reset": AttrSpec("str", default="subtract", choices=("subtract", "zero")),
               "v_init": AttrSpec("str", default="zero", choices=("zero", "half"))},
        params=("threshold",), param_shapes=_if_params, out_shape=_if_out),
    # Bistable IF neurons (BSNN): integrate for a cycle of `period` steps, then fire for one;
    # `stage` is the cycle of the first fire state (pipeline position). role "sync": a
    # synchronous neuron, a relay that delays a residual shortcut by one cycle.
    "bistable": OpSpec(
        "bistable", 1,
        attrs={"period": AttrSpec("int", minimum=1), "stage": AttrSpec("int", minimum=1),
               "v_init": AttrSpec("str", default="half", choices=("zero", "half")),
               "role": AttrSpec("str", default="neuron", choices=("neuron", "sync"))},
        params=("threshold",), param_shapes=_if_params, out_shape=_bistable_out),
    "sgd": OpSpec(
        "sgd", -1,
        attrs={"fn": AttrSpec("str"),
               "tie": AttrSpec("str", default="inclusive", choices=("inclusive", "strict")),
               "slope": AttrSpec("float", default=0.01),
               "min_value": AttrSpec("float", default=-1.0),
               "max_value": AttrSpec("float", default=1.0),
               "eps": AttrSpec("float", default=0.0)},
        params=("scale", "x_init"), param_shapes=_sgd_params, out_shape=_sgd_out),
}

#: Synapse operators that only converted networks use.
SYNAPSE_OPS: dict[str, OpSpec] = {
    # One kernel position of a pooling window: out[c, y, x] = in[c, y*sh + oy - ph,
    # x*sw + ox - pw]; outside the input, pad_value ("constant") or the nearest input
    # position ("edge": the row and column clamped into the input). Max pooling becomes a
    # tree of two-input max neurons over these.
    "window": OpSpec(
        "window", 1,
        attrs={"kernel": AttrSpec("pair", minimum=1), "stride": AttrSpec("pair", minimum=1),
               "padding": AttrSpec("pair", default=(0, 0), minimum=0),
               "offset": AttrSpec("pair", minimum=0),
               "pad_mode": AttrSpec("str", default="constant", choices=tuple(PADS)),
               "pad_value": AttrSpec("float", default=0.0),
               "ceil_mode": AttrSpec("int", default=0, minimum=0)},
        out_shape=_window_out),
    # The input's value of `steps` steps earlier (0 during the first `steps` steps). BSNN
    # puts one on a residual shortcut or concatenation input that comes through a synapse
    # (where no synchronous neuron can relay it) to shift its packets by whole cycles.
    "delay": OpSpec("delay", 1, attrs={"steps": AttrSpec("int", minimum=1)}),
    # A reduction along one axis, broadcast back to the input's shape: the axis "mean", "sum",
    # or "center" (x minus the mean). Linear, so it carries increments unchanged in meaning.
    "spread": OpSpec(
        "spread", 1,
        attrs={"axis": AttrSpec("str", default="last", choices=("last", "channel")),
               "reduce": AttrSpec("str", choices=("mean", "sum", "center"))}),
}
NEURON_OPS.update(NIR_NEURON_OPS)
SYNAPSE_OPS.update(NIR_SYNAPSE_OPS)
SNN_OPS = {**OPS, **NEURON_OPS, **SYNAPSE_OPS}


def clip_forward(node, x):
    """ANN meaning of an ``if`` node: ``clip(x, 0, threshold)`` per channel."""
    theta = _channel_param(node, "threshold", x.ndim)
    return np.minimum(np.maximum(x, 0.0), theta)


def sgd_forward(node, *xs):
    """ANN meaning of an ``sgd`` node: its target function."""
    return target_value(node.attrs["fn"], node.attrs, xs)


def _channel_param(node, name: str, ndim: int) -> np.ndarray:
    """A per-channel parameter shaped to broadcast against (B, *node_shape) arrays."""
    return node.params[name].reshape((1, -1) + (1,) * (ndim - 2))


def represented_output(net: "SpikingNetwork", name: str, counts: np.ndarray, steps: int):
    """The activation a rate-coded neuron node represents after ``steps`` steps.

    Parameters
    ----------
    net : SpikingNetwork
    name : str
        A neuron node of ``net`` whose spikes carry its threshold (``if``).
    counts : int ndarray, shape (B, *node_shape)
        Spikes per neuron over steps ``1..steps``.
    steps : int

    Returns
    -------
    ndarray, shape (B, *node_shape)
        ``count · theta / steps`` (the rate times the spike's value).
    """
    node = net.graph.node(name)
    if node.op not in ("if", "bistable"):
        raise ValueError(f"node '{name}' ({node.op}) is not a rate-coded neuron node")
    theta = _channel_param(node, "threshold", counts.ndim)
    if node.op == "if":
        return counts * theta / steps
    # a bistable neuron's spikes come in packets of at most `period` per fire cycle
    packets = packets_started(steps, node.attrs["period"], node.attrs["stage"])
    return counts * theta / (node.attrs["period"] * packets) if packets else 0.0 * counts


#: ANN forward functions of the converted-only operators (the limit T -> infinity of the SNN).
NEURON_FORWARD = {"if": clip_forward, "bistable": clip_forward, "sgd": sgd_forward,
                  "window": window_forward, "spread": spread_forward,
                  "delay": lambda node, x: x}


@dataclass(frozen=True)
class SpikingNetwork:
    """A converted network, ready to simulate.

    Attributes
    ----------
    graph : Graph
        Synapse and neuron operators; ``graph.output`` is the node read out.
    method : str
        The conversion method that made it (one of :data:`METHODS`).
    encoding : str
        A key of :data:`refsnn.sim.encoders.ENCODERS`: ``"analog"`` (the input is a constant
        current every step), ``"poisson"`` (Bernoulli spikes per step with probability ``|x|``
        and value ``sign(x)``), ``"exact"`` (the whole input delivered at step 1) or ``"gd"``
        (the signGD reference code's gradient-descent encoder).
    options : mapping
        The conversion options used, for provenance (strings and numbers).
    decoder : {"mean", "estimate", "packet"}
        ``mean``: the readout after ``T`` steps is the mean of the output's values over steps
        ``1..T`` (rate coding). ``estimate``: the output's values are increments, and the
        readout is ``readout_init`` plus their sum (signGD). ``packet``: the mean value per
        step of the output's completed packets (BSNN; :mod:`refsnn.sim.decoders`).
    schedule : mapping
        ``{"eta0": float, "gamma": float}`` for signGD networks, ``{"period": P,
        "readout_stage": s}`` for BSNN networks; empty otherwise.
    readout_init : ndarray, shape output_shape, optional
        The decoder's initial value (``estimate`` decoder only).
    """

    graph: Graph
    method: str
    encoding: str
    options: Mapping[str, object] = field(default_factory=lambda: MappingProxyType({}))
    decoder: str = "mean"
    schedule: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    readout_init: np.ndarray | None = None

    def neuron_nodes(self) -> list[str]:
        """Names of the nodes that hold neurons, in graph order."""
        return [n.name for n in self.graph.nodes if n.op in NEURON_OPS]


def save_snn(net: SpikingNetwork, path) -> None:
    """Write ``net`` to ``path`` atomically."""
    with atomic_h5(path) as f:
        f.attrs["format"] = FORMAT
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["method"] = net.method
        f.attrs["encoding"] = net.encoding
        f.attrs["decoder"] = net.decoder
        for key, value in net.options.items():
            f.attrs[f"option_{key}"] = value
        for key, value in net.schedule.items():
            f.attrs[f"schedule_{key}"] = float(value)
        if net.readout_init is not None:
            f.create_dataset("readout_init", data=net.readout_init)
        write_graph(f, net.graph)


def load_snn(path, dtype=np.float64) -> SpikingNetwork:
    """Load and validate a converted network written by :func:`save_snn`.

    Raises
    ------
    ModelFormatError
        For any problem, naming the file, path and field.
    """
    file = str(path)
    with open_h5(path, "network file") as f:
        try:
            return _read_snn(f, file, dtype)
        except H5_ERRORS as e:  # damaged file: h5py fails mid-read
            raise unreadable(file, e) from None


def _choice(f, file: str, key: str, allowed) -> str:
    """Root attribute ``key``: one of the strings ``allowed``."""
    value = attr_str(f.attrs.get(key))
    if not isinstance(value, str) or value not in allowed:
        raise ModelFormatError(file, "/", key, f"one of {list(allowed)}", repr(value))
    return value


def _read_snn(f, file: str, dtype) -> SpikingNetwork:
    """:func:`load_snn` on the open file ``f``."""
    check_header(f, file, FORMAT, FORMAT_VERSION)
    method = _choice(f, file, "method", METHODS)
    encoding = _choice(f, file, "encoding", ENCODINGS)
    decoder = _choice(f, file, "decoder", DECODERS)
    known = {"format", "format_version", "method", "encoding", "decoder", "output",
             checksum.ATTR}
    options, schedule = {}, {}
    for key, value in f.attrs.items():
        v = attr_str(value)
        v = v.item() if isinstance(v, np.generic) else v
        if key.startswith("option_"):
            options[key[len("option_"):]] = v
        elif key.startswith("schedule_"):
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not np.isfinite(v):
                raise ModelFormatError(file, "/", key, "a finite number", repr(v))
            schedule[key[len("schedule_"):]] = v
        elif key not in known:
            raise ModelFormatError(file, "/", key, f"attributes {sorted(known)}, option_* "
                                   "or schedule_*", "an unknown attribute")
    graph = read_graph(f, file, dtype=dtype, ops=SNN_OPS)
    if decoder == "packet":
        _check_packet_schedule(file, schedule, graph)
    init = None
    if "readout_init" in f:
        init = check_param(read_dataset(f, "readout_init", file, "/readout_init"), file,
                           "", "readout_init", dtype)
        want = graph.shapes[graph.output]
        if init.shape != want:
            raise ModelFormatError(file, "/readout_init", "shape", str(want), str(init.shape))
    return SpikingNetwork(graph, method, encoding, MappingProxyType(options), decoder,
                          MappingProxyType(schedule), init)


def _check_packet_schedule(file: str, schedule: dict, graph: Graph) -> None:
    """A BSNN file's cycle length and readout stage: present, integral, consistent."""
    for key, low in (("period", 1), ("readout_stage", 1)):
        value = schedule.get(key)
        if not isinstance(value, (int, float)) or value != int(value) or value < low:
            raise ModelFormatError(file, "/", f"schedule_{key}", f"an integer >= {low}",
                                   repr(value))
        schedule[key] = int(value)
    for node in graph.nodes:
        if node.op == "bistable" and node.attrs["period"] != schedule["period"]:
            raise ModelFormatError(file, f"/nodes/{node.name}", "period",
                                   f"schedule_period = {schedule['period']}",
                                   str(node.attrs["period"]))


def ann_limit(net: SpikingNetwork, x: np.ndarray, all_nodes: bool = False):
    """The ANN a converted network approximates, evaluated on ``x`` (the limit T -> infinity).

    IF networks: every ``if`` node acts as ``clip(x, 0, theta)``. signGD networks: the synapses
    of a converted file carry no constants, so each ``sgd`` node computes ``f`` of its inputs
    plus its ``x_init`` (the constants of the affine maps) and ``readout_init`` is added to the
    output; this is the network seen through the ``exact`` encoder.

    With ``all_nodes``, returns ``(output, {node name: value})`` as :func:`refsnn.ann.forward`
    does. For signGD the node values are those of the increments' linear maps, without the
    constants (a neuron's value is its output, which is what its estimate approximates).
    """
    if net.method != "signgd":
        return ann.forward(net.graph, x, all_nodes=all_nodes, forward_ops=NEURON_FORWARD)

    def sgd_with_constants(node, *xs):
        shifted = [xi + c for xi, c in zip(xs, node.params["x_init"])]
        return target_value(node.attrs["fn"], node.attrs, shifted)

    out = ann.forward(net.graph, x, all_nodes=all_nodes,
                      forward_ops={**NEURON_FORWARD, "sgd": sgd_with_constants})
    if all_nodes:
        return out[0] + net.readout_init, out[1]
    return out + net.readout_init
