"""NIR export and import (refsnn/nir/writer.py, reader.py). Skipped without the
``nir`` extra (CI installs it)."""

from __future__ import annotations

import numba
import numpy as np
import pytest

from conftest import DATA, MODELS, THREADS, small_cnn, small_mlp
from refsnn.conversion import convert_bsnn, convert_if, convert_signgd
from refsnn.data import load_data
from refsnn.errors import ConversionError, ModelFormatError, OptionError
from refsnn.files import load_model
from refsnn.model import make_graph
from refsnn.sim.network import SNN_OPS, SpikingNetwork
from refsnn.sim.simulator import Simulator

nir = pytest.importorskip("nir")
from refsnn.nir.writer import export_nir, to_nir  # noqa: E402
from refsnn.nir.reader import from_nir, load_nir  # noqa: E402

pytestmark = pytest.mark.usefixtures("restore_threads")


def _spikes_equal(a, b, net, back, steps):
    names = net.neuron_nodes()
    assert back.neuron_nodes() == names
    for n in names:
        assert np.array_equal(a.rasters[n], b.rasters[n]), n
    assert np.array_equal(a.readout[steps], b.readout[steps])


@pytest.mark.parametrize("model", ["mlp", "cnn", "resnet"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_round_trip_of_shipped_models_gives_identical_spikes(tmp_path, model, dtype):
    x = load_data(DATA, "train", limit=100)[0]
    net = convert_if(load_model(MODELS / f"{model}.h5"), x, reset="zero", dtype=dtype)
    export_nir(net, tmp_path / "net.nir")
    graph = nir.read(tmp_path / "net.nir")  # NIR's own reader, with its type check
    assert {type(n).__name__ for n in graph.nodes.values()} >= {"IF", "Affine", "Input",
                                                                 "Output"}
    back = load_nir(tmp_path / "net.nir", dtype=dtype)
    assert back.method == "nir" and back.schedule["dt"] == 1.0
    xt = load_data(DATA, "test", limit=12)[0]
    names = net.neuron_nodes()
    a = Simulator(net).run(xt, [24], rasters=names)
    b = Simulator(back).run(xt, [24], rasters=names)
    assert sum(int(c.sum()) for c in a.counts.values()) > 0
    _spikes_equal(a, b, net, back, 24)


def test_round_trip_poisson_residual_both_backends_and_threads(tmp_path):
    rng = np.random.default_rng(3)
    graph = small_cnn(seed=3, residual=True)
    x = rng.uniform(-1, 1, (16,) + graph.input_shape)
    net = convert_if(graph, x, reset="zero", encoding="poisson", per_channel=True)
    export_nir(net, tmp_path / "n.nir")
    back = load_nir(tmp_path / "n.nir")
    assert back.encoding == "poisson"
    names = net.neuron_nodes()
    ref = Simulator(net, backend="numpy").run(x[:4], [20], seed=5, rasters=names)
    for threads in THREADS:
        numba.set_num_threads(threads)
        for backend in ("numpy", "numba"):
            b = Simulator(back, backend=backend).run(x[:4], [20], seed=5, rasters=names)
            _spikes_equal(ref, b, net, back, 20)


def _tie_net(reset="zero"):
    """input (2,) -> linear -> if (theta 0.1) -> linear: the first current is exactly theta."""
    theta = np.array([0.1, 0.3])
    nodes = [dict(name="fc", op="linear", inputs=["input"],
                  params=dict(weight=np.eye(2), bias=np.zeros(2))),
             dict(name="if1", op="if", inputs=["fc"], attrs=dict(reset=reset),
                  params=dict(threshold=theta)),
             dict(name="out", op="linear", inputs=["if1"],
                  params=dict(weight=np.array([[1.0, -1.0]]), bias=np.zeros(1)))]
    return SpikingNetwork(make_graph((2,), nodes, "out", ops=SNN_OPS), "if", "analog")


def test_tie_rule_is_exact_through_the_next_float_below(tmp_path):
    net = _tie_net()
    graph = to_nir(net)
    vth = graph.nodes["if1"].v_threshold
    assert np.array_equal(vth, np.nextafter(np.array([0.1, 0.3]), -np.inf))
    assert np.all(vth < np.array([0.1, 0.3]))
    back = from_nir(graph)
    x = np.array([[0.1, 0.3], [0.1, np.nextafter(0.3, 0)]])  # ties, and one just below
    a = Simulator(net).run(x, [6], rasters=["if1"])
    b = Simulator(back).run(x, [6], rasters=["if1"])
    assert a.rasters["if1"][:, 0].all() and not a.rasters["if1"][0, 1, 1]
    _spikes_equal(a, b, net, back, 6)
    # NIR's rule with the threshold itself (the naive export) would miss every tie
    graph.nodes["if1"].v_threshold = np.array([0.1, 0.3])
    c = Simulator(from_nir(graph)).run(x, [6], rasters=["if1"])
    assert not np.array_equal(a.rasters["if1"], c.rasters["if1"])


def test_float32_threshold_is_the_float32_predecessor():
    net = _tie_net()
    g32 = make_graph((2,), [dict(n) for n in [
        dict(name="fc", op="linear", inputs=["input"], params=dict(weight=np.eye(2),
                                                                  bias=np.zeros(2))),
        dict(name="if1", op="if", inputs=["fc"], attrs=dict(reset="zero"),
             params=dict(threshold=np.array([0.1, 0.3])))]], "if1", dtype=np.float32,
        ops=SNN_OPS)
    vth = to_nir(SpikingNetwork(g32, "if", "analog")).nodes["if1"].v_threshold
    assert vth.dtype == np.float32
    assert np.array_equal(vth, np.nextafter(np.float32([0.1, 0.3]), np.float32(-np.inf)))
    assert net.graph.dtype == np.float64


@pytest.mark.parametrize("kwargs, node, words", [
    (dict(reset="subtract"), "relu0", "--reset zero"),
    (dict(reset="zero", v_init="half"), "relu0", "--v-init zero"),
])
def test_export_refuses_by_node(kwargs, node, words):
    graph = small_mlp()
    x = np.random.default_rng(0).normal(size=(20, 12))
    with pytest.raises(ConversionError, match=f"node '{node}'.*{words}"):
        to_nir(convert_if(graph, x, **kwargs))


def test_export_refuses_maxpool_bsnn_signgd():
    graph = small_cnn(pool="maxpool2d")
    x = np.random.default_rng(0).uniform(0, 1, (10,) + graph.input_shape)
    with pytest.raises(ConversionError, match="node 'pool'.*max pooling"):
        to_nir(convert_if(graph, x, reset="zero"))
    mlp = small_mlp()
    xm = np.random.default_rng(0).normal(size=(20, 12))
    with pytest.raises(ConversionError, match="node 'relu0'.*bistable"):
        to_nir(convert_bsnn(mlp, xm))
    with pytest.raises(ConversionError, match="node 'relu0'.*signGD"):
        to_nir(convert_signgd(mlp, xm))


def test_export_writes_readout_and_encoding_metadata(tmp_path):
    net = _tie_net()
    export_nir(net, tmp_path / "t.nir")
    meta = nir.read(tmp_path / "t.nir").metadata
    assert float(meta["dt"]) == 1.0
    assert "mean of the Output" in str(meta["refsnn_readout"])
    assert str(meta["refsnn_encoding"]) == "analog"


# ---- import: hand-made graphs ----------------------------------------------------------

def _io(n, *middle, edges=None):
    nodes = {"in": nir.Input(input_type={"input": np.array([n])}), **dict(middle),
             "out": nir.Output(output_type={"output": np.array([n])})}
    names = [k for k, _ in middle]
    edges = edges or list(zip(["in"] + names, names + ["out"]))
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


def test_lif_li_integrator_follow_the_written_euler_update():
    rng = np.random.default_rng(1)
    n, dt, steps = 5, 0.25, 30
    tau, r, vl = rng.uniform(0.5, 2, n), rng.uniform(0.5, 2, n), rng.normal(0, 0.1, n)
    vth, vr = rng.uniform(0.2, 0.6, n), rng.normal(0, 0.05, n)
    w = rng.normal(0, 1, (n, n))
    graph = _io(n, ("fc", nir.Linear(weight=w)),
                ("lif", nir.LIF(tau=tau, r=r, v_leak=vl, v_threshold=vth, v_reset=vr)),
                ("s", nir.Scale(scale=np.full(n, 0.5))),
                ("li", nir.LI(tau=tau, r=r, v_leak=vl)), ("i", nir.I(r=r)))
    net = from_nir(graph, dt=dt)
    x = rng.uniform(0, 1, (3, n))
    run = Simulator(net, backend="numpy").run(x, [steps], rasters=["lif"])
    # the same updates written out in plain NumPy, step by step (docs/semantics.md)
    cur = np.zeros((3, n))  # Linear: inputs in ascending index, then a -0.0 bias
    for j in range(n):
        cur = cur + x[:, j:j + 1] * w[:, j][None, :]
    cur = cur + (-0.0)
    v, u, q, total = np.zeros((3, n)), np.zeros((3, n)), np.zeros((3, n)), np.zeros((3, n))
    for t in range(steps):
        v = v + (dt / tau) * ((vl - v) + r * cur)
        s = v > vth
        assert np.array_equal(s, run.rasters["lif"][t])
        v = np.where(s, vr, v)
        u = u + (dt / tau) * ((vl - u) + r * (s * 0.5))
        q = q + (dt * r) * u
        total = total + q
    assert np.array_equal(run.readout[steps], total / steps)


def test_imported_graph_numba_equals_numpy_on_1_and_2_threads():
    rng = np.random.default_rng(2)
    graph = nir.NIRGraph(nodes={
        "in": nir.Input(input_type={"input": np.array([2, 6, 6])}),
        "conv": nir.Conv2d(input_shape=(6, 6), weight=rng.normal(0, 0.5, (3, 2, 3, 3)),
                           stride=1, padding=1, dilation=1, groups=1, bias=np.zeros(3)),
        "lif": nir.LIF(tau=np.full((3, 6, 6), 2.0), r=np.ones((3, 6, 6)),
                       v_leak=np.zeros((3, 6, 6)), v_threshold=np.full((3, 6, 6), 0.3)),
        "pool": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]),
                              padding=np.array([0, 0])),
        "th": nir.Threshold(threshold=np.full((3, 3, 3), 0.5)),
        "flat": nir.Flatten(input_type={"input": np.array([3, 3, 3])}, start_dim=0),
        "fc": nir.Affine(weight=rng.normal(0, 1, (4, 27)), bias=np.zeros(4)),
        "if": nir.IF(r=np.ones(4), v_threshold=np.full(4, 0.5)),
        "out": nir.Output(output_type={"output": np.array([4])})},
        edges=[("in", "conv"), ("conv", "lif"), ("lif", "pool"), ("pool", "th"),
               ("th", "flat"), ("flat", "fc"), ("fc", "if"), ("if", "out")], type_check=False)
    net = from_nir(graph, dt=1.0)
    x = rng.uniform(0, 1, (3, 2, 6, 6))
    names = net.neuron_nodes()
    assert names == ["lif", "th", "if"]
    ref = Simulator(net, backend="numpy").run(x, [16], rasters=names, potentials=names)
    assert ref.counts["lif"].sum() > 0 and ref.counts["if"].sum() > 0
    for threads in THREADS:
        numba.set_num_threads(threads)
        run = Simulator(net).run(x, [16], rasters=names, potentials=names)
        for n in names:
            assert np.array_equal(ref.rasters[n], run.rasters[n])
            assert np.array_equal(ref.potentials[n], run.potentials[n])


