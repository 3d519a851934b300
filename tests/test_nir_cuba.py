"""NIR's current-based kinds (refsnn/neurons/cuba_lif.py, cuba_li.py): kernels equal their
NumPy twins and the update written in docs/semantics.md bit for bit on 1 and 2 threads; the
closed forms (a CubaLIF with tau_syn = dt is a LIF one step late, or the same step with
euler-same-step; a CubaLI's linear recurrences and their limit); NIR round trips; and
``compare`` names each departure frameworks take. Skipped without the nir extra."""

from __future__ import annotations

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import THREADS
from refsnn.errors import ConversionError, ModelFormatError, OptionError
from refsnn.neurons.cuba_li import cuba_li_step_numba, cuba_li_step_numpy
from refsnn.neurons.cuba_lif import (cuba_lif_step_numba, cuba_lif_step_numpy,
                                     synapse_constants)
from refsnn.neurons.lif import lif_step_numpy
from refsnn.neurons.nir_base import DISCRETISATIONS, rates
from refsnn.oracle.compare import compare
from refsnn.oracle.trace import read_trace, record_trace, write_trace
from refsnn.sim.simulator import Simulator

nir = pytest.importorskip("nir")
from refsnn.nir.reader import from_nir  # noqa: E402
from refsnn.nir.writer import to_nir  # noqa: E402

pytestmark = pytest.mark.usefixtures("restore_threads")


def _constants(seed, n, dtype, how, dt=0.5):
    """Per-neuron constants from time constants of both signs."""
    rng = np.random.default_rng(seed)
    sign = np.where(rng.random(n) < 0.2, -1.0, 1.0)
    tau_syn = (sign * rng.uniform(0.3, 5, n)).astype(dtype)
    tau_mem = rng.uniform(0.3, 5, n).astype(dtype)
    p, q = rates(np.asarray(dt, dtype), tau_syn, how)
    decay = rates(np.asarray(dt, dtype), tau_mem, how)[1]
    other = {k: rng.normal(m, s, n).astype(dtype) for k, (m, s) in dict(
        w_in=(1, .5), r=(1, .5), v_leak=(0, .2), v_threshold=(.6, .2), v_reset=(0, .1)).items()}
    return dict(p=p, q=q, decay=decay, **other)


def _loop(i, v, current, same, c, fire):
    """The documented update, one neuron at a time, each operation rounded in v's dtype."""
    i, v, out = i.copy(), v.copy(), np.zeros_like(v)
    for b in range(v.shape[0]):
        for k in range(v.shape[1]):
            u = c["w_in"][k] * current[b, k]
            new = c["p"][k] * i[b, k] + c["q"][k] * u
            drive = new if same else i[b, k]
            x = v[b, k] + c["decay"][k] * ((c["v_leak"][k] - v[b, k]) + c["r"][k] * drive)
            i[b, k] = new
            if fire:
                out[b, k] = 1.0 if x > c["v_threshold"][k] else 0.0
                x = c["v_reset"][k] if x > c["v_threshold"][k] else x
            else:
                out[b, k] = x
            v[b, k] = x
    return i, v, out


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), b=st.integers(1, 4), n=st.integers(1, 40),
       dtype=st.sampled_from([np.float64, np.float32]), threads=st.sampled_from(THREADS),
       how=st.sampled_from(DISCRETISATIONS), fire=st.booleans())
def test_kernels_equal_their_twins_and_the_written_update(seed, b, n, dtype, threads, how,
                                                          fire):
    numba.set_num_threads(threads)
    rng = np.random.default_rng(seed + 1)
    c = _constants(seed, n, dtype, how)
    same = how == "euler-same-step"
    names = ("p", "q", "w_in", "decay", "r", "v_leak") + (
        ("v_threshold", "v_reset") if fire else ())
    ref, twin = (cuba_lif_step_numpy, cuba_lif_step_numba) if fire else \
        (cuba_li_step_numpy, cuba_li_step_numba)
    i = rng.normal(0, 1, (b, n)).astype(dtype)
    v = rng.normal(0, 1, (b, n)).astype(dtype)
    i1, v1, i2, v2 = i.copy(), v.copy(), i.copy(), v.copy()
    for _ in range(3):  # a few steps, so that the state carries over
        x = rng.normal(0, 1, (b, n)).astype(dtype)
        e1 = ref(i1, v1, x, same, *(c[k] for k in names))
        e2 = twin(i2, v2, x, same, *(c[k] for k in names))
        i, v, e3 = _loop(i, v, x, same, c, fire)
        assert e1.dtype == e2.dtype == dtype
        for a, bb, cc in ((e1, e2, e3), (i1, i2, i), (v1, v2, v)):
            assert np.array_equal(a, bb) and np.array_equal(a, cc)


