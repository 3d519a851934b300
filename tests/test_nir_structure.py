"""NIR graph structure (refsnn/nir/structure.py, refsnn/nir/reader.py): nested graphs
flattened, Conv1d, (1, N) parameters, every blocker named in one error. Skipped without the
nir extra."""

from __future__ import annotations

import numba
import numpy as np
import pytest

from conftest import THREADS
from refsnn.errors import ModelFormatError
from refsnn.sim.simulator import Simulator

nir = pytest.importorskip("nir")
from refsnn.nir.reader import from_nir  # noqa: E402

RNG = np.random.default_rng(11)
W1, B1 = RNG.normal(0, 0.7, (6, 4)), RNG.normal(0, 0.1, 6)
W_REC = RNG.normal(0, 0.3, (6, 6))
W2 = RNG.normal(0, 0.7, (3, 6))


def _lif(n):
    return nir.LIF(tau=np.full(n, 3.0), r=np.ones(n), v_leak=np.zeros(n),
                   v_threshold=np.full(n, 0.3), v_reset=np.zeros(n))


def _inp(n):
    return nir.Input(input_type={"input": np.array([n])})


def _out(n):
    return nir.Output(output_type={"output": np.array([n])})


def _flat():
    """in -> fc1 -> lif (with lif -> rec -> lif) -> fc2 -> out, written flat."""
    return nir.NIRGraph(nodes={
        "in": _inp(4), "fc1": nir.Affine(weight=W1, bias=B1), "G.lif": _lif(6),
        "G.rec": nir.Linear(weight=W_REC), "fc2": nir.Linear(weight=W2), "out": _out(3)},
        edges=[("in", "fc1"), ("fc1", "G.lif"), ("G.lif", "G.rec"), ("G.rec", "G.lif"),
               ("G.lif", "fc2"), ("fc2", "out")], type_check=False)


def _nested(named_ends=False, twice=False):
    """The same network with lif and rec in a nested graph G (inside H too with ``twice``)."""
    inner = nir.NIRGraph(nodes={"i": _inp(6), "lif": _lif(6), "rec": nir.Linear(weight=W_REC),
                                "o": _out(6)},
                         edges=[("i", "lif"), ("lif", "rec"), ("rec", "lif"), ("lif", "o")],
                         type_check=False)
    if twice:
        inner = nir.NIRGraph(nodes={"a": _inp(6), "H": inner, "b": _out(6)},
                             edges=[("a", "H"), ("H", "b")], type_check=False)
    into, out_of = ("G.i", "G.o") if named_ends else ("G", "G")
    return nir.NIRGraph(nodes={
        "in": _inp(4), "fc1": nir.Affine(weight=W1, bias=B1), "G": inner,
        "fc2": nir.Linear(weight=W2), "out": _out(3)},
        edges=[("in", "fc1"), ("fc1", into), (out_of, "fc2"), ("fc2", "out")],
        type_check=False)


@pytest.mark.parametrize("kw", [{}, {"named_ends": True}, {"twice": True}])
def test_nested_graph_runs_as_its_flat_twin(kw):
    x = RNG.uniform(0, 1, (3, 4))
    flat = from_nir(_flat(), dt=1.0)
    ref = Simulator(flat, "numpy").run(x, [20], rasters=["G.lif"])
    net = from_nir(_nested(**kw), dt=1.0)
    lif = "G.H.lif" if kw.get("twice") else "G.lif"
    assert lif in net.graph and f"{lif[:-4]}.rec__previous" in net.graph
    run = Simulator(net, "numpy").run(x, [20], rasters=[lif])
    assert ref.rasters["G.lif"].any()
    assert np.array_equal(ref.rasters["G.lif"], run.rasters[lif])
    assert np.array_equal(ref.readout[20], run.readout[20])


def test_nested_graph_with_two_inputs_needs_named_ends():
    g = nir.NIRGraph(nodes={"bi": _inp(4), "ci": _inp(4), "b": nir.Linear(weight=W1),
                            "bo": _out(6)},
                     edges=[("bi", "b"), ("ci", "b"), ("b", "bo")], type_check=False)
    outer = nir.NIRGraph(nodes={"in": _inp(4), "G": g, "out": _out(6)},
                         edges=[("in", "G"), ("G", "out")], type_check=False)
    with pytest.raises(ModelFormatError, match="/node/nodes/G: edges: expected a nested graph "
                       "with one Input node"):
        from_nir(outer, dt=1.0)
    outer.edges = [("in", "G.bi"), ("in", "G.ci"), ("G", "out")]
    x = RNG.uniform(0, 1, (2, 4))
    got = Simulator(from_nir(outer, dt=1.0), "numpy").run(x, [1]).readout[1]
    np.testing.assert_allclose(got, (2 * x) @ W1.T, rtol=1e-12)


