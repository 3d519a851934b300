"""The simulator: Numba equals the NumPy reference bit for bit on whole networks, results do not
depend on threads or batching, the encoders do what they say, and the SNN approaches the ANN."""

from __future__ import annotations

import numba
import numpy as np
import pytest

from refsnn import ann
from refsnn.conversion import convert_if
from refsnn.errors import DataFormatError, OptionError
from refsnn.sim.network import NEURON_FORWARD
from refsnn.sim.simulator import Simulator

from conftest import small_cnn, small_mlp


def assert_runs_equal(a, b):
    assert a.steps == b.steps
    for key in ("readout", "counts", "step_counts", "rasters", "potentials"):
        da, db = getattr(a, key), getattr(b, key)
        assert da.keys() == db.keys(), key
        for k in da:
            assert da[k].dtype == db[k].dtype and np.array_equal(da[k], db[k]), (key, k)


NETS = {
    "cnn-avg": lambda: small_cnn(pool="avgpool2d"),
    "cnn-max": lambda: small_cnn(pool="maxpool2d"),
    "resnet": lambda: small_cnn(residual=True, pool="maxpool2d"),
    "mlp": lambda: small_mlp(),
}


def _data(graph, n=4, seed=3):
    return np.random.default_rng(seed).uniform(0, 1, (n,) + graph.input_shape)


@pytest.mark.parametrize("name", NETS)
@pytest.mark.parametrize("options", [
    dict(),
    dict(encoding="poisson", readout="count", per_channel=True),
    dict(reset="zero", v_init="half", percentile=100.0),
    dict(dtype=np.float32, encoding="poisson"),
])
def test_numba_equals_numpy_reference(name, options):
    graph = NETS[name]()
    x = _data(graph)
    net = convert_if(graph, _data(graph, 16, seed=9), **options)
    seed = 5 if net.encoding == "poisson" else 0
    neurons = net.neuron_nodes()
    runs = [Simulator(net, backend).run(x, [3, 17, 40], seed=seed, rasters=neurons[:1],
                                        potentials=neurons[-1:])
            for backend in ("numpy", "numba")]
    assert_runs_equal(*runs)
    assert runs[0].counts[neurons[0]].sum() > 0, "the test network should be active"
    want = np.float32 if options.get("dtype") is np.float32 else np.float64
    assert runs[0].readout[40].dtype == want


def test_same_for_any_thread_count():
    graph = small_cnn(residual=True, pool="maxpool2d")
    net = convert_if(graph, _data(graph, 16), encoding="poisson")
    before = numba.get_num_threads()
    try:
        runs = []
        for threads in sorted({1, numba.config.NUMBA_NUM_THREADS}):
            numba.set_num_threads(threads)
            runs.append(Simulator(net).run(_data(graph, 7), [25], seed=11, rasters=["relu"]))
    finally:
        numba.set_num_threads(before)
    assert_runs_equal(runs[0], runs[-1])


@pytest.mark.parametrize("encoding", ["analog", "poisson"])
def test_same_for_any_batching(encoding):
    graph = small_mlp()
    net = convert_if(graph, _data(graph, 16), encoding=encoding)
    x = _data(graph, 6)
    seed = 2 if encoding == "poisson" else 0
    whole = Simulator(net).run(x, [30], seed=seed)
    parts = [Simulator(net).run(x[s], [30], seed=seed, sample_ids=np.arange(6)[s])
             for s in (slice(0, 4), slice(4, 6))]
    joined = np.concatenate([p.readout[30] for p in parts])
    assert np.array_equal(whole.readout[30], joined)