def test_rates_are_the_written_constants():
    tau = np.array([2.0, -4.0, 0.5])
    keep, rate = rates(np.float64(1.0), tau, "euler")
    assert np.array_equal(rate, 1.0 / tau) and np.array_equal(keep, 1 - 1.0 / tau)
    keep, rate = rates(np.float64(1.0), tau, "exact")
    assert np.allclose(keep, np.exp(-1.0 / tau), rtol=1e-15, atol=0)
    assert np.allclose(rate, 1 - np.exp(-1.0 / tau), rtol=1e-15, atol=0)
    assert rates(np.float64(0.5), np.array([0.5]), "euler") == (0.0, 1.0)
    with pytest.raises(ValueError, match="not finite in float64"):
        rates(np.float64(1.0), np.array([-1e-3]), "exact")
    with pytest.raises(ValueError, match="not finite in float32"):
        rates(np.float32(1.0), np.array([-0.01], np.float32), "exact")


# ---- closed forms ---------------------------------------------------------------------

def _lif_graph(n, dt, tau_mem, r, v_leak, thr, reset, w_in, same_as_lif=False):
    """A CubaLIF with tau_syn = dt, or (``same_as_lif``) the LIF it reduces to."""
    cell = nir.LIF(tau=tau_mem, r=r, v_leak=v_leak, v_threshold=thr, v_reset=reset) \
        if same_as_lif else \
        nir.CubaLIF(tau_syn=np.full(n, dt), tau_mem=tau_mem, r=r, v_leak=v_leak,
                    v_threshold=thr, v_reset=reset, w_in=w_in)
    return nir.NIRGraph(nodes={
        "in": nir.Input(input_type={"input": np.array([n])}), "c": cell,
        "out": nir.Output(output_type={"output": np.array([n])})},
        edges=[("in", "c"), ("c", "out")], metadata={"dt": dt}, type_check=False)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 12),
       dt=st.sampled_from([1.0, 0.5, 1e-3, 0.3]),
       dtype=st.sampled_from([np.float64, np.float32]))
def test_cuba_lif_with_tau_syn_dt_is_lif_one_step_late(seed, n, dt, dtype):
    rng = np.random.default_rng(seed)
    tau_mem = (dt * rng.uniform(1.2, 8, n)) * np.where(rng.random(n) < 0.2, -1, 1)
    args = (tau_mem, rng.uniform(0.5, 2, n), rng.normal(0, .1, n), rng.uniform(0.2, 1, n),
            rng.normal(0, .1, n))
    w_in = rng.uniform(0.5, 2, n)
    steps, batch = 30, 3
    x = rng.normal(0.3, 1, (steps, batch, n)).astype(dtype)
    for how in ("euler", "euler-same-step"):
        net = from_nir(_lif_graph(n, dt, *args, w_in), dtype=dtype, discretisation=how)
        node = net.graph.node("c")
        c = {**synapse_constants(node, np.asarray(dt, dtype)),
             "v_threshold": np.asarray(node.params["v_threshold"]),
             "v_reset": np.asarray(node.params["v_reset"])}
        assert not c["p"].any() and (c["q"] == 1).all()
        # the lif kind's constants (refsnn/neurons/lif.py; its schema refuses tau < 0, whose
        # update is the same)
        decay = np.asarray(dt, dtype) / np.asarray(node.params["tau_mem"])
        i, v, v_lif = (np.zeros((batch, n), dtype) for _ in range(3))
        late = how == "euler"
        for t in range(steps):
            z = cuba_lif_step_numpy(i, v, x[t], not late, *(c[k] for k in (
                "p", "q", "w_in", "decay", "r", "v_leak", "v_threshold", "v_reset")))
            # the LIF's input: w_in·x of the step before (0 at the first) or of this step
            u = (c["w_in"] * x[t - 1] if t else np.zeros_like(x[0])) if late \
                else c["w_in"] * x[t]
            z_lif = lif_step_numpy(v_lif, u, decay, *(np.asarray(node.params[k]) for k in (
                "r", "v_leak", "v_threshold", "v_reset")))
            assert np.array_equal(z, z_lif) and np.array_equal(v, v_lif), (how, t)


