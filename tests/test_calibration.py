"""Streamed calibration (refsnn.conversion.calibrate): exact percentiles in bounded memory."""

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import refsnn
from refsnn import ann, ann_fast
from refsnn.model.graph import Node
from refsnn.cli.main import main
from refsnn.conversion import calibrate
from refsnn.conversion.bnfold import fold_batchnorm
from refsnn.conversion.calibrate import (StreamedPercentiles, chunk_bounds, forward_passes,
                                         running_sum, streamed_percentile)
from refsnn.conversion.l4 import excess_factor, l4_shifts
from refsnn.theory.l4 import current_moments, limit_rates, source_spikes
from refsnn.conversion.threshold import balance
from refsnn.errors import OptionError

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "data" / "models"
DIGITS = ROOT / "data" / "digits.h5"


def same(got, expected) -> bool:
    """Bit for bit, dtype included; a zero result may differ in sign only (NumPy's sign of a
    zero between -0.0 and 0.0 depends on where its partition leaves them)."""
    got, expected = np.atleast_1d(np.asarray(got)), np.atleast_1d(np.asarray(expected))
    if got.dtype != expected.dtype or got.shape != expected.shape:
        return False
    zero = (got == 0) & (expected == 0)
    return bool(np.all(zero | (got.view(np.uint8).reshape(got.size, -1)
                              == expected.view(np.uint8).reshape(got.size, -1)).all(1)))


def chunked(a, sizes):
    """``chunks()`` for streamed_percentile: ``a`` cut at the cumulative ``sizes``."""
    cuts = np.cumsum(sizes)
    cuts = [int(c) for c in cuts if 0 < c < a.shape[0]]
    return lambda: iter(np.split(a, cuts))


VALUES = st.one_of(
    st.sampled_from([0.0, -0.0, 1.0, -1.0, 2.5, 1e-300, -3.0, np.inf, -np.inf]),
    st.floats(-1e6, 1e6, allow_nan=False, width=32))
PERCENTILES = st.one_of(st.sampled_from([0, 0.0, 100, 100.0, 99.9, 50, 1e-9, 99.99999]),
                        st.floats(0, 100), st.integers(0, 100))


@st.composite
def cases(draw):
    dtype = draw(st.sampled_from([np.float64, np.float32]))
    b = draw(st.integers(1, 12))
    c = draw(st.integers(1, 4))
    hw = draw(st.integers(1, 5))
    flat = draw(st.lists(VALUES, min_size=b * c * hw, max_size=b * c * hw))
    a = np.array(flat, dtype=dtype).reshape(b, c, hw)
    if draw(st.booleans()):
        a = np.maximum(a, 0)  # ReLU activations: many zeros
    sizes = draw(st.lists(st.integers(1, 5), min_size=1, max_size=12))
    budget = draw(st.sampled_from([1, 3, 16, 1 << 20]))
    return a, draw(PERCENTILES), sizes, budget


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_streamed_percentile_is_numpys_bit_for_bit(case):
    # per layer and per channel, any chunking, any budget (1 forces histogram passes down to
    # single keys); infinities, ties, zeros of both signs, negatives; float32 and float64
    a, p, sizes, budget = case
    chunks = chunked(a, sizes)
    with np.errstate(invalid="ignore"):  # inf - inf in the interpolation, as NumPy's
        layer = streamed_percentile(chunks, a.shape[0], p, budget=budget)
        channels = streamed_percentile(chunks, a.shape[0], p, axis1=True, budget=budget)
        expected_layer = np.percentile(a, p)
        expected_channels = np.percentile(np.moveaxis(a, 1, 0).reshape(a.shape[1], -1), p,
                                          axis=1)
    assert same(layer, expected_layer), (layer, expected_layer)
    assert same(channels, expected_channels), (channels, expected_channels)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 400), st.floats(0, 100), st.sampled_from([np.float32, np.float64]),
       st.integers(0, 2 ** 31))
def test_numpy_scalar_percentile_promotes_like_numpy(n, p, dtype, seed):
    # a NumPy scalar percentile makes np.percentile interpolate in float64 (not weak)
    a = np.random.default_rng(seed).standard_normal((n, 2)).astype(dtype)
    got = streamed_percentile(chunked(a, [7] * n), n, np.float64(p), budget=5)
    assert same(got, np.percentile(a, np.float64(p)))