def _conv1d_ref(x, w, b, stride, pad):
    """Conv1d written out: ``out[., o, j] = b[o] + sum over c, k of w[o, c, k] x[., c, j s +
    k - p]``."""
    n, c, length = x.shape
    xp = np.zeros((n, c, length + 2 * pad))
    xp[:, :, pad:pad + length] = x
    n_out = (length + 2 * pad - w.shape[2]) // stride + 1
    out = np.zeros((n, w.shape[0], n_out))
    for j in range(n_out):
        win = xp[:, :, j * stride:j * stride + w.shape[2]]
        out[:, :, j] = np.einsum("nck,ock->no", win, w) + b
    return out


@pytest.mark.parametrize("stride, pad", [(1, 1), (2, 0), (1, "same"), (3, 2)])
def test_conv1d_is_the_written_convolution_and_numba_equals_numpy(stride, pad):
    c, length, co, k = 3, 11, 4, 3
    w, b = RNG.normal(0, 1, (co, c, k)), RNG.normal(0, 1, co)
    graph = nir.NIRGraph(nodes={
        "in": nir.Input(input_type={"input": np.array([c, length])}),
        "conv": nir.Conv1d(input_shape=length, weight=w, stride=stride, padding=pad,
                           dilation=1, groups=1, bias=b.reshape(1, co)),
        "if": nir.IF(r=np.ones(1), v_threshold=np.full(1, 0.7)),
        "out": nir.Output(output_type={"output": None})},
        edges=[("in", "conv"), ("conv", "if"), ("if", "out")], type_check=False)
    net = from_nir(graph, dt=1.0)
    x = RNG.uniform(0, 1, (2, c, length))
    p = 1 if pad == "same" else pad
    ref = _conv1d_ref(x, w, b, stride, p)
    # the Conv1d alone: its value is the readout after one step
    graph.nodes.pop("if")
    graph.edges = [("in", "conv"), ("conv", "out")]
    value = Simulator(from_nir(graph, dt=1.0), "numpy").run(x, [1]).readout[1]
    assert value.shape == ref.shape
    np.testing.assert_allclose(value, ref, rtol=1e-12, atol=1e-14)
    base = Simulator(net, "numpy").run(x, [12], rasters=["if"], potentials=["if"])
    assert base.rasters["if"].any()
    for threads in THREADS:
        numba.set_num_threads(threads)
        run = Simulator(net).run(x, [12], rasters=["if"], potentials=["if"])
        assert np.array_equal(base.rasters["if"], run.rasters["if"])
        assert np.array_equal(base.potentials["if"], run.potentials["if"])


def test_one_by_n_parameters_are_read_as_n():
    n = 5
    w, b = RNG.normal(0, 1, (n, 4)), RNG.normal(0, 1, n)
    tau = RNG.uniform(1, 3, n)

    def graph(shape):
        return nir.NIRGraph(nodes={
            "in": _inp(4), "fc": nir.Affine(weight=w, bias=b.reshape(shape)),
            "li": nir.LI(tau=tau.reshape(shape), r=np.ones(shape), v_leak=np.zeros(shape)),
            "out": _out(n)}, edges=[("in", "fc"), ("fc", "li"), ("li", "out")],
            type_check=False)
    x = RNG.uniform(0, 1, (2, 4))
    a = Simulator(from_nir(graph((n,)), dt=0.5), "numpy").run(x, [9]).readout[9]
    b2 = Simulator(from_nir(graph((1, n)), dt=0.5), "numpy").run(x, [9]).readout[9]
    assert np.array_equal(a, b2)
    # a scalar bias broadcasts; False (PyTorch's bias=False) is no bias: a Linear
    scalar, none, linear = graph((n,)), graph((n,)), graph((n,))
    scalar.nodes["fc"].bias = np.float64(0.25)
    none.nodes["fc"].bias = np.False_
    linear.nodes["fc"] = nir.Linear(weight=w)
    got = {k: Simulator(from_nir(g, dt=0.5), "numpy").run(x, [9]).readout[9]
           for k, g in [("scalar", scalar), ("none", none), ("linear", linear)]}
    b_scalar = graph((n,))
    b_scalar.nodes["fc"].bias = np.full(n, 0.25)
    assert np.array_equal(got["scalar"], Simulator(from_nir(b_scalar, dt=0.5), "numpy")
                          .run(x, [9]).readout[9])
    assert np.array_equal(got["none"], got["linear"])
    bad = graph((1, n))
    bad.nodes["fc"].bias = np.True_
    with pytest.raises(ModelFormatError, match=r"/node/nodes/fc: bias: expected an array of "
                       r"numbers or False \(no bias\), found True"):
        from_nir(bad, dt=0.5)
    bad.nodes["fc"].bias = np.zeros((2, n))
    with pytest.raises(ModelFormatError, match=r"/node/nodes/fc: bias: expected shape \(5,\) "
                       r"or \(1, 5\), found \(2, 5\)"):
        from_nir(bad, dt=0.5)


