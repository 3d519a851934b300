"""Fold batch normalisation into the linear or conv2d node before it."""

from __future__ import annotations

import numpy as np

from refsnn.model.graph import INPUT, Graph


def fold_batchnorm(graph: Graph) -> Graph:
    """Return an equivalent graph with every foldable ``batchnorm`` merged into its input.

    A batchnorm is folded when its input is a ``linear`` or ``conv2d`` node read by nothing
    else: ``W' = W * s`` per output channel and ``b' = (b - mean) * s + beta`` with
    ``s = gamma / sqrt(var + eps)``. Other batchnorms stay as per-channel affine nodes, which
    the simulator applies to every step's value (an affine map commutes with averaging over
    steps, so rates stay right).
    """
    edit = graph.edit()
    for node in graph.nodes:
        src = graph.node(node.inputs[0]) if node.inputs[0] != INPUT else None
        if (node.op != "batchnorm" or src is None or src.op not in ("linear", "conv2d")
                or len(graph.consumers(src.name)) != 1 or src.name == graph.output):
            continue
        p = node.params
        scale = p["gamma"] / np.sqrt(p["var"] + node.attrs["eps"])
        w, b = src.params["weight"], src.params["bias"]
        edit.set_params(src.name, weight=w * scale.reshape((-1,) + (1,) * (w.ndim - 1)),
                        bias=(b - p["mean"]) * scale + p["beta"])
        edit.remove(node.name)
    return graph if len(edit.nodes) == len(graph.nodes) else edit.commit()