def test_poisson_seed_and_rates():
    graph = small_mlp(sizes=(400, 3))  # one linear layer: the readout is W @ input rate + b
    net = convert_if(graph, _data(graph, 4), encoding="poisson")
    x = np.random.default_rng(0).uniform(-1, 1, (1, 400))
    a = Simulator(net).run(x, [2000], seed=1).readout[2000]
    b = Simulator(net).run(x, [2000], seed=1).readout[2000]
    c = Simulator(net).run(x, [2000], seed=2).readout[2000]
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    w, bias = graph.nodes[0].params["weight"], graph.nodes[0].params["bias"]
    # Readout = W @ (mean of Bernoulli spikes) + b. Its sd per output is
    # sqrt(sum w^2 |x|(1-|x|) / T); allow 5 sd (a false failure once in ~1.7 million).
    sd = np.sqrt((w ** 2) @ (np.abs(x[0]) * (1 - np.abs(x[0]))) / 2000)
    assert np.all(np.abs(a[0] - (w @ x[0] + bias)) <= 5 * sd)


def test_poisson_rejects_values_outside_unit_range():
    graph = small_mlp()
    net = convert_if(graph, _data(graph, 4), encoding="poisson")
    with pytest.raises(DataFormatError, match=r"poisson encoding: expected inputs in \[-1, 1\].*"
                                              r"found \|x\| up to 1\.5"):
        Simulator(net).run(np.full((1, 12), 1.5), [4])


def test_converges_to_the_ann_as_one_over_t():
    """With percentile 100 nothing clips on the calibration set, so the ANN limit is the ANN;
    the readout error then shrinks about as 1/T."""
    graph = small_cnn(residual=True)
    x = _data(graph, 6)
    net = convert_if(graph, x, percentile=100.0)
    limit = ann.forward(net.graph, x, forward_ops=NEURON_FORWARD)
    np.testing.assert_allclose(limit, ann.forward(graph, x), rtol=0, atol=1e-12)
    run = Simulator(net).run(x, [16, 64, 256, 1024])
    errors = [np.abs(run.readout[t] - limit).max() for t in run.steps]
    assert errors[-1] < errors[0] / 16, errors
    # T * error stays within a factor 2 of its first value: 1/T decay (1/sqrt(T) would grow 8x)
    first = run.steps[0] * errors[0]
    assert all(t * e < 2 * first for t, e in zip(run.steps, errors)), errors


def test_zero_input_and_zero_bias_gives_no_spikes():
    graph = small_mlp()
    dicts = [dict(name=n.name, op=n.op, inputs=list(n.inputs), attrs=dict(n.attrs),
                  params={k: (np.zeros_like(v) if k == "bias" else v) for k, v in n.params.items()})
             for n in graph.nodes]
    from refsnn.model import make_graph
    g0 = make_graph(graph.input_shape, dicts, graph.output)
    net = convert_if(g0, _data(g0, 8))
    run = Simulator(net).run(np.zeros((2, 12)), [50])
    assert all(c.sum() == 0 for c in run.counts.values())


def test_recording_shapes_and_errors():
    graph = small_cnn()
    net = convert_if(graph, _data(graph, 8))
    run = Simulator(net).run(_data(graph, 3), [5, 9], rasters=["relu"], potentials=["relu"])
    assert run.rasters["relu"].shape == (9, 3, 4, 6, 6) and run.rasters["relu"].dtype == bool
    assert run.potentials["relu"].shape == (9, 3, 4, 6, 6)
    assert np.array_equal(run.rasters["relu"].sum(axis=0), run.counts["relu"])
    assert run.step_counts["relu"].sum() == run.counts["relu"].sum()
    # potentials after reset by subtraction stay below threshold
    theta = net.graph.node("relu").params["threshold"][None, None, :, None, None]
    assert np.all(run.potentials["relu"] < theta)
    with pytest.raises(OptionError, match="'fc' is not a neuron node; neuron nodes: relu"):
        Simulator(net).run(_data(graph, 1), [5], rasters=["fc"])
    with pytest.raises(OptionError, match="steps: expected positive integers"):
        Simulator(net).run(_data(graph, 1), [0])
    with pytest.raises(OptionError, match="analog encoding is deterministic"):
        Simulator(net).run(_data(graph, 1), [3], seed=4)
    with pytest.raises(OptionError, match="backend: expected one of"):
        Simulator(net, backend="cuda")
    with pytest.raises(DataFormatError, match=r"input batch: expected shape \(B, 2, 6, 6\), "
                                              r"found \(1, 2, 6\)"):
        Simulator(net).run(np.zeros((1, 2, 6)), [3])
    bad = _data(graph, 2)
    bad[1, 0, 2, 3] = np.nan
    with pytest.raises(DataFormatError, match=r"expected finite values, found nan at index "
                                              r"\(1, 0, 2, 3\)"):
        Simulator(net).run(bad, [3])


