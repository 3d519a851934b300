"""Spike traces (``refsnn-trace``, version 1): recording, writing and reading.

Layout (``docs/format.md``, section "Trace files")::

    /                       attrs: format = "refsnn-trace", format_version = 2, steps (T),
                                   layers (neuron layer names in order), producer, and the
                                   provenance (model, data, split, method, dtype, seed, ...)
    /inputs                 (B, *input_shape): the batch that was simulated, optional
    /encoded                (T, B, *input_shape): the input node's value at each step,
                            optional (refsnn writes it for Poisson encoding, whose random
                            stream another implementation cannot reproduce)
    /layers/<name>/spikes   bool (T, B, *shape): which neurons fired at each step
    /layers/<name>/potentials  (T, B, *shape): membrane potential after reset, optional
    /layers/<name>/current  (T, B, *shape): the input current of each step, optional (refsnn
                            writes it so that ``refsnn compare`` can replay the layer)
      attrs: threshold (C,), reset ("subtract" | "zero"), v_init ("zero" | "half"), optional
    /layers/<name>/target   (T, B, *shape): a signGD layer's target f(x_hat) / scale of each
                            step, optional (refsnn writes it so compare can replay the layer)
      attrs: kind (the layer's neuron op, one of the registered neuron kinds), and the kind's
             named parameters (its ``TraceSpec.params``, e.g. period, stage of a bistable
             layer; eta0, gamma, tie of an sgd layer), optional
    /layers/<name>/param_<key>  a kind's per-neuron parameters, flattened (e.g. a NIR layer's
                            constants), optional

What each kind records (``current`` or ``target``) and its parameters are its
:class:`~refsnn.neurons.base.TraceSpec`, in the kind registry.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field

import h5py
import numpy as np

from refsnn.errors import ModelFormatError
from refsnn.checksum import ATTR
from refsnn.io import atomic_h5, attr_names, check_header, read_dataset, read_h5
from refsnn.neurons.base import KINDS, lookup

FORMAT = "refsnn-trace"
FORMAT_VERSION = 2  # 2: with checksums (refsnn.checksum); version 1 files still load


@dataclass
class Layer:
    """One neuron layer of a trace; arrays have shape (T, B, *shape)."""

    spikes: np.ndarray
    potentials: np.ndarray | None = None
    current: np.ndarray | None = None
    threshold: np.ndarray | None = None  # (C,), per channel (axis 1 of the layer's shape)
    reset: str | None = None
    v_init: str | None = None
    kind: str | None = None             # the neuron op (a registered neuron kind)
    target: np.ndarray | None = None    # signGD: f(x_hat) / scale at each step, (T, B, *shape)
    params: dict = field(default_factory=dict)  # the kind's TraceSpec.params, by name


@dataclass
class Trace:
    """A whole trace: ``layers`` in simulation order and the root attributes."""

    steps: int
    layers: dict[str, Layer]
    attrs: dict = field(default_factory=dict)
    inputs: np.ndarray | None = None
    encoded: np.ndarray | None = None  # (T, B, *input_shape), see RECORDED_ENCODINGS


#: Encodings whose per-step input a trace stores in ``/encoded``: a random stream (refsnn's
#: generator and seeding) that another implementation cannot be asked to reproduce.
RECORDED_ENCODINGS = ("poisson",)


def record_trace(sim, x, steps: int, seed: int = 0, attrs=None, sample_ids=None,
                 sequence: bool = False) -> Trace:
    """Simulate ``x`` with ``sim`` (a :class:`~refsnn.sim.simulator.Simulator`) for ``steps``
    steps and record every neuron layer's spikes and potentials and what its kind's
    :class:`~refsnn.neurons.base.TraceSpec` records (the input current of IF and bistable
    layers, the target of signGD layers).

    That is captured by wrapping each neuron op's ``step`` for this run only (it reads the
    op's arguments and state, so the recording cannot change what is simulated).
    ``sample_ids`` (default ``0..B-1``) are the samples' ids for the Poisson streams, as in
    :meth:`Simulator.run`: a trace recorded in batches with their ids equals the whole one
    (:func:`join_traces`). ``sequence``: ``x`` holds sequences (B, T_seq, *input_shape)
    (:meth:`Simulator.run`); the trace keeps their first ``steps`` steps as ``/encoded``
    (what the input node took at each step) and no ``/inputs``.
    """
    neurons = [op for op in sim.ops if op.is_neuron]
    names = [op.node.name for op in neurons]
    lists = {}
    with _recorders(neurons, lambda name, field_: lists.setdefault(name, [])) as wrapped:
        run = sim.run(x, [steps], seed=seed, sample_ids=sample_ids, rasters=names,
                      potentials=names, **({"sequence": True} if sequence else {}))
    layers = {}
    for op in neurons:
        name = op.node.name
        layers[name] = Layer(run.rasters[name], run.potentials[name],
                             **_layer_meta(op, name in wrapped))
        if name in wrapped:
            field_, into = wrapped[name]
            setattr(layers[name], field_, np.stack(into))
    meta = {"dtype": np.dtype(sim.dtype).name, "seed": int(seed), **(attrs or {})}
    if sequence:
        encoded = np.swapaxes(np.asarray(x, dtype=sim.dtype)[:, :steps], 0, 1).copy()
        return Trace(steps, layers, meta, None, encoded)
    encoded = (encoded_input(sim.net, x, steps, seed, sample_ids)
               if sim.net.encoding in RECORDED_ENCODINGS else None)
    return Trace(steps, layers, meta, np.asarray(x), encoded)


def join_traces(parts: list, attrs: dict) -> Trace:
    """One trace of the batches ``parts`` (traces of consecutive samples, as
    :func:`record_trace` with their ``sample_ids`` makes them), with root attributes
    ``attrs``: every array joined along its sample axis."""
    first = parts[0]
    cat = lambda arrays, axis: None if arrays[0] is None else np.concatenate(arrays, axis)
    layers = {}
    for name, layer in first.layers.items():
        ls = [p.layers[name] for p in parts]
        layers[name] = Layer(cat([l_.spikes for l_ in ls], 1),
                             cat([l_.potentials for l_ in ls], 1),
                             cat([l_.current for l_ in ls], 1), layer.threshold, layer.reset,
                             layer.v_init, layer.kind, cat([l_.target for l_ in ls], 1),
                             dict(layer.params))
    return Trace(first.steps, layers, dict(attrs), cat([p.inputs for p in parts], 0),
                 cat([p.encoded for p in parts], 1))


def encoded_input(net, x, steps: int, seed: int = 0, sample_ids=None) -> np.ndarray:
    """The input node's value at steps 1..T, as :meth:`Simulator.run` computes it for ``x``
    (B, *input_shape) with sample ids ``0..B-1``: shape (T, B, *input_shape).

    A fresh encoder made with the same arguments as the simulator's: encoders are functions of
    ``(x, seed, sample ids)``, so this is the stream the simulation saw (the conformance suite
    checks it: refsnn replaying ``/encoded`` reproduces the trace's spikes).
    """
    from refsnn.checks import check_batch
    from refsnn.sim.encoders import ENCODERS

    x = check_batch(x, net.graph.input_shape, dtype=net.graph.dtype)
    ids = np.arange(x.shape[0]) if sample_ids is None else np.asarray(sample_ids)
    encoder = ENCODERS[net.encoding](x, seed, ids, net.schedule)
    return np.stack([np.array(encoder.step(t), copy=True) for t in range(1, steps + 1)])


def _recording(step, spec, into):
    """``step`` that also appends a copy of ``spec.value(state, xs, out)`` to ``into``."""
    def wrapped(state, *xs):
        out = step(state, *xs)
        into.append(np.array(spec.value(state, xs, out), copy=True))
        return out
    return wrapped


def _write_head(f, steps: int, names, attrs, inputs, encoded=None):
    """The root attributes, ``/inputs`` and ``/encoded``; returns the ``/layers`` group."""
    f.attrs["format"] = FORMAT
    f.attrs["format_version"] = FORMAT_VERSION
    f.attrs["steps"] = int(steps)
    f.attrs["layers"] = list(names)
    for k, v in attrs.items():
        f.attrs[k] = v
    if inputs is not None:
        f.create_dataset("inputs", data=inputs)
    if encoded is not None:
        f.create_dataset("encoded", data=encoded)
    return f.create_group("layers", track_order=True)


def _layer_attrs(h, layer: Layer) -> None:
    for key in ("threshold", "reset", "v_init", "kind"):
        if getattr(layer, key) is not None:
            h.attrs[key] = getattr(layer, key)
    for key, value in layer.params.items():
        if isinstance(value, np.ndarray):  # per-neuron constants: may exceed an attribute
            h.create_dataset(f"param_{key}", data=value)
        else:
            h.attrs[key] = value


@contextmanager
def _recorders(neurons, sink):
    """Wrap each neuron op's ``step`` (for one run) to record what ``refsnn compare`` replays:
    its kind's ``TraceSpec.value`` (the input current of IF and bistable layers, the target of
    signGD layers).

    ``sink(name, field)`` gives the list-like the layer's values are appended to, one per
    step. Yields layer name -> (field, sink) for the layers wrapped. The wrapping only reads
    the op's arguments and state, so it cannot change what is simulated; it is removed on
    leaving the context.
    """
    wrapped = {}
    for op in neurons:
        spec = lookup(op.node.op).trace
        if spec is None:
            continue
        into = sink(op.node.name, spec.field)
        op.step = _recording(op.step, spec, into)
        wrapped[op.node.name] = (spec.field, into)
    try:
        yield wrapped
    finally:
        for op in neurons:
            op.__dict__.pop("step", None)


def _layer_meta(op, recorded: bool) -> dict:
    """A layer's trace attributes (:class:`Layer` keyword arguments) from its neuron op."""
    n = op.node
    spec = lookup(n.op).trace
    return dict(threshold=np.asarray(n.params["threshold"], np.float64)
                if recorded and "threshold" in n.params else None,
                reset=n.attrs.get("reset"), v_init=n.attrs.get("v_init"), kind=n.op,
                params=spec.params(op) if spec is not None else {})


