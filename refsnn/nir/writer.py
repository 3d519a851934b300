"""Export converted IF networks as NIR graphs, exactly or not at all.

``docs/semantics.md`` ("NIR export") states and proves what is written; in short:

- A neuron node is written as its kind says (``Kind.nir.export``, :mod:`refsnn.neurons.base`),
  or refused with its kind's reason. An ``if`` node becomes a NIR ``IF`` with ``r = 1``,
  ``v_reset = 0`` and ``v_threshold = θ⁻``, the largest float below ``θ`` in the network's
  dtype: for every float ``v``, ``v > θ⁻ ⇔ v ≥ θ``, so NIR's strict rule fires exactly when
  refsnn's inclusive one does. Only ``--reset zero`` and ``--v-init zero`` are expressible (NIR
  resets to a value and starts at 0); anything else is refused at the node.
- A refsnn spike carries ``θ`` (the kind's ``unit``); a NIR spike is 1. Where the spike goes
  straight (or through a
  ``flatten``) into a ``linear`` or ``conv2d``, ``θ`` is folded into that layer's weights:
  refsnn adds ``fl(θ·w)`` per event, the NIR layer ``fl(1·fl(w·θ)) = fl(θ·w)``, the same
  events in the same order, so every sum is the same. Anywhere else (pooling, a residual
  ``add``, the output) a NIR ``Scale(θ)`` node restores the value, ``1·θ = θ`` exactly.
- A two-input ``add`` becomes two edges into its consumers (NIR sums a node's inputs;
  ``a + b = b + a`` in floating point). More inputs would make the order matter: refused.
- The readout, the input encoding, ``dt`` (1, or the time step of a network read from NIR)
  and the dtype are written into the graph's metadata: they are not part of a NIR graph.

``nir`` is imported lazily (the ``nir`` extra).
"""

from __future__ import annotations

import json

import numpy as np

from refsnn.errors import ConversionError, OptionError
from refsnn.io import atomic_path
from refsnn.model.graph import INPUT
from refsnn.neurons.base import KINDS

#: Synapse ops refsnn writes to NIR; the kinds with ``nir.export`` are written too, and every
#: other op is refused at the node.
EXPORTED_OPS = ("linear", "conv2d", "avgpool2d", "flatten", "add")

#: Why a synapse op cannot be exported and what would make the network exportable (a kind's
#: reason is its ``nir_refusal``).
_REFUSED = {
    "maxpool2d": "max pooling of spike trains has no NIR equivalent; use average pooling",
    "batchnorm": "an unfolded batchnorm is not exported; fold it into the layer before it",
}


def _exporter(op):
    """The kind ``op`` if it is written to NIR, else None."""
    kind = KINDS.get(op)
    return kind if kind is not None and kind.nir is not None and kind.nir.export else None


def _refuse(node, why: str) -> ConversionError:
    return ConversionError(f"node '{node}': cannot be exported to NIR: {why}")


def check_exportable(net) -> None:
    """Raise :class:`~refsnn.errors.ConversionError` at the first node NIR cannot express
    exactly, naming it and saying what would make the network exportable."""
    g = net.graph
    for node in g.nodes:
        kind = _exporter(node.op)
        if node.op not in EXPORTED_OPS and kind is None:
            known = KINDS.get(node.op)
            raise _refuse(node.name, _REFUSED.get(node.op) or (known and known.nir_refusal)
                          or f"op '{node.op}' has no NIR equivalent that refsnn exports")
        why = kind.nir.refuse(node) if kind is not None else None
        if why:
            raise _refuse(node.name, why)
        if node.op == "linear" and len(g.shapes[node.inputs[0]]) != 1:
            raise _refuse(node.name, "a linear map over the last axis of a rank-"
                          f"{len(g.shapes[node.inputs[0]])} input (NIR's Affine takes vectors)")
        if node.op == "conv2d" and node.attrs["groups"] != 1:
            raise _refuse(node.name, f"a grouped convolution (groups={node.attrs['groups']}): "
                          "nir 1.0.8 types a Conv2d's input as weight.shape[1] channels and "
                          "refuses the graph; use groups=1")
        if node.op == "add":
            if len(node.inputs) != 2 or len(set(node.inputs)) != 2:
                raise _refuse(node.name, f"an add of {len(node.inputs)} inputs "
                              f"{list(node.inputs)} (NIR sums a node's inputs in no stated "
                              "order; only two distinct inputs are order-free)")
            for i in node.inputs:
                if i != INPUT and g.node(i).op == "add":
                    raise _refuse(node.name, f"it adds the add '{i}' (three terms in an order "
                                  "NIR does not state)")
    if net.decoder != "mean":
        raise _refuse(g.output, f"the '{net.decoder}' readout has no NIR equivalent")
    if net.encoding not in ("analog", "poisson"):
        raise OptionError(f"encoding '{net.encoding}' cannot be written to NIR metadata")


