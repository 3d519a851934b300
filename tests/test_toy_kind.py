"""A new neuron kind is one module: a toy kind defined and registered entirely in this file
(schema, NumPy step, Numba kernel, trace spec, one departure, NIR mapping) simulates on both
backends, records a trace, is compared and round-trips through NIR without an edit anywhere
else in refsnn (the walk-through of ``docs/architecture.md``, kept honest by this test).

The toy: ``v <- v / 2 + I``; a spike ``z = 1`` where ``v >= v_threshold`` (inclusive), then
``v <- 0``; the event value is ``z``.
"""

from __future__ import annotations

import numba
import numpy as np
import pytest

import refsnn.jit
from refsnn.jit import parallel, prange
from refsnn.model import make_graph
from refsnn.model.ops import OpSpec
from refsnn.neurons.base import (SNN_OPS, Kind, NirSpec, StepOp, TraceSpec, register,
                                 unregister)
from refsnn.neurons.nir_base import finite, flat, full, same
from refsnn.neurons.replay import delay
from refsnn.oracle.compare import compare
from refsnn.oracle.trace import read_trace, record_trace, write_trace
from refsnn.sim.network import SpikingNetwork
from refsnn.sim.simulator import Simulator

OP = "toy_half"


def toy_step_numpy(v, current, v_threshold, strict=False):
    """Reference step on (B, N) arrays; ``strict`` (fire on ``>``) is the departure."""
    v *= 0.5
    v += current
    fired = v > v_threshold if strict else v >= v_threshold
    v[fired] = 0.0
    return fired.astype(v.dtype)


@parallel(work=lambda v, current, v_threshold, out: v.size)
def _toy_kernel(v, current, v_threshold, out):
    for b in prange(v.shape[0]):
        for i in range(v.shape[1]):
            x = v[b, i] * 0.5 + current[b, i]
            if x >= v_threshold[i]:
                out[b, i] = 1.0
                x = 0.0
            else:
                out[b, i] = 0.0
            v[b, i] = x


def toy_step_numba(v, current, v_threshold):
    out = np.empty_like(v)
    _toy_kernel(v, current, v_threshold, out)
    return out


class ToyNeurons(StepOp):
    is_neuron, spike_sign, stateless = True, 1, False
    KERNELS = {"numpy": {"step": toy_step_numpy}, "numba": {"step": toy_step_numba}}

    def __init__(self, node, graph, backend, schedule):
        super().__init__(node, graph, backend, schedule)
        self.theta = flat(node, "v_threshold")

    def init(self, batch):
        return np.zeros((batch, self.theta.size), self.theta.dtype)

    def step(self, v, x):
        out = self.kernels["step"](v, np.ascontiguousarray(x.reshape(v.shape)), self.theta)
        return out.reshape(x.shape)


def replay(layer, strict=False):
    """The layer replayed on its recorded current through the reference step."""
    cur = layer.current
    flat_cur = cur.reshape(cur.shape[:2] + (-1,))
    theta = np.asarray(layer.params["v_threshold"], cur.dtype)
    v = np.zeros(flat_cur.shape[1:], cur.dtype)
    return np.stack([toy_step_numpy(v, c, theta, strict) > 0 for c in flat_cur]).reshape(
        cur.shape)


def _strict(ref, other, rtol):
    if ref.current is None:
        return False, ""
    return bool(np.array_equal(replay(ref, strict=True), other)), "fires on v > v_threshold"


def _export(node, shape):
    """NIR has no node for the toy: it borrows CubaLIF's class to carry its threshold (while
    registered, the toy is the last kind that reads CubaLIF, so the reader picks it over
    ``cuba_lif``); the other fields are fillers nothing reads."""
    ones = np.ones(shape)
    return dict(tau_syn=ones, tau_mem=ones, r=ones, v_leak=0 * ones, v_reset=0 * ones,
                v_threshold=np.array(node.params["v_threshold"])), None


TOY = Kind(
    OP, ToyNeurons,
    spec=OpSpec(OP, 1, params=("v_threshold",), param_shapes=full("v_threshold"),
                out_shape=same),
    trace=TraceSpec(params=lambda op: {"v_threshold": op.theta},
                    checks={"v_threshold": (finite, "finite real numbers")}),
    hypotheses={"delay": (delay, False), "comparison": (_strict, False)},
    nir=NirSpec("CubaLIF", export=_export))


@pytest.fixture
def toy():
    register(TOY)
    try:
        yield TOY
    finally:
        unregister(OP)