def write_trace(path, trace: Trace) -> None:
    """Write ``trace`` to ``path`` atomically (no compression, so same trace, same bytes)."""
    with atomic_h5(path) as f:
        g = _write_head(f, trace.steps, trace.layers, trace.attrs, trace.inputs,
                        trace.encoded)
        for name, layer in trace.layers.items():
            h = g.create_group(name)
            h.create_dataset("spikes", data=np.asarray(layer.spikes, bool))
            for key in ("potentials", "current", "target"):
                if getattr(layer, key) is not None:
                    h.create_dataset(key, data=getattr(layer, key))
            _layer_attrs(h, layer)


def stream_trace(path, sim, x, steps: int, seed: int = 0, attrs=None) -> list[str]:
    """What ``write_trace(path, record_trace(sim, x, steps, seed, attrs))`` writes (the same
    datasets, values and attributes), written step by step as the simulation runs.

    Memory does not grow with ``steps``: each step's spikes, potentials and currents go to
    datasets stored one chunk per step (:func:`refsnn.sim.recorders.create_steps`) and are
    not kept. The file is written to a temporary name and renamed to ``path`` only when
    complete; an interrupted run leaves no file at ``path``.

    Returns
    -------
    list of str
        The layers written, in simulation order.
    """
    from refsnn.checks import check_batch
    from refsnn.sim.recorders import H5Recorder, create_steps

    inputs = np.asarray(x)  # as given, as record_trace keeps it
    x = check_batch(x, sim.net.graph.input_shape, dtype=sim.dtype)
    neurons = [op for op in sim.ops if op.is_neuron]
    names = [op.node.name for op in neurons]
    shapes = sim.net.graph.shapes
    batch = x.shape[0]
    meta = {"dtype": np.dtype(sim.dtype).name, "seed": int(seed), **(attrs or {})}
    with atomic_h5(path) as f:
        encoded = (encoded_input(sim.net, x, steps, seed)
                   if sim.net.encoding in RECORDED_ENCODINGS else None)
        g = _write_head(f, steps, names, meta, inputs, encoded)
        groups, spikes, potentials = {}, {}, {}
        for op in neurons:
            h = groups[op.node.name] = g.create_group(op.node.name)
            shape = (batch,) + shapes[op.node.name]
            spikes[op.node.name] = create_steps(h, "spikes", steps, shape, bool)
            potentials[op.node.name] = create_steps(h, "potentials", steps, shape, sim.dtype)
        with _recorders(neurons, lambda name, field_: _StepWriter(groups[name], field_,
                                                                   steps)) as wrapped:
            sim.run(x, [steps], seed=seed, rasters=names, potentials=names,
                    recorder=H5Recorder(spikes, potentials))
        for op in neurons:
            _layer_attrs(groups[op.node.name],
                         Layer(None, **_layer_meta(op, op.node.name in wrapped)))
    return names