def test_nan_gives_nan_where_numpy_does():
    a = np.arange(24, dtype=np.float64).reshape(4, 3, 2)
    a[2, 1, 0] = np.nan
    got = streamed_percentile(chunked(a, [3]), 4, 50.0, axis1=True, budget=4)
    expected = np.percentile(np.moveaxis(a, 1, 0).reshape(3, -1), 50.0, axis=1)
    assert same(got, expected) and np.isnan(got[1]) and not np.isnan(got[0])
    assert np.isnan(streamed_percentile(chunked(a, [3]), 4, 50.0))


def test_large_set_in_a_small_budget_takes_histogram_passes():
    # the median of 200,000 values with room for 1,000: histogram passes, then exact
    a = np.random.default_rng(3).standard_normal((20_000, 2, 5))
    count = []

    def passes(index):
        count.append(index)
        return ({"a": a[s:s + 1000]} for s in range(0, a.shape[0], 1000))

    run = StreamedPercentiles(passes, a.shape[0], 50.0, {"a"}, budget=1000)
    layer, channels, dtype = run.run()["a"]
    assert run.passes_run >= 2 and dtype == np.float64
    assert same(layer, np.percentile(a, 50.0))
    assert same(channels, np.percentile(np.moveaxis(a, 1, 0).reshape(2, -1), 50.0, axis=1))


def test_the_99_9th_percentile_takes_one_pass():
    a = np.maximum(np.random.default_rng(4).standard_normal((30_000, 3, 4)), 0)
    run = StreamedPercentiles(lambda i: ({"a": a[s:s + 512]} for s in range(0, 30_000, 512)),
                              a.shape[0], 99.9, {"a"}, budget=1 << 16)
    layer, channels, _ = run.run()["a"]
    assert run.passes_run == 1
    assert same(layer, np.percentile(a, 99.9))


def test_percentile_out_of_range_is_refused():
    with pytest.raises(ValueError, match="percentile"):
        streamed_percentile(lambda: iter([np.zeros((2, 1))]), 2, 100.5)


def test_chunks_cover_the_set_and_none_is_small():
    for total in (1, 511, 512, 1023, 1024, 1025, 60_000):
        bounds = chunk_bounds(total, 512)
        assert bounds[0][0] == 0 and bounds[-1][1] == total
        assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
        assert all(512 <= stop - start < 1024 for start, stop in bounds) or len(bounds) == 1


@pytest.mark.parametrize("model", ["mlp", "cnn", "resnet"])
@pytest.mark.parametrize("per_channel", [False, True])
def test_conversion_thresholds_equal_the_whole_batch_ones(model, per_channel, monkeypatch):
    # chunked calibration (chunks of 256, the last one 311) gives the thresholds
    # balance() gives on the whole batch's activations, bit for bit
    monkeypatch.setattr(calibrate, "CHUNK", 256)
    graph = refsnn.load_model(MODELS / f"{model}.h5")
    xc, _ = refsnn.load_data(DIGITS, "train", graph.input_shape)
    net = refsnn.convert(graph, "if", xc, per_channel=per_channel)
    folded = fold_batchnorm(graph)
    _, acts = ann.forward(folded, xc, all_nodes=True)
    for name in net.neuron_nodes():
        expected = balance(acts[name], 99.9, per_channel)
        got = net.graph.node(name).params["threshold"]
        assert got.dtype == expected.dtype and np.array_equal(got, expected), name


def test_chunked_forward_equals_the_whole_batch_forward():
    # BLAS may round a small product differently from a large one: chunks of at least
    # CHUNK samples give the whole-batch activations (checked on the LeNet and the CNN)
    for model, data in (("mnist_lenet", ROOT / "data" / "mnist.h5"), ("cnn", DIGITS)):
        graph = refsnn.load_model(MODELS / f"{model}.h5")
        x, _ = refsnn.load_data(data, "train", graph.input_shape, limit=1300)
        names = [n.name for n in graph.nodes]
        _, whole = ann.forward(graph, x, all_nodes=True)
        parts = list(forward_passes(graph, x, names)(0))
        assert len(parts) == 2
        for name in names:
            assert np.array_equal(np.concatenate([p[name] for p in parts]), whole[name]), name