# -- values kept once the input is constant (Simulator.run's documented shortcut) -----------

def _counting(op):
    """Wrap ``op.step`` to count its calls (undone by deleting the instance attribute)."""
    calls = []
    step = op.step

    def counted(state, *xs):
        calls.append(1)
        return step(state, *xs)
    op.step = counted
    return calls


def _converted(method):
    from refsnn.conversion import convert_bsnn, convert_signgd

    graph = small_cnn(residual=True, pool="maxpool2d")
    calib = _data(graph, 16)
    conversions = {"if-analog": lambda: convert_if(graph, calib),
                   "if-poisson": lambda: convert_if(graph, calib, encoding="poisson"),
                   "bsnn": lambda: convert_bsnn(graph, calib),
                   "signgd": lambda: convert_signgd(graph, calib)}
    return conversions[method]()


@pytest.mark.parametrize("method, calls", [("if-analog", 1), ("bsnn", 1), ("signgd", 2),
                                           ("if-poisson", 20)])
def test_input_only_values_are_computed_once_the_input_is_constant(method, calls):
    """The first conv is computed at every step until the encoder's value stops changing
    (analog: step 1; signGD's exact encoder: step 2; Poisson: never), and only then kept."""
    net = _converted(method)
    sim = Simulator(net, "numpy")
    first = sim.ops[0]
    assert list(first.node.inputs) == ["input"]
    assert first.node.name in sim.input_only
    assert not any(op.is_neuron and op.node.name in sim.input_only for op in sim.ops)
    counted = _counting(first)
    sim.run(_data(net.graph, 3), [20], seed=4 if method == "if-poisson" else 0)
    assert len(counted) == calls


@pytest.mark.parametrize("method", ["if-analog", "bsnn", "signgd", "if-poisson"])
@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_keeping_input_only_values_changes_nothing(method, backend):
    """Bit-identical to recomputing every node every step."""
    net = _converted(method)
    x, seed = _data(net.graph, 3), 4 if method == "if-poisson" else 0
    neurons = net.neuron_nodes()
    kept = Simulator(net, backend)
    recomputed = Simulator(net, backend)
    recomputed.input_only = frozenset()
    runs = [s.run(x, [5, 23], seed=seed, rasters=neurons, potentials=neurons)
            for s in (kept, recomputed)]
    assert_runs_equal(*runs)


def test_stateful_ops_are_not_marked_stateless():
    """An op with a state (``init`` not returning None) must say so, or its value would be
    wrongly kept: checked for every op of every conversion of the test network."""
    for method in ("if-analog", "bsnn", "signgd"):
        for op in Simulator(_converted(method), "numpy").ops:
            assert op.stateless == (op.init(2) is None), (method, op.node.name)


# -- step blocks: several steps of a stackable node in one call ------------------------------

@pytest.mark.parametrize("method", ["if-analog", "bsnn", "signgd", "if-poisson"])
@pytest.mark.parametrize("backend, block", [("numpy", 3), ("numba", 1), ("numba", 4),
                                            ("numba", 7), ("numba", None)])
def test_step_blocks_change_nothing(method, backend, block):
    """Any step block, on either backend, gives the bits of the plain step-by-step NumPy
    loop, with a run length that is no multiple of the block (23) and readouts inside a
    block (5). A block that dropped, repeated or reordered a step, or stacked a stateful
    node, would fail."""
    net = _converted(method)
    x, seed = _data(net.graph, 3), 4 if method == "if-poisson" else 0
    neurons = net.neuron_nodes()
    runs = [Simulator(net, b, step_block=k).run(x, [5, 23], seed=seed, rasters=neurons,
                                                 potentials=neurons)
            for b, k in (("numpy", 1), (backend, block))]
    assert_runs_equal(*runs)
    # potentials of the first neuron node only: the others run their blocks in one call
    runs = [Simulator(net, b, step_block=k).run(x, [5, 23], seed=seed, rasters=neurons,
                                                 potentials=neurons[:1])
            for b, k in (("numpy", 1), (backend, block))]
    assert_runs_equal(*runs)