class _StepWriter:
    """A list-like sink for :func:`_recorders`: ``append`` writes step ``k`` of
    ``/layers/<name>/<field>`` (current or target), made at the first step, when the value's
    shape and dtype are known."""

    def __init__(self, group, field_: str, steps: int):
        self.group, self.field, self.steps, self.k, self.ds = group, field_, steps, 0, None

    def append(self, value: np.ndarray) -> None:
        from refsnn.sim.recorders import create_steps

        if self.ds is None:
            self.ds = create_steps(self.group, self.field, self.steps, value.shape, value.dtype)
        self.ds[self.k] = value
        self.k += 1


def checks() -> dict:
    """Layer attributes read into :attr:`Layer.params`: name -> (check, expected), every
    registered kind's (``TraceSpec.checks``), each check of the attribute's value."""
    out = {}
    for kind in KINDS.values():
        if kind.trace is not None:
            out.update({k: v for k, v in kind.trace.checks.items() if k not in out})
    return out


def choices() -> dict:
    """Layer string attributes -> their allowed values (``kind``: the neuron kinds)."""
    return {"reset": ("subtract", "zero"), "v_init": ("zero", "half"),
            "kind": tuple(op for op, k in KINDS.items() if k.is_neuron)}


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _scalar(v):
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, np.ndarray) and v.ndim == 0:
        v = v[()]
    return v.item() if isinstance(v, np.generic) else v


