"""The state of one walk over an ONNX graph (:class:`Reader`), what its handlers raise
(:class:`Refused`) and read (:func:`attrs_of`, :data:`BATCH`); the walk itself is
:func:`refsnn.interop.onnx.read_model`.

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

import numpy as np

from refsnn.errors import ModelFormatError, RefsnnError
from refsnn.io import attr_str
from refsnn.model.graph import INPUT
from refsnn.model.ops import OPS, ShapeRuleError

#: Stand-in for the batch size in folded shape arithmetic (any batch size is allowed at run
#: time, so the value is a marker, not a size). Prime, so a product with it is recognisable.
BATCH = 1_000_003


def require_onnx():
    """The ``onnx`` module, or a one-line :class:`~refsnn.errors.RefsnnError` naming the extra."""
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
    return {a.name: attr_str(helper.get_attribute_value(a)) for a in node.attribute}


class Refused(Exception):
    """Raised by a handler: ``(field, expected, found)`` of why a node cannot be read."""

    def __init__(self, field: str, expected: str, found: str):
        super().__init__(field, expected, found)
        self.field, self.expected, self.found = field, expected, found


class Reader:
    """State of one walk over an ONNX graph (see the module docstring)."""

    def __init__(self, model, file: str, dtype):
        require_onnx()
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