class Spiral:
    """A node type no reader knows (NIR's own types may gain readers)."""


class Mystery:
    pass


def test_every_blocker_is_named_in_one_error():
    n = 3
    graph = nir.NIRGraph(nodes={
        "in": _inp(n), "in2": _inp(n), "a": Spiral(), "b": nir.IF(r=np.ones(n),
                                                                   v_threshold=np.ones(n)),
        "c": Mystery(), "out": _out(n)},
        edges=[("in", "a"), ("a", "b"), ("b", "c"), ("c", "out")], type_check=False)
    with pytest.raises(ModelFormatError) as e:
        from_nir(graph, dt=1.0)
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.endswith("/node/nodes: type: expected nodes refsnn simulates, found 3 "
                        "blockers: Spiral at a (no reader); Mystery at c (no reader); Input "
                        "at in2 (no edge leaves it)")
    graph.nodes["c"] = Spiral()
    with pytest.raises(ModelFormatError, match=r"blockers: Spiral at a, c \(no reader\); Input "
                                               r"at in2 \(no edge leaves it\)$"):
        from_nir(graph, dt=1.0)
    graph.nodes.pop("in2")
    # no time step for the IF node: the unreadable nodes are named first
    with pytest.raises(ModelFormatError, match=r"found 2 blockers: Spiral at a, c \(no reader\)$"):
        from_nir(graph)
    graph.nodes["in2"] = _inp(n)
    # one blocker keeps the error naming its node
    graph.nodes.pop("in2")
    graph.nodes["c"] = nir.IF(r=np.ones(n), v_threshold=np.ones(n))
    with pytest.raises(ModelFormatError, match="/node/nodes/a: type: expected a node refsnn "
                       "simulates, found Spiral \\(no reader\\)"):
        from_nir(graph, dt=1.0)


def test_unsupported_features_are_blockers_too():
    """A dilated convolution and 'same' padding with an even kernel are named with an
    unreadable node type;
    the nodes they feed are not checked (their input is unknown). Alone, a feature keeps its
    own error."""
    conv = dict(input_shape=(6, 6), weight=RNG.normal(0, 1, (2, 1, 3, 3)), stride=1,
                padding=0, groups=1, bias=np.zeros(2))
    graph = nir.NIRGraph(nodes={
        "in": nir.Input(input_type={"input": np.array([1, 6, 6])}),
        "conv": nir.Conv2d(dilation=2, **conv),
        "flat": nir.Conv2d(input_shape=(6, 6), weight=np.ones((2, 1, 2, 2)), stride=1,
                           padding="same", dilation=1, groups=1, bias=np.zeros(2)),
        "odd": Spiral(), "sum": nir.Scale(scale=np.ones(1)),
        "out": nir.Output(output_type={"output": None})},
        edges=[("in", "conv"), ("in", "flat"), ("conv", "odd"), ("flat", "sum"),
               ("odd", "out")], type_check=False)
    with pytest.raises(ModelFormatError) as e:
        from_nir(graph, dt=1.0)
    msg = str(e.value)
    assert "found 3 blockers: Spiral at odd (no reader); " in msg and "\n" not in msg
    assert "Conv2d at conv (dilation (2, 2))" in msg
    assert "Conv2d at flat (padding same)" in msg
    graph.nodes.pop("odd")
    graph.nodes.pop("flat")
    graph.nodes.pop("sum")
    graph.edges = [("in", "conv"), ("conv", "out")]
    with pytest.raises(ModelFormatError, match=r"/node/nodes/conv: dilation: expected 1 "):
        from_nir(graph, dt=1.0)


def _scale(shape, k):
    return nir.Scale(scale=np.arange(1.0, 1.0 + np.prod(shape)).reshape(shape) * k)


