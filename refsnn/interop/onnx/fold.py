"""Constant folding: evaluate one ONNX node on constant inputs with ONNX's reference evaluator.

Initializers, ``Constant`` nodes and shape arithmetic (``Shape`` → ``Gather`` → ``Concat`` →
``Reshape``, ...) fold to arrays exactly as ONNX defines them, so refsnn needs no handler of its
own for each of those operators.
"""

from __future__ import annotations

import numpy as np


def evaluate(reader, node, ins) -> list[np.ndarray]:
    """The outputs of ``node`` (an ``onnx.NodeProto``) on the constant inputs ``ins``
    (arrays, ``None`` for an omitted optional input), in the model's opsets."""
    from onnx import helper
    from onnx.reference import ReferenceEvaluator

    names = [v for v in node.input]
    feeds = {v: a for v, a in zip(names, ins) if v}
    inputs = [helper.make_tensor_value_info(v, helper.np_dtype_to_tensor_dtype(a.dtype), None)
              for v, a in feeds.items()]
    outputs = [helper.make_tensor_value_info(v, 0, None) for v in node.output if v]
    graph = helper.make_graph([node], "fold", inputs, outputs)
    opsets = [helper.make_opsetid(d if d != "ai.onnx" else "", v)
              for d, v in reader.opsets.items()]
    model = helper.make_model(graph, opset_imports=opsets, ir_version=reader.model.ir_version)
    outs = ReferenceEvaluator(model).run(None, feeds)
    return [np.asarray(o) for o in outs]
