"""The frozen description of a feed-forward network: :class:`Node` and :class:`Graph`.

A graph is built only through :func:`make_graph`, which checks everything (operator names,
attributes, parameter shapes and values, connectivity, cycles) and raises
:class:`~refsnn.errors.ModelFormatError` naming the file, path and field of the first problem.
The loader (:mod:`refsnn.model.format`), code that builds graphs and the passes that edit them
(:class:`Rewrite`) share that one validator, so a graph that exists is a valid graph.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping, Sequence

import numpy as np

from refsnn.errors import ModelFormatError
from refsnn.model.ops import OPS, AttrSpec, Shape, ShapeRuleError

INPUT = "input"
"""The reserved name of a graph's input; nodes list it among their inputs."""

MEMORY = "<memory>"


@dataclass(frozen=True)
class Node:
    """One operator application.

    Attributes
    ----------
    name : str
        Unique name; also the HDF5 group name ``/nodes/<name>``.
    op : str
        A key of :data:`refsnn.model.ops.OPS`.
    inputs : tuple of str
        Names of the nodes (or ``"input"``) it reads, in order.
    attrs : mapping
        Normalised attributes: ints, tuples of two ints, floats, strings.
    params : mapping of str to ndarray
        Read-only float64 (or the graph's dtype) parameter arrays.
    """

    name: str
    op: str
    inputs: tuple[str, ...]
    attrs: Mapping[str, object]
    params: Mapping[str, np.ndarray]


class _Nodes:
    """Look-ups by name in ``self.nodes``, shared by :class:`Graph` and :class:`Rewrite`."""

    def _index(self, name: str) -> int:
        for i, n in enumerate(self.nodes):
            if n.name == name:
                return i
        raise KeyError(name)

    def node(self, name: str) -> Node:
        """Return the node called ``name`` (KeyError if there is none)."""
        return self.nodes[self._index(name)]

    def consumers(self, name: str) -> list[Node]:
        """Return the nodes that read ``name``, in order."""
        return [n for n in self.nodes if name in n.inputs]

    def __contains__(self, name: str) -> bool:
        return any(n.name == name for n in self.nodes)


@dataclass(frozen=True)
class Graph(_Nodes):
    """A validated, immutable feed-forward DAG.

    Attributes
    ----------
    input_shape : tuple of int
        Per-sample input shape, e.g. ``(1, 8, 8)``.
    nodes : tuple of Node
        In topological order (every input of a node comes before it), except the input of a
        node whose op reads the previous step's value (``OpSpec.previous``, a recurrent
        edge), which may come after it.
    output : str
        Name of the node whose value is the network's output.
    shapes : mapping of str to tuple of int
        Per-sample output shape of every node and of ``"input"``.
    """

    input_shape: Shape
    nodes: tuple[Node, ...]
    output: str
    shapes: Mapping[str, Shape]

    @property
    def dtype(self) -> np.dtype:
        """dtype of the parameters (all share one; float64 for a graph without any)."""
        for n in self.nodes:
            for p in n.params.values():
                return p.dtype
        return np.dtype(np.float64)

    def n_params(self) -> int:
        """Total number of parameter values."""
        return sum(p.size for n in self.nodes for p in n.params.values())

    def edit(self) -> Rewrite:
        """Start a batch of edits (:class:`Rewrite`); the graph itself never changes."""
        return Rewrite(self.input_shape, self.nodes, self.output, self.dtype)


def _node(name, op, inputs, attrs=None, params=None) -> Node:
    """An unvalidated node (inputs other than a list are left for make_graph to refuse)."""
    inputs = tuple(inputs) if isinstance(inputs, list) else inputs
    return Node(name, op, inputs, MappingProxyType(dict(attrs or {})),
                MappingProxyType(dict(params or {})))