def test_several_inputs_and_outputs_are_concatenated_in_sorted_name_order(restore_threads):
    """docs/semantics.md, "NIR graphs": the network's input is the concatenation of the
    flattened Inputs in sorted name order (``a_in`` (2,) then ``b_in`` (2, 3)), the readout
    that of the flattened Outputs in sorted name order (``out_a`` then ``out_b``), whatever
    the order of the file's nodes."""
    sa, sb = _scale((2,), 0.5), _scale((2, 3), -0.25)
    graph = nir.NIRGraph(nodes={
        "out_b": nir.Output(output_type={"output": np.array([2, 3])}), "sb": sb, "sa": sa,
        "b_in": nir.Input(input_type={"input": np.array([2, 3])}), "a_in": _inp(2),
        "out_a": _out(2)},
        edges=[("b_in", "sb"), ("a_in", "sa"), ("sb", "out_b"), ("sa", "out_a")])
    net = from_nir(graph)
    x = RNG.normal(0, 1, (4, 8))
    got = Simulator(net, "numpy").run(x, [1, 3]).readout
    want = np.concatenate([x[:, :2] * sa.scale,
                           (x[:, 2:].reshape(4, 2, 3) * sb.scale).reshape(4, 6)], axis=1)
    assert got[1].shape == (4, 8)
    np.testing.assert_array_equal(got[1], want)  # the mean of one step: the value itself
    for threads in THREADS:
        numba.set_num_threads(threads)
        assert np.array_equal(Simulator(net).run(x, [3]).readout[3], got[3])


def test_one_input_and_output_add_no_nodes():
    """A graph with one Input and one Output reads the network's input itself and reads out
    the Output's source: no slice, reshape, flatten or concat node."""
    net = from_nir(nir.NIRGraph(nodes={"in": _inp(3), "s": _scale((3,), 1.0), "out": _out(3)},
                                edges=[("in", "s"), ("s", "out")]))
    assert net.graph.shapes[net.graph.output] == (3,)
    assert {n.op for n in net.graph.nodes} == {"hadamard"}


def test_unfed_nested_inputs_are_the_inputs_only_without_a_top_level_input():
    """With no top-level Input, the nested Inputs nothing feeds are the graph's inputs (sorted
    by name, ``G.input`` then ``H.input``); with a top-level Input, an unfed nested Input is an
    error naming it; with no Output at all, the graph is refused."""
    def nested(k):
        return nir.NIRGraph(nodes={"input": _inp(2), "s": _scale((2,), k), "output": _out(2)},
                            edges=[("input", "s"), ("s", "output")])
    graph = nir.NIRGraph(nodes={"H": nested(-1.0), "G": nested(2.0), "E": _out(2)},
                         edges=[("H", "E"), ("G", "E")], type_check=False)
    x = RNG.normal(0, 1, (3, 4))
    got = Simulator(from_nir(graph), "numpy").run(x, [1]).readout[1]
    np.testing.assert_array_equal(got, x[:, 2:] * -np.arange(1.0, 3.0)
                                  + x[:, :2] * 2 * np.arange(1.0, 3.0))  # H's edge first
    graph.nodes["in"] = _inp(2)
    graph.edges.append(("in", "E"))
    with pytest.raises(ModelFormatError, match=r"/node/nodes/[GH]\.input: edges: expected at "
                                               r"least one input edge, found none"):
        from_nir(graph)
    graph.nodes.pop("E")
    graph.edges = [("in", "H")]
    with pytest.raises(ModelFormatError, match=r"/node/nodes: nodes: expected at least one "
                       r"Input and one Output node, found 1 Input and 0 Output nodes"):
        from_nir(graph)


@pytest.mark.parametrize("first, back", [("a_in", "q__previous"), ("z_in", "p__previous")])
def test_the_search_for_recurrent_edges_starts_at_the_inputs_in_sorted_name_order(first, back):
    """Inputs ``first`` -> p and the other -> q, with the cycle p <-> q: the search starts at
    the input first in name order, so the edge back into the node it feeds is the recurrent
    one (q -> p when a_in feeds p, p -> q when the name order is turned round)."""
    other = "z_in" if first == "a_in" else "a_in"
    graph = nir.NIRGraph(nodes={"a_in": _inp(2), "z_in": _inp(2), "p": _scale((2,), 0.5),
                                "q": _scale((2,), 0.25), "out": _out(2)},
                         edges=[(first, "p"), (other, "q"), ("p", "q"), ("q", "p"),
                                ("q", "out")], type_check=False)
    names = {n.name for n in from_nir(graph).graph.nodes}
    assert back in names and {"p__previous", "q__previous"} - {back} - names
