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
                        "blockers: Spiral at a (no reader); Mystery at c (no reader); 2 Input "
                        "and 1 Output nodes (refsnn reads one of each)")
    graph.nodes["c"] = Spiral()
    with pytest.raises(ModelFormatError, match=r"blockers: Spiral at a, c \(no reader\); 2"):
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
    """A dilated convolution and a partial Flatten are named with an unreadable node type;
    the nodes they feed are not checked (their input is unknown). Alone, a feature keeps its
    own error."""
    conv = dict(input_shape=(6, 6), weight=RNG.normal(0, 1, (2, 1, 3, 3)), stride=1,
                padding=0, groups=1, bias=np.zeros(2))
    graph = nir.NIRGraph(nodes={
        "in": nir.Input(input_type={"input": np.array([1, 6, 6])}),
        "conv": nir.Conv2d(dilation=2, **conv),
        "flat": nir.Flatten(input_type={"input": np.array([1, 6, 6])}, start_dim=1),
        "odd": Spiral(), "sum": nir.Scale(scale=np.ones(1)),
        "out": nir.Output(output_type={"output": None})},
        edges=[("in", "conv"), ("in", "flat"), ("conv", "odd"), ("flat", "sum"),
               ("odd", "out")], type_check=False)
    with pytest.raises(ModelFormatError) as e:
        from_nir(graph, dt=1.0)
    msg = str(e.value)
    assert "found 3 blockers: Spiral at odd (no reader); " in msg and "\n" not in msg
    assert "Conv2d at conv (dilation (2, 2))" in msg
    assert "Flatten at flat (start_dim/end_dim 1 and -1)" in msg
    graph.nodes.pop("odd")
    graph.nodes.pop("flat")
    graph.nodes.pop("sum")
    graph.edges = [("in", "conv"), ("conv", "out")]
    with pytest.raises(ModelFormatError, match=r"/node/nodes/conv: dilation: expected 1 "):
        from_nir(graph, dt=1.0)