class Rewrite(_Nodes):
    """A batch of edits to a graph, validated once: how passes change a graph, as torch.fx's
    ``Transformer`` or an ONNX graph surgeon do. Edits are not checked; :meth:`commit` hands
    the edited nodes to :func:`make_graph`, the one validator, so an invalid edit fails there
    with its error naming the node and field.

    Attributes
    ----------
    input_shape : tuple of int
    nodes : list of Node
        In order; :func:`make_graph` keeps an order that is topological and sorts one that is not.
    output : str
        The output node's name (moved by :meth:`rewire`, :meth:`insert_after`, :meth:`remove`).
    dtype : numpy dtype
        The parameters' dtype on :meth:`commit`, unless it is given another.
    """

    def __init__(self, input_shape: Sequence[int], nodes: Sequence, output: str,
                 dtype=np.float64):
        self.input_shape, self.output, self.dtype = tuple(input_shape), output, np.dtype(dtype)
        self.nodes = [n if isinstance(n, Node) else _node(**n) for n in nodes]

    def add(self, name: str, op: str, inputs, attrs=None, params=None, before=None) -> None:
        """Add a node, placed right before node ``before`` (default: last)."""
        self.nodes.insert(len(self.nodes) if before is None else self._index(before),
                          _node(name, op, inputs, attrs, params))

    def replace(self, name: str, op=None, inputs=None, attrs=None, params=None) -> None:
        """Give node ``name`` another op, inputs, attributes or parameters (None: keep them)."""
        i, old = self._index(name), self.node(name)
        self.nodes[i] = _node(name, op or old.op, old.inputs if inputs is None else inputs,
                              old.attrs if attrs is None else attrs,
                              old.params if params is None else params)

    def set_params(self, name: str, **params) -> None:
        """Replace some parameters of node ``name`` (the others stay)."""
        self.replace(name, params={**self.node(name).params, **params})

    def rewire(self, old: str, new: str) -> None:
        """Make every node reading ``old`` (and the output, if it is ``old``) read ``new``."""
        for n in self.consumers(old):
            self.replace(n.name, inputs=[new if s == old else s for s in n.inputs])
        self.output = new if self.output == old else self.output

    def insert_after(self, name: str, new: str, op: str, attrs=None, params=None) -> None:
        """Add node ``new`` reading ``name`` right after it; what read ``name`` reads ``new``."""
        self.rewire(name, new)
        self.nodes.insert(self._index(name) + 1, _node(new, op, [name], attrs, params))

    def insert_before(self, name: str, new: str, op: str, attrs=None, params=None) -> None:
        """Add node ``new`` right before node ``name``, between it and its (first) input."""
        self.add(new, op, list(self.node(name).inputs[:1]), attrs, params, before=name)
        self.replace(name, inputs=[new, *self.node(name).inputs[1:]])

    def remove(self, name: str) -> None:
        """Remove node ``name`` (one input); what read it reads that input instead."""
        n = len(self.node(name).inputs)
        if n != 1:
            raise ValueError(f"cannot remove node '{name}': it has {n} inputs, not 1")
        self.rewire(name, self.nodes.pop(self._index(name)).inputs[0])

    def commit(self, dtype=None, ops=None, file: str = MEMORY) -> Graph:
        """Validate the edits with :func:`make_graph` (once) and return the new graph."""
        return make_graph(self.input_shape, self.nodes, self.output, file=file,
                          dtype=self.dtype if dtype is None else dtype, ops=ops)


_err = ModelFormatError


def normalize_attr(value, spec: AttrSpec, file: str, path: str, name: str):
    """Return ``value`` as the Python type ``spec`` asks for, or raise ModelFormatError."""
    arr = np.asarray(value)
    if spec.kind == "str":
        if isinstance(value, bytes):
            value = value.decode("utf-8")
        if not isinstance(value, str):
            raise _err(file, path, name, "a string", repr(value))
        if spec.choices is not None and value not in spec.choices:
            raise _err(file, path, name, f"one of {list(spec.choices)}", repr(value))
        return value
    if spec.kind == "float":
        if arr.shape != () or arr.dtype.kind not in "fiu" or arr.dtype == bool:
            raise _err(file, path, name, "a real number", repr(value))
        out = float(arr)
        if not np.isfinite(out):
            raise _err(file, path, name, "a finite number", repr(out))
        return out
    count = 1 if spec.kind == "int" else 2
    flat = arr.reshape(-1) if arr.ndim <= 1 else arr
    if arr.dtype.kind not in "iu" or flat.ndim != 1 or flat.size != count:
        what = "an integer" if count == 1 else "two integers"
        raise _err(file, path, name, what, repr(value))
    ints = tuple(int(v) for v in flat)
    if spec.minimum is not None and min(ints) < spec.minimum:
        raise _err(file, path, name, f"values >= {spec.minimum}", repr(ints))
    return ints[0] if count == 1 else ints


