"""Recurrent edges in NIR graphs (op ``recurrent``, refsnn/nir/structure.py): a back edge
carries its source's value of the previous step (0 at step 1), chosen by a DFS from the Input
in sorted name order, whatever the file's edge order. Skipped without the nir extra."""

from __future__ import annotations

import numba
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from conftest import ROOT, THREADS
from refsnn.errors import ModelFormatError, OptionError
from refsnn.oracle.compare import compare
from refsnn.oracle.trace import record_trace
from refsnn.sim.network import load_snn, save_snn
from refsnn.sim.simulator import Simulator

nir = pytest.importorskip("nir")
from refsnn.nir.reader import from_nir  # noqa: E402


def _loop(n, c, edges=None):
    """Input -> x (Scale 1: exact, summing the input and the feedback) -> out; x -> fb (Scale c)
    -> x. The DFS makes fb -> x the recurrent edge: x_t = u + c x_{t-1}."""
    nodes = {"in": nir.Input(input_type={"input": np.array([n])}),
             "x": nir.Scale(scale=np.ones(n)),
             "fb": nir.Scale(scale=np.full(n, c)),
             "out": nir.Output(output_type={"output": np.array([n])})}
    edges = edges or [("in", "x"), ("fb", "x"), ("x", "fb"), ("x", "out")]
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


@settings(max_examples=40, deadline=None)
@given(c=st.floats(-0.95, 0.95), u=st.floats(-2, 2), steps=st.integers(1, 40))
def test_linear_loop_equals_the_unrolled_loop_and_its_closed_form(c, u, steps):
    net = from_nir(_loop(2, c), dt=1.0)
    x = np.array([[u, -u]])
    run = Simulator(net, "numpy").run(x, steps)
    # the same loop unrolled by hand: the add node sums in edge order (input, then feedback)
    total, prev = np.zeros((1, 2)), np.zeros((1, 2))
    for _ in range(steps):
        value = (x + prev) * np.ones(2)
        total += value
        prev = value * np.full(2, c)
    assert np.array_equal(run.readout[steps], total / steps)
    # closed form: x_t = u (1 - c^t) / (1 - c), summed over t = 1..T
    closed = x / (1 - c) * (steps - c * (1 - c ** steps) / (1 - c)) / steps
    np.testing.assert_allclose(run.readout[steps], closed, rtol=1e-9, atol=1e-12)


def _rnn(seed=3, n_in=5, n=8, n_out=3, edges_reversed=False):
    """Input -> fc -> lif, lif -> rec (Affine) -> lif, lif -> fc_out -> li -> out."""
    rng = np.random.default_rng(seed)
    nodes = {"in": nir.Input(input_type={"input": np.array([n_in])}),
             "fc": nir.Affine(weight=rng.normal(0, 0.8, (n, n_in)), bias=rng.normal(0, .1, n)),
             "lif": nir.LIF(tau=rng.uniform(2, 5, n), r=np.ones(n), v_leak=np.zeros(n),
                            v_threshold=np.full(n, 0.4), v_reset=np.zeros(n)),
             "rec": nir.Affine(weight=rng.normal(0, 0.4, (n, n)), bias=np.zeros(n)),
             "fc_out": nir.Linear(weight=rng.normal(0, 0.5, (n_out, n))),
             "li": nir.LI(tau=np.full(n_out, 3.0), r=np.ones(n_out), v_leak=np.zeros(n_out)),
             "out": nir.Output(output_type={"output": np.array([n_out])})}
    edges = [("in", "fc"), ("fc", "lif"), ("lif", "rec"), ("rec", "lif"), ("lif", "fc_out"),
             ("fc_out", "li"), ("li", "out")]
    return nir.NIRGraph(nodes=nodes, edges=edges[::-1] if edges_reversed else edges,
                        type_check=False)


def _x(n_in=5):
    return np.random.default_rng(4).uniform(0, 1, (3, n_in))


def test_recurrent_node_is_the_back_edge_of_the_dfs():
    net = from_nir(_rnn(), dt=1.0)
    rec = net.graph.node("rec__previous")
    assert rec.op == "recurrent" and rec.inputs == ("rec",)
    assert net.graph.node("lif__sum").inputs == ("fc", "rec__previous")
    # reversed edge order in the file: the same recurrent edge, the same network
    other = from_nir(_rnn(edges_reversed=True), dt=1.0)
    assert [n.op for n in other.graph.nodes if n.op == "recurrent"] == ["recurrent"]
    assert other.graph.node("rec__previous").inputs == ("rec",)


