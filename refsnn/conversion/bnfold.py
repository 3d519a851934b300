"""Fold batch normalisation into the linear or conv2d node before it."""

from __future__ import annotations

import numpy as np

from refsnn.model.graph import Graph, graph_to_dicts, make_graph


def fold_batchnorm(graph: Graph) -> Graph:
    """Return an equivalent graph with every foldable ``batchnorm`` merged into its input.

    A batchnorm is folded when its input is a ``linear`` or ``conv2d`` node read by nothing
    else: ``W' = W * s`` per output channel and ``b' = (b - mean) * s + beta`` with
    ``s = gamma / sqrt(var + eps)``. Other batchnorms stay as per-channel affine nodes, which
    the simulator applies to every step's value (an affine map commutes with averaging over
    steps, so rates stay right).
    """
    dicts = {d["name"]: d for d in graph_to_dicts(graph)}
    renamed: dict[str, str] = {}
    for node in graph.nodes:
        if node.op != "batchnorm":
            continue
        src = dicts.get(node.inputs[0])
        if src is None or src["op"] not in ("linear", "conv2d"):
            continue
        if len(graph.consumers(src["name"])) != 1 or src["name"] == graph.output:
            continue
        p = node.params
        scale = p["gamma"] / np.sqrt(p["var"] + node.attrs["eps"])
        w, b = src["params"]["weight"], src["params"]["bias"]
        src["params"] = {
            "weight": w * scale.reshape((-1,) + (1,) * (w.ndim - 1)),
            "bias": (b - p["mean"]) * scale + p["beta"],
        }
        del dicts[node.name]
        renamed[node.name] = src["name"]
    for d in dicts.values():
        d["inputs"] = [renamed.get(i, i) for i in d["inputs"]]
    output = renamed.get(graph.output, graph.output)
    return make_graph(graph.input_shape, list(dicts.values()), output, dtype=graph.dtype)