def read_trace(path) -> Trace:
    """Read a trace file (version 1, or 2 with checksums, verified).

    Raises
    ------
    ModelFormatError
        For a file that does not follow the format (``docs/format.md``), naming the file, the
        path and the field: the header, ``steps``, ``layers``, each layer's datasets (dtype,
        shape against ``spikes``, finite values) and attributes (type, allowed values,
        threshold per channel and positive).
    """
    return read_h5(path, "trace file",
                   lambda f, file: _read_trace(f, file, check_header, attr_names))


def _read_trace(f, file: str, check_header, names) -> Trace:
    def err(where, field, expected, found):
        return ModelFormatError(file, where, field, expected, found)

    check_header(f, file, FORMAT, FORMAT_VERSION)
    steps = _scalar(f.attrs.get("steps"))
    if not _is_int(steps) or steps < 1:
        raise err("/", "steps", "an integer >= 1", repr(steps))
    if "layers" not in f.attrs:
        raise err("/", "layers", "attribute 'layers'", "nothing (missing)")
    order = names(f.attrs["layers"], lambda found: err("/", "layers", "a string array of "
                                                      "layer names", found))
    if len(set(order)) != len(order) or not all(order):
        raise err("/", "layers", "distinct, non-empty names", repr(order))
    group = f.get("layers")
    if order and not isinstance(group, h5py.Group):
        raise err("/layers", "group", "a group of layers", "nothing" if group is None
                  else "a dataset")
    layers = {name: _read_layer(group, name, file, steps, err) for name in order}
    attrs = {k: v for k, v in f.attrs.items() if k not in ("format", "format_version",
                                                            "steps", "layers", ATTR)}
    inputs = _optional(f, "inputs", file, "/inputs", None, err)
    encoded = _optional(f, "encoded", file, "/encoded", None, err)
    if encoded is not None and encoded.shape[:1] != (steps,):
        raise err("/encoded", "shape", f"({steps}, B, ...)", str(encoded.shape))
    return Trace(steps, layers, attrs, inputs, encoded)


