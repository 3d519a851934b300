"""The simulator: runs a :class:`~refsnn.sim.network.SpikingNetwork` step by step.

The step schedule (``docs/semantics.md`` is the written version; this loop follows it):
for ``t = 1 .. T``:

1. **encode**: the input node takes the encoder's value for step ``t``;
2. for each node in topological order, **charge / fire / reset**: a synapse node computes its
   value from its inputs' values *of this same step* (no delay between layers); a neuron node
   adds that value to its membrane potential, fires and resets (its kind's step, see
   :mod:`refsnn.neurons`; every op's step class is in the kind registry,
   :data:`refsnn.neurons.base.STEP_OPS`);
3. **record**: spike counts of every neuron node, rasters and membrane potentials (after
   reset) of the nodes asked for, and the output's value goes to the network's decoder
   (:mod:`refsnn.sim.decoders`), which gives the readout at each requested ``T``.

One shortcut that cannot change a result: once the encoder's value stops changing
(``constant_from``: step 1 for analog input, step 2 for signGD's exact encoder), every node
reached from the input through stateless operators only (synapses, pooling of values, ...)
would compute the same value from the same arrays every step, so its value of that step is
kept and reused (for analog input the first layer's current is computed once, not ``T``
times).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from refsnn.checks import check_batch
from refsnn.errors import ConversionError, OptionError
from refsnn.model.graph import INPUT
from refsnn.sim.decoders import DECODERS
from refsnn.sim.encoders import ENCODERS
from refsnn.neurons.base import SNN_OPS, STEP_OPS
from refsnn.sim.network import SpikingNetwork
from refsnn.sim.recorders import MemoryRecorder
from refsnn.sim.steps import BACKENDS


@dataclass
class Run:
    """What one simulation produced.

    Attributes
    ----------
    steps : tuple of int
        The step counts at which the readout was taken, ascending.
    readout : dict of int to ndarray, shape (B, *output_shape)
        The decoder's readout after ``T`` steps, for each ``T`` in ``steps`` (mean output
        value for rate coding, see :mod:`refsnn.sim.decoders`).
    counts : dict of str to int64 ndarray, shape (B, *node_shape)
        Spikes per neuron over the whole run, for every neuron node.
    step_counts : dict of str to int64 ndarray, shape (T_max,)
        Spikes per step, summed over the batch and the node's neurons.
    rasters : dict of str to bool ndarray, shape (T_max, B, *node_shape)
        Spike rasters of the nodes asked for.
    potentials : dict of str to ndarray, shape (T_max, B, *node_shape)
        Membrane potentials after reset (signGD: the output estimate ``scale * v``), of the
        nodes asked for.
    saturated : dict of str to bool ndarray, shape (B, *node_shape)
        signGD neurons whose target at the last step lay beyond the reach of their estimate.
    """

    steps: tuple[int, ...]
    readout: dict[int, np.ndarray]
    counts: dict[str, np.ndarray]
    step_counts: dict[str, np.ndarray]
    rasters: dict[str, np.ndarray] = field(default_factory=dict)
    potentials: dict[str, np.ndarray] = field(default_factory=dict)
    saturated: dict[str, np.ndarray] = field(default_factory=dict)


#: Memory for one block's node values when the numba simulator picks its step block.
STEP_BLOCK_BYTES = 64 * 2**20
#: The most steps simulated together (beyond that, calls are large enough already).
MAX_STEP_BLOCK = 16
#: Samples x steps per stacked call the numba simulator aims for when it picks its step block.
STACK_ROWS = 32
#: ... and the multiply-adds per stacked call it aims for (a dense step's, samples x steps), per
#: dtype: a small network's calls are small at any batch, and each call and step costs a fixed
#: dispatch. Measured 2026-12-04 at batch 32 (ms per run, blocks of 1 -> the block this picks):
#: digits MLP (17 k MACs per sample) float64, T = 32: 3.3 -> 1.9 (16 steps); digits CNN (84 k)
#: float64 15.9 -> 12.5 (8), float32 13.9 -> 8.2 (16); the MLP 784-512-512-10 (670 k) was
#: slower with any block in float64 (T = 32: 10.4 ms at 1, 12.7 at 4), so it gets 1 there, but
#: faster in float32 (T = 128: 31.5 at 1, 22.8 at 8, 20.4 at 16), where it gets 11.
STACK_MACS = {"float64": 22_000_000, "float32": 256_000_000}


class Simulator:
    """Simulate a spiking network with one backend's kernels.

    Parameters
    ----------
    net : SpikingNetwork
    backend : {"numba", "numpy"}
        ``numba`` (parallel, event-driven kernels) or ``numpy`` (the plain reference). Both
        give bit-identical results.
    step_block : int or None
        Steps simulated together: a stackable node (synapses, pooling of values, ``add``: each
        sample's value from that sample's inputs alone) computes ``step_block`` steps in one
        call, their inputs stacked along the batch axis; then each stateful node (neurons,
        spike max pooling) runs those steps in order (an IF node whose potentials are not
        recorded in one call for the block, the others one call per step). Only the grouping
        of calls changes (fewer, larger kernel calls; more parallel jobs at batch 1): every
        value is the same bits as step by step (tested). ``None``: 1 for the ``numpy``
        reference (the plain step-by-step loop), and for ``numba`` :meth:`auto_step_block`
        (more steps per block for small batches and small networks). A network with recurrent
        edges (op ``recurrent``) runs blocks of 1 step; it refuses a larger ``step_block``.
    """

    def __init__(self, net: SpikingNetwork, backend: str = "numba", step_block=None):
        if backend not in BACKENDS:
            raise OptionError(f"backend: expected one of {sorted(BACKENDS)}, found {backend!r}")
        if step_block is not None and (not isinstance(step_block, (int, np.integer))
                                       or isinstance(step_block, bool) or step_block < 1):
            raise OptionError(f"step_block: expected a positive integer or None, found "
                              f"{step_block!r}")
        self.step_block = step_block if step_block is not None else \
            (1 if backend == "numpy" else None)
        self.net = net
        self.backend = BACKENDS[backend]
        graph = net.graph
        for node in graph.nodes:
            if node.op not in STEP_OPS:
                raise ConversionError(f"node '{node.name}': op '{node.op}' has no spiking "
                                      f"implementation; convert the model first")
        self.ops = [STEP_OPS[n.op](n, graph, self.backend, net.schedule) for n in graph.nodes]
        # nodes of the previous step's value (recurrent edges): each step needs the whole
        # previous step, so steps run one at a time
        self.recurrent = [(op, i) for i, op in enumerate(self.ops) if SNN_OPS[op.node.op].previous]
        if self.recurrent:
            if self.step_block not in (None, 1):
                raise OptionError(f"step_block: a network with recurrent edges (node "
                                  f"'{self.recurrent[0][0].node.name}') runs one step at a "
                                  f"time; give step_block=1 or None, not {self.step_block}")
            self.step_block = 1
        self.dtype = graph.dtype
        self.input_only = input_only_nodes(self.ops)
        # what auto_step_block weighs, per sample and step (computed here, not per run: at
        # batch 1 a run is a millisecond)
        self._elements = sum(int(np.prod(shape)) for shape in graph.shapes.values())
        self._macs = dense_macs(graph)

    def run(self, x: np.ndarray, steps, seed: int = 0, sample_ids=None,
            rasters: Sequence[str] = (), potentials: Sequence[str] = (),
            recorder=None, encoded: np.ndarray | None = None, sequence: bool = False) -> Run:
        """Simulate a batch.

        Parameters
        ----------
        x : ndarray, shape (B, *input_shape)
            The analog inputs (for Poisson encoding: values in [-1, 1]).
        steps : int or sequence of int
            Step count(s) at which to read out; the run lasts ``max(steps)`` steps.
        seed : int
            Seed of the Poisson encoder (unused by analog encoding; then it must stay 0).
        sample_ids : ndarray of int, shape (B,), optional
            Global ids of the samples (default ``0..B-1``); they pick each sample's random
            stream, so results do not depend on batching.
        rasters, potentials : sequence of str
            Neuron nodes whose spike rasters / membrane potentials to record.
        recorder : optional
            Where they go, step by step (:mod:`refsnn.sim.recorders`); default in memory.
        encoded : ndarray, shape (max(steps), B, *input_shape), optional
            The input node's value at each step, replacing the encoder's (e.g. the Poisson
            spikes a trace recorded, :mod:`refsnn.oracle.trace`); refused for analog encoding,
            whose input is ``x`` at every step by definition.
        sequence : bool
            ``x`` holds sequences, shape (B, T_seq, *input_shape) (a sequence data file's,
            :func:`refsnn.data.load_sequences`): the input node takes ``x[:, t - 1]`` at step
            ``t``, in place of the encoder; ``max(steps) <= T_seq``. For analog and Poisson
            encodings only (their input is a value of the sample at each step; signGD's
            encoders deliver increments of their own), with seed 0 and no ``encoded``.

        Returns
        -------
        Run
        """
        graph = self.net.graph
        x = (check_sequences(x, self.net, seed, encoded) if sequence
             else check_batch(x, graph.input_shape, dtype=self.dtype))
        steps = check_steps(steps)
        check_seed(self.net, seed)
        batch = x.shape[0]
        ids = np.arange(batch) if sample_ids is None else np.asarray(sample_ids)
        if ids.shape != (batch,):
            raise OptionError(f"sample_ids: expected shape ({batch},), found {ids.shape}")
        # neuron node name -> (its step op, its index in self.ops and states)
        neurons = {op.node.name: (op, i) for i, op in enumerate(self.ops) if op.is_neuron}
        check_recorded(self.net, (*rasters, *potentials))
        t_max = steps[-1]
        if sequence:
            encoder = _sequence_input(x, t_max)
        else:
            encoder = (ENCODERS[self.net.encoding](x, seed, ids, self.net.schedule)
                       if encoded is None else _recorded(encoded, self.net, x.shape, t_max))
        states = [op.init(batch) for op in self.ops]
        shapes = graph.shapes
        counts = {n: np.zeros((batch,) + shapes[n], np.int64) for n in neurons}
        step_counts = {n: np.zeros(t_max, np.int64) for n in neurons}
        recorder = MemoryRecorder() if recorder is None else recorder
        recorder.start(t_max, batch, {n: shapes[n] for n in rasters},
                       {n: shapes[n] for n in potentials}, self.dtype)
        decoder = DECODERS[self.net.decoder](self.net, (batch,) + shapes[graph.output],
                                             self.dtype)
        readout = {}
        kept = {}  # node -> its value from the step the encoder became constant
        block = self.step_block or self.auto_step_block(batch)
        for t0 in range(1, t_max + 1, block):
            ts = range(t0, min(t0 + block - 1, t_max) + 1)
            values = self._simulate_block(ts, encoder, states, kept, potentials, recorder)
            for name, (op, i) in neurons.items():
                step_counts[name][ts[0] - 1:ts[-1]] = self._count(op, values[name], counts[name])
            for k, t in enumerate(ts):
                for name, (op, i) in neurons.items():
                    if name in rasters:
                        recorder.spikes(t, name, op.fired(values[name][k]))
                decoder.add(t, values[graph.output][k])
                if t in steps:
                    readout[t] = decoder.read(t)
        saturated = {}
        for name, (op, i) in neurons.items():
            sat = op.saturated(states[i])
            if sat is not None:
                saturated[name] = sat
        return Run(steps, readout, counts, step_counts, *recorder.finish(), saturated)

    def _simulate_block(self, ts: range, encoder, states: list, kept: dict, potentials,
                        recorder):
        """Steps ``ts`` of every node, in topological order: node -> its values of the steps,
        a list of one array per step or one array stacked on a leading step axis (a stacked
        node's values stay one array, so that the next node needs no copy to stack them).

        The potentials asked for go to ``recorder`` here, after each step of their node,
        since a neuron's state is only at hand then.
        """
        constant_from = encoder.constant_from
        values = {INPUT: [encoder.step(t) for t in ts]}
        for op, state in zip(self.ops, states):
            name = op.node.name
            if SNN_OPS[op.node.op].previous:  # its input's value of the step before
                values[name] = [op.step(state)]
                continue
            inputs = [values[i] for i in op.node.inputs]
            if constant_from is not None and name in self.input_only:
                out = []
                for k, t in enumerate(ts):
                    value = kept.get(name)
                    if value is None:
                        value = op.step(state, *(x[k] for x in inputs))
                        if t >= constant_from:
                            kept[name] = value
                    out.append(value)
            elif op.stackable and len(ts) > 1:
                # the steps' inputs stacked along the batch axis: one call for all of them
                stacked = op.step(state, *(_along_batch(x) for x in inputs))
                out = stacked.reshape((len(ts), stacked.shape[0] // len(ts)) + stacked.shape[1:])
            elif op.block_steps and len(ts) > 1 and name not in potentials:
                # a neuron node: the block's steps in order, in one call
                out = op.step_block(state, *(_stacked(x) for x in inputs))
            else:
                out = []
                for k, t in enumerate(ts):
                    out.append(op.step(state, *(x[k] for x in inputs)))
                    if name in potentials:
                        recorder.potential(t, name, op.potential(state))
            values[name] = out
        for op, i in self.recurrent:  # blocks of one step: hold each input's value of it
            op.end_step(states[i], values[op.node.inputs[0]][0])
        return values

    def _count(self, op, values: list, counts: np.ndarray):
        """Add a block's spikes of one neuron node to ``counts``; the spikes of each step."""
        if len(values) > 1 and self.backend.count_block is not None:
            return self.backend.count_block(_stacked(values), op.spike_sign, counts)
        return [self.backend.count_spikes(v, op.spike_sign, counts) for v in values]

    def auto_step_block(self, batch: int) -> int:
        """Steps per block for ``step_block=None`` on the numba backend.

        Stacking pays where calls are small: a batch of ``b`` samples gets ``STACK_ROWS // b``
        steps per block (batch 1: 16 steps, so a kernel call has 16 samples to spread over
        the threads), or as many as keep a block's dense multiply-adds within the dtype's
        :data:`STACK_MACS` if that is more (a small network at batch 32; a large one gets 1,
        its calls are large already), at most :data:`MAX_STEP_BLOCK`, and fewer if one
        block's node values would exceed :data:`STEP_BLOCK_BYTES`.
        """
        per_step = max(1, batch * np.dtype(self.dtype).itemsize * self._elements)
        budget = STACK_MACS[np.dtype(self.dtype).name]
        wanted = max(STACK_ROWS // batch, budget // (batch * self._macs))
        return int(max(1, min(MAX_STEP_BLOCK, wanted, STEP_BLOCK_BYTES // per_step)))


def _stacked(values):
    """A block's values of one node, a list per step or already stacked: (K, B, ...)."""
    return values if isinstance(values, np.ndarray) else np.stack(values)


def _along_batch(values):
    """A block's values of one node, steps stacked along the batch axis: (K * B, ...); a view
    where they are one array already."""
    if isinstance(values, np.ndarray):
        return values.reshape((values.shape[0] * values.shape[1],) + values.shape[2:])
    return np.concatenate(values)


def check_seed(net: SpikingNetwork, seed: int) -> None:
    """Refuse a seed for analog encoding, which draws nothing."""
    if net.encoding == "analog" and seed != 0:
        raise OptionError("seed: analog encoding is deterministic and takes no seed")


def check_recorded(net: SpikingNetwork, names) -> None:
    """Refuse a node to record (raster or potential) that holds no neurons."""
    neurons = net.neuron_nodes()
    for name in names:
        if name not in neurons:
            raise OptionError(f"record: '{name}' is not a neuron node; neuron nodes: "
                              f"{', '.join(neurons) or 'none'}")


def dense_macs(graph) -> int:
    """Multiply-adds of one sample's dense step through the ``linear`` and ``conv2d`` nodes
    (at least 1): the work scale of a network's kernel calls."""
    total = 0
    for node in graph.nodes:
        w = node.params.get("weight")
        if node.op == "linear":
            total += int(w.size)
        elif node.op == "conv2d":
            out = graph.shapes[node.name]
            total += int(np.prod(out)) * int(np.prod(w.shape[1:]))
    return max(total, 1)


def input_only_nodes(ops) -> frozenset:
    """Names of the nodes whose value depends on the graph input through stateless ops only.

    Parameters
    ----------
    ops : list of StepOp, in topological order

    Returns
    -------
    frozenset of str
    """
    found = set()
    for op in ops:
        if op.stateless and all(i == INPUT or i in found for i in op.node.inputs):
            found.add(op.node.name)
    return frozenset(found)


class _Recorded:
    """An encoder that replays given per-step input values."""

    constant_from = None  # recorded values may change at any step

    def __init__(self, encoded):
        self.encoded = encoded

    def step(self, t):
        return self.encoded[t - 1]


def _recorded(encoded, net, shape, t_max) -> _Recorded:
    if net.encoding == "analog":
        raise OptionError("encoded: analog encoding feeds x at every step; pass no encoded input")
    encoded = np.asarray(encoded)
    if encoded.shape != (t_max,) + shape:
        raise OptionError(f"encoded: expected shape {(t_max,) + shape} (steps, batch, input), "
                          f"found {encoded.shape}")
    return _Recorded(np.ascontiguousarray(encoded, dtype=net.graph.dtype))


#: Encodings a sequence may replace: those whose input is a value of the sample at each step.
SEQUENCE_ENCODINGS = ("analog", "poisson")


def check_sequences(x, net: SpikingNetwork, seed: int, encoded) -> np.ndarray:
    """``x`` as a batch of sequences (B, T_seq, *input_shape) of the simulation dtype, or an
    error saying why ``net`` cannot take them."""
    if net.encoding not in SEQUENCE_ENCODINGS:
        raise OptionError(f"sequence input: a network with {net.encoding} encoding (method "
                          f"{net.method}) defines its own per-step input; sequences replace "
                          f"{' or '.join(SEQUENCE_ENCODINGS)} encoding only")
    if seed != 0 or encoded is not None:
        raise OptionError("sequence input: the sequence is the input of every step; give no "
                          "seed and no encoded input")
    arr = np.asarray(x)
    shape = tuple(net.graph.input_shape)
    return check_batch(arr, (arr.shape[1] if arr.ndim > 1 else 0,) + shape,
                       dtype=net.graph.dtype, what="input sequences (B, T, *input_shape)")


def _sequence_input(x: np.ndarray, t_max: int) -> _Recorded:
    """Steps 1..t_max of the sequences ``x`` (B, T_seq, ...), replayed step by step."""
    if t_max > x.shape[1]:
        raise OptionError(f"steps: the sequences have {x.shape[1]} steps; T = {t_max} would "
                          f"run past their end")
    return _Recorded(np.ascontiguousarray(np.swapaxes(x[:, :t_max], 0, 1)))


def check_steps(steps) -> tuple[int, ...]:
    values = [steps] if np.isscalar(steps) else list(steps)
    if not values or any(not isinstance(s, (int, np.integer)) or s < 1 for s in values):
        raise OptionError(f"steps: expected positive integers, found {steps!r}")
    return tuple(sorted({int(s) for s in values}))
