"""Simulate NIR graphs: a NIR graph becomes a refsnn :class:`SpikingNetwork` (method ``nir``).

The discrete meaning of every node (forward Euler with an explicit ``dt``, strict firing,
reset to ``v_reset``, no synaptic delay, a node's inputs summed in edge order, a recurrent
edge carrying its source's value of the previous step) is written in ``docs/semantics.md``,
"NIR graphs". Nested graphs are flattened and recurrent edges found by
:mod:`refsnn.nir.structure`; node types no reader reads are refused all at once, shape
mismatches and NaN/inf parameters with a :class:`~refsnn.errors.ModelFormatError` naming the
file, the node and the field.

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
from refsnn.nir.structure import (Unsupported, blockers, dfs_order, flatten, graph_ends,
                                  refuse)


class _Err:
    def __init__(self, file):
        self.file = file

    def __call__(self, name, field, expected, found):
        return ModelFormatError(self.file, f"/node/nodes/{name}", field, expected, found)

    def unsupported(self, name, field, expected, found):
        """A feature refsnn does not simulate: a blocker, named with the others."""
        return Unsupported(self.file, f"/node/nodes/{name}", field, expected, found)


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
    if a.ndim == len(shape) + 1 and a.shape[0] == 1:
        a = a[0]  # NIR's (1, *shape): a leading batch axis of 1
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
    b = _vector(node.bias, w.shape[0], err, name, "bias") if bias else \
        np.full(w.shape[0], -0.0)
    # a Linear has no bias: adding -0.0 leaves every sum as it is, signed zeros included
    return dict(op="linear", params={"weight": _finite(w, err, name, "weight", dtype),
                                     "bias": _finite(b, err, name, "bias", dtype)})


def _finite(a, err, name, field, dtype):
    if not np.all(np.isfinite(a)):
        raise err(name, field, "finite values", "NaN or inf")
    return np.ascontiguousarray(a, dtype=dtype)


def _one(v, err, name, field):
    """A Conv1d's stride, padding or dilation: one non-negative integer (or a sequence of one);
    a pair would be silently cut to its first value."""
    if np.asarray(v).size != 1:
        raise err(name, field, "one non-negative integer (a Conv1d has one axis)",
                  str(np.asarray(v).tolist()))
    return _pair(v, err, name, field)[0]


def _groups(v, err, name):
    """A convolution's ``groups``: one positive integer; a sequence of equal ones is read as
    that integer (NIR's own tests write ``groups=(1, 1)`` for a Conv2d, which has one group
    count, not one per axis)."""
    a = np.asarray(v).reshape(-1)
    if a.dtype.kind not in "iuf" or a.size == 0 or np.any(a != a[0]) \
            or not a[0] == np.round(a[0]) or a[0] < 1:
        raise err(name, "groups", "one positive integer", str(np.asarray(v).tolist()))
    return int(a[0])


def _conv(name, node, shape, err, dtype):
    w = np.asarray(node.weight, np.float64)
    if w.ndim != 4 or len(shape) != 3:
        raise err(name, "weight", "a (C_out, C_in/groups, kh, kw) weight on a (C, H, W) input",
                  f"{w.shape} on input {shape}")
    if _pair(node.dilation, err, name, "dilation") != (1, 1):
        raise err.unsupported(name, "dilation", "1 (refsnn's conv2d has no dilation)",
                              str(node.dilation))
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
            raise err.unsupported(name, "padding", "'same' only with stride 1 and an odd "
                                  "kernel", pad)
    return dict(op="conv2d", attrs=dict(stride=stride,
                                        padding=_pair(pad, err, name, "padding"),
                                        groups=_groups(node.groups, err, name)),
                params={"weight": _finite(w, err, name, "weight", dtype),
                        "bias": _finite(_vector(node.bias, w.shape[0], err, name, "bias"),
                                        err, name, "bias", dtype)})


def _conv1d(name, node, shape, err, dtype):
    """A Conv1d on a (C, N) input as refsnn nodes: reshape to (C, 1, N), a conv2d of kernel
    (1, k) (each output sums its channels and taps in the order a 1-d convolution does, the
    row being one), reshape to (C_out, N_out)."""
    w = np.asarray(node.weight, np.float64)
    if w.ndim != 3 or len(shape) != 2:
        raise err(name, "weight", "a (C_out, C_in/groups, k) weight on a (C, N) input",
                  f"{w.shape} on input {shape}")
    stride = _one(node.stride, err, name, "stride")
    if _one(node.dilation, err, name, "dilation") != 1:
        raise err.unsupported(name, "dilation", "1 (refsnn's conv2d has no dilation)",
                              str(node.dilation))
    if node.input_shape is not None and tuple(np.asarray(node.input_shape).reshape(-1)
                                              .tolist()) != tuple(shape[1:]):
        raise err(name, "input_shape", str(tuple(shape[1:])), str(node.input_shape))
    pad = node.padding
    if isinstance(pad, str):
        if pad == "valid":
            pad = 0
        elif stride == 1 and w.shape[2] % 2:
            pad = w.shape[2] // 2  # 'same' with an odd kernel
        else:
            raise err.unsupported(name, "padding", "'same' only with stride 1 and an odd "
                                  "kernel", pad)
    p, k = _one(pad, err, name, "padding"), w.shape[2]
    n_out = (shape[1] + 2 * p - k) // stride + 1
    bias = _vector(node.bias, w.shape[0], err, name, "bias")
    return [dict(op="reshape", attrs={"shape": f"{shape[0]},1,{shape[1]}"}),
            dict(op="conv2d", attrs=dict(stride=(1, stride), padding=(0, p),
                                         groups=_groups(node.groups, err, name)),
                 params={"weight": _finite(w[:, :, None, :], err, name, "weight", dtype),
                         "bias": _finite(bias, err, name, "bias", dtype)}),
            dict(op="reshape", attrs={"shape": f"{w.shape[0]},{max(n_out, 1)}"})]


def _vector(v, n, err, name, field):
    """A vector parameter of ``n`` values; NIR's (1, n) shape (a batch axis of 1) is accepted
    as (n,), a scalar or a (1,) array is broadcast, and a boolean ``False`` (PyTorch's
    ``bias=False``, as in nirviz's ``srnn.nir``) or ``None`` (NIR's own tests build
    convolutions with ``bias=None``) means no bias: ``-0.0``, which leaves every sum as it is."""
    if v is None:
        return np.full(n, -0.0)
    if np.asarray(v).dtype == bool and np.asarray(v).shape == ():
        if bool(v):
            raise err(name, field, "an array of numbers or False (no bias)", "True")
        return np.full(n, -0.0)
    a = np.asarray(v, np.float64)
    if a.shape in ((), (1,)):
        # a (1,) bias broadcasts as NumPy does, as NIR's tests build it (Conv1d and Conv2d
        # with bias=np.ndarray([1]) over 2 or 3 channels) and as parameters do
        return np.full(n, float(a.reshape(-1)[0]))
    if a.ndim == 2 and a.shape[0] == 1 and a.shape[1] == n:
        return a[0]
    if a.shape != (n,):
        raise err(name, field, f"shape ({n},) or (1, {n})", str(a.shape))
    return a


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
    n, start, end = len(shape), int(node.start_dim), int(node.end_dim)
    # nir's type rule (calc_flatten_output): the dims index the per-sample shape, no batch
    # axis, negative ones counted from its end
    s, e = start + n if start < 0 else start, end + n if end < 0 else end
    if not 0 <= s <= e < n:
        raise err(name, "start_dim/end_dim", f"axes of the per-sample shape {shape}, start "
                  f"not after end", f"{node.start_dim} and {node.end_dim}")
    if s == 0 and e == n - 1:
        return dict(op="flatten")
    out = shape[:s] + (int(np.prod(shape[s:e + 1])),) + shape[e + 1:]
    return dict(op="reshape", attrs={"shape": ",".join(str(d) for d in out)})


#: NIR node class name -> converter ``(name, node, in_shape, err, dtype) -> refsnn node dict``,
#: for the synapse nodes; the kinds' nodes are added by :func:`converters`.
CONVERTERS = {
    "Affine": _affine,
    "Linear": lambda *a: _affine(*a, bias=False),
    "Conv1d": _conv1d,
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
        Method ``nir``, decoder ``mean`` (the readout is the mean of the Output's value;
        several Inputs and Outputs are concatenated: :func:`_graph_input`,
        :func:`_graph_output`),
        encoding from ``metadata["refsnn_encoding"]`` (``analog`` if absent).
    """
    from refsnn.sim.network import SNN_OPS, SpikingNetwork

    err = _Err(file)
    nodes, kinds, edges = flatten(graph, err)
    inputs, outputs = graph_ends(nodes, kinds, edges)
    found = blockers(kinds, {*CONVERTERS, *kinds_by_node()}, inputs, outputs, edges)
    if any(not name for name, _, _ in found):  # no Input or no Output: stop here
        raise refuse(file, found)
    try:
        dt = _time_step(graph, dt, kinds, file)
    except OptionError:
        if found:  # the unreadable nodes first: a time step would not make them readable
            raise refuse(file, found) from None
        raise
    convert = converters(dt, discretisation)
    # nodes not read (blockers and what they feed); unsupported features found on the way
    # are blockers too, raised with the others after the walk
    blocked, features = {name for name, _, _ in found}, {}
    preds = {name: [] for name in nodes}
    succs = {name: [] for name in nodes}
    for src, dst in edges:
        for end in (src, dst):
            if end not in preds:
                raise err(end, "edges", "an edge between existing nodes", f"({src}, {dst})")
        if src in preds[dst]:
            raise err(dst, "edges", "each edge once", f"({src}, {dst}) twice")
        preds[dst].append(src)
        succs[src].append(dst)
    order, back = dfs_order(nodes, succs, inputs)
    shape, shapes, refs, dicts = _graph_input(nodes, inputs, err)
    outs = {}  # Output name -> (the refsnn node it reads, its shape)
    for name in order:
        kind = kinds[name]
        if name in inputs:  # a graph input (docs/semantics.md, several Inputs)
            if preds[name]:
                raise err(name, "edges", "no edge into the Input", str(preds[name]))
            continue
        if not preds[name]:
            raise err(name, "edges", "at least one input edge", "none")
        forward = [p for p in preds[name] if (p, name) not in back]
        if name in blocked or any(p in blocked for p in forward):
            blocked.add(name)  # its input is unknown: nothing to check
            continue
        # the shape of the inputs: a non-recurrent one's, else what NIR says the (first)
        # recurrent source gives
        in_shape = shapes[forward[0]] if forward else _nir_shape(nodes, preds[name][0], err)
        srcs = []
        for p in preds[name]:  # NIR sums a node's inputs: refsnn adds them in edge order
            if (p, name) in back:
                srcs.append(_recurrent(dicts, p, in_shape))
                continue
            if shapes[p] != in_shape:
                raise err(name, "input shape", f"equal shapes of its inputs, {in_shape}",
                          f"{shapes[p]} from '{p}'")
            srcs.append(refs[p])
        if len(srcs) > 1:
            dicts.append(dict(name=f"{name}__sum", op="add", inputs=srcs))
            srcs = [f"{name}__sum"]
        if kind == "Output":
            if succs[name]:
                raise err(name, "edges", "no edge out of the Output", str(succs[name]))
            outs[name] = (srcs[0], in_shape)
            want = nodes[name].output_type.get("output")
            if want is not None and tuple(np.asarray(want).tolist()) != in_shape:
                raise err(name, "output_type", str(in_shape), str(np.asarray(want).tolist()))
            continue
        try:
            made = convert[kind](name, nodes[name], in_shape, err, dtype)
        except Unsupported as e:
            features[name] = e
            found.append((name, kind, f"{e.field} {e.found}"))
            blocked.add(name)
            continue
        chain = made if isinstance(made, list) else [made]
        for k, d in enumerate(chain):
            # a converter may give a chain of refsnn nodes: the last one is called `name`
            d.update(name=name if k == len(chain) - 1 else f"{name}__{k}", inputs=srcs)
            dicts.append(d)
            srcs = [d["name"]]
        g = make_graph(shape, _ancestors(dicts, name), name, file=file, dtype=dtype,
                       ops=SNN_OPS, reads_input=False)
        shapes[name], refs[name] = g.shapes[name], name
    if found:
        raise features[found[0][0]] if len(found) == 1 and features else refuse(file, found)
    for name, (ref, _) in outs.items():
        if ref == INPUT:
            raise err(name, "edges", "at least one node between Input and Output",
                      "Input -> Output")
    out_ref = _graph_output(outputs, outs, dicts)
    net_graph = make_graph(shape, dicts, out_ref, file=file, dtype=dtype, ops=SNN_OPS)
    meta = dict(graph.metadata or {})
    encoding = str(meta.get("refsnn_encoding", "analog"))
    if encoding not in ("analog", "poisson"):
        raise ModelFormatError(file, "/node/metadata", "refsnn_encoding",
                               "'analog' or 'poisson'", repr(encoding))
    return SpikingNetwork(net_graph, "nir", encoding, MappingProxyType({"source": "nir"}),
                          "mean", MappingProxyType({"dt": float(dt)}))