def test_if_nodes_run_a_block_in_one_call(monkeypatch):
    """The block path is live: with a step block of 4, an IF node makes one block call per
    block (none for the node whose potentials are recorded) and the count one per node."""
    import dataclasses

    net = _converted("if-analog")
    x = _data(net.graph, 3)
    sim = Simulator(net, "numba", step_block=4)
    calls = {"if_block": 0, "count_block": 0}

    def spy(name, kernel):
        def call(*args):
            calls[name] += 1
            return kernel(*args)
        return call

    backend = dataclasses.replace(sim.backend,
                                  count_block=spy("count_block", sim.backend.count_block))
    for op in sim.ops:
        op.backend = backend
        if "block" in op.kernels:  # the IF kind's block kernel
            op.kernels = {**op.kernels, "block": spy("if_block", op.kernels["block"])}
    sim.backend = backend
    neurons = net.neuron_nodes()
    run = sim.run(x, 12, potentials=neurons[:1])
    assert calls == {"if_block": 3 * (len(neurons) - 1), "count_block": 3 * len(neurons)}
    assert_runs_equal(run, Simulator(net, "numpy").run(x, 12, potentials=neurons[:1]))


@pytest.mark.parametrize("bad", [0, -2, 2.5, True, "4"])
def test_step_block_must_be_a_positive_integer(bad):
    with pytest.raises(OptionError, match="step_block: expected a positive integer"):
        Simulator(_converted("if-analog"), step_block=bad)


def test_auto_step_block_respects_the_memory_budget(monkeypatch):
    import refsnn.sim.simulator as simulator

    net = _converted("if-analog")
    sim = Simulator(net)
    per_sample_step = 8 * sum(int(np.prod(s)) for s in net.graph.shapes.values())
    assert _budget_is_ample(simulator, per_sample_step)
    monkeypatch.setattr(simulator, "STACK_MACS", {"float64": 0, "float32": 0})  # by rows only
    assert sim.auto_step_block(1) == 16 and sim.auto_step_block(4) == 8
    assert sim.auto_step_block(32) == 1 and sim.auto_step_block(100) == 1
    # by multiply-adds: a small network stacks steps at large batches too
    macs = simulator.dense_macs(net.graph)
    assert macs == sum(n.params["weight"].size for n in net.graph.nodes if n.op == "linear") + \
        sum(int(np.prod(net.graph.shapes[n.name])) * int(np.prod(n.params["weight"].shape[1:]))
            for n in net.graph.nodes if n.op == "conv2d")
    monkeypatch.setattr(simulator, "STACK_MACS", {"float64": 100 * 6 * macs, "float32": 0})
    assert sim.auto_step_block(100) == 6 and sim.auto_step_block(300) == 2
    assert sim.auto_step_block(2) == 16  # never more than MAX_STEP_BLOCK
    monkeypatch.setattr(simulator, "STEP_BLOCK_BYTES", 5 * per_sample_step)
    assert sim.auto_step_block(1) == 5
    monkeypatch.setattr(simulator, "STEP_BLOCK_BYTES", 1)
    assert sim.auto_step_block(1) == 1
    assert Simulator(net, "numpy").step_block == 1  # the reference stays step by step


def _budget_is_ample(simulator, per_sample_step):
    """The test network is small: the memory budget does not bind at batch 1."""
    return simulator.STEP_BLOCK_BYTES >= 16 * per_sample_step


def test_stackable_ops_are_stateless():
    from refsnn.neurons.base import STEP_OPS

    for op, cls in STEP_OPS.items():
        assert not cls.stackable or (cls.stateless and not cls.is_neuron), op
