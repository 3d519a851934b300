"""Simulate NIR graphs: a NIR graph becomes a refsnn :class:`SpikingNetwork` (method ``nir``).

The discrete meaning of every node (forward Euler with an explicit ``dt``, strict firing,
reset to ``v_reset``, no synaptic delay, a node's inputs summed in edge order) is written in
``docs/semantics.md``, "NIR graphs". Recurrent edges, ``Delay``, nested graphs, unknown nodes,
shape mismatches and NaN/inf parameters are refused with a
:class:`~refsnn.errors.ModelFormatError` naming the file, the node and the field.

Neuron and state nodes (``IF``, ``LIF``, ``LI``, ``I``, ``Threshold``, ``Scale``) are read into the
kinds that declare them (``Kind.nir`` in :mod:`refsnn.neurons.base`, the Norse way: a map
``{NIR class: kind}``); the synapse nodes below have readers of their own.

``nir`` is imported lazily (the ``nir`` extra).
"""

from __future__ import annotations

from types import MappingProxyType

import numpy as np

from refsnn.errors import ModelFormatError, OptionError
from refsnn.model.graph import INPUT, ancestors, make_graph
from refsnn.model.ops import ShapeRuleError
from refsnn.neurons.base import KINDS
from refsnn.neurons.nir_base import DISCRETISATIONS

#: NIR nodes refsnn refuses (unless a kind reads them), with the reason.
_REFUSED = {
    "Delay": "a Delay (refsnn has no synaptic delay in its step schedule)",
    "CubaLIF": "a CubaLIF (current-based synapse state is not implemented)",
    "CubaLI": "a CubaLI (current-based synapse state is not implemented)",
    "Conv1d": "a Conv1d (refsnn convolves (C, H, W) inputs only)",
    "NIRGraph": "a nested NIR graph (flatten it first)",
}


class _Err:
    def __init__(self, file):
        self.file = file

    def __call__(self, name, field, expected, found):
        return ModelFormatError(self.file, f"/node/nodes/{name}", field, expected, found)


def _pair(v, err, name, field):
    a = np.asarray(v).reshape(-1)
    if a.size == 1:
        a = np.repeat(a, 2)
    if a.size != 2 or not np.all(a == np.round(a)) or np.any(a < 0):
        raise err(name, field, "one or two non-negative integers", str(np.asarray(v).tolist()))
    return tuple(int(x) for x in a)


def _param(node, field, shape, err, name, dtype):
    """A parameter broadcast to the node's shape, finite, in ``dtype``."""
    a = np.asarray(getattr(node, field), dtype=np.float64)
    if not np.all(np.isfinite(a)):
        raise err(name, field, "finite values", "NaN or inf")
    try:
        if a.ndim > len(shape):
            raise ValueError
        full = np.broadcast_to(a, shape)
    except ValueError:
        raise err(name, field, f"a shape that broadcasts to the node's input {shape}",
                  str(a.shape)) from None
    return np.ascontiguousarray(full, dtype=dtype)


def kinds_by_node() -> dict:
    """NIR node class name -> the registered kind that reads it."""
    return {k.nir.node: k for k in KINDS.values() if k.nir is not None and k.nir.reads}


def _kind_reader(kind, dt=None, discretisation=None):
    """The converter of a NIR node read into ``kind``: its parameters (``NirSpec.params``,
    default the schema's names) broadcast to the node's shape, checked against the time step
    ``dt`` (``NirSpec.check``), and the ``discretisation`` attribute where the kind has one
    (None: the kind's default)."""
    fields = kind.nir.params or {p: p for p in kind.spec.params}
    takes = kind.spec.attrs.get("discretisation")

    def convert(name, node, shape, err, dtype):
        out = dict(op=kind.op, params={p: _param(node, f, shape, err, name, dtype)
                                       for p, f in fields.items()})
        if takes is not None and discretisation is not None:
            if discretisation not in takes.choices:
                raise OptionError(f"discretisation: node '{name}' ({kind.nir.node}) takes "
                                  f"one of {list(takes.choices)}, not {discretisation!r}")
            out["attrs"] = {"discretisation": discretisation}
        if kind.nir.check is not None:
            try:
                kind.nir.check(out["params"], dt, out.get("attrs", {}))
            except ShapeRuleError as e:
                raise err(name, fields.get(e.field, e.field), e.expected, e.found) from None
        return out
    return convert


