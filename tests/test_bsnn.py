"""BSNN: bistable neurons, synchronous neurons, and spikes of inactivated neurons (SIN).

The kernels equal their NumPy twins; the paper's argument becomes properties that fail when
the neuron is wrong: a cycle whose inputs sum to <= 0 gives no spike in any order (and an IF
neuron fed the same inputs does spike, for an order Hypothesis finds), constant input converges
to the clipped ReLU with the packet bound, and a residual block is exact with synchronous
neurons and wrong without them.
"""

from __future__ import annotations

import json

import numba
import numpy as np
import pytest
from hypothesis import find, given, settings
from hypothesis import strategies as st

from conftest import DATA, MODELS, THREADS, needs_jit, small_cnn, small_mlp
from refsnn.cli.main import main
from refsnn.conversion import convert_bsnn, convert_if
from refsnn.conversion.bsnn import assign_stages
from refsnn.data import load_data
from refsnn.errors import ConversionError, ModelFormatError, OptionError
from refsnn.evaluation import evaluate
from refsnn.model import load_refsnn_h5, make_graph
from refsnn.neurons.bistable import (cycle_state, fire_numba, fire_numpy, integrate_numba,
                                     integrate_numpy, packets_completed, packets_started)
from refsnn.sim.network import SNN_OPS, SpikingNetwork, load_snn, save_snn
from refsnn.sim.simulator import Simulator

pytestmark = pytest.mark.usefixtures("restore_threads")


# ------------------------------------------------------------------------------- kernels

@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), b=st.integers(1, 4), n=st.integers(1, 60),
       dtype=st.sampled_from([np.float64, np.float32]), threads=st.sampled_from(THREADS))
def test_kernels_equal_their_twins(seed, b, n, dtype, threads):
    numba.set_num_threads(threads)
    rng = np.random.default_rng(seed)
    theta = rng.uniform(0.1, 2.0, n).astype(dtype)
    u = rng.normal(0, 2, (b, n)).astype(dtype)
    current = rng.normal(0, 1, (b, n)).astype(dtype)
    u1, u2 = u.copy(), u.copy()
    assert np.array_equal(integrate_numpy(u1, current), integrate_numba(u2, current))
    assert np.array_equal(u1, u2) and np.array_equal(u1, u + current)
    u1[:, ::3] = u2[:, ::3] = theta[::3]  # exact ties fire (>=)
    before = u1.copy()
    e1, e2 = fire_numpy(u1, theta), fire_numba(u2, theta)
    assert e1.dtype == e2.dtype == dtype
    assert np.array_equal(e1, e2) and np.array_equal(u1, u2)
    assert np.array_equal(e1, np.where(before >= theta, theta, 0).astype(dtype))
    assert np.all(e1[:, ::3] == theta[::3]) and np.all(u1[:, ::3] == 0)


@given(period=st.integers(1, 6), stage=st.integers(1, 6), steps=st.integers(0, 80))
def test_cycle_bookkeeping_matches_enumeration(period, stage, steps):
    states = [cycle_state(t, period, stage) for t in range(1, steps + 1)]
    # a fire cycle "starts" at its first step; count them by enumeration
    starts = sum(1 for t in range(1, steps + 1)
                 if states[t - 1] == "fire" and (t - 1) % period == 0)
    assert packets_started(steps, period, stage) == starts
    # packets arriving at stage s are complete at the end of cycles s, s + 2, ...
    done = sum(1 for t in range(1, steps + 1) if t % period == 0
               and cycle_state(t, period, stage + 1) == "integrate")
    assert packets_completed(steps, period, stage) == done
    # no firing before the first integrate cycle, and the states alternate per cycle
    for t in range(1, steps + 1):
        c = (t - 1) // period
        expected = "rest" if c < stage - 1 else ("integrate" if (c - stage) % 2 else "fire")
        assert states[t - 1] == expected


# ------------------------------------------------------------------------ single neurons

def run_bistable(currents, theta, period, v_init="zero"):
    """Drive one stage-1 bistable neuron with per-step currents; return spikes per step."""
    u = np.array([[theta / 2 if v_init == "half" else 0.0]])
    th = np.array([theta])
    spikes = []
    for t, current in enumerate(currents, start=1):
        state = cycle_state(t, period, 1)
        if state == "integrate":
            integrate_numpy(u, np.array([[current]]))
            spikes.append(0)
        else:
            spikes.append(int(fire_numpy(u, th)[0, 0] > 0))
    return spikes


