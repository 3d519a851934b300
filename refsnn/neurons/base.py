"""The kind registry: everything about each operator the simulator steps, in one record.

A *kind* is an operator of converted networks: a neuron kind (``if``, ``bistable``, ``sgd``,
NIR's ``nir_if``, ``lif``, ``threshold``) or a synapse op (``linear``, ``window``, NIR's
``li``, ...). Each is one :class:`Kind`, registered once with :func:`register` by the module
that defines it (``refsnn/neurons/<kind>.py``; the synapse ops in
:mod:`refsnn.sim.steps`). The simulator, the network format, traces, ``compare`` and the NIR
reader and writer look kinds up here and name none of them.

Layers (arrows point down): ``oracle``, ``nir`` -> ``sim`` -> ``neurons`` / ``synapses`` ->
``model``. This module imports only :mod:`refsnn.model`; :class:`StepOp` is here so that a
neuron module can define its step without importing :mod:`refsnn.sim`.

Adding a neuron kind: one module with its schema (:class:`~refsnn.model.ops.OpSpec`), its
NumPy step and Numba twin, a :class:`StepOp` subclass, its :class:`TraceSpec`, its
hypotheses for ``compare`` and a ``register(Kind(...))`` call; then import it from
``refsnn/neurons/__init__.py`` (``tests/test_toy_kind.py`` does all of it from a test file).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, Iterator, Mapping

import numpy as np

from refsnn.model.ops import OPS, OpSpec, ShapeRuleError


class StepOp:
    """What one node does at each step: ``init(batch)`` makes its state, ``step(state, *xs)``
    returns its value for this step, shape ``(B, *shape)``.

    A stateless node overrides :meth:`step` only; a stateful one also :meth:`init` and sets
    :attr:`stateless` to False. A neuron kind sets :attr:`is_neuron`, :attr:`spike_sign`,
    :attr:`KERNELS` and, unless the defaults fit, :meth:`potential` and :meth:`saturated`.
    """

    is_neuron = False
    #: The step's value is a function of the inputs' values of that step only (no state), so
    #: equal inputs give an equal value: the simulator may reuse it (see ``Simulator.run``).
    stateless = True
    #: Stateless, and each sample's value computed from that sample's inputs alone, by the same
    #: arithmetic whatever the batch size: the simulator may then stack several steps' inputs
    #: along the batch axis and make one call for them (see ``Simulator``'s ``step_block``).
    stackable = False
    #: A neuron node that can run a block of steps in one call (:meth:`step_block`).
    block_steps = False
    #: Neuron nodes: a neuron spiked at a step where its value has this sign (1: ``> 0``,
    #: -1: ``< 0``); see :mod:`refsnn.sim.counting`.
    spike_sign = 0
    #: Backend name (``"numpy"``, ``"numba"``) -> kernel name -> kernel: a neuron kind's
    #: NumPy reference and its Numba twin; the node's :attr:`kernels` are its backend's.
    KERNELS: Mapping[str, Mapping[str, Callable]] = {}

    def __init__(self, node, graph, backend, schedule):
        self.node = node
        self.shape = graph.shapes[node.name]
        self.backend = backend
        self.kernels = self.KERNELS[backend.name] if self.KERNELS else {}

    def init(self, batch: int):
        return None

    def fired(self, value):
        """Which neurons of a neuron node spiked, from one step's value: bool, same shape."""
        return value > 0 if self.spike_sign > 0 else value < 0

    def step(self, state, *xs):
        raise NotImplementedError

    def potential(self, state):
        """A neuron node's potentials after the step, (B, *shape): by default the state, a
        (B, N) array."""
        return state.reshape((state.shape[0],) + self.shape)

    def saturated(self, state):
        """Neurons that can no longer follow their input, (B, *shape) bool; None for a kind
        that cannot saturate silently (IF and bistable neurons clip at theta by design)."""
        return None


def per_neuron(per_channel, shape: tuple) -> np.ndarray:
    """A per-channel parameter, shape (C,), repeated for every neuron of a (C, ...) node: (N,)."""
    return np.ascontiguousarray(np.repeat(np.asarray(per_channel), int(np.prod(shape[1:]))))


def channel_param(node, name: str, ndim: int) -> np.ndarray:
    """A per-channel parameter shaped to broadcast against (B, *node_shape) arrays."""
    return node.params[name].reshape((1, -1) + (1,) * (ndim - 2))


def threshold_shape(attrs, in_shapes):
    """Shape rule of a per-channel ``threshold`` parameter, (C,)."""
    return {"threshold": (in_shapes[0][0],)}


def positive(*names, expected: str = "positive values"):
    """Shape rule: the output has the input's shape; the named parameters, where present (a
    draft has none yet), must be > 0."""
    def out(attrs, in_shapes, params):
        for n in names:
            if n in params and np.any(np.asarray(params[n]) <= 0):
                raise ShapeRuleError(n, expected, "a value <= 0")
        return in_shapes[0]
    return out


def with_out(kernel):
    """The Numba twin of a NumPy step, from a ``kernel(first, *args, out)`` that writes the
    events into ``out`` shaped like ``first``: ``twin(first, *args) -> out``."""
    def twin(first, *args):
        out = np.empty_like(first)
        kernel(first, *args, out)
        return out
    return twin


def positive_number(v) -> bool:
    """A :attr:`TraceSpec.checks` test: a positive finite real number (not a bool)."""
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) \
        and bool(np.isfinite(v)) and v > 0