def test_progress_is_reported_and_quiet_by_default(capsys):
    graph = refsnn.load_model(MODELS / "mlp.h5")
    xc, _ = refsnn.load_data(DIGITS, "train", graph.input_shape)
    seen = []
    net = refsnn.convert(graph, "if", xc, progress=lambda *a: seen.append(a))
    assert seen[-1] == (0, xc.shape[0], xc.shape[0])
    assert [d for _, d, _ in seen] == sorted(d for _, d, _ in seen)
    quiet = refsnn.convert(graph, "if", xc)
    assert capsys.readouterr().err == ""
    for name in net.neuron_nodes():
        assert np.array_equal(net.graph.node(name).params["threshold"],
                              quiet.graph.node(name).params["threshold"])
    seen = []
    refsnn.convert(graph, "signgd", xc, progress=lambda *a: seen.append(a))
    assert seen[-1] == (0, xc.shape[0], xc.shape[0])
    with pytest.raises(OptionError, match="progress"):  # no calibration: nothing to report
        refsnn.convert(refsnn.load_model(MODELS / "cnn_qcfs.h5"), "noise", progress=print)


def test_cli_shows_calibration_progress_on_a_terminal_only(capsys, monkeypatch, tmp_path):
    import sys

    args = ["convert", str(MODELS / "mlp.h5"), "--calibration", str(DIGITS)]
    assert main([*args, "-o", str(tmp_path / "a.h5")]) == 0
    assert "calibrating" not in capsys.readouterr().err  # a pipe: quiet (one-line errors)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert main([*args, "-o", str(tmp_path / "b.h5")]) == 0
    err = capsys.readouterr().err
    assert "calibrating, pass 1 [" in err and "1347/1347" in err and err.endswith("\n")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_halfway_interpolation_takes_numpys_branch(dtype):
    # at weight 1/2 NumPy computes b - (b - a)/2, which differs from a + (b - a)/2 for
    # some pairs: pairs drawn until such ones occur, each compared with np.percentile
    pairs = np.random.default_rng(5).uniform(-10, 10, (2000, 2)).astype(dtype)
    a = pairs[:, None, :]  # 2000 channels of 2 values: the median is halfway
    got = streamed_percentile(chunked(a.transpose(2, 0, 1), [1]), 2, 50.0, axis1=True)
    assert same(got, np.percentile(pairs, 50.0, axis=1))
    lower = np.minimum(pairs[:, 0], pairs[:, 1])
    upper = np.maximum(pairs[:, 0], pairs[:, 1])
    assert np.any(lower + (upper - lower) * 0.5 != got)  # the case is exercised


@st.composite
def conv_cases(draw):
    dtype = draw(st.sampled_from([np.float64, np.float32]))
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    cg, og = draw(st.integers(1, 9)), draw(st.integers(1, 12))  # both kernel variants
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    seed = draw(st.integers(0, 2 ** 31))
    rng = np.random.default_rng(seed)
    h, w = draw(st.integers(kh, 10)), draw(st.integers(kw, 10))
    node = Node("c", "conv2d", ["input"], {"groups": groups, "stride": stride,
                                           "padding": padding},
                {"weight": rng.standard_normal((og * groups, cg, kh, kw)).astype(dtype),
                 "bias": rng.standard_normal(og * groups).astype(dtype)})
    x = rng.standard_normal((draw(st.integers(1, 5)), cg * groups, h, w)).astype(dtype)
    if draw(st.booleans()):
        x = np.maximum(x, 0)  # zeros: partial sums of +-0
    return node, x


@settings(max_examples=100, deadline=None)
@given(conv_cases(), st.sampled_from([1, 2]))
def test_compiled_conv_is_the_reference_bit_for_bit(case, threads):
    # the compiled convolution makes the reference's additions in its order: tolerance 0
    import numba

    node, x = case
    before = numba.get_num_threads()
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    try:
        got = ann_fast.conv2d(node, x)
    finally:
        numba.set_num_threads(before)
    expected = ann.FORWARD["conv2d"](node, x)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    assert np.array_equal(got.view(np.uint8), expected.view(np.uint8))


@pytest.mark.parametrize("model", ["cnn", "resnet", "convnext", "mnist_lenet", "mnist_resnet"])
def test_compiled_forward_is_the_reference_on_the_shipped_models(model):
    graph = refsnn.load_model(MODELS / f"{model}.h5")
    x = np.random.default_rng(6).random((3,) + tuple(graph.input_shape))
    _, expected = ann.forward(graph, x, all_nodes=True)
    _, got = ann.forward(graph, x, all_nodes=True, forward_ops=ann_fast.FORWARD_OPS)
    for name, value in expected.items():
        assert np.array_equal(got[name].view(np.uint8), value.view(np.uint8)), name


# --- signGD's scales and the L4 adjustment, streamed -----------------------------------------

MNIST = ROOT / "data" / "mnist.h5"


