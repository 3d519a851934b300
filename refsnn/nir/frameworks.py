"""Run a NIR graph in the frameworks that read NIR and record their spikes as refsnn traces.

Each entry of :data:`FRAMEWORKS` imports a NIR graph with the framework's own NIR reader, as
shipped, runs it for ``T`` steps, one sample at a time, on an analog input (the same sample
every step) or on a sequence (``encoded``, one input per step, as NIR's published graphs take:
event frames, taxel spikes), and returns the spikes of every node that is a NIR ``IF``,
``LIF``, ``CubaLIF`` or ``Threshold`` and the input that node received at each step (both
captured with forward hooks on the framework's module for that node), and the graph's output
per step. :func:`framework_trace` turns that into a
:class:`~refsnn.oracle.trace.Trace`, so ``refsnn compare`` can hold it against refsnn's
simulation of the same graph (:func:`reference_trace`).

Nothing is patched: when a framework cannot import or run a graph, :class:`FrameworkError`
carries its exception's first line, which is the finding. Needs torch and the frameworks
(CI installs them with ``--no-deps``); imported by nobody in the core.
"""

from __future__ import annotations

import importlib
import keyword
import re
import warnings
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from refsnn.errors import OptionError, RefsnnError

#: NIR node kinds whose output is spikes (compared spike for spike).
SPIKING = ("IF", "LIF", "CubaLIF", "Threshold")


class FrameworkError(RefsnnError):
    """The framework could not import or run the graph (the message says what it raised)."""


@dataclass
class FrameworkRun:
    """What a framework produced; spikes bool (T, B, *shape) per spiking node, output (T, B,
    *output_shape), the largest value a spiking node emitted in one step (1 for a NIR
    spike; more for a framework that emits several spikes per step), and the input each
    spiking node's module received at each step, float64 (T, B, *shape) (the summed incoming
    edges: for a ``CubaLIF`` the current before ``w_in`` and the synapse)."""

    spikes: dict
    output: np.ndarray
    max_value: dict
    inputs: dict = field(default_factory=dict)


def spiking_nodes(graph) -> list[str]:
    return [n for n, node in graph.nodes.items() if type(node).__name__ in SPIKING]


def _module_name(name: str) -> str:
    """nirtorch's name for the module of NIR node ``name``."""
    name = name.replace(".", "_")
    return "nir_node_" + name if keyword.iskeyword(name) else name


def _first(value):
    return value[0] if isinstance(value, (tuple, list)) else value


def _hooked(module, names, into, received):
    """Forward hooks that append each named submodule's output (its spikes) to ``into`` and
    its first argument (its input) to ``received``."""
    import torch

    def hook(m, args, out, name):
        into.setdefault(name, []).append(_first(out).detach().double().numpy().copy())
        if args and isinstance(args[0], torch.Tensor):
            received.setdefault(name, []).append(args[0].detach().double().numpy().copy())

    subs = dict(module.named_modules())
    handles = []
    for name in names:
        sub = subs.get(_module_name(name))
        if sub is None or not isinstance(sub, torch.nn.Module):
            raise FrameworkError(f"no module for node '{name}' in the imported network")
        handles.append(sub.register_forward_hook(
            lambda m, args, out, name=name: hook(m, args, out, name)))
    return handles


def _step_input(x, encoded, b, t):
    """Sample ``b``'s input at 0-based step ``t`` as a float32 (1, *input_shape) array."""
    source = x[b:b + 1] if encoded is None else encoded[t, b:b + 1]
    return np.ascontiguousarray(source, dtype=np.float32)


def _per_step(values, steps):
    """Hook captures (one array per call) as (steps, n), or an empty (0, 0) when absent."""
    return np.stack([v.reshape(-1) for v in values]) if values else np.zeros((0, 0))