@dataclass(frozen=True)
class TraceSpec:
    """What a trace records of a neuron layer, so that ``compare`` can replay it.

    Attributes
    ----------
    field : {"current", "target"}
        The :class:`refsnn.oracle.trace.Layer` field (and dataset) the value goes to.
    value : callable
        ``value(state, xs, out) -> (B, *shape)`` after each step (default: the input).
    params : callable
        ``params(op) -> {name: value}``: the layer's parameters by name, scalars (attributes)
        or per-neuron arrays (``param_<name>`` datasets).
    checks : mapping
        ``name -> (ok(value) -> bool, expected)``: how a trace reader checks each parameter.
    """

    field: str = "current"
    value: Callable = lambda state, xs, out: xs[0]  # the layer's input
    params: Callable = lambda op: {}
    checks: Mapping[str, tuple] = dataclasses.field(default_factory=dict)


@dataclass(frozen=True)
class NirSpec:
    """How a kind maps to a NIR node class ``nir.<node>`` (the NIR reader and writer).

    Attributes
    ----------
    node : str
    reads : bool
        The NIR reader reads ``node`` into this kind (False: it is only written as one).
    params : mapping
        refsnn parameter -> NIR field (default the schema's names), broadcast when read.
    timed : bool
        The discrete update uses the time step ``dt``.
    export : callable or None
        ``export(node, shape) -> (fields, unit)``: the NIR node's arguments and the value one
        NIR spike stands for (None: the NIR value is the node's); None: not exported.
    refuse : callable
        ``refuse(node) -> str or None``: why this node cannot be exported exactly.
    check : callable or None
        ``check(params, dt, attrs)``: refuses, at import, parameters (refsnn name -> array of
        the node's shape, in the network's dtype) that do not fit the time step ``dt`` or the
        node's attributes ``attrs`` (those the reader sets), raising
        :class:`~refsnn.model.ops.ShapeRuleError` (field, expected, found).
    """

    node: str
    reads: bool = True
    params: Mapping[str, str] = dataclasses.field(default_factory=dict)
    timed: bool = False
    export: Callable | None = None
    refuse: Callable = lambda node: None
    check: Callable | None = None


@dataclass(frozen=True)
class Kind:
    """Everything about one operator the simulator steps.

    Attributes
    ----------
    op : str
        The name in a node's ``op`` attribute.
    step : type of StepOp
        Its simulator step (whose class attributes say whether it is a neuron, spike sign).
    spec : OpSpec or None
        Its schema; None for an op of :data:`refsnn.model.ops.OPS`.
    forward, limit : callable or None
        ``forward(node, *xs)``: its ANN meaning (T -> infinity) where :mod:`refsnn.ann` has
        none; ``limit``: its value in a converted network's ANN limit where that differs.
    represents : callable or None
        ``represents(node, counts, steps)``: the activation ``counts`` (B, *shape) spikes
        over ``steps`` steps stand for (rate-coded neurons).
    trace : TraceSpec or None
    hypotheses : mapping
        ``compare``'s departures: name -> ``(test(ref_layer, other_spikes, rtol) ->
        (explained, detail), benign)``, tried in order.
    legacy : str or None
        A trace layer without ``kind`` that has this attribute (an older trace) is this kind.
    nir : NirSpec or None
    nir_refusal : str or None
        Why the NIR writer refuses it.
    """

    op: str
    step: type
    spec: OpSpec | None = None
    forward: Callable | None = None
    limit: Callable | None = None
    represents: Callable | None = None
    trace: TraceSpec | None = None
    hypotheses: Mapping[str, tuple] = dataclasses.field(default_factory=dict)
    legacy: str | None = None
    nir: NirSpec | None = None
    nir_refusal: str | None = None

    @property
    def is_neuron(self) -> bool:
        return self.step.is_neuron

    @property
    def spike_sign(self) -> int:
        return self.step.spike_sign


#: op -> Kind, in registration order.
KINDS: dict[str, Kind] = {}


def register(kind: Kind) -> Kind:
    """Add ``kind`` to the registry (once per op); returns it."""
    if kind.op in KINDS:
        raise ValueError(f"kind '{kind.op}' is registered already")
    if kind.spec is not None and kind.spec.name != kind.op:
        raise ValueError(f"kind '{kind.op}': its schema is named '{kind.spec.name}'")
    KINDS[kind.op] = kind
    return kind


def unregister(op: str) -> Kind:
    """Remove and return the kind ``op`` (a test's toy kind)."""
    return KINDS.pop(lookup(op).op)


def lookup(op: str) -> Kind:
    """The kind of op ``op``; a :class:`KeyError` naming the registered ones if unknown."""
    found = KINDS.get(op)
    if found is None:
        raise KeyError(f"unknown kind '{op}'; registered: {', '.join(KINDS)}")
    return found


class View(Mapping):
    """A live mapping op -> ``pick(kind)`` over the registered kinds where that is not None,
    on top of ``base``: kinds registered later are seen."""

    def __init__(self, pick: Callable, base: Mapping | None = None):
        self.pick, self.base = pick, base or {}

    def _all(self) -> dict:
        own = {op: v for op, k in KINDS.items() if (v := self.pick(k)) is not None}
        return {**self.base, **own}

    def __getitem__(self, op):
        return self._all()[op]

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())


#: op -> step class of every registered kind (the simulator's table).
STEP_OPS = View(lambda k: k.step)
#: Operators of converted networks: :data:`refsnn.model.ops.OPS` and the kinds' schemas.
SNN_OPS = View(lambda k: k.spec, OPS)
#: The neuron kinds' schemas.
NEURON_OPS = View(lambda k: k.spec if k.is_neuron else None)
#: ANN forward functions of the converted-only operators (the limit T -> infinity).
NEURON_FORWARD = View(lambda k: k.forward)