def run_if(currents, theta):
    u, spikes = 0.0, []
    for current in currents:
        u += current
        spikes.append(int(u >= theta))
        u -= theta * spikes[-1]
    return spikes


def cycle_inputs_summing_to_at_most_zero():
    return st.lists(st.floats(-3, 3, allow_nan=False), min_size=1, max_size=8).map(
        lambda xs: [x - max(0.0, sum(xs)) / len(xs) - 1e-9 for x in xs])


@settings(max_examples=200)
@given(xs=cycle_inputs_summing_to_at_most_zero(), data=st.data(),
       v_init=st.sampled_from(["zero", "half"]))
def test_bistable_cycle_with_nonpositive_sum_never_spikes_in_any_order(xs, data, v_init):
    assert sum(xs) <= 0
    order = data.draw(st.permutations(xs))
    period = len(order)
    # one integrate cycle with these inputs, then one fire cycle (its inputs are ignored)
    spikes = run_bistable(list(order) + [5.0] * period, theta=1.0, period=period, v_init=v_init)
    assert sum(spikes) == 0


def test_if_neuron_fails_the_same_property():
    """Hypothesis finds an order of a cycle's inputs, summing to <= 0, that makes IF spike
    (phase lead: the positive inputs came first)."""
    found = find(cycle_inputs_summing_to_at_most_zero(), lambda xs: sum(run_if(xs, 1.0)) > 0)
    assert sum(found) <= 0 and sum(run_if(found, 1.0)) > 0
    assert sum(run_bistable(found + [0.0] * len(found), 1.0, len(found))) == 0


@settings(max_examples=200)
@given(current=st.floats(-1.0, 2.0), theta=st.floats(0.25, 2.0), period=st.integers(1, 8),
       packets=st.integers(1, 12), v_init=st.sampled_from(["zero", "half"]))
def test_constant_input_packets_converge_to_clipped_relu(current, theta, period, packets,
                                                         v_init):
    """After K packets of P steps, |N theta / (K P) - clip(I, 0, theta)| <= max(u0, theta - u0)
    / (K P): the remainder stays in [0, theta) and is all the error (u0 = 0 or theta/2)."""
    steps = 2 * period * packets  # K integrate and K fire cycles
    n = sum(run_bistable([current] * steps, theta, period, v_init))
    u0 = theta / 2 if v_init == "half" else 0.0
    bound = max(u0, theta - u0) / (packets * period)
    err = abs(n * theta / (packets * period) - min(max(current, 0.0), theta))
    assert err <= bound + 1e-12 * (1 + abs(current) * steps)


# --------------------------------------------------------------- synchronous neurons

def residual_block(x_dim, period, perm, sync, shortcut_perm=None):
    """input -> a -> Pi -> b -> -1 -> add(., a) -> c -> out, thresholds 1: every packet is
    exact when inputs are multiples of 1/period, so the output must equal the ANN.

    With ``shortcut_perm`` the shortcut goes through a synapse, ``short = Q a`` (a linear
    node with the permutation ``Q``), so it is relayed by a delay, not synchronous neurons.
    """
    eye = np.eye(x_dim)
    pi = eye[perm]
    zero = np.zeros(x_dim)
    attrs = {"period": period, "v_init": "half", "role": "neuron"}
    one = {"threshold": np.ones(x_dim)}
    dicts = [
        dict(name="a", op="bistable", inputs=["input"], attrs=dict(attrs), params=one),
        dict(name="w2", op="linear", inputs=["a"], params=dict(weight=pi, bias=zero)),
        dict(name="b", op="bistable", inputs=["w2"], attrs=dict(attrs), params=one),
        dict(name="w3", op="linear", inputs=["b"], params=dict(weight=-eye, bias=zero)),
        dict(name="add", op="add", inputs=["w3", "a"]),
        dict(name="c", op="bistable", inputs=["add"], attrs=dict(attrs), params=one),
        dict(name="out", op="linear", inputs=["c"], params=dict(weight=eye, bias=zero)),
    ]
    if shortcut_perm is not None:
        dicts.insert(4, dict(name="short", op="linear", inputs=["a"],
                             params=dict(weight=eye[shortcut_perm], bias=zero)))
        dicts[5] = dict(name="add", op="add", inputs=["w3", "short"])
    dicts, stages = assign_stages(dicts, sync, period)
    graph = make_graph((x_dim,), dicts, "out", ops=SNN_OPS)
    return SpikingNetwork(graph, "bsnn", "analog", decoder="packet",
                          schedule={"period": float(period),
                                    "readout_stage": float(stages["out"])})


