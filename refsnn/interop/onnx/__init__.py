"""Read ONNX models into refsnn (needs the ``onnx`` package; optional extra ``onnx``).

The file is parsed with ``onnx`` only (protobuf; no runtime): initializers, ``Constant`` nodes
and shape arithmetic are folded to constants, the patterns exporters emit (GELU through
``Erf`` or ``Tanh``, the decomposed LayerNorm, SiLU as ``x * Sigmoid(x)``, QCFS, ``MatMul`` +
``Add`` bias) are recognised, and every remaining node is mapped to one refsnn operator or
refused with a one-line :class:`~refsnn.errors.ModelFormatError` naming the file, the ONNX node,
its ``op_type`` and why. The result goes through the one validator,
:func:`refsnn.model.graph.make_graph`.

ONNX shapes include the batch axis (axis 0, fixed or symbolic); refsnn's are per sample.
The walk's state is :class:`refsnn.interop.onnx.reader.Reader`; the handlers and patterns it
calls need ``onnx`` and are imported only when a model is read.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from refsnn.errors import ModelFormatError
from refsnn.interop.onnx.reader import Reader, Refused, require_onnx
from refsnn.model.graph import INPUT, Graph, ancestors, make_graph

__all__ = ["load_onnx", "import_onnx", "read_model"]


def _read_input(reader: Reader) -> tuple[int, ...]:
    inits = {i.name for i in reader.graph.initializer}
    inputs = [vi for vi in reader.graph.input if vi.name not in inits]
    if len(inputs) != 1:
        raise ModelFormatError(reader.file, "graph", "input", "one graph input (refsnn models "
                               "have one)", f"{len(inputs)}: {[vi.name for vi in inputs]}")
    vi = inputs[0]
    t = vi.type.tensor_type
    where = f"graph input '{vi.name}'"
    if not vi.type.HasField("tensor_type") or not t.HasField("shape"):
        raise ModelFormatError(reader.file, where, "shape", "a tensor with a known shape", "none")
    dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
            for d in t.shape.dim]
    if len(dims) < 2:
        raise ModelFormatError(reader.file, where, "shape", "a batch axis and at least one "
                               "more axis", str(dims))
    if not all(isinstance(d, int) and d > 0 for d in dims[1:]):
        raise ModelFormatError(reader.file, where, "shape", "fixed sizes for every axis after "
                               "the batch axis (refsnn cannot resolve dynamic shapes)",
                               str(dims))
    if isinstance(dims[0], int) and dims[0] > 0:
        reader.static_batch = dims[0]
    shape = tuple(int(d) for d in dims[1:])
    reader.shapes[INPUT] = shape
    reader.tensors[vi.name] = (INPUT, shape)
    return shape


def _read_initializers(reader: Reader) -> None:
    from onnx import numpy_helper
    for init in reader.graph.initializer:
        try:
            reader.consts[init.name] = numpy_helper.to_array(init)
        except Exception as e:  # wrong raw_data length, missing external data, ...
            msg = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise ModelFormatError(reader.file, f"initializer '{init.name}'", "data",
                                   "a readable tensor", f"an error: {msg[:200]}") from None


def _walk(reader: Reader) -> None:
    from refsnn.interop.onnx.handlers import HANDLERS
    from refsnn.interop.onnx.patterns import find_patterns

    fused, covered = find_patterns(reader)
    known = set(reader.consts) | set(reader.tensors)
    for i, node in enumerate(reader.nodes_onnx):
        for v in node.input:
            if v and v not in known and v not in reader.producer:
                raise reader.error(node, "inputs", "a graph input, an initializer or the "
                                   "output of an earlier node", f"'{v}' (a missing "
                                   "initializer?)")
            if v and v not in known:
                raise reader.error(node, "inputs", "nodes in topological order",
                                   f"'{v}', produced by a later node")
        known.update(v for v in node.output if v)
        if node.domain not in ("", "ai.onnx"):
            raise reader.error(node, "domain", "the default ONNX domain",
                               repr(node.domain))
        try:
            if i in fused:
                fused[i](reader)
                continue
            if i in covered:
                continue
            if all(not reader.is_tensor(v) for v in node.input) and \
                    node.op_type not in ("Shape",):
                reader.fold(node, [reader.const(v) if v else None for v in node.input])
                continue
            handler = HANDLERS.get(node.op_type)
            if handler is None:
                raise Refused("op_type", "an operator refsnn can express (README: ONNX "
                              "models)", f"{node.op_type!r}, which refsnn has no operator for")
            handler(reader, node)
        except Refused as e:
            raise reader.error(node, e.field, e.expected, e.found) from None


def read_model(model, file: str = "<onnx>", dtype=np.float64) -> Graph:
    """Build the refsnn graph of a parsed ``onnx.ModelProto``.

    Parameters
    ----------
    model : onnx.ModelProto
    file : str
        Named in error messages.
    dtype : numpy dtype
        dtype of the graph's parameters (float64 by default).

    Raises
    ------
    ModelFormatError
        One line naming ``file``, the ONNX node (name and op_type) and why.
    """
    reader = Reader(model, file, dtype)
    if reader.opset == 0:
        raise ModelFormatError(file, "model", "opset_import", "the default ONNX domain",
                               "none")
    _read_initializers(reader)
    _read_input(reader)
    _walk(reader)
    if len(reader.outputs) != 1:
        raise ModelFormatError(file, "graph", "output", "one graph output",
                               f"{len(reader.outputs)}: {reader.outputs}")
    out = reader.outputs[0]
    if out not in reader.tensors:
        raise ModelFormatError(file, f"graph output '{out}'", "value",
                               "a tensor computed from the graph input",
                               "a constant" if out in reader.consts else "nothing")
    name = reader.tensors[out][0]
    if name == INPUT:
        raise ModelFormatError(file, f"graph output '{out}'", "value",
                               "a computed tensor", "the graph input unchanged")
    # ONNX allows nodes that feed no output; refsnn's graphs do not: drop them
    keep = ancestors(name, {n["name"]: n["inputs"] for n in reader.nodes})
    nodes = [n for n in reader.nodes if n["name"] in keep]
    return make_graph(reader.shapes[INPUT], nodes, name, file=file, dtype=dtype)


def load_onnx(path, dtype=np.float64) -> Graph:
    """Read the ONNX model in ``path`` as a refsnn :class:`~refsnn.model.graph.Graph`.

    Parameters
    ----------
    path : str or Path
        An ``.onnx`` file (external data beside it is read too).
    dtype : numpy dtype
        dtype of the graph's parameters (float64 by default).

    Raises
    ------
    ModelFormatError
        For an unreadable or truncated file, a missing initializer, non-finite weights, an
        unresolved dynamic shape, or a node refsnn cannot express exactly: one line naming the
        file, the ONNX node and why.
    """
    onnx = require_onnx()
    file = str(path)
    if not Path(path).is_file():
        raise ModelFormatError(file, "/", "file", "an existing ONNX file", "no such file")
    try:
        model = onnx.load(file)
    except Exception as e:  # protobuf DecodeError on a truncated or foreign file, ...
        msg = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ModelFormatError(file, "/", "file", "an ONNX model (protobuf ModelProto)",
                               f"unreadable: {msg[:200]}") from None
    if not model.HasField("graph") or not model.graph.node:
        raise ModelFormatError(file, "/", "graph", "an ONNX graph with nodes",
                               "none (a truncated or foreign file?)")
    return read_model(model, file, dtype)


def import_onnx(path, output) -> Graph:
    """Read ``path`` (ONNX) and write it to ``output`` in refsnn's HDF5 model format
    (atomically: the file appears only when complete). Returns the graph."""
    from refsnn.model.format import save_model
    graph = load_onnx(path)
    save_model(graph, output)
    return graph