def _graph_input(nodes, inputs, err):
    """The network's input shape and the refsnn nodes of the graph's ``inputs``.

    One input is the network's input itself. Several (sorted by name) are read from the
    concatenation of their flattened values, in that order: input ``k`` of shape ``s_k`` is a
    ``slice`` of the network's ``(Σ prod(s_k),)`` input, named after it (``<name>__0``
    followed by a ``reshape`` to ``s_k`` named after it when ``s_k`` is not a vector).

    Returns
    -------
    shape : tuple of int
        The per-sample shape of the network's input.
    shapes, refs : dict of str
        Each input's shape and the refsnn node that gives its value.
    dicts : list of dict
        The refsnn nodes made (none for one input).
    """
    each = {}
    for name in inputs:
        given = (nodes[name].input_type or {}).get("input")
        if given is None or np.asarray(given).ndim != 1 or np.asarray(given).size == 0:
            raise err(name, "input_type", "the per-sample input shape", repr(given))
        each[name] = tuple(int(s) for s in np.asarray(given))
    if len(inputs) == 1:
        return each[inputs[0]], each, {inputs[0]: INPUT}, []
    dicts, start = [], 0
    for name, s in each.items():
        stop = start + int(np.prod(s))
        cut = dict(name=name if len(s) == 1 else f"{name}__0", op="slice", inputs=[INPUT],
                   attrs=dict(axis=0, start=start, stop=stop))
        dicts.append(cut)
        if len(s) != 1:
            dicts.append(dict(name=name, op="reshape", inputs=[cut["name"]],
                              attrs={"shape": ",".join(str(d) for d in s)}))
        start = stop
    return (start,), each, {name: name for name in inputs}, dicts