@settings(max_examples=25, deadline=None)
@given(data=st.data(), period=st.integers(1, 6), x_dim=st.integers(2, 6))
def test_synchronous_neurons_make_a_residual_block_exact(data, period, x_dim):
    perm = data.draw(st.permutations(range(x_dim)))
    k = data.draw(st.lists(st.lists(st.integers(0, period), min_size=x_dim, max_size=x_dim),
                           min_size=1, max_size=3))
    k = np.array(k)
    x = k / period
    levels = np.maximum(k - k[:, perm], 0)  # the block's ANN output in units of 1/period
    net = residual_block(x_dim, period, perm, sync=True)
    assert [n.name for n in net.graph.nodes if n.attrs.get("role") == "sync"] == ["a_sync1"]
    stage_c = net.graph.node("c").attrs["stage"]
    first = (int(net.schedule["readout_stage"]) + 1) * period  # the first complete packet
    for packets in (1, 2, 5):
        t = first + 2 * period * (packets - 1)
        run = Simulator(net, "numpy").run(x, t)
        # every packet of c carries exactly the ANN's value: `levels` spikes per neuron
        assert packets_started(t, period, stage_c) == packets
        assert np.array_equal(run.counts["c"], packets * levels)
        # the readout is that value, exactly when 1/period is a binary fraction
        tol = 0 if period in (1, 2, 4) else 4 * np.finfo(float).eps
        assert np.max(np.abs(run.readout[t] - levels / period)) <= tol


@settings(max_examples=25, deadline=None)
@given(data=st.data(), period=st.integers(1, 6), x_dim=st.integers(2, 6))
def test_a_delay_makes_a_shortcut_through_a_synapse_exact(data, period, x_dim):
    """The shortcut ``Q a`` carries currents, not spikes: a delay of one cycle (``period``
    steps) moves its packets onto the main path's, and the block is exact again."""
    perm = data.draw(st.permutations(range(x_dim)))
    q = data.draw(st.permutations(range(x_dim)))
    k = np.array(data.draw(st.lists(st.lists(st.integers(0, period), min_size=x_dim,
                                             max_size=x_dim), min_size=1, max_size=3)))
    levels = np.maximum(k[:, q] - k[:, perm], 0)  # relu(Q a - Pi a) in units of 1/period
    net = residual_block(x_dim, period, perm, sync=True, shortcut_perm=q)
    delays = [n for n in net.graph.nodes if n.op == "delay"]
    assert [(n.name, n.inputs, n.attrs["steps"]) for n in delays] == [
        ("short_delay1", ("short",), period)]
    assert net.graph.node("add").inputs == ("w3", "short_delay1")
    assert not [n for n in net.graph.nodes if n.attrs.get("role") == "sync"]
    first = (int(net.schedule["readout_stage"]) + 1) * period
    for packets in (1, 3):
        t = first + 2 * period * (packets - 1)
        ref = Simulator(net, "numpy").run(k / period, t)
        assert np.array_equal(ref.counts["c"], packets * levels)
        assert np.array_equal(Simulator(net, "numba").run(k / period, t).counts["c"],
                              ref.counts["c"])
    # without the delay the shortcut's packets arrive while c fires: c never sees Q a
    lost = Simulator(residual_block(x_dim, period, perm, False, q), "numpy").run(k / period, t)
    assert np.array_equal(lost.counts["c"], np.zeros_like(levels))