def test_numba_equals_numpy_on_1_and_2_threads_and_round_trips(tmp_path):
    net = from_nir(_rnn(), dt=1.0)
    names = net.neuron_nodes()
    ref = Simulator(net, "numpy").run(_x(), [5, 30], rasters=names, potentials=names)
    assert ref.counts["lif"].sum() > 0
    for threads in THREADS:
        numba.set_num_threads(threads)
        for block in (None, 1):
            run = Simulator(net, step_block=block).run(_x(), [5, 30], rasters=names,
                                                       potentials=names)
            for n in names:
                assert np.array_equal(ref.rasters[n], run.rasters[n])
                assert np.array_equal(ref.potentials[n], run.potentials[n])
            assert all(np.array_equal(ref.readout[t], run.readout[t]) for t in (5, 30))
    save_snn(net, tmp_path / "rnn.h5")
    back = Simulator(load_snn(tmp_path / "rnn.h5"), "numpy").run(_x(), [5, 30])
    assert all(np.array_equal(ref.readout[t], back.readout[t]) for t in (5, 30))


def test_recurrence_changes_the_result_and_starts_from_zero():
    """Without the recurrent Affine's weights the result differs; at step 1 it adds zero."""
    graph = _rnn()
    net = from_nir(graph, dt=1.0)
    graph.nodes["rec"].weight = np.zeros_like(graph.nodes["rec"].weight)
    cut = from_nir(graph, dt=1.0)
    a = Simulator(net, "numpy").run(_x(), [1, 30], potentials=["lif"])
    b = Simulator(cut, "numpy").run(_x(), [1, 30], potentials=["lif"])
    assert np.array_equal(a.potentials["lif"][0], b.potentials["lif"][0])
    assert not np.array_equal(a.potentials["lif"], b.potentials["lif"])


def test_step_block_above_one_is_refused_and_trace_compare_work():
    net = from_nir(_rnn(), dt=1.0)
    with pytest.raises(OptionError, match="recurrent edges.*step_block=1"):
        Simulator(net, step_block=4)
    assert Simulator(net).step_block == 1
    ref = record_trace(Simulator(net, "numpy"), _x(), 20)
    other = record_trace(Simulator(net), _x(), 20)
    assert ref.layers["lif"].spikes.any()
    assert compare(ref, other).first_divergence is None


def test_recurrent_shape_mismatch_is_one_line():
    """A back edge whose source's shape differs from the other inputs of its destination."""
    n = 4
    graph = nir.NIRGraph(nodes={
        "in": nir.Input(input_type={"input": np.array([n])}),
        "a": nir.IF(r=np.ones(n), v_threshold=np.ones(n)),
        "b": nir.Affine(weight=np.ones((n + 1, n)), bias=np.zeros(n + 1)),
        "out": nir.Output(output_type={"output": np.array([n])})},
        edges=[("in", "a"), ("a", "b"), ("b", "a"), ("a", "out")], type_check=False)
    with pytest.raises(ModelFormatError, match=r"/nodes/b__previous: shape: expected the "
                       r"shape of its input 'b', \(5,\), found \(4,\)") as e:
        from_nir(graph, dt=1.0)
    assert "\n" not in str(e.value)


def test_graph_with_a_cycle_not_reached_from_the_input():
    """The shipped NIRTorch feedback graph: its loop is not reached from the Input (which
    feeds the Output directly); the DFS from the unreached nodes in name order makes
    feedback_weights -> feedback_ir recurrent."""
    from refsnn.nir.reader import load_nir

    net = load_nir(ROOT / "data/nir/NIRTorch/tests/feedback_graph.nir", dt=1e-3)
    assert [n.inputs for n in net.graph.nodes if n.op == "recurrent"] == [("feedback_weights",)]
    x = _x(net.graph.input_shape[0])
    ref = Simulator(net, "numpy").run(x, 25, potentials=["state"])
    for threads in THREADS:
        numba.set_num_threads(threads)
        run = Simulator(net).run(x, 25, potentials=["state"])
        assert np.array_equal(ref.potentials["state"], run.potentials["state"])
        assert np.array_equal(ref.readout[25], run.readout[25])