def _optional(h, key, file, where, shape, err):
    """A real-valued, finite dataset ``h[key]`` (of ``shape`` if given), or None if absent."""
    if key not in h:
        return None
    a = read_dataset(h, key, file, where)
    if not isinstance(a, np.ndarray) or a.dtype.kind not in "fiub" or \
            (shape is not None and a.shape != shape):
        want = f"shape {shape}" if shape is not None else "an array"
        raise err(where, "dtype/shape", f"real numbers, {want}",
                  f"{getattr(a, 'dtype', type(a).__name__)} {getattr(a, 'shape', '')}")
    if not np.all(np.isfinite(a)):
        raise err(where, "values", "finite numbers", "NaN or inf")
    return a


def _read_layer(group, name, file, steps, err) -> Layer:
    where = f"/layers/{name}"
    h = group.get(name)
    if not isinstance(h, h5py.Group) or "spikes" not in h:
        raise err(where, "spikes", "a group with a 'spikes' dataset", "none")
    spikes = read_dataset(h, "spikes", file, f"{where}/spikes")
    if not isinstance(spikes, np.ndarray) or spikes.dtype != bool or spikes.ndim < 3 \
            or spikes.shape[0] != steps:
        raise err(f"{where}/spikes", "dtype/shape", f"bool ({steps}, B, *shape)",
                  f"{getattr(spikes, 'dtype', '?')} {getattr(spikes, 'shape', '')}")
    arrays = {key: _optional(h, key, file, f"{where}/{key}", spikes.shape, err)
              for key in ("potentials", "current", "target")}
    meta = {}
    for key, allowed in choices().items():
        v = _scalar(h.attrs[key]) if key in h.attrs else None
        if v is not None and not (isinstance(v, str) and v in allowed):
            raise err(where, key, f"one of {list(allowed)}", repr(v))
        meta[key] = v
    theta = None
    if "threshold" in h.attrs:
        theta = np.asarray(h.attrs["threshold"])
        channels = spikes.shape[2]
        if theta.dtype.kind not in "fiu" or theta.ndim > 1 or theta.size not in (1, channels) \
                or not np.all(np.isfinite(theta)) or not np.all(theta > 0):
            raise err(where, "threshold", f"positive finite numbers, 1 or {channels} (per "
                      "channel)", repr(h.attrs["threshold"]))
        theta = theta.astype(np.float64).reshape(-1)
    params = {}
    for key, (ok, expected) in checks().items():
        if key in h.attrs:
            v = _scalar(h.attrs[key])
            if not ok(v):
                raise err(where, key, expected, repr(v))
            params[key] = v
        elif f"param_{key}" in h:  # per-neuron parameters (a NIR layer's constants)
            v = read_dataset(h, f"param_{key}", file, f"{where}/param_{key}")
            if not isinstance(v, np.ndarray) or not ok(v):
                raise err(f"{where}/param_{key}", "values", expected, repr(v)[:60])
            params[key] = v
    return Layer(spikes, arrays["potentials"], arrays["current"], theta, meta["reset"],
                 meta["v_init"], meta["kind"], arrays["target"], params)