def _stepwise(build: Callable, call: Callable):
    """A runner that builds the module per sample and calls it once per step."""
    def run(graph, x, steps, dt, encoded=None):
        import torch

        names = spiking_nodes(graph)
        spikes, received, outputs = {n: [] for n in names}, {n: [] for n in names}, []
        for b in range(x.shape[0]):
            module = build(graph, dt, steps)
            into: dict = {}
            got: dict = {}
            handles = _hooked(module, names, into, got)
            state, outs = None, []
            with torch.no_grad():
                for t in range(steps):
                    xb = torch.from_numpy(_step_input(x, encoded, b, t))
                    out, state = call(module, xb, state)
                    outs.append(_first(out).detach().double().numpy().reshape(-1).copy())
            for h in handles:
                h.remove()
            for n in names:
                spikes[n].append(_per_step(into.get(n), steps))
                received[n].append(_per_step(got.get(n), steps))
            outputs.append(np.stack(outs))
        return _collect(graph, names, spikes, outputs, steps, received)
    return run


def _collect(graph, names, spikes, outputs, steps, received=None):
    out_shape = next(tuple(int(s) for s in np.asarray(n.output_type["output"]))
                     for n in graph.nodes.values() if type(n).__name__ == "Output")
    result, top, inputs = {}, {}, {}
    for n in names:
        shape = tuple(int(s) for s in np.asarray(graph.nodes[n].output_type["output"]))
        per_sample = []
        for s in spikes[n]:
            if s.shape[0] != steps or s.shape[1] != int(np.prod(shape)):
                raise FrameworkError(f"node '{n}' produced {s.shape[0]} steps of "
                                     f"{s.shape[1] if s.ndim == 2 else 0} values, expected "
                                     f"{steps} of {int(np.prod(shape))}")
            per_sample.append(s.reshape((steps,) + shape))
        values = np.stack(per_sample, axis=1)
        result[n] = values > 0
        top[n] = float(values.max(initial=0.0))
        got = (received or {}).get(n, [])
        if got and all(r.shape == (steps, int(np.prod(shape))) for r in got):
            inputs[n] = np.stack([r.reshape((steps,) + shape) for r in got], axis=1)
    output = np.stack(outputs, axis=1).reshape((steps, len(outputs)) + out_shape)
    return FrameworkRun(result, output, top, inputs)


# ---- the frameworks ---------------------------------------------------------------------

def _snntorch_build(graph, dt, steps):
    from snntorch.import_nir import import_from_nir
    return import_from_nir(_copy(graph))


def _graph_call(module, x, state):
    out = module(x) if state is None else module(x, state)
    if isinstance(out, tuple) and len(out) == 2:
        return out[0], out[1]
    return out, None


def _norse_build(graph, dt, steps):
    from norse.torch import from_nir
    return from_nir(_copy(graph), dt=dt)


def _rockpool_build(graph, dt, steps):
    from rockpool.nn.modules.torch.nir import from_nir
    return from_nir(_copy(graph))


def _sinabs_run(graph, x, steps, dt, encoded=None):
    """Sinabs' squeeze layers take (batch·time, ...): all steps of a sample in one call."""
    import torch
    from sinabs import from_nir

    names = spiking_nodes(graph)
    spikes, received, outputs = {n: [] for n in names}, {n: [] for n in names}, []
    for b in range(x.shape[0]):
        module = from_nir(_copy(graph), batch_size=1, num_timesteps=steps)
        into: dict = {}
        got: dict = {}
        handles = _hooked(module, names, into, got)
        xb = torch.from_numpy(np.concatenate([_step_input(x, encoded, b, t)
                                              for t in range(steps)]))
        with torch.no_grad():
            out = _first(module(xb))
        for h in handles:
            h.remove()
        for n in names:
            v = into.get(n, [])
            spikes[n].append(v[0].reshape(steps, -1) if v else np.zeros((0, 0)))
            received[n].append(got[n][0].reshape(steps, -1) if got.get(n) else np.zeros((0, 0)))
        outputs.append(out.detach().double().numpy().reshape(steps, -1))
    return _collect(graph, names, spikes, outputs, steps, received)


def _copy(graph):
    """A deep copy: some readers modify the graph they are given."""
    import copy
    return copy.deepcopy(graph)


@dataclass(frozen=True)
class Framework:
    name: str
    package: str
    run: Callable

    def version(self) -> str:
        try:
            return importlib.import_module(self.package).__version__
        except Exception:
            return "not installed"


FRAMEWORKS = {
    "snntorch": Framework("snnTorch", "snntorch", _stepwise(_snntorch_build, _graph_call)),
    "norse": Framework("Norse", "norse", _stepwise(_norse_build, _graph_call)),
    "sinabs": Framework("Sinabs", "sinabs", _sinabs_run),
    "rockpool": Framework("Rockpool", "rockpool", _stepwise(_rockpool_build, _graph_call)),
}