def _bad(graph, match, **kw):
    with pytest.raises((ModelFormatError, OptionError), match=match):
        from_nir(graph, **kw)


def test_import_refuses_bad_graphs_by_node():
    n = 3
    ok = dict(r=np.ones(n), v_threshold=np.ones(n))
    # Delay and CubaLIF are read (tests/test_nir_delay.py, tests/test_nir_cuba.py): what
    # they cannot mean is refused at the node and field
    _bad(_io(n, ("d", nir.Delay(delay=np.array([1.0, 1.5, 2.0])))),
         "nodes/d: delay: expected non-negative whole multiples of dt", dt=1.0)
    _bad(_io(n, ("c", nir.CubaLIF(tau_syn=np.array([1.0, 0.0, 1.0]), tau_mem=np.ones(n),
                                  r=np.ones(n), v_leak=np.zeros(n), v_threshold=np.ones(n)))),
         "nodes/c: tau_syn: expected finite non-zero", dt=1.0)
    # a cycle is no longer refused (issue 28): its back edge b -> a is a recurrent edge
    cyclic = from_nir(_io(n, ("a", nir.IF(**ok)), ("b", nir.IF(**ok)),
                          edges=[("in", "a"), ("a", "b"), ("b", "a"), ("b", "out")]), dt=1.0)
    assert cyclic.graph.node("b__previous").op == "recurrent"
    assert cyclic.graph.node("b__previous").inputs == ("b",)
    _bad(_io(n, ("a", nir.IF(r=np.ones(n), v_threshold=np.array([1.0, np.nan, 1.0])))),
         "nodes/a: v_threshold: expected finite values", dt=1.0)
    _bad(_io(n, ("a", nir.IF(r=np.ones(4), v_threshold=np.ones(4)))),
         "nodes/a: r: expected a shape that broadcasts", dt=1.0)
    _bad(_io(n, ("fc", nir.Affine(weight=np.ones((3, 4)), bias=np.zeros(3)))),
         "nodes/fc: weight", dt=1.0)
    _bad(_io(n, ("a", nir.IF(**ok))), "node 'a' \\(IF\\) needs a time step")
    _bad(_io(n, ("a", nir.LIF(tau=np.array([1.0, 0.0, 1.0]), r=np.ones(n),
                              v_leak=np.zeros(n), v_threshold=np.ones(n)))),
         "nodes/a: tau: expected positive", dt=1.0)
    _bad(_io(n, ("a", nir.IF(**ok))), "dt: expected a positive", dt=-1.0)
    g = _io(n, ("a", nir.IF(**ok)))
    g.edges.append(("in", "a"))
    _bad(g, "nodes/a: edges: expected each edge once", dt=1.0)