def test_delay_node_semantics():
    """``delay`` with ``steps = D``: the input's value of step ``t - D``, 0 before."""
    graph = make_graph((3,), [dict(name="d", op="delay", inputs=["input"],
                                   attrs={"steps": 2})], "d", ops=SNN_OPS)
    from refsnn.sim.steps import Delay
    op = Delay(graph.node("d"), graph, None, {})
    held = op.init(2)
    xs = [np.full((2, 3), float(t)) for t in range(1, 7)]
    got = [op.step(held, x).copy() for x in xs]
    for x in xs:
        x[...] = -1  # the producer reusing its arrays must not change what is held
    assert [g[0, 0] for g in got] == [0, 0, 1, 2, 3, 4]
    with pytest.raises(ModelFormatError, match="/nodes/d: steps: expected values >= 1"):
        make_graph((3,), [dict(name="d", op="delay", inputs=["input"], attrs={"steps": 0})],
                   "d", ops=SNN_OPS)


def test_without_synchronous_neurons_the_shortcut_is_lost():
    period, perm = 4, [1, 2, 0]
    x = np.array([[1.0, 0.25, 0.5], [0.5, 0.0, 1.0]])
    ann = np.maximum(x - x[:, perm], 0.0)
    steps = [16 * period * k for k in (1, 4)]
    synced = Simulator(residual_block(3, period, perm, sync=True), "numpy").run(x, steps)
    unsynced = Simulator(residual_block(3, period, perm, sync=False), "numpy").run(x, steps)
    for t in steps:
        assert np.array_equal(synced.readout[t], ann)
        # the shortcut's packets arrive while c fires: c sees only -Pi x, so it stays silent
        assert np.array_equal(unsynced.readout[t], np.zeros_like(ann))
        assert np.max(np.abs(unsynced.readout[t] - ann)) >= 0.5


# ------------------------------------------------------------------- whole networks

def _nets(cnn_seed=0):
    rng = np.random.default_rng(3)
    cases = []
    for graph, shape in ((small_cnn(cnn_seed, residual=True), (2, 6, 6)),
                         (small_cnn(cnn_seed, pool="maxpool2d"), (2, 6, 6)),
                         (small_mlp(cnn_seed), (12,))):
        calib = rng.uniform(0, 1, (20,) + shape)
        cases.append((graph, calib, rng.uniform(0, 1, (5,) + shape)))
    return cases


@pytest.mark.parametrize("case", range(3))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_numba_equals_numpy_on_any_thread_count_and_batching(case, dtype):
    graph, calib, x = _nets()[case]
    net = convert_bsnn(graph, calib, period=3, dtype=dtype)
    ref = Simulator(net, "numpy").run(x, [7, 12, 30], rasters=net.neuron_nodes())
    for threads in THREADS:
        numba.set_num_threads(threads)
        got = Simulator(net, "numba").run(x, [7, 12, 30], rasters=net.neuron_nodes())
        for t in ref.readout:
            assert ref.readout[t].dtype == dtype
            assert np.array_equal(ref.readout[t], got.readout[t])
        for name in ref.counts:
            assert np.array_equal(ref.counts[name], got.counts[name])
            assert np.array_equal(ref.rasters[name], got.rasters[name])
    parts = [Simulator(net).run(x[i:i + 2], [30]).readout[30] for i in range(0, 5, 2)]
    assert np.array_equal(np.concatenate(parts), ref.readout[30])


def test_conversion_structure_and_round_trip(tmp_path):
    graph, calib, x = _nets()[0]
    # the small residual net's main path has no neuron layer: nothing to synchronise
    net = convert_bsnn(graph, calib)
    stages = {n.name: n.attrs["stage"] for n in net.graph.nodes if n.op == "bistable"}
    assert stages == {"relu": 1, "relu2": 2}
    # the shipped ResNet's main path has one: one synchronous neuron on the shortcut
    resnet = load_refsnn_h5(MODELS / "resnet.h5")
    xr, _ = load_data(DATA, "train", resnet.input_shape, 20)
    synced = convert_bsnn(resnet, xr)
    stages = {n.name: n.attrs["stage"] for n in synced.graph.nodes if n.op == "bistable"}
    assert stages == {"relu1": 1, "block_relu1": 2, "relu1_sync1": 2, "block_relu2": 3}
    sync = synced.graph.node("relu1_sync1")
    assert sync.attrs["role"] == "sync" and sync.attrs["v_init"] == "half"
    assert np.array_equal(sync.params["threshold"], synced.graph.node("relu1").params["threshold"])
    assert synced.graph.node("block_add").inputs == ("block_conv2", "relu1_sync1")
    assert synced.schedule == {"period": 4.0, "readout_stage": 3.0}
    assert synced.options["sync"] == 1 and synced.decoder == "packet"
    plain = convert_bsnn(resnet, xr, sync=False)
    assert "relu1_sync1" not in [n.name for n in plain.graph.nodes]
    save_snn(net, tmp_path / "net.h5")
    back = load_snn(tmp_path / "net.h5")
    assert back.method == "bsnn" and back.decoder == "packet"
    a = Simulator(net).run(x, 40).readout[40]
    assert np.array_equal(a, Simulator(back).run(x, 40).readout[40])


