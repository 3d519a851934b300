"""Walk an ONNX graph and build refsnn's :class:`~refsnn.model.graph.Graph` from it.

The walk keeps two kinds of values: *constants* (initializers, ``Constant`` nodes and anything
computed from constants only, folded with ONNX's own reference evaluator) and *tensors*
(values computed from the graph input at run time, each the output of one refsnn node, with
its per-sample shape). Every node that reads a tensor goes to its handler in
:data:`refsnn.interop.onnx.handlers.HANDLERS`; recognised multi-node patterns
(:mod:`refsnn.interop.onnx.patterns`) are emitted as one refsnn node at their last ONNX node.

The batch axis: ONNX shapes include it as axis 0 (a number or a symbolic name). A ``Shape`` of a
tensor gives :data:`BATCH` in place of the batch size, so shape arithmetic that merely carries
the batch size along folds like any constant, and a ``Reshape`` can tell where it went.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from refsnn.errors import ModelFormatError, RefsnnError
from refsnn.model.graph import INPUT, Graph, make_graph
from refsnn.model.ops import OPS, ShapeRuleError

#: Stand-in for the batch size in folded shape arithmetic (any batch size is allowed at run
#: time, so the value is a marker, not a size). Prime, so a product with it is recognisable.
BATCH = 1_000_003


def _onnx():
    try:
        import onnx
    except ImportError:
        raise RefsnnError("reading ONNX files needs the onnx package: "
                          "pip install 'refsnn[onnx]'") from None
    return onnx


#: Operators whose value is drawn at random: never folded to a constant.
RANDOM = frozenset({"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike",
                    "Multinomial", "Bernoulli"})


def attrs_of(node) -> dict:
    """``{name: value}`` of an ONNX node's attributes (strings decoded)."""
    from onnx import helper
    out = {}
    for a in node.attribute:
        v = helper.get_attribute_value(a)
        out[a.name] = v.decode("utf-8") if isinstance(v, bytes) else v
    return out


class Refused(Exception):
    """Raised by a handler: ``(field, expected, found)`` of why a node cannot be read."""

    def __init__(self, field: str, expected: str, found: str):
        super().__init__(field, expected, found)
        self.field, self.expected, self.found = field, expected, found