def test_import_refuses_non_nir_files(tmp_path):
    from refsnn.nir.reader import read_nir

    with pytest.raises(ModelFormatError, match="NIR file"):
        read_nir(DATA)
    (tmp_path / "x.nir").write_bytes(b"not hdf5")
    with pytest.raises(ModelFormatError, match="readable HDF5"):
        read_nir(tmp_path / "x.nir")


def test_two_inputs_are_summed():
    n = 2
    graph = _io(n, ("a", nir.Scale(scale=np.array([2.0, 3.0]))),
                ("b", nir.I(r=np.ones(n))),
                edges=[("in", "a"), ("in", "b"), ("a", "b"), ("b", "out")])
    net = from_nir(graph, dt=1.0)
    x = np.array([[1.0, 1.0]])
    run = Simulator(net).run(x, [3])
    # b integrates (a's value + x) each step: 3, 4 per step -> mean of 1,2,3 times that
    assert np.array_equal(run.readout[3], np.array([[2 * 3.0, 2 * 4.0]]))


def test_count_readout_exports_through_scale_and_noise_is_refused(tmp_path):
    from refsnn.conversion import convert_noise

    graph = small_mlp()
    x = np.random.default_rng(0).normal(size=(20, 12))
    net = convert_if(graph, x, reset="zero", readout="count")
    nir_graph = to_nir(net)
    out_edges = [e for e in nir_graph.edges if e[1] == "output"]
    assert len(out_edges) == 1 and isinstance(nir_graph.nodes[out_edges[0][0]], nir.Scale)
    back = from_nir(nir_graph)
    names = net.neuron_nodes()
    a = Simulator(net).run(x[:5], [16], rasters=names)
    b = Simulator(back).run(x[:5], [16], rasters=names)
    _spikes_equal(a, b, net, back, 16)
    qcfs = load_model(MODELS / "cnn_qcfs.h5")
    with pytest.raises(ConversionError, match="node 'qcfs1'.*--reset zero"):
        to_nir(convert_noise(qcfs, None))  # QCFS: reset by subtraction from theta/2