class _Builder:
    """Maps the converted graph's nodes and edges to NIR nodes and edges."""

    def __init__(self, net):
        self.net, self.g = net, net.graph
        self.nodes, self.edges = {}, []

    def theta(self, name):
        """Per-element spike value of node ``name`` if its NIR value is unit spikes standing
        for it (an ``if`` node: its kind's ``unit``, or a flatten whose θ is folded
        downstream), else None."""
        if name == INPUT:
            return None
        node = self.g.node(name)
        kind = _exporter(node.op)
        if kind is not None:
            return kind.nir.export(node, self.g.shapes[name])[1]
        if node.op == "flatten" and self.folds_flatten(node):
            return self.theta(node.inputs[0]).reshape(-1)
        return None

    def folds_flatten(self, node) -> bool:
        consumers = self.g.consumers(node.name)
        return (self.theta(node.inputs[0]) is not None and bool(consumers)
                and all(c.op == "linear" for c in consumers) and node.name != self.g.output)

    def source(self, src, dst_op):
        """The NIR node that feeds ``src``'s value to a consumer of op ``dst_op``."""
        import nir

        theta = self.theta(src)
        if theta is None or dst_op in ("linear", "conv2d") or (
                dst_op == "flatten-folded"):
            return "input" if src == INPUT else src
        name = f"{src}_theta"
        if name not in self.nodes:
            self.nodes[name] = nir.Scale(scale=np.array(theta))
            self.edges.append((src, name))
        return name

    def add_edges(self, src, dst, dst_op):
        """Edges for ``src -> dst``; an ``add`` source is dissolved into its inputs."""
        if src != INPUT and self.g.node(src).op == "add":
            for i in self.g.node(src).inputs:
                self.edges.append((self.source(i, "add"), dst))
        else:
            self.edges.append((self.source(src, dst_op), dst))

    def build(self):
        import nir

        g = self.g
        self.nodes["input"] = nir.Input(input_type={"input": np.array(g.input_shape)})
        for node in g.nodes:
            if node.op == "add":
                continue
            op = "flatten-folded" if node.op == "flatten" and self.folds_flatten(node) \
                else node.op
            self.nodes[node.name] = self.nir_node(node)
            self.add_edges(node.inputs[0], node.name, op)
        self.nodes["output"] = nir.Output(
            output_type={"output": np.array(g.shapes[g.output])})
        self.add_edges(g.output, "output", "output")
        return nir.NIRGraph(nodes=self.nodes, edges=self.edges, metadata=self.metadata())

    def nir_node(self, node):
        import nir

        p, a = node.params, node.attrs
        theta = self.theta(node.inputs[0])
        kind = _exporter(node.op)
        if kind is not None:
            fields, _ = kind.nir.export(node, self.g.shapes[node.name])
            return getattr(nir, kind.nir.node)(**fields)
        if node.op == "linear":
            w = np.asarray(p["weight"])
            # fl(theta * w): the product refsnn forms for each spike event
            w = w * theta[None, :] if theta is not None else w.copy()
            return nir.Affine(weight=w, bias=np.array(p["bias"]))
        if node.op == "conv2d":
            return self.conv(node, theta)
        if node.op == "avgpool2d":
            return nir.AvgPool2d(kernel_size=np.array(a["kernel"]),
                                 stride=np.array(a["stride"]), padding=np.array(a["padding"]))
        if node.op == "flatten":
            return nir.Flatten(input_type={"input": np.array(self.g.shapes[node.inputs[0]])},
                               start_dim=0, end_dim=-1)
        raise _refuse(node.name, f"op '{node.op}'")  # unreachable after check_exportable

    def conv(self, node, theta):
        import nir

        w = np.asarray(node.params["weight"])
        if theta is not None:
            per_channel = theta[:, 0, 0]
            c_out, c_per_group = w.shape[0], w.shape[1]
            groups = node.attrs["groups"]
            # output channel o reads input channels (o // (c_out/groups)) * c_per_group + k
            first = (np.arange(c_out) // (c_out // groups)) * c_per_group
            index = first[:, None] + np.arange(c_per_group)[None, :]
            w = w * per_channel[index][:, :, None, None]
        else:
            w = w.copy()
        in_shape = self.g.shapes[node.inputs[0]]
        return nir.Conv2d(input_shape=tuple(int(s) for s in in_shape[1:]), weight=w,
                          stride=tuple(node.attrs["stride"]),
                          padding=tuple(node.attrs["padding"]), dilation=(1, 1),
                          groups=int(node.attrs["groups"]), bias=np.array(node.params["bias"]))

    def metadata(self):
        net = self.net
        # a network read from NIR keeps its time step (its kinds' constants derive from it)
        dt = float(net.schedule.get("dt", 1.0))
        return {
            "producer": "refsnn",
            "dt": dt,
            "refsnn_method": net.method,
            "refsnn_dtype": np.dtype(self.g.dtype).name,
            "refsnn_encoding": net.encoding,
            "refsnn_input": ("analog: the sample x is the Input's value at every step"
                             if net.encoding == "analog" else
                             "poisson: the Input's value at each step is sign(x_i) with "
                             "probability |x_i|, else 0 (refsnn's generator; see "
                             "docs/semantics.md)"),
            "refsnn_readout": "the mean of the Output's value over steps 1..T; "
                              "class = argmax, ties to the lowest index",
            "refsnn_step": f"dt = {dt:g}, no synaptic delay: every node reads its inputs' "
                           "values of the same step, in topological order",
            "refsnn_options": json.dumps(dict(net.options), sort_keys=True, default=str),
        }


def to_nir(net):
    """The NIR graph of converted network ``net`` (a :class:`SpikingNetwork`).

    Raises
    ------
    ConversionError
        At the first node NIR cannot express exactly (see :func:`check_exportable`).
    """
    check_exportable(net)
    return _Builder(net).build()


def export_nir(net, path) -> None:
    """Write ``to_nir(net)`` to ``path`` (NIR's HDF5 format, atomically)."""
    import nir

    graph = to_nir(net)
    with atomic_path(path) as tmp:
        nir.write(tmp, graph)