def test_readout_is_zero_until_the_first_packet_and_tends_to_the_ann_limit():
    graph, calib, x = _nets()[2]  # MLP: two neuron layers, output stage 2
    net = convert_bsnn(graph, calib, period=4)
    first = 3 * 4
    run = Simulator(net).run(x, [first - 1, first, 4000])
    assert np.array_equal(run.readout[first - 1], np.zeros_like(run.readout[first]))
    assert np.any(run.readout[first] != 0)
    from refsnn.sim.network import ann_limit
    assert np.max(np.abs(run.readout[4000] - ann_limit(net, x))) < 0.02


def synapse_shortcut_nodes(seed=0):
    """A residual MLP whose shortcut goes through a linear node ('short')."""
    rng = np.random.default_rng(seed)
    w = lambda o, i: dict(weight=rng.normal(0, 0.5, (o, i)), bias=np.zeros(o))
    return [
        dict(name="l1", op="linear", inputs=["input"], params=w(4, 4)),
        dict(name="r1", op="relu", inputs=["l1"]),
        dict(name="short", op="linear", inputs=["r1"], params=w(4, 4)),
        dict(name="l2", op="linear", inputs=["r1"], params=w(4, 4)),
        dict(name="r2", op="relu", inputs=["l2"]),
        dict(name="l3", op="linear", inputs=["r2"], params=w(4, 4)),
        dict(name="add", op="add", inputs=["l3", "short"]),
    ]


def test_refusals_and_relays():
    graph, calib, _ = _nets()[0]
    with pytest.raises(OptionError, match="--period"):
        convert_bsnn(graph, calib, period=0)
    # a shortcut through a synapse is relayed by a delay of one cycle
    g = make_graph((4,), synapse_shortcut_nodes(), "add")
    calib = np.random.default_rng(1).uniform(0, 1, (8, 4))
    net = convert_bsnn(g, calib, period=3)
    assert net.graph.node("add").inputs == ("l3", "short_delay1")
    assert net.graph.node("short_delay1").attrs["steps"] == 3
    plain = convert_bsnn(g, calib, sync=False)
    assert plain.graph.node("add").inputs == ("l3", "short")
    # the relay's name must not clash with a node of the model
    clash = make_graph((4,), synapse_shortcut_nodes() + [
        dict(name="short_delay1", op="identity", inputs=["add"])], "short_delay1")
    with pytest.raises(ConversionError, match="cannot name a relay node 'short_delay1'"):
        convert_bsnn(clash, calib)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_delay_relay_numba_equals_numpy_and_round_trips(dtype, tmp_path):
    rng = np.random.default_rng(2)
    net = convert_bsnn(make_graph((4,), synapse_shortcut_nodes(3), "add"),
                       rng.uniform(0, 1, (16, 4)), period=2, dtype=dtype)
    x = rng.uniform(0, 1, (5, 4))
    ref = Simulator(net, "numpy").run(x, [9, 40], rasters=net.neuron_nodes())
    for threads in THREADS:
        numba.set_num_threads(threads)
        got = Simulator(net, "numba").run(x, [9, 40], rasters=net.neuron_nodes())
        for t in ref.readout:
            assert np.array_equal(ref.readout[t], got.readout[t])
        for name in ref.rasters:
            assert np.array_equal(ref.rasters[name], got.rasters[name])
    save_snn(net, tmp_path / "net.h5")
    back = load_snn(tmp_path / "net.h5", dtype=dtype)
    assert back.graph.node("short_delay1").attrs["steps"] == 2
    assert np.array_equal(Simulator(back, "numpy").run(x, 40).readout[40], ref.readout[40])