def test_cuba_lif_same_step_is_lif_through_the_simulator():
    n, dt = 6, 0.25
    rng = np.random.default_rng(3)
    args = (rng.uniform(0.5, 2, n), rng.uniform(0.5, 2, n), np.zeros(n),
            rng.uniform(0.2, 1, n), np.zeros(n))
    x = rng.uniform(0, 1, (4, n))
    cuba = from_nir(_lif_graph(n, dt, *args, np.ones(n)), discretisation="euler-same-step")
    lif = from_nir(_lif_graph(n, dt, *args, np.ones(n), same_as_lif=True))
    for backend in ("numpy", "numba"):
        a = Simulator(cuba, backend).run(x, 40, potentials=["c"], rasters=["c"])
        b = Simulator(lif, backend).run(x, 40, potentials=["c"], rasters=["c"])
        assert a.counts["c"].sum() > 0
        assert np.array_equal(a.rasters["c"], b.rasters["c"])
        assert np.array_equal(a.potentials["c"], b.potentials["c"])


def _li_graph(n, dt, tau_syn, tau_mem, r, v_leak, w_in):
    return nir.NIRGraph(nodes={
        "in": nir.Input(input_type={"input": np.array([n])}),
        "c": nir.CubaLI(tau_syn=tau_syn, tau_mem=tau_mem, r=r, v_leak=v_leak, w_in=w_in),
        "out": nir.Output(output_type={"output": np.array([n])})},
        edges=[("in", "c"), ("c", "out")], metadata={"dt": dt}, type_check=False)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 8),
       how=st.sampled_from(DISCRETISATIONS), dt=st.sampled_from([1.0, 0.1, 1e-3]))
def test_cuba_li_follows_its_closed_form_and_tends_to_v_leak_plus_r_w_x(seed, n, how, dt):
    """With constant input x from I = v = 0, both states follow linear recurrences with
    k = keep(tau_syn), m = keep(tau_mem), d = rate(tau_mem) (nir_base.rates):
    I_t = w·x·(1 − k^t) and v_t = L·(1 − m^t) − r·w·x·d·c·(m^t − k^t)/(m − k), L = v_leak
    + r·w·x, c = 1 (v reads I of the step before) or k (euler-same-step)."""
    rng = np.random.default_rng(seed)
    tau_syn, tau_mem = dt * rng.uniform(1.5, 6, n), dt * rng.uniform(1.5, 6, n)
    tau_mem = np.where(np.abs(tau_mem - tau_syn) < 0.2 * dt, tau_mem + dt, tau_mem)
    r, v_leak, w_in = rng.uniform(0.5, 2, n), rng.normal(0, 1, n), rng.uniform(0.5, 2, n)
    x = rng.normal(0, 1, (2, n))
    net = from_nir(_li_graph(n, dt, tau_syn, tau_mem, r, v_leak, w_in), discretisation=how)
    c = synapse_constants(net.graph.node("c"), np.float64(dt))
    k, m, d = c["p"], 1 - c["decay"] if how != "exact" else rates(
        np.float64(dt), tau_mem, "exact")[0], c["decay"]
    i, v = np.zeros((2, n)), np.zeros((2, n))
    limit = v_leak + r * w_in * x
    for t in range(1, 601):
        out = cuba_li_step_numpy(i, v, x, how == "euler-same-step",
                                 *(c[key] for key in ("p", "q", "w_in", "decay", "r", "v_leak")))
        if t in (1, 2, 5, 20, 100):
            lag = k if how == "euler-same-step" else 1.0
            closed_i = w_in * x * (1 - k ** t)
            closed_v = limit * (1 - m ** t) - r * w_in * x * d * lag * (m ** t - k ** t) / (m - k)
            scale = 1 + np.abs(limit) + np.abs(r * w_in * x) * np.abs(d / (m - k))
            assert np.allclose(i, closed_i, rtol=0, atol=1e-12 * t * (1 + np.abs(w_in * x)))
            assert np.allclose(out, closed_v, rtol=0, atol=1e-11 * t * scale), (t, how)
    assert np.allclose(v, limit, rtol=1e-9, atol=1e-9)
    run = Simulator(net, "numba").run(x, 1)  # the simulator's first value: v_1
    first = np.zeros((2, n)), np.zeros((2, n))
    assert np.array_equal(run.readout[1], cuba_li_step_numpy(
        *first, x, how == "euler-same-step",
        *(c[key] for key in ("p", "q", "w_in", "decay", "r", "v_leak"))))


# ---- reading, refusals and round trips ---------------------------------------------------