def check_param(value, file: str, path: str, name: str, dtype) -> np.ndarray:
    """Return ``value`` as a read-only finite array of ``dtype``, or raise ModelFormatError."""
    arr = np.asarray(value)
    if arr.dtype.kind != "f":
        raise _err(file, f"{path}/{name}", "dtype", "float32 or float64", str(arr.dtype))
    if not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise _err(file, f"{path}/{name}", "values", "finite numbers",
                   f"{arr[tuple(bad)]} at index {tuple(int(i) for i in bad)}")
    out = np.array(arr, dtype=dtype, copy=True)
    out.setflags(write=False)
    return out


def _shape_matches(shape: Shape, pattern) -> bool:
    return len(shape) == len(pattern) and all(p is None or p == s for s, p in zip(shape, pattern))


def _pattern_str(pattern) -> str:
    return "(" + ", ".join("*" if p is None else str(p) for p in pattern) + ("," if len(pattern) == 1 else "") + ")"


def make_graph(input_shape: Sequence[int], nodes: Sequence[dict | Node], output: str,
               file: str = MEMORY, dtype=np.float64, ops=None,
               reads_input: bool = True) -> Graph:
    """Validate a network description and return it as a frozen :class:`Graph`.

    Parameters
    ----------
    input_shape : sequence of int
        Per-sample input shape.
    nodes : sequence of dict or Node
        Each with keys ``name``, ``op``, ``inputs`` (list of str), ``attrs`` (dict, optional),
        ``params`` (dict of arrays, optional), or a :class:`Node`. Any order; the graph is
        sorted topologically (depth first: an order that is topological already stays).
    output : str
        The output node's name.
    file : str
        Where the description came from, for error messages.
    dtype : numpy dtype
        dtype the parameters are stored as (float64 by default).
    ops : mapping of str to OpSpec, optional
        The operators allowed (default :data:`~refsnn.model.ops.OPS`; converted networks add
        their neuron operators).
    reads_input : bool
        Refuse a graph in which no node reads the input (default). False: the nodes may be a
        part of a network that does not reach the input (a NIR reader's piece of a graph,
        built for its shapes).

    Raises
    ------
    ModelFormatError
        On the first problem found, naming ``file``, the node's path and the field.
    """
    shape = tuple(int(s) for s in np.asarray(input_shape).reshape(-1))
    if len(shape) == 0 or min(shape) < 1:
        raise _err(file, "/input", "shape", "positive dimensions", str(shape))

    raw_by_name: dict[str, dict] = {}
    for i, raw in enumerate(nodes):
        raw = dict(vars(raw)) if isinstance(raw, Node) else raw
        name = raw.get("name")
        path = f"/nodes/{name}" if name else f"/nodes[{i}]"
        unknown = set(raw) - {"name", "op", "inputs", "attrs", "params"}
        if unknown:
            raise _err(file, path, "keys", "name, op, inputs, attrs, params", str(sorted(unknown)))
        if not isinstance(name, str) or not name or "/" in name or name == INPUT:
            raise _err(file, path, "name", f"a non-empty name without '/', not '{INPUT}'", repr(name))
        if name in raw_by_name:
            raise _err(file, path, "name", "a unique node name", f"'{name}' twice")
        raw_by_name[name] = raw

    built: dict[str, Node] = {}
    shapes: dict[str, Shape] = {INPUT: shape}
    order: list[str] = []
    state: dict[str, int] = {}  # 1 = visiting, 2 = done (depth-first topological sort)

    def visit(name: str, stack: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            # ``stack`` runs from consumer to input; show the cycle in the direction data flows
            cycle = (stack[stack.index(name):] + [name])[::-1]
            raise _err(file, f"/nodes/{name}", "inputs", "an acyclic graph",
                       "a cycle " + " -> ".join(cycle))
        state[name] = 1
        raw = raw_by_name[name]
        path = f"/nodes/{name}"
        inputs = raw.get("inputs")
        if isinstance(inputs, str) or not isinstance(inputs, (list, tuple)):
            raise _err(file, path, "inputs", "a list of node names", repr(inputs))
        spec = _spec(raw, all_ops)
        for src in inputs:
            if src != INPUT and src not in raw_by_name:
                raise _err(file, path, "inputs", f"'{INPUT}' or an existing node", repr(src))
            if src != INPUT and not (spec is not None and spec.previous):
                visit(src, stack + [name])
        # a node of the previous step's value (a recurrent edge) may precede its input
        built[name] = _make_node(raw, tuple(inputs), [shapes.get(s) for s in inputs], file,
                                 path, dtype, shapes, all_ops)
        state[name] = 2
        order.append(name)

    all_ops = OPS if ops is None else ops
    if not isinstance(output, str) or output not in raw_by_name:
        raise _err(file, "/", "output", "the name of a node", repr(output))
    for name in raw_by_name:
        visit(name, [])
    for name, node in built.items():
        if all_ops[node.op].previous and shapes[node.inputs[0]] != shapes[name]:
            raise _err(file, f"/nodes/{name}", "shape", f"the shape of its input "
                       f"'{node.inputs[0]}', {shapes[node.inputs[0]]}", str(shapes[name]))
    used = ancestors(output, {n: r["inputs"] for n, r in raw_by_name.items()})
    unused = [n for n in order if n not in used]
    if unused:
        raise _err(file, f"/nodes/{unused[0]}", "inputs",
                   f"every node to feed the output '{output}'", f"'{unused[0]}' feeds nothing")
    if reads_input and INPUT not in {s for n in built.values() for s in n.inputs}:
        raise _err(file, "/nodes", "inputs", f"some node reading '{INPUT}'", "none")
    return Graph(shape, tuple(built[n] for n in order), output, MappingProxyType(shapes))


def ancestors(output: str, inputs: dict) -> set[str]:
    """The nodes ``output`` depends on, itself included: ``inputs`` maps a node's name to its
    input names; names not in it (the graph input) end a path."""
    seen, todo = set(), [output]
    while todo:
        n = todo.pop()
        if n in seen or n not in inputs:
            continue
        seen.add(n)
        todo.extend(inputs[n])
    return seen


def _spec(raw, ops):
    """The schema of a raw node's op, or None (an invalid op, refused by :func:`_make_node`)."""
    op = raw.get("op")
    op = op.decode("utf-8") if isinstance(op, bytes) else op
    return ops.get(op) if isinstance(op, str) else None


def _make_node(raw, inputs, in_shapes, file, path, dtype, shapes, ops) -> Node:
    op = raw.get("op")
    if isinstance(op, bytes):
        op = op.decode("utf-8")
    spec = ops.get(op) if isinstance(op, str) else None
    if spec is None:
        raise _err(file, path, "op", f"one of {sorted(ops)}", repr(op))
    n = len(inputs)
    if (spec.n_inputs == -2 and n < 2) or (spec.n_inputs > 0 and n != spec.n_inputs):
        wanted = "at least 2" if spec.n_inputs == -2 else str(spec.n_inputs)
        raise _err(file, path, "inputs", f"{wanted} input(s) for {op}", str(n))

    raw_attrs = dict(raw.get("attrs") or {})
    unknown = set(raw_attrs) - set(spec.attrs)
    if unknown:
        raise _err(file, path, sorted(unknown)[0], f"attributes of {op}: {sorted(spec.attrs)}",
                   "an unknown attribute")
    attrs = {}
    for key, aspec in spec.attrs.items():
        if key in raw_attrs:
            attrs[key] = normalize_attr(raw_attrs[key], aspec, file, path, key)
        elif aspec.default is None:
            raise _err(file, path, key, f"attribute '{key}' of {op}", "nothing (missing)")
        else:
            attrs[key] = aspec.default

    raw_params = dict(raw.get("params") or {})
    unknown = set(raw_params) - set(spec.params)
    if unknown:
        raise _err(file, f"{path}/{sorted(unknown)[0]}", "name",
                   f"parameters of {op}: {list(spec.params)}", "an unknown dataset")
    try:
        patterns = spec.param_shapes(attrs, in_shapes)
    except ShapeRuleError as e:
        raise _err(file, path, e.field, e.expected, e.found) from None
    params = {}
    for key in spec.params:
        if key not in raw_params:
            raise _err(file, f"{path}/{key}", "dataset", f"parameter '{key}' of {op}",
                       "nothing (missing)")
        arr = check_param(raw_params[key], file, path, key, dtype)
        if not _shape_matches(arr.shape, patterns[key]):
            raise _err(file, f"{path}/{key}", "shape", _pattern_str(patterns[key]), str(arr.shape))
        params[key] = arr
    try:
        shapes[raw["name"]] = tuple(int(s) for s in spec.out_shape(attrs, in_shapes, params))
    except ShapeRuleError as e:
        raise _err(file, path, e.field, e.expected, e.found) from None
    return Node(raw["name"], op, inputs, MappingProxyType(attrs), MappingProxyType(params))