def identical(got, expected) -> bool:
    """Bit for bit: dtype, shape and every byte."""
    got, expected = np.asarray(got), np.asarray(expected)
    return (got.dtype == expected.dtype and got.shape == expected.shape
            and got.tobytes() == expected.tobytes())


def _params(net):
    return {(n.name, k): v for n in net.graph.nodes for k, v in n.params.items()}


SCALES = {"element": {}, "channel": {"scale": "channel"}, "layer": {"scale": "layer"},
          "compat": {"compat": True}}
SIGNGD_CASES = [(model, data, limit, how)
                for model, data, limit in [("mlp", DIGITS, None), ("cnn_maxpool", DIGITS, None),
                                           ("cnn_silu", DIGITS, None),
                                           ("mnist_lenet", MNIST, 1500)]
                for how in SCALES if not (how == "compat" and model == "cnn_silu")
                # the LeNet (slower): the per-element maxima and --compat; channel and layer
                # maxima are taken from the same per-element ones (the digits models check them)
                and not (model == "mnist_lenet" and how in ("channel", "layer"))]


@pytest.mark.parametrize("model,data,limit,how", SIGNGD_CASES)
def test_signgd_scales_streamed_equal_the_whole_batch_ones(model, data, limit, how,
                                                          monkeypatch):
    # every parameter (scales per element / channel / layer, x_init) and the readout's
    # constant, bit for bit: chunks of 256 (digits) or 512 + 988 (MNIST) vs one chunk of all
    # (--compat refuses SiLU, so that pair is not a case)
    options = SCALES[how]
    graph = refsnn.load_model(MODELS / f"{model}.h5")
    xc, _ = refsnn.load_data(data, "train", graph.input_shape, limit=limit)
    monkeypatch.setattr(calibrate, "CHUNK", 256 if limit is None else 512)
    seen = []
    streamed = refsnn.convert(graph, "signgd", xc, progress=lambda *a: seen.append(a), **options)
    assert len(seen) >= 2  # more than one chunk
    monkeypatch.setattr(calibrate, "CHUNK", 10 ** 9)
    whole = refsnn.convert(graph, "signgd", xc, **options)
    got, expected = _params(streamed), _params(whole)
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert identical(got[key], value), key
    assert identical(streamed.readout_init, whole.readout_init)


def test_running_sum_is_numpys_sum_and_a_per_chunk_sum_is_not():
    rng = np.random.default_rng(9)
    for shape in [(1300, 10), (1300, 6, 12, 12), (1300, 3, 1, 9), (1300, 2, 1, 1)]:
        a = rng.random(shape) ** 3 * 10
        axes = (0,) + tuple(range(2, a.ndim))
        total = None
        for part in np.split(a, [1, 256, 700]):
            total = running_sum(total, part, axes)
        assert identical(total, np.add.reduce(a, axis=axes)), shape
        count = np.intp(a.size // a.shape[1])
        assert identical(np.true_divide(total, count), a.mean(axis=axes)), shape
    # the control: summing each chunk first rounds otherwise (so the check above can fail)
    a = rng.random((1300, 10)) ** 3 * 10
    naive = sum(np.add.reduce(p, axis=0) for p in np.split(a, [1, 256, 700]))
    assert not np.array_equal(naive, np.add.reduce(a, axis=0))
    # one kept element: NumPy sums all values pairwise as one run, which no chunking
    # continues; running_sum refuses it (l4_shifts keeps such a node's whole set)
    for shape in [(1300,), (1300, 1, 4, 4)]:
        assert not calibrate.sums_by_slab(shape, (0, 2, 3)[:len(shape) - 1 or 1])
        with pytest.raises(ValueError, match="pairwise"):
            running_sum(None, rng.random(shape), (0, 2, 3)[:len(shape) - 1 or 1])


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 60), st.integers(2, 9), st.lists(st.integers(1, 9), max_size=3),
       st.lists(st.integers(1, 59), max_size=4), st.integers(0, 2 ** 32 - 1))
def test_running_sum_is_numpys_sum_on_any_shape_and_cuts(b, channels, rest, cuts, seed):
    a = np.random.default_rng(seed).standard_normal((b, channels, *rest)) * 1e3
    axes = (0,) + tuple(range(2, a.ndim))
    assert calibrate.sums_by_slab(a.shape, axes)
    total = None
    for part in np.split(a, sorted(c for c in set(cuts) if c < b)):
        total = running_sum(total, part, axes)
    assert identical(total, np.add.reduce(a, axis=axes))