# ----------------------------------------------------------------- shipped models, CLI

@needs_jit
@pytest.mark.parametrize("model", ["cnn", "resnet"])
def test_bsnn_emits_fewer_spikes_of_inactivated_neurons_than_if(model):
    """Same thresholds and the same initial potential theta/2; 60 test images, T = 64."""
    graph = load_refsnn_h5(MODELS / f"{model}.h5")
    xc, _ = load_data(DATA, "train", graph.input_shape)
    x, y = load_data(DATA, "test", graph.input_shape, 60)
    if_sin = evaluate(convert_if(graph, xc, v_init="half"), x, y, [64]).sin
    bsnn_sin = evaluate(convert_bsnn(graph, xc), x, y, [64]).sin
    hidden = [k for k in if_sin if k != "relu1"]  # relu1 sees a constant current: no SIN
    assert if_sin["relu1"] == bsnn_sin["relu1"] == 0
    for layer in hidden:
        assert bsnn_sin[layer] < if_sin[layer], (layer, bsnn_sin, if_sin)


def test_cli_bsnn_options_and_sin(capsys, tmp_path):
    args = ["evaluate", str(MODELS / "mlp.h5"), "--data", str(DATA), "--limit", "20",
            "--method", "bsnn",
            "--steps", "24", "--json"]
    assert main(args + ["--period", "2"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["method"] == "bsnn" and out["options"]["period"] == 2
    assert set(out["sin"]) == {"relu1", "relu2"} and out["sin"]["relu1"] == 0
    assert main(args + ["--reset", "zero"]) == 2
    assert "--reset does not apply to --method bsnn" in capsys.readouterr().err
    assert main(args + ["--period", "0"]) == 2
    assert "--period: expected a positive integer" in capsys.readouterr().err
    assert main(["diagnose", str(MODELS / "resnet.h5"), "--data", str(DATA), "--limit", "8",
                 "--method", "bsnn", "--steps", "16", "--json"]) == 0
    table = json.loads(capsys.readouterr().out)["diagnostics"]["sin"]
    layers = [row["layer"] for row in table["rows"]]
    assert layers == ["relu1", "block_relu1", "relu1_sync1", "block_relu2"]
    assert all(row["sin_spikes"] >= 0 for row in table["rows"])


def test_malformed_bsnn_files_are_refused_by_name(tmp_path):
    import h5py

    from refsnn.errors import ModelFormatError

    graph, calib, _ = _nets()[2]
    path = tmp_path / "net.h5"
    for attr, value, field in (("schedule_period", None, "schedule_period"),
                               ("schedule_period", 2.5, "schedule_period"),
                               ("schedule_readout_stage", 0.0, "schedule_readout_stage"),
                               ("schedule_period", 3.0, "period")):
        save_snn(convert_bsnn(graph, calib, period=4), path)
        with h5py.File(path, "a") as f:
            if value is None:
                del f.attrs[attr]
            else:
                f.attrs[attr] = value
        with pytest.raises(ModelFormatError, match=field) as err:
            load_snn(path)
        assert str(path) in str(err.value)


def test_poisson_input_is_seeded_per_sample_and_backend_independent():
    graph, calib, x = _nets()[2]
    net = convert_bsnn(graph, calib, encoding="poisson")
    ids = np.arange(10, 15)
    ref = Simulator(net, "numpy").run(x, 40, seed=7, sample_ids=ids)
    got = Simulator(net, "numba").run(x, 40, seed=7, sample_ids=ids)
    assert np.array_equal(ref.readout[40], got.readout[40])
    part = Simulator(net).run(x[3:], 40, seed=7, sample_ids=ids[3:])
    assert np.array_equal(part.readout[40], ref.readout[40][3:])
    other = Simulator(net).run(x, 40, seed=8, sample_ids=ids)
    assert not np.array_equal(other.readout[40], ref.readout[40])