# ---- the export's proof as properties -----------------------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=200, deadline=None)
@given(dtype=st.sampled_from([np.float64, np.float32]),
       theta=st.floats(min_value=0, max_value=1e30, exclude_min=True, allow_subnormal=True),
       v=st.floats(allow_nan=False, width=32) | st.floats(allow_nan=False),
       near=st.integers(-3, 3))
def test_strict_rule_at_the_next_float_below_is_the_inclusive_rule(dtype, theta, v, near):
    with np.errstate(over="ignore"):  # a float64 beyond float32's range becomes inf
        theta, v = dtype(theta), dtype(v)
    if not np.isfinite(theta) or theta <= 0:
        return
    below = np.nextafter(theta, dtype(-np.inf))
    for value in (v, theta, below):  # arbitrary potentials, and the floats at the edge
        for _ in range(abs(near)):
            value = np.nextafter(value, dtype(np.inf) if near > 0 else dtype(-np.inf))
        assert (value > below) == (value >= theta)


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**16), residual=st.booleans(), per_channel=st.booleans(),
       dtype=st.sampled_from([np.float64, np.float32]),
       encoding=st.sampled_from(["analog", "poisson"]))
def test_round_trip_of_random_networks_gives_identical_spikes(seed, residual, per_channel,
                                                              dtype, encoding):
    rng = np.random.default_rng(seed)
    graph = small_cnn(seed=seed, residual=residual)
    x = rng.uniform(-1, 1, (12,) + graph.input_shape)
    net = convert_if(graph, x, reset="zero", per_channel=per_channel, dtype=dtype,
                     encoding=encoding, percentile=float(rng.uniform(90, 100)))
    back = from_nir(to_nir(net), dtype=dtype)
    names = net.neuron_nodes()
    run_seed = seed if encoding == "poisson" else 0
    a = Simulator(net).run(x[:3], [12], seed=run_seed, rasters=names)
    b = Simulator(back).run(x[:3], [12], seed=run_seed, rasters=names)
    _spikes_equal(a, b, net, back, 12)


