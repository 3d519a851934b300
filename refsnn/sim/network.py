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
from refsnn.io import atomic_h5, attr_str, check_header, read_dataset, read_h5
from refsnn.model.format import read_graph, write_graph
from refsnn.model.graph import Graph, check_param
from refsnn.neurons.base import KINDS, NEURON_FORWARD, NEURON_OPS, SNN_OPS  # noqa: F401
from refsnn.sim import steps  # noqa: F401  (registers the synapse ops: SNN_OPS is complete)
from refsnn.options import ALL as CONVERSIONS

FORMAT = "refsnn-snn"
FORMAT_VERSION = 2  # 2: with checksums (refsnn.checksum); version 1 files still load
ENCODINGS = ("analog", "poisson", "exact", "gd")
DECODERS = ("mean", "estimate", "packet")
METHODS = (*CONVERSIONS, "nir")  # noise: QCFS + residual-error noise, IF neurons;
# nir: a NIR graph imported by refsnn.nir.reader (schedule: {"dt": time step})


def represented_output(net: "SpikingNetwork", name: str, counts: np.ndarray, steps: int):
    """The activation a rate-coded neuron node represents after ``steps`` steps.

    Parameters
    ----------
    net : SpikingNetwork
    name : str
        A neuron node of ``net`` whose kind says what its spikes stand for
        (``Kind.represents``: ``if``, ``bistable``).
    counts : int ndarray, shape (B, *node_shape)
        Spikes per neuron over steps ``1..steps``.
    steps : int

    Returns
    -------
    ndarray, shape (B, *node_shape)
        ``count · theta / steps`` (the rate times the spike's value) for IF neurons.
    """
    node = net.graph.node(name)
    kind = KINDS.get(node.op)
    if kind is None or kind.represents is None:
        raise ValueError(f"node '{name}' ({node.op}) is not a rate-coded neuron node")
    return kind.represents(node, counts, steps)


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
    return read_h5(path, "network file", lambda f, file: _read_snn(f, file, dtype))


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
    for node in graph.nodes:  # every node with a cycle (bistable neurons) runs the schedule's
        if "period" in node.attrs and node.attrs["period"] != schedule["period"]:
            raise ModelFormatError(file, f"/nodes/{node.name}", "period",
                                   f"schedule_period = {schedule['period']}",
                                   str(node.attrs["period"]))


def ann_limit(net: SpikingNetwork, x: np.ndarray, all_nodes: bool = False):
    """The ANN a converted network approximates, evaluated on ``x`` (the limit T -> infinity).

    Every converted-only node acts as its kind's ``limit`` or else ``forward``
    (:mod:`refsnn.neurons.base`): IF networks: every ``if`` node acts as ``clip(x, 0, theta)``.
    signGD networks: the synapses of a converted file carry no constants, so each ``sgd`` node
    computes ``f`` of its inputs plus its ``x_init`` (the constants of the affine maps) and
    ``readout_init``, where the network has one, is added to the output; this is the network
    seen through the ``exact`` encoder.

    With ``all_nodes``, returns ``(output, {node name: value})`` as :func:`refsnn.ann.forward`
    does. For signGD the node values are those of the increments' linear maps, without the
    constants (a neuron's value is its output, which is what its estimate approximates).
    """
    limits = {op: k.limit for op, k in KINDS.items() if k.limit is not None}
    out = ann.forward(net.graph, x, all_nodes=all_nodes,
                      forward_ops={**NEURON_FORWARD, **limits})
    if net.readout_init is None:
        return out
    if all_nodes:
        return out[0] + net.readout_init, out[1]
    return out + net.readout_init