def _net():
    """Input (4,) -> linear -> toy (6) -> linear -> toy (3): dyadic weights and inputs, so
    that potentials land exactly on the threshold (where the departure shows)."""
    rng = np.random.default_rng(5)
    dy = lambda a: np.round(a * 4) / 4
    nodes = [
        dict(name="fc1", op="linear", inputs=["input"],
             params={"weight": dy(rng.normal(0, 0.8, (6, 4))), "bias": dy(rng.normal(0, .2, 6))}),
        dict(name="n1", op=OP, inputs=["fc1"], params={"v_threshold": np.full(6, 0.75)}),
        dict(name="fc2", op="linear", inputs=["n1"],
             params={"weight": dy(rng.normal(0.3, 0.8, (3, 6))), "bias": np.full(3, 0.25)}),
        dict(name="n2", op=OP, inputs=["fc2"], params={"v_threshold": np.full(3, 0.5)}),
    ]
    return SpikingNetwork(make_graph((4,), nodes, "n2", ops=SNN_OPS), "if", "analog")


X = np.round(np.random.default_rng(2).uniform(0, 1, (5, 4)) * 4) / 4


def _same_runs(a, b):
    assert a.steps == b.steps
    for t in a.steps:
        assert np.array_equal(a.readout[t], b.readout[t])
    assert a.counts.keys() == b.counts.keys() and a.potentials.keys() == b.potentials.keys()
    for name in a.counts:
        assert np.array_equal(a.counts[name], b.counts[name])
    for name in a.potentials:
        assert np.array_equal(a.potentials[name], b.potentials[name])


def test_toy_kind_simulates_bit_identically_on_both_backends(toy, monkeypatch):
    monkeypatch.setattr(refsnn.jit, "SERIAL_BELOW", 0)  # the kernels' parallel path too
    net = _net()
    assert net.neuron_nodes() == ["n1", "n2"]
    ref = Simulator(net, "numpy").run(X, [8, 24], potentials=["n1", "n2"])
    assert ref.counts["n1"].sum() > 0 and ref.counts["n2"].sum() > 0
    before = numba.get_num_threads()
    try:
        for threads in (1, 2):
            numba.set_num_threads(threads)
            for block in (1, 4):
                _same_runs(ref, Simulator(net, "numba", step_block=block).run(
                    X, [8, 24], potentials=["n1", "n2"]))
    finally:
        numba.set_num_threads(before)


def test_toy_kind_traces_and_a_departure_is_named(toy, tmp_path):
    net = _net()
    write_trace(tmp_path / "ref.h5", record_trace(Simulator(net, "numpy"), X, 24))
    ref = read_trace(tmp_path / "ref.h5")
    assert ref.layers["n1"].kind == OP and ref.layers["n1"].current.shape == (24, 5, 6)
    assert np.array_equal(ref.layers["n1"].params["v_threshold"], np.full(6, 0.75))
    assert np.array_equal(replay(ref.layers["n1"]), ref.layers["n1"].spikes)
    assert compare(ref, ref).first_divergence is None
    sim = Simulator(net, "numpy")
    for op in sim.ops:  # the departure, injected into the simulation
        if op.node.op == OP:
            op.kernels = {"step": lambda v, c, theta: toy_step_numpy(v, c, theta, strict=True)}
    other = record_trace(sim, X, 24)
    first = compare(ref, other).first_divergence
    assert first is not None and first.kind == "comparison", first


def test_toy_kind_round_trips_through_nir(toy, tmp_path):
    pytest.importorskip("nir")
    from refsnn.nir.reader import load_nir
    from refsnn.nir.writer import export_nir

    net = _net()
    export_nir(net, tmp_path / "toy.nir")
    back = load_nir(tmp_path / "toy.nir")
    assert [n.op for n in back.graph.nodes] == [n.op for n in net.graph.nodes]
    for node in net.graph.nodes:
        for key, value in node.params.items():
            assert np.array_equal(back.graph.node(node.name).params[key], value)
    _same_runs(Simulator(net, "numpy").run(X, 16, potentials=["n1"]),
               Simulator(back, "numpy").run(X, 16, potentials=["n1"]))


def test_unknown_kind_is_named_and_the_toy_is_gone_after_the_test():
    from refsnn.neurons.base import lookup

    with pytest.raises(KeyError, match=f"unknown kind '{OP}'"):
        lookup(OP)
    assert OP not in SNN_OPS