def test_grouped_conv_is_refused_and_the_fold_is_per_input_channel():
    """nir 1.0.8's type check gives a Conv2d weight.shape[1] input channels, wrong for groups
    > 1, so a grouped conv is refused; the fold itself (written for groups) is checked on
    the builder directly."""
    from refsnn.nir.writer import _Builder

    rng = np.random.default_rng(5)
    nodes = [dict(name="conv1", op="conv2d", inputs=["input"], attrs=dict(padding=(1, 1)),
                  params=dict(weight=rng.normal(0, 0.5, (4, 2, 3, 3)), bias=rng.normal(0, .1, 4))),
             dict(name="relu1", op="relu", inputs=["conv1"]),
             dict(name="conv2", op="conv2d", inputs=["relu1"],
                  attrs=dict(padding=(1, 1), groups=2),
                  params=dict(weight=rng.normal(0, 0.5, (6, 2, 3, 3)), bias=np.zeros(6)))]
    graph = make_graph((2, 5, 5), nodes, "conv2")
    x = rng.uniform(0, 1, (16, 2, 5, 5))
    net = convert_if(graph, x, reset="zero", per_channel=True)
    with pytest.raises(ConversionError, match="node 'conv2'.*grouped.*groups=1"):
        to_nir(net)
    b = _Builder(net)
    theta = np.asarray(net.graph.node("relu1").params["threshold"])
    folded = b.conv(net.graph.node("conv2"), b.theta("relu1")).weight
    w = np.asarray(net.graph.node("conv2").params["weight"])
    # output channels 0-2 read input channels 0-1, channels 3-5 read 2-3
    per = np.concatenate([np.tile(theta[:2], (3, 1)), np.tile(theta[2:], (3, 1))])
    assert np.array_equal(folded, w * per[:, :, None, None])