def _graph_output(outputs, outs, dicts):
    """The refsnn node the network reads out: the one Output's source; for several Outputs
    (sorted by name), a ``concat`` (named ``<first output>__concat``) of their values, each
    ``flatten``-ed in a node named after its Output. Appends the nodes made to ``dicts``."""
    if len(outputs) == 1:
        return outs[outputs[0]][0]
    for name in outputs:
        dicts.append(dict(name=name, op="flatten", inputs=[outs[name][0]]))
    dicts.append(dict(name=f"{outputs[0]}__concat", op="concat", inputs=list(outputs),
                      attrs={"axis": 0}))
    return dicts[-1]["name"]


def _nir_shape(nodes, name, err):
    """The output shape NIR gives node ``name`` (its ``output_type``)."""
    given = (getattr(nodes[name], "output_type", None) or {}).get("output")
    if given is None or np.asarray(given).ndim != 1 or np.asarray(given).size == 0:
        raise err(name, "output_type", "the output shape (the node feeds a node whose inputs "
                  "are all recurrent edges)", repr(given))
    return tuple(int(s) for s in np.asarray(given))


def _recurrent(dicts, src, shape):
    """The refsnn node of a recurrent edge from ``src`` (one per source, shared by its back
    edges), added to ``dicts`` if new: op ``recurrent``, the value ``src`` had the step before.
    Its ``shape`` is that of the other inputs it is summed with; ``make_graph`` checks that
    ``src`` has it."""
    name = f"{src}__previous"
    if not any(d["name"] == name for d in dicts):
        dicts.append(dict(name=name, op="recurrent", inputs=[src],
                          attrs={"shape": ",".join(str(s) for s in shape)}))
    return name


def _ancestors(dicts, name):
    """The node dicts ``name`` depends on (itself included), for its shape. A recurrent node
    whose source is not read yet reads itself here: it holds its own shape, and its source's
    shape is checked by the ``make_graph`` of the whole network."""
    keep = ancestors(name, {d["name"]: d["inputs"] for d in dicts})
    done = {d["name"] for d in dicts}
    return [dict(d, inputs=[d["name"]]) if d["op"] == "recurrent" and d["inputs"][0] not in done
            else d for d in dicts if d["name"] in keep]


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
        raise ModelFormatError(str(path), "/node", "graph",
                               f"a graph nir.read (nir {nir.__version__}) can load",
                               f"{type(e).__name__}: {first}") from None


def load_nir(path, dt=None, dtype=np.float64, discretisation=None):
    """Read a NIR file and return :func:`from_nir` of its graph."""
    return from_nir(read_nir(path), dt=dt, dtype=dtype, file=str(path),
                    discretisation=discretisation)
