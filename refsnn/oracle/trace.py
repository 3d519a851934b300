"""Spike traces (``refsnn-trace``, version 1): recording, writing and reading.

Layout (``docs/format.md``, section "Trace files")::

    /                       attrs: format = "refsnn-trace", format_version = 1, steps (T),
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
"""

from __future__ import annotations

from dataclasses import dataclass, field

import h5py
import numpy as np

from refsnn.errors import ModelFormatError
from refsnn.io import atomic_h5

FORMAT = "refsnn-trace"
FORMAT_VERSION = 1


@dataclass
class Layer:
    """One neuron layer of a trace; arrays have shape (T, B, *shape)."""

    spikes: np.ndarray
    potentials: np.ndarray | None = None
    current: np.ndarray | None = None
    threshold: np.ndarray | None = None  # (C,), per channel (axis 1 of the layer's shape)
    reset: str | None = None
    v_init: str | None = None


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


def record_trace(sim, x, steps: int, seed: int = 0, attrs=None) -> Trace:
    """Simulate ``x`` with ``sim`` (a :class:`~refsnn.sim.simulator.Simulator`) for ``steps``
    steps and record every neuron layer's spikes and potentials, and the input current of
    every IF layer.

    The current is captured by wrapping each IF op's ``step`` for this run only (it is the
    op's argument, so the recording cannot change what is simulated).
    """
    neurons = [op for op in sim.ops if op.is_neuron]
    names = [op.node.name for op in neurons]
    currents = {}
    for op in neurons:
        if "threshold" in op.node.params and "reset" in op.node.attrs:
            currents[op.node.name] = []
            op.step = _recording(op.step, currents[op.node.name])
    try:
        run = sim.run(x, [steps], seed=seed, rasters=names, potentials=names)
    finally:
        for op in neurons:
            op.__dict__.pop("step", None)
    layers = {}
    for op in neurons:
        n = op.node
        cur = currents.get(n.name)
        layers[n.name] = Layer(
            run.rasters[n.name], run.potentials[n.name],
            None if cur is None else np.stack(cur),
            np.asarray(n.params["threshold"], np.float64) if cur is not None else None,
            n.attrs.get("reset"), n.attrs.get("v_init"))
    meta = {"dtype": np.dtype(sim.dtype).name, "seed": int(seed), **(attrs or {})}
    encoded = (encoded_input(sim.net, x, steps, seed)
               if sim.net.encoding in RECORDED_ENCODINGS else None)
    return Trace(steps, layers, meta, np.asarray(x), encoded)


def encoded_input(net, x, steps: int, seed: int = 0) -> np.ndarray:
    """The input node's value at steps 1..T, as :meth:`Simulator.run` computes it for ``x``
    (B, *input_shape) with sample ids ``0..B-1``: shape (T, B, *input_shape).

    A fresh encoder made with the same arguments as the simulator's: encoders are functions of
    ``(x, seed, sample ids)``, so this is the stream the simulation saw (the conformance suite
    checks it: refsnn replaying ``/encoded`` reproduces the trace's spikes).
    """
    from refsnn.checks import check_batch
    from refsnn.sim.encoders import ENCODERS

    x = check_batch(x, net.graph.input_shape, dtype=net.graph.dtype)
    encoder = ENCODERS[net.encoding](x, seed, np.arange(x.shape[0]), net.schedule)
    return np.stack([np.array(encoder.step(t), copy=True) for t in range(1, steps + 1)])


def _recording(step, into: list):
    def wrapped(state, x):
        into.append(np.array(x, copy=True))
        return step(state, x)
    return wrapped


def write_trace(path, trace: Trace) -> None:
    """Write ``trace`` to ``path`` atomically (no compression, so same trace, same bytes)."""
    with atomic_h5(path) as f:
        f.attrs["format"] = FORMAT
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["steps"] = int(trace.steps)
        f.attrs["layers"] = list(trace.layers)
        for k, v in trace.attrs.items():
            f.attrs[k] = v
        if trace.inputs is not None:
            f.create_dataset("inputs", data=trace.inputs)
        if trace.encoded is not None:
            f.create_dataset("encoded", data=trace.encoded)
        g = f.create_group("layers", track_order=True)
        for name, layer in trace.layers.items():
            h = g.create_group(name)
            h.create_dataset("spikes", data=np.asarray(layer.spikes, bool))
            for key in ("potentials", "current"):
                if getattr(layer, key) is not None:
                    h.create_dataset(key, data=getattr(layer, key))
            for key in ("threshold", "reset", "v_init"):
                if getattr(layer, key) is not None:
                    h.attrs[key] = getattr(layer, key)


def read_trace(path) -> Trace:
    """Read a trace file; a file that does not follow the format is a ModelFormatError."""
    with h5py.File(path, "r") as f:
        if f.attrs.get("format") != FORMAT:
            raise ModelFormatError(path, "/", "format", FORMAT, f.attrs.get("format"))
        if int(f.attrs.get("format_version", -1)) != FORMAT_VERSION:
            raise ModelFormatError(path, "/", "format_version", FORMAT_VERSION,
                                   f.attrs.get("format_version"))
        steps = int(f.attrs["steps"])
        order = [str(s) for s in f.attrs["layers"]]
        layers = {}
        for name in order:
            h = f.get(f"layers/{name}")
            if h is None or "spikes" not in h:
                raise ModelFormatError(path, f"/layers/{name}", "spikes", "a dataset", "none")
            spikes = h["spikes"][()]
            if spikes.dtype != bool or spikes.shape[:1] != (steps,):
                raise ModelFormatError(path, f"/layers/{name}/spikes", "dtype/shape",
                                       f"bool ({steps}, B, ...)", f"{spikes.dtype} {spikes.shape}")
            get = lambda key: h[key][()] if key in h else None
            attr = lambda key: (h.attrs[key] if key in h.attrs else None)
            reset, v_init = attr("reset"), attr("v_init")
            theta = attr("threshold")
            layers[name] = Layer(spikes, get("potentials"), get("current"),
                                 None if theta is None else np.asarray(theta, np.float64),
                                 None if reset is None else str(reset),
                                 None if v_init is None else str(v_init))
        attrs = {k: v for k, v in f.attrs.items() if k not in ("format", "format_version",
                                                                "steps", "layers")}
        inputs = f["inputs"][()] if "inputs" in f else None
        encoded = f["encoded"][()] if "encoded" in f else None
        if encoded is not None and encoded.shape[:1] != (steps,):
            raise ModelFormatError(path, "/encoded", "shape", f"({steps}, B, ...)",
                                   str(encoded.shape))
    return Trace(steps, layers, attrs, inputs, encoded)