def _affine(name, node, shape, err, dtype, bias=True):
    w = np.asarray(node.weight, np.float64)
    if w.ndim != 2 or len(shape) != 1 or w.shape[1] != shape[0]:
        raise err(name, "weight", f"a (N_out, {shape[-1]}) matrix for a vector input of "
                  f"shape {shape}", f"{w.shape} on input {shape}")
    b = np.asarray(node.bias, np.float64) if bias else np.full(w.shape[0], -0.0)
    # a Linear has no bias: adding -0.0 leaves every sum as it is, signed zeros included
    return dict(op="linear", params={"weight": _finite(w, err, name, "weight", dtype),
                                     "bias": _finite(b, err, name, "bias", dtype)})


def _finite(a, err, name, field, dtype):
    if not np.all(np.isfinite(a)):
        raise err(name, field, "finite values", "NaN or inf")
    return np.ascontiguousarray(a, dtype=dtype)


def _conv(name, node, shape, err, dtype):
    w = np.asarray(node.weight, np.float64)
    if w.ndim != 4 or len(shape) != 3:
        raise err(name, "weight", "a (C_out, C_in/groups, kh, kw) weight on a (C, H, W) input",
                  f"{w.shape} on input {shape}")
    if _pair(node.dilation, err, name, "dilation") != (1, 1):
        raise err(name, "dilation", "1 (refsnn's conv2d has no dilation)", str(node.dilation))
    if node.input_shape is not None and tuple(np.asarray(node.input_shape).tolist()) \
            != tuple(shape[1:]):
        raise err(name, "input_shape", str(tuple(shape[1:])), str(node.input_shape))
    stride = _pair(node.stride, err, name, "stride")
    pad = node.padding
    if isinstance(pad, str):
        if pad == "valid":
            pad = (0, 0)
        elif stride == (1, 1) and w.shape[2] % 2 and w.shape[3] % 2:
            pad = (w.shape[2] // 2, w.shape[3] // 2)  # 'same' with an odd kernel
        else:
            raise err(name, "padding", "'same' only with stride 1 and an odd kernel", pad)
    return dict(op="conv2d", attrs=dict(stride=stride,
                                        padding=_pair(pad, err, name, "padding"),
                                        groups=int(node.groups)),
                params={"weight": _finite(w, err, name, "weight", dtype),
                        "bias": _finite(np.asarray(node.bias, np.float64), err, name, "bias",
                                        dtype)})


def _pool(op):
    def convert(name, node, shape, err, dtype):
        return dict(op=op, attrs=dict(kernel=_pair(node.kernel_size, err, name, "kernel_size"),
                                      stride=_pair(node.stride, err, name, "stride"),
                                      padding=_pair(node.padding, err, name, "padding")))
    return convert


def _flatten(name, node, shape, err, dtype):
    given = node.input_type.get("input")
    if given is not None and tuple(np.asarray(given).tolist()) != tuple(shape):
        raise err(name, "input_type", str(tuple(shape)), str(np.asarray(given).tolist()))
    start, end = int(node.start_dim), int(node.end_dim)
    end = end % len(shape) if len(shape) else end
    if start != 0 or end != len(shape) - 1:
        raise err(name, "start_dim/end_dim", "0 and -1 (flatten the whole per-sample shape)",
                  f"{node.start_dim} and {node.end_dim}")
    return dict(op="flatten")


#: NIR node class name -> converter ``(name, node, in_shape, err, dtype) -> refsnn node dict``,
#: for the synapse nodes; the kinds' nodes are added by :func:`converters`.
CONVERTERS = {
    "Affine": _affine,
    "Linear": lambda *a: _affine(*a, bias=False),
    "Conv2d": _conv,
    "SumPool2d": _pool("sumpool2d"),
    "AvgPool2d": _pool("avgpool2d"),
    "Flatten": _flatten,
    "Identity": lambda name, node, shape, err, dtype: dict(op="identity"),
}


def converters(dt=None, discretisation=None) -> dict:
    """:data:`CONVERTERS` and a converter per kind that reads a NIR node (time step ``dt``,
    ``discretisation`` of the kinds that take one: :func:`_kind_reader`)."""
    if discretisation is not None and discretisation not in DISCRETISATIONS:
        raise OptionError(f"discretisation: expected one of {list(DISCRETISATIONS)}, found "
                          f"{discretisation!r}")
    return {**CONVERTERS, **{n: _kind_reader(k, dt, discretisation)
                             for n, k in kinds_by_node().items()}}


def _topological(graph, preds, err):
    """Node names in an order where every node follows its inputs; a cycle is refused."""
    order, state = [], {}
    for start in graph.nodes:
        stack = [(start, iter(preds[start]))]
        if state.get(start):
            continue
        state[start] = 1
        while stack:
            name, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                stack.pop()
                state[name] = 2
                order.append(name)
            elif state.get(nxt) == 1:
                raise err(nxt, "edges", "a feed-forward graph (refsnn does not simulate "
                          "recurrent edges)", f"a cycle through '{nxt}' and '{name}'")
            elif not state.get(nxt):
                state[nxt] = 1
                stack.append((nxt, iter(preds[nxt])))
    return order


def from_nir(graph, dt=None, dtype=np.float64, file: str = "<memory>", discretisation=None):
    """The refsnn network that simulates NIR graph ``graph`` (a ``nir.NIRGraph``).

    Parameters
    ----------
    graph : nir.NIRGraph
    dt : float, optional
        The time step of the forward Euler discretisation; default the graph's
        ``metadata["dt"]``; required when the graph has IF, LIF, LI or I nodes and no dt.
    dtype : numpy dtype
        float64 (default) or float32: parameters, states and values.
    file : str
        Where the graph came from, for error messages.
    discretisation : {None, "euler", "euler-same-step", "exact"}
        The discretisation of every node whose kind has a ``discretisation`` attribute
        (``CubaLIF``, ``CubaLI``, ``LIF``, ``LI``; ``docs/semantics.md``, "NIR graphs"),
        stored in the node; None: each kind's default (``euler``). ``IF`` and ``I`` have
        none (for them every one of these rules is forward Euler). An :class:`OptionError`
        for any other value, or one a node's kind does not take.

    Returns
    -------
    SpikingNetwork
        Method ``nir``, decoder ``mean`` (the readout is the mean of the Output's value),
        encoding from ``metadata["refsnn_encoding"]`` (``analog`` if absent).
    """
    from refsnn.sim.network import SNN_OPS, SpikingNetwork

    err = _Err(file)
    kinds = {name: type(node).__name__ for name, node in graph.nodes.items()}
    dt = _time_step(graph, dt, kinds, file)
    convert = converters(dt, discretisation)
    preds = {name: [] for name in graph.nodes}
    for edge in graph.edges:
        src, dst = edge[0], edge[1]
        for end in (src, dst):
            if end not in preds:
                raise err(end, "edges", "an edge between existing nodes", f"({src}, {dst})")
        if src in preds[dst]:
            raise err(dst, "edges", "each edge once", f"({src}, {dst}) twice")
        preds[dst].append(src)
    inputs = [n for n, k in kinds.items() if k == "Input"]
    outputs = [n for n, k in kinds.items() if k == "Output"]
    if len(inputs) != 1 or len(outputs) != 1:
        raise err("", "nodes", "exactly one Input and one Output node",
                  f"{len(inputs)} Input, {len(outputs)} Output")
    for name, kind in kinds.items():
        if kind in _REFUSED and kind not in convert:
            raise err(name, "type", "a node refsnn simulates", _REFUSED[kind])
        if kind not in convert and kind not in ("Input", "Output"):
            raise err(name, "type", f"one of {sorted(convert)}", kind)
    order = _topological(graph, preds, err)
    given = (graph.nodes[inputs[0]].input_type or {}).get("input")
    if given is None or np.asarray(given).ndim != 1 or np.asarray(given).size == 0:
        raise err(inputs[0], "input_type", "the per-sample input shape", repr(given))
    shape = tuple(int(s) for s in np.asarray(given))
    shapes, refs, dicts = {inputs[0]: shape}, {inputs[0]: INPUT}, []
    for name in order:
        kind = kinds[name]
        if kind == "Input":
            if preds[name]:
                raise err(name, "edges", "no edge into the Input", str(preds[name]))
            continue
        if not preds[name]:
            raise err(name, "edges", "at least one input edge", "none")
        in_shapes = [shapes[p] for p in preds[name]]
        for p, s in zip(preds[name], in_shapes):
            if s != in_shapes[0]:
                raise err(name, "input shape", f"equal shapes of its inputs, {in_shapes[0]}",
                          f"{s} from '{p}'")
        srcs = [refs[p] for p in preds[name]]
        if len(srcs) > 1:  # NIR sums a node's inputs: refsnn adds them in edge order
            dicts.append(dict(name=f"{name}__sum", op="add", inputs=srcs))
            srcs = [f"{name}__sum"]
        if kind == "Output":
            out_ref = srcs[0]
            want = graph.nodes[name].output_type.get("output")
            if want is not None and tuple(np.asarray(want).tolist()) != in_shapes[0]:
                raise err(name, "output_type", str(in_shapes[0]), str(np.asarray(want).tolist()))
            continue
        d = convert[kind](name, graph.nodes[name], in_shapes[0], err, dtype)
        d.update(name=name, inputs=srcs)
        dicts.append(d)
        g = make_graph(shape, _ancestors(dicts, name), name, file=file, dtype=dtype,
                       ops=SNN_OPS)
        shapes[name], refs[name] = g.shapes[name], name
    if out_ref == INPUT:
        raise err(outputs[0], "edges", "at least one node between Input and Output",
                  "Input -> Output")
    net_graph = make_graph(shape, dicts, out_ref, file=file, dtype=dtype, ops=SNN_OPS)
    meta = dict(graph.metadata or {})
    encoding = str(meta.get("refsnn_encoding", "analog"))
    if encoding not in ("analog", "poisson"):
        raise ModelFormatError(file, "/node/metadata", "refsnn_encoding",
                               "'analog' or 'poisson'", repr(encoding))
    return SpikingNetwork(net_graph, "nir", encoding, MappingProxyType({"source": "nir"}),
                          "mean", MappingProxyType({"dt": float(dt)}))


def _ancestors(dicts, name):
    """The node dicts ``name`` depends on (itself included), for its shape."""
    keep = ancestors(name, {d["name"]: d["inputs"] for d in dicts})
    return [d for d in dicts if d["name"] in keep]


def _time_step(graph, dt, kinds, file) -> float:
    meta = graph.metadata or {}
    if dt is None and "dt" in meta:
        dt = float(np.asarray(meta["dt"]))
    if dt is None:
        by_node = kinds_by_node()
        timed = [n for n, k in kinds.items() if k in by_node and by_node[k].nir.timed]
        if timed:
            raise OptionError(f"{file}: node '{timed[0]}' ({kinds[timed[0]]}) needs a time "
                              "step: the graph's metadata has no 'dt'; give --dt")
        return 1.0
    if not (isinstance(dt, (int, float, np.floating)) and np.isfinite(dt) and dt > 0):
        raise OptionError(f"dt: expected a positive finite number, found {dt!r}")
    return float(dt)


def read_nir(path):
    """``nir.read(path)``, every failure turned into a :class:`ModelFormatError`."""
    import nir

    from refsnn.io import open_h5

    with open_h5(path, "NIR file") as f:
        if "node" not in f or "version" not in f:
            raise ModelFormatError(str(path), "/", "node", "a NIR file (/node and /version)",
                                   "absent")
    try:
        return nir.read(path, type_check=False)
    except Exception as e:  # nir raises bare KeyError/ValueError/AssertionError
        first = (str(e).splitlines() or [type(e).__name__])[0]
        raise ModelFormatError(str(path), "/node", "graph", "a graph nir.read can load",
                               f"{type(e).__name__}: {first}") from None


def load_nir(path, dt=None, dtype=np.float64, discretisation=None):
    """Read a NIR file and return :func:`from_nir` of its graph."""
    return from_nir(read_nir(path), dt=dt, dtype=dtype, file=str(path),
                    discretisation=discretisation)