@pytest.mark.parametrize("model", ["mlp", "cnn", "resnet"])
def test_l4_shifts_streamed_equal_the_whole_batch_ones(model, monkeypatch):
    # today's whole-batch formula (limit rates of every node at once, then the mean of the
    # bound) against the streamed shifts in chunks of 256
    monkeypatch.setattr(calibrate, "CHUNK", 256)
    graph = refsnn.load_model(MODELS / f"{model}.h5")
    xc, _ = refsnn.load_data(DIGITS, "train", graph.input_shape)
    net = refsnn.convert(graph, "if", xc, encoding="poisson")
    seen = []
    got = l4_shifts(net, xc, 32, lambda *a: seen.append(a))
    assert len(seen) == xc.shape[0] // 256 and seen[-1] == (0, xc.shape[0], xc.shape[0])
    rates, values = source_spikes(net, xc, limit_rates(net, xc))
    expected = {}
    for name in net.neuron_nodes():
        m = current_moments(net.graph, name, rates, values)
        if m.l4_bound is not None:
            bound_sd = np.sqrt(m.l4_bound)
            axes = (0,) + tuple(range(2, bound_sd.ndim))
            expected[name] = excess_factor(32) * bound_sd.mean(axis=axes)
    assert got.keys() == expected.keys() and expected
    for name, value in expected.items():
        assert identical(got[name], value), name


def test_l4_adjustment_reports_its_pass_after_the_thresholds_ones():
    graph = refsnn.load_model(MODELS / "mlp.h5")
    xc, _ = refsnn.load_data(DIGITS, "train", graph.input_shape)
    seen = []
    net = refsnn.convert(graph, "if", xc, encoding="poisson", adjust="l4",
                         progress=lambda *a: seen.append(a))
    last = max(i for i, _, _ in seen)
    assert last >= 1 and seen[-1] == (last, xc.shape[0], xc.shape[0])
    assert [i for i, _, _ in seen] == sorted(i for i, _, _ in seen)
    quiet = refsnn.convert(graph, "if", xc, encoding="poisson", adjust="l4")
    for key, value in _params(quiet).items():
        assert identical(_params(net)[key], value), key


def test_signgd_calibration_memory_does_not_grow_with_the_set(monkeypatch):
    import tracemalloc

    monkeypatch.setattr(calibrate, "CHUNK", 256)
    graph = refsnn.load_model(MODELS / "cnn_maxpool.h5")
    xc, _ = refsnn.load_data(DIGITS, "train", graph.input_shape)
    twice = np.concatenate([xc, xc])
    peaks = []
    for x in (xc, twice):
        refsnn.convert(graph, "signgd", x[:300])  # warm up (compilation, caches)
        tracemalloc.start()
        refsnn.convert(graph, "signgd", x)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    # one set's activations of every node are several times the input; holding them would
    # double the peak
    assert peaks[1] < 1.2 * peaks[0], peaks


def test_l4_shift_of_a_one_channel_layer_keeps_the_whole_set(monkeypatch):
    # a one-channel conv layer: NumPy sums its bounds pairwise in one run, so l4_shifts keeps
    # them for the whole set (sums_by_slab); the other layer streams; both are today's bits
    from refsnn.model import make_graph

    rng = np.random.default_rng(4)
    nodes = [dict(name="c1", op="conv2d", inputs=["input"], attrs=dict(padding=(1, 1)),
                  params=dict(weight=rng.normal(0, 0.5, (1, 2, 3, 3)),
                              bias=rng.normal(0, 0.1, 1))),
             dict(name="r1", op="relu", inputs=["c1"]),
             dict(name="flat", op="flatten", inputs=["r1"]),
             dict(name="fc", op="linear", inputs=["flat"],
                  params=dict(weight=rng.normal(0, 0.3, (5, 16)), bias=rng.normal(0, 0.1, 5))),
             dict(name="r2", op="relu", inputs=["fc"])]
    graph = make_graph((2, 4, 4), nodes, "r2")
    x = rng.uniform(0, 1, (700, 2, 4, 4))
    net = refsnn.convert(graph, "if", x, encoding="poisson")
    monkeypatch.setattr(calibrate, "CHUNK", 128)
    got = l4_shifts(net, x, 16)
    rates, values = source_spikes(net, x, limit_rates(net, x))
    for name, axes in (("r1", (0, 2, 3)), ("r2", (0,))):
        bound_sd = np.sqrt(current_moments(net.graph, name, rates, values).l4_bound)
        assert calibrate.sums_by_slab(bound_sd.shape, axes) == (name == "r2")
        assert identical(got[name], excess_factor(16) * bound_sd.mean(axis=axes)), name