class Reader:
    """State of one walk over an ONNX graph (see the module docstring)."""

    def __init__(self, model, file: str, dtype):
        onnx = _onnx()
        self.onnx = onnx
        self.model = model
        self.graph = model.graph
        self.file = file
        self.dtype = np.dtype(dtype)
        self.opsets = {o.domain or "ai.onnx": int(o.version) for o in model.opset_import}
        self.opset = self.opsets.get("ai.onnx", 0)
        self.nodes_onnx = list(self.graph.node)
        self.consts: dict[str, np.ndarray] = {}
        self.tensors: dict[str, tuple[str, tuple[int, ...]]] = {}
        self.producer: dict[str, int] = {}
        self.consumers: dict[str, list[int]] = {}
        self.nodes: list[dict] = []  # refsnn node dicts, in order
        self.by_name: dict[str, dict] = {}
        self.shapes: dict[str, tuple[int, ...]] = {INPUT: ()}
        self.static_batch: int | None = None
        self.outputs = [o.name for o in self.graph.output]
        for i, node in enumerate(self.nodes_onnx):
            for v in node.output:
                if v:
                    self.producer[v] = i
            for v in node.input:
                if v:
                    self.consumers.setdefault(v, []).append(i)
        self.used_names: set[str] = {INPUT}

    # --- errors -------------------------------------------------------------------------------
    def where(self, node) -> str:
        return f"node '{node.name or '<unnamed>'}' ({node.op_type})"

    def error(self, node, field, expected, found) -> ModelFormatError:
        return ModelFormatError(self.file, self.where(node), field, expected, found)

    # --- constants ----------------------------------------------------------------------------
    def const(self, value: str):
        """The folded constant ``value``, or None if it depends on the graph input."""
        if value in self.consts:
            return self.consts[value]
        if value in self.tensors or value not in self.producer:
            return None
        node = self.nodes_onnx[self.producer[value]]
        if node.op_type == "Shape" and node.domain in ("", "ai.onnx"):
            return None  # of a tensor: folded when the walk reaches it
        ins = [self.const(v) if v else None for v in node.input]
        if any(a is None for v, a in zip(node.input, ins) if v):
            return None
        self.fold(node, ins)
        return self.consts.get(value)

    def fold(self, node, ins) -> None:
        """Evaluate ``node`` on constant inputs with ONNX's reference evaluator."""
        from refsnn.interop.onnx.fold import evaluate
        if node.op_type in RANDOM:
            raise self.error(node, "op_type", "a deterministic operator",
                             f"{node.op_type!r}, which draws random numbers")
        try:
            outs = evaluate(self, node, ins)
        except RefsnnError:
            raise
        except Exception as e:  # the reference evaluator's own complaint, in one line
            msg = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise self.error(node, "inputs", "constant inputs it can be evaluated on",
                             f"an error: {msg[:200]}") from None
        for v, a in zip(node.output, outs):
            if v:
                self.consts[v] = np.asarray(a)

    def param(self, node, index: int, what: str, required=True):
        """Input ``index`` of ``node`` as a finite constant array (a weight, a bias, ...)."""
        name = node.input[index] if index < len(node.input) else ""
        if not name:
            if required:
                raise Refused(what, f"input {index} ({what})", "nothing")
            return None
        arr = self.const(name)
        if arr is None:
            raise Refused(what, f"a constant (initializer) {what}",
                          f"'{name}', computed from the graph input at run time")
        if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
            bad = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
            raise Refused(what, f"finite values in '{name}'", f"{arr[bad]} at index {bad}")
        return arr

    # --- tensors ------------------------------------------------------------------------------
    def tensor(self, value: str):
        """``(refsnn name, per-sample shape)`` of a run-time tensor."""
        if value in self.tensors:
            return self.tensors[value]
        raise Refused("inputs", "a tensor computed from the graph input",
                      f"'{value}', a constant" if self.const(value) is not None
                      else f"'{value}', which is not computed")

    def is_tensor(self, value: str) -> bool:
        return bool(value) and value in self.tensors

    def only_consumer(self, value: str) -> bool:
        """Whether ``value`` feeds exactly one node and is not a graph output."""
        return len(self.consumers.get(value, [])) == 1 and value not in self.outputs

    def refsnn_name(self, node, suffix: str = "") -> str:
        base = ((node.name or "").strip("/").replace("/", "_") or
                f"{node.op_type}_{node.output[0]}".replace("/", "_")) + suffix
        name, k = base, 1
        while name in self.used_names:
            k += 1
            name = f"{base}_{k}"
        self.used_names.add(name)
        return name

    def emit(self, node, op, inputs, attrs=None, params=None, output=None, suffix="") -> str:
        """Add one refsnn node computing ``node``'s first output (or ``output``, which may
        be an internal name when one ONNX node becomes several refsnn nodes; ``suffix`` is
        appended to their names)."""
        spec = OPS[op]
        attrs = dict(attrs or {})
        full = {k: attrs.get(k, a.default) for k, a in spec.attrs.items()}
        in_shapes = [self.shapes[i] for i in inputs]
        params = {k: np.asarray(v, dtype=self.dtype) for k, v in (params or {}).items()}
        try:
            spec.param_shapes(full, in_shapes)
            shape = tuple(int(s) for s in spec.out_shape(full, in_shapes, params))
        except ShapeRuleError as e:
            raise Refused(e.field, e.expected, e.found) from None
        name = self.refsnn_name(node, suffix)
        raw = dict(name=name, op=op, inputs=list(inputs), attrs=attrs, params=params)
        self.nodes.append(raw)
        self.by_name[name] = raw
        self.shapes[name] = shape
        self.tensors[output or node.output[0]] = (name, shape)
        return name

    def alias(self, node, value: str) -> None:
        """``node``'s output is the tensor ``value`` (Identity, Dropout, ...)."""
        self.tensors[node.output[0]] = self.tensor(value)


def _dims(reader: Reader, vi, what: str):
    t = vi.type.tensor_type
    if not vi.type.HasField("tensor_type") or not t.HasField("shape"):
        raise ModelFormatError(reader.file, f"graph {what} '{vi.name}'", "shape",
                               "a tensor with a known shape", "none")
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
            for d in t.shape.dim]


def _read_input(reader: Reader) -> tuple[int, ...]:
    inits = {i.name for i in reader.graph.initializer}
    inputs = [vi for vi in reader.graph.input if vi.name not in inits]
    if len(inputs) != 1:
        raise ModelFormatError(reader.file, "graph", "input", "one graph input (refsnn models "
                               "have one)", f"{len(inputs)}: {[vi.name for vi in inputs]}")
    vi = inputs[0]
    dims = _dims(reader, vi, "input")
    where = f"graph input '{vi.name}'"
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
    keep, todo = set(), [name]
    by_name = {n["name"]: n for n in reader.nodes}
    while todo:
        n = todo.pop()
        if n in keep or n == INPUT:
            continue
        keep.add(n)
        todo.extend(by_name[n]["inputs"])
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
    onnx = _onnx()
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