def run_framework(key: str, graph, x, steps: int, dt: float, encoded=None) -> FrameworkRun:
    """Run ``graph`` in framework ``key`` on ``x`` (B, *input_shape) for ``steps`` steps, or,
    given ``encoded`` (steps, B, *input_shape), on ``encoded[t - 1]`` at step ``t`` (the
    convention of :meth:`refsnn.sim.simulator.Simulator.run`).

    Raises
    ------
    FrameworkError
        When the framework is missing, or its import or run of the graph raises.
    OptionError
        When ``encoded`` does not hold ``steps`` steps of ``x``'s batch.
    """
    fw = FRAMEWORKS[key]
    if encoded is not None and np.shape(encoded)[:2] != (steps, np.shape(x)[0]):
        raise OptionError(f"encoded: expected shape ({steps}, {np.shape(x)[0]}, ...) "
                         f"(steps, batch, input), found {np.shape(encoded)}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import contextlib
            import io
            with contextlib.redirect_stdout(io.StringIO()):  # readers print warnings
                return fw.run(graph, np.asarray(x), steps, dt,
                              None if encoded is None else np.asarray(encoded))
    except FrameworkError:
        raise
    except Exception as e:  # the framework's own failure is the finding
        first = (str(e).strip().splitlines() or [""])[0][:160]
        # "<class 'nir.ir.linear.Scale'>" -> "Scale" (readable, and no HTML in a table)
        first = re.sub(r"<class '(?:[\w.]*\.)?(\w+)'>", r"\1", first)
        raise FrameworkError(f"{fw.name} raised {type(e).__name__}: {first}") from None


def framework_trace(graph, run: FrameworkRun, producer: str, x):
    """The framework's spikes as a :class:`~refsnn.oracle.trace.Trace` (layers in graph
    order, as refsnn names them)."""
    from refsnn.oracle.trace import Layer, Trace

    layers = {n: Layer(run.spikes[n]) for n in spiking_nodes(graph) if n in run.spikes}
    steps = next(iter(run.spikes.values())).shape[0] if run.spikes else run.output.shape[0]
    return Trace(steps, layers, {"producer": producer}, np.asarray(x))


def reference_trace(graph, x, steps: int, dt: float, dtype=np.float32, encoded=None,
                    discretisation=None):
    """refsnn's trace of ``graph`` (float32 unless told) and its output per step,
    (T, B, *output_shape); ``discretisation`` as :func:`refsnn.nir.reader.from_nir`'s.

    Given ``encoded`` (steps, B, *input_shape), the input node takes ``encoded[t - 1]`` at
    step ``t`` (refsnn's sequence input, ``Simulator.run(..., sequence=True)``); the trace
    then holds ``encoded`` and no ``inputs``."""
    from refsnn.nir.reader import from_nir
    from refsnn.oracle.trace import record_trace
    from refsnn.sim.simulator import Simulator

    sim = Simulator(from_nir(graph, dt=dt, dtype=dtype, discretisation=discretisation),
                    "numpy")
    if encoded is not None:
        # refsnn's sequences are (B, T, *input_shape)
        x = np.ascontiguousarray(np.swapaxes(np.asarray(encoded, dtype), 0, 1))
    else:
        x = np.asarray(x, dtype)
    sequence = encoded is not None
    trace = record_trace(sim, x, steps, attrs={"producer": "refsnn"}, sequence=sequence)
    return trace, output_per_step(sim, x, steps, sequence)


def output_per_step(sim, x, steps, sequence=False):
    """The output node's value at each step, (T, B, *output_shape); ``sequence`` as
    :meth:`~refsnn.sim.simulator.Simulator.run`'s."""
    run = sim.run(x, list(range(1, steps + 1)), **({"sequence": True} if sequence else {}))
    means = np.stack([run.readout[t] for t in range(1, steps + 1)])
    sums = means * np.arange(1, steps + 1).reshape((-1,) + (1,) * (means.ndim - 1))
    return np.diff(np.concatenate([np.zeros_like(sums[:1]), sums]), axis=0)
