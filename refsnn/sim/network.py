"""The frozen spiking network: a converted graph plus how it is driven and read out.

A :class:`SpikingNetwork` is what a converter returns and what the simulator runs. Its graph
holds the ANN operators that remain as synapses (linear, conv2d, pooling, add, ...) and neuron
operators in place of the nonlinearities (``if`` for IF neurons). The network's value at each
step is the output node's step value; the readout after ``T`` steps is the mean of those values
over steps ``1..T``.

File layout (``refsnn-snn``, version 1)::

    /            attrs: format = "refsnn-snn", format_version = 1, method, encoding,
                        and the conversion's options as ``option_<name>`` attributes
    /input, /nodes/<name>, output: as in the model format, with neuron operators allowed
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

import numpy as np

from refsnn.errors import ModelFormatError
from refsnn.io import atomic_h5, open_h5
from refsnn.model.format import _check_header, _str, read_graph, write_graph
from refsnn.model.graph import Graph
from refsnn.model.ops import OPS, AttrSpec, OpSpec, ShapeRuleError

FORMAT = "refsnn-snn"
FORMAT_VERSION = 1
ENCODINGS = ("analog", "poisson")


def _if_params(attrs, in_shapes):
    return {"threshold": (in_shapes[0][0],)}


def _if_out(attrs, in_shapes, params):
    if np.any(params["threshold"] <= 0):
        raise ShapeRuleError("threshold", "positive thresholds", "a value <= 0")
    return in_shapes[0]


#: Operators of converted networks, on top of :data:`refsnn.model.ops.OPS`.
NEURON_OPS: dict[str, OpSpec] = {
    "if": OpSpec(
        "if", 1,
        attrs={"reset": AttrSpec("str", default="subtract", choices=("subtract", "zero")),
               "v_init": AttrSpec("str", default="zero", choices=("zero", "half"))},
        params=("threshold",), param_shapes=_if_params, out_shape=_if_out),
}
SNN_OPS = {**OPS, **NEURON_OPS}


def clip_forward(node, x):
    """ANN meaning of an ``if`` node: ``clip(x, 0, threshold)`` per channel."""
    theta = node.params["threshold"].reshape((1, -1) + (1,) * (x.ndim - 2))
    return np.minimum(np.maximum(x, 0.0), theta)


#: ANN forward functions of the neuron operators (the limit T -> infinity of the SNN).
NEURON_FORWARD = {"if": clip_forward}


@dataclass(frozen=True)
class SpikingNetwork:
    """A converted network, ready to simulate.

    Attributes
    ----------
    graph : Graph
        Synapse and neuron operators; ``graph.output`` is the node read out.
    method : str
        The conversion method that made it (``"if"``).
    encoding : str
        ``"analog"`` (the input is a constant current every step) or ``"poisson"`` (Bernoulli
        spikes per step with probability ``|x|`` and value ``sign(x)``).
    options : mapping
        The conversion options used, for provenance (strings and numbers).
    """

    graph: Graph
    method: str
    encoding: str
    options: Mapping[str, object] = field(default_factory=lambda: MappingProxyType({}))

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
        for key, value in net.options.items():
            f.attrs[f"option_{key}"] = value
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
        _check_header(f, file, FORMAT, FORMAT_VERSION)
        method = _str(f.attrs.get("method"))
        if method != "if":
            raise ModelFormatError(file, "/", "method", "'if'", repr(method))
        encoding = _str(f.attrs.get("encoding"))
        if encoding not in ENCODINGS:
            raise ModelFormatError(file, "/", "encoding", f"one of {list(ENCODINGS)}",
                                   repr(encoding))
        known = {"format", "format_version", "method", "encoding", "output"}
        options = {}
        for key, value in f.attrs.items():
            if key.startswith("option_"):
                v = _str(value)
                options[key[len("option_"):]] = v.item() if isinstance(v, np.generic) else v
            elif key not in known:
                raise ModelFormatError(file, "/", key, f"attributes {sorted(known)} or option_*",
                                       "an unknown attribute")
        graph = read_graph(f, file, dtype=dtype, ops=SNN_OPS)
    return SpikingNetwork(graph, method, encoding, MappingProxyType(options))