def _net_graph(seed=0, dt=0.5, **cuba):
    """Input (5,) -> Affine -> CubaLIF (8) -> Affine -> CubaLI (3) -> Output."""
    rng = np.random.default_rng(seed)
    n = 8
    cell = dict(tau_syn=rng.uniform(1, 3, n), tau_mem=rng.uniform(1.5, 4, n),
                r=rng.uniform(0.5, 1.5, n), v_leak=rng.normal(0, 0.05, n),
                v_threshold=rng.uniform(0.2, 0.5, n), v_reset=rng.normal(0, 0.05, n),
                w_in=rng.uniform(0.5, 1.5, n))
    cell.update(cuba)
    return nir.NIRGraph(nodes={
        "in": nir.Input(input_type={"input": np.array([5])}),
        "fc1": nir.Affine(weight=rng.normal(0.4, 0.6, (n, 5)), bias=rng.normal(0, .1, n)),
        "n1": nir.CubaLIF(**cell),
        "fc2": nir.Affine(weight=rng.normal(0, 0.6, (3, n)), bias=np.zeros(3)),
        "li": nir.CubaLI(tau_syn=np.full(3, 2.0), tau_mem=np.full(3, -3.0), r=np.ones(3),
                         v_leak=np.zeros(3), w_in=np.ones(3)),
        "out": nir.Output(output_type={"output": np.array([3])})},
        edges=[("in", "fc1"), ("fc1", "n1"), ("n1", "fc2"), ("fc2", "li"), ("li", "out")],
        metadata={"dt": dt}, type_check=False)


X = np.random.default_rng(1).uniform(0, 1, (4, 5))


def test_graph_round_trips_through_nir_and_the_discretisation_is_kept(tmp_path):
    from refsnn.nir.reader import load_nir
    from refsnn.nir.writer import export_nir

    net = from_nir(_net_graph())
    assert [n.op for n in net.graph.nodes] == ["linear", "cuba_lif", "linear", "cuba_li"]
    export_nir(net, tmp_path / "net.nir")  # through the file, nir.write and nir.read
    back = load_nir(tmp_path / "net.nir")
    assert back.schedule["dt"] == 0.5
    for node in net.graph.nodes:
        other = back.graph.node(node.name)
        assert node.op == other.op and dict(node.attrs) == dict(other.attrs)
        for key, value in node.params.items():
            assert np.array_equal(other.params[key], value)
    a = Simulator(net, "numpy").run(X, 30, rasters=["n1"])
    b = Simulator(back, "numba").run(X, 30, rasters=["n1"])
    assert a.counts["n1"].sum() > 0 and np.array_equal(a.rasters["n1"], b.rasters["n1"])
    assert np.array_equal(a.readout[30], b.readout[30])
    exact = from_nir(_net_graph(), discretisation="exact")
    assert exact.graph.node("n1").attrs["discretisation"] == "exact"
    with pytest.raises(ConversionError, match="node 'n1'.*'exact' discretisation"):
        to_nir(exact)
    with pytest.raises(OptionError, match="discretisation: expected one of.*found 'rk4'"):
        from_nir(_net_graph(), discretisation="rk4")
    if_only = nir.NIRGraph(nodes={"in": nir.Input(input_type={"input": np.array([2])}),
                                  "a": nir.IF(r=np.ones(2), v_threshold=np.ones(2)),
                                  "out": nir.Output(output_type={"output": np.array([2])})},
                           edges=[("in", "a"), ("a", "out")], type_check=False)
    with pytest.raises(OptionError, match="discretisation"):  # not ignored without a taker
        from_nir(if_only, dt=1.0, discretisation="Exact")


def test_saved_networks_keep_the_discretisation(tmp_path):
    from refsnn.sim.network import load_snn, save_snn

    for how in DISCRETISATIONS:
        net = from_nir(_net_graph(), discretisation=how)
        save_snn(net, tmp_path / f"{how}.h5")
        back = load_snn(tmp_path / f"{how}.h5")
        assert back.graph.node("n1").attrs["discretisation"] == how
        assert back.graph.node("li").attrs["discretisation"] == how
        a = Simulator(net).run(X, 12, rasters=["n1"])
        b = Simulator(back, "numba").run(X, 12, rasters=["n1"])
        assert np.array_equal(a.rasters["n1"], b.rasters["n1"])
        assert np.array_equal(a.readout[12], b.readout[12])


def test_negative_time_constants_run_and_zero_or_nan_is_refused(tmp_path):
    n = 8
    net = from_nir(_net_graph(tau_syn=-np.full(n, 2.0), tau_mem=-np.full(n, 3.0),
                              r=-np.ones(n), v_threshold=-np.full(n, 0.1)))
    assert np.all(np.isfinite(Simulator(net).run(X, 10).readout[10]))
    path = tmp_path / "bad.nir"
    nir.write(path, _net_graph(tau_mem=np.r_[np.full(n - 1, 2.0), 0.0]))
    from refsnn.nir.reader import load_nir
    with pytest.raises(ModelFormatError, match=f"{path}.*nodes/n1.*tau_mem"):
        load_nir(path)
    with pytest.raises(ModelFormatError, match="nodes/n1: r: expected finite"):
        from_nir(_net_graph(r=np.r_[np.ones(n - 1), np.inf]))
    # exact: e^{dt/|tau|} beyond float32 for tau = -dt/100: refused at import, not at run
    tiny = np.full(n, -0.005)
    assert from_nir(_net_graph(tau_syn=tiny), dtype=np.float32, discretisation="euler")
    with pytest.raises(ModelFormatError, match="nodes/n1: tau_syn: expected time constants"):
        from_nir(_net_graph(tau_syn=tiny), dtype=np.float32, discretisation="exact")


# ---- compare names the frameworks' departures --------------------------------------------

def _trace(graph, path=None, **kw):
    t = record_trace(Simulator(from_nir(graph, **kw), "numpy"), X, 40)
    if path is None:
        return t
    write_trace(path, t)
    return read_trace(path)


@pytest.mark.parametrize("change, kind, words", [
    (dict(discretisation="euler-same-step"), "current", "current=same"),
    (dict(discretisation="exact"), "leak", "leak=exact"),
    (dict(w_in=1), "w_in", "w_in=1"),
    (dict(dirac=True), "spike", "spike=dirac"),
])
def test_compare_names_each_cuba_lif_departure(tmp_path, change, kind, words):
    ref = _trace(_net_graph(), tmp_path / "ref.h5")
    layer = ref.layers["n1"]
    assert layer.kind == "cuba_lif" and layer.params["discretisation"] == "euler"
    assert layer.spikes.any() and compare(ref, _trace(_net_graph())).first_divergence is None
    graph = _net_graph()
    if "w_in" in change:
        graph.nodes["n1"].w_in = np.ones(8)
    if "dirac" in change:  # the input spike as a Dirac of area 1: amplitude 1/dt = 2 (exact)
        graph.nodes["fc1"].weight = graph.nodes["fc1"].weight * 2
        graph.nodes["fc1"].bias = graph.nodes["fc1"].bias * 2
    other = _trace(graph, discretisation=change.get("discretisation"))
    first = compare(ref, other).first_divergence
    assert first is not None and first.name == "n1", first
    assert first.kind == kind and words in first.detail, first


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_lif_and_li_take_the_exact_discretisation(dtype):
    """``exact`` on LIF/LI: d = fl(1 − e^{−dt/τ}); an LI with constant input x from 0 then
    follows (v_leak + r·x)·(1 − e^{−t·dt/τ}); euler and euler-same-step are the same."""
    n, dt = 4, 0.5
    tau, r, v_leak = np.array([0.7, 1.0, 3.0, 9.0]), np.array([1.0, 2.0, 0.5, 1.5]), np.full(n, .1)
    graph = nir.NIRGraph(nodes={
        "in": nir.Input(input_type={"input": np.array([n])}),
        "li": nir.LI(tau=tau, r=r, v_leak=v_leak),
        "lif": nir.LIF(tau=tau, r=r, v_leak=v_leak, v_threshold=np.full(n, 0.6)),
        "out": nir.Output(output_type={"output": np.array([n])})},
        edges=[("in", "li"), ("li", "lif"), ("lif", "out")], metadata={"dt": dt},
        type_check=False)
    x = np.array([[0.3, -0.2, 1.0, 0.5]], dtype)
    exact = from_nir(graph, dtype=dtype, discretisation="exact")
    assert {n.attrs["discretisation"] for n in exact.graph.nodes} == {"exact"}
    sim = Simulator(exact, "numba")
    li = next(op for op in sim.ops if op.node.name == "li")
    assert np.array_equal(li.constants["decay"], (-np.expm1(-dt / tau)).astype(dtype))
    v = li.init(1)
    for t in range(1, 41):
        out = li.step(v, x)
        closed = (v_leak + r * x) * (1 - np.exp(-t * dt / tau))
        assert np.allclose(out, closed, rtol=0, atol=(1e-13 if dtype == np.float64 else 3e-6) * t)
    euler = [Simulator(from_nir(graph, dtype=dtype, discretisation=how), "numba").run(
        x, 20, potentials=["lif"]) for how in (None, "euler-same-step")]
    assert np.array_equal(euler[0].potentials["lif"], euler[1].potentials["lif"])
    other = sim.run(x, 20, potentials=["lif"])
    assert not np.array_equal(other.potentials["lif"], euler[0].potentials["lif"])
