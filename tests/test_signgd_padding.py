"""signGD max pooling with padding: padded positions are not part of the window.

A padded position of a ``window`` synapse repeats the nearest input position, which lies in
the same pooling window (padding is at most half the kernel), so every max neuron tracks a
max of activations and no pad value reaches a target, a calibration statistic or a scale
(issue 16: a constant pad of -1e6 did, and the error grew with T). The theory checked here is
the one of ``proofs/signgd.ipynb`` section 3: once every layer has settled, the readout error is
at most ``C * eta_T``, with ``C`` composed layer by layer (``c = scale + Lip * |A| c_below``;
a max neuron is 1-Lipschitz in the max norm, so ``c = scale + max(c_a, c_b)``).
"""

from __future__ import annotations

from dataclasses import replace

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refsnn import ann
from refsnn.conversion import convert_signgd
from refsnn.conversion.signgd import SCALES
from refsnn.model import make_graph
from refsnn.neurons.signgd import step_size
from refsnn.sim.network import SNN_OPS, load_snn, save_snn
from refsnn.sim.simulator import Simulator
from refsnn.synapses.window import window_forward

from conftest import THREADS

pytestmark = pytest.mark.usefixtures("restore_threads")


def padded_pool_net(seed=0, kernel=3, stride=2, size=6, channels=3, relu_first=True):
    """conv 3x3 (padding 1) -> ReLU -> max pool (padding 1) -> linear, on (2, size, size).

    ``relu_first=False`` pools the conv's output before the ReLU, so the pooled values are
    negative as often as not and a pad value could win a window on its own merits."""
    rng = np.random.default_rng(seed)
    k, s = (kernel, kernel), (stride, stride)
    pooled = (size + 2 - kernel) // stride + 1
    inputs = {"relu": "conv", "pool": "relu"} if relu_first else {"pool": "conv", "relu": "pool"}
    last = "pool" if relu_first else "relu"
    nodes = [
        dict(name="conv", op="conv2d", inputs=["input"], attrs=dict(padding=(1, 1)),
             params=dict(weight=rng.normal(0, 0.5, (channels, 2, 3, 3)),
                         bias=rng.normal(0, 0.3, channels))),
        dict(name="relu", op="relu", inputs=[inputs["relu"]]),
        dict(name="pool", op="maxpool2d", inputs=[inputs["pool"]],
             attrs=dict(kernel=k, stride=s, padding=(1, 1))),
        dict(name="flat", op="flatten", inputs=[last]),
        dict(name="fc", op="linear", inputs=["flat"],
             params=dict(weight=rng.normal(0, 0.3, (3, channels * pooled * pooled)),
                         bias=rng.normal(0, 0.1, 3))),
    ]
    return make_graph((2, size, size), nodes, "fc")


def _data(graph, n, seed):
    return np.random.default_rng(seed).uniform(0, 1, (n,) + graph.input_shape)


def error_constant(net):
    """``C`` (one per output, shape (*output_shape,)) of the layer-by-layer bound
    ``|readout_T - ANN| <= C eta_T`` (proofs/signgd.ipynb section 3), and the largest wobble
    ratio ``kappa = Lip |A| c_below / scale`` of any neuron (the bound needs
    ``kappa + 1 <= gamma / (1 - gamma)``)."""
    c = {"input": np.zeros((1,) + net.graph.input_shape)}  # the exact encoder: no error
    kappa = 0.0
    for node in net.graph.nodes:
        xs = [c[i] for i in node.inputs]
        if node.op == "sgd":
            fn = node.attrs["fn"]
            assert fn in ("relu", "max"), fn  # both 1-Lipschitz in the max norm
            below = np.maximum.reduce(xs)
            scale = node.params["scale"][None]
            kappa = max(kappa, float(np.max(below / scale)))
            c[node.name] = scale + below
        elif node.op in ("linear", "conv2d"):
            absolute = replace(node, params={"weight": np.abs(node.params["weight"]),
                                             "bias": np.zeros_like(node.params["bias"])})
            c[node.name] = ann.FORWARD[node.op](absolute, *xs)
        elif node.op == "window":
            c[node.name] = window_forward(node, *xs)
        else:
            c[node.name] = ann.FORWARD[node.op](node, *xs)  # flatten, add, average pooling
    return c[net.graph.output][0], kappa


def _errors(graph, net, x, steps):
    run = Simulator(net).run(x, steps)
    ref = ann.forward(graph, x)
    return {t: np.abs(run.readout[t] - ref).max(axis=0) for t in steps}, run


def _check_geometric(graph, net, x):
    """The error falls geometrically: from T = 128 to 256 by at least 0.05 (the theory's rate
    is ``eta_256 / eta_128 = gamma**128 = 0.0014``; errors are a fraction of ``C eta_T`` that
    varies from step to step, hence the slack), from 64 to 128 by at least 4 (the layers are
    still settling), until rounding; no neuron ends saturated; and at T = 128 and 256 every
    output is within ``C eta_T`` of the ANN (when the wobble ratios allow the bound)."""
    err, run = _errors(graph, net, x, [64, 128, 256])
    worst = {t: float(e.max()) for t, e in err.items()}
    assert worst[128] <= max(0.25 * worst[64], 1e-9), worst
    assert worst[256] <= max(0.05 * worst[128], 1e-9), worst
    assert worst[256] < 1e-4, worst
    assert not any(s.any() for s in run.saturated.values()), \
        {k: int(s.sum()) for k, s in run.saturated.items()}
    bound, kappa = error_constant(net)
    if kappa + 1 <= 0.95 / 0.05:
        for t in (128, 256):
            assert np.all(err[t] <= bound * step_size(0.15, 0.95, t) + 1e-12), (t, err[t], bound)
    return worst


@settings(max_examples=12, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**16), kernel=st.sampled_from([2, 3]),
       stride=st.sampled_from([1, 2]), scale=st.sampled_from(SCALES),
       size=st.integers(4, 7), relu_first=st.booleans())
def test_padded_max_pooling_converges_geometrically(seed, kernel, stride, scale, size,
                                                    relu_first):
    graph = padded_pool_net(seed, kernel, stride, size, relu_first=relu_first)
    x = _data(graph, 4, seed + 1)
    net = convert_signgd(graph, x, scale=scale)
    _check_geometric(graph, net, x)


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("kernel,stride", [(2, 1), (2, 2), (3, 1), (3, 2)])
def test_every_padded_pooling_and_scale(kernel, stride, scale):
    """Each combination once, seeded: 2x2 and 3x3, stride 1 and 2, padding 1."""
    graph = padded_pool_net(7, kernel, stride)
    x = _data(graph, 4, 3)
    _check_geometric(graph, convert_signgd(graph, x, scale=scale), x)


def test_the_issue_network_no_longer_diverges():
    """Issue 16's case, conv -> ReLU -> MaxPool2d(3, 2, 1) -> linear: with the old constant
    pad of -1e6 the max neurons that saw padded positions got scales of 1e5..1e6, the error
    grew with T (0.17, 0.28, 0.38 at T = 8, 16, 64) and neurons ended saturated. Now every
    max neuron's scale and initial estimate come from activations."""
    graph = padded_pool_net(0, 3, 2, size=8, channels=4)
    x = _data(graph, 16, 5)
    net = convert_signgd(graph, x)
    acts = ann.forward(graph, x, all_nodes=True)[1]
    largest = np.abs(acts["relu"]).max()
    zero = ann.forward(graph, np.zeros((1,) + graph.input_shape), all_nodes=True)[1]
    for node in net.graph.nodes:
        if node.op == "sgd" and node.attrs["fn"] == "max":
            assert node.params["scale"].max() <= largest, node.name
            assert np.abs(node.params["x_init"]).max() <= np.abs(zero["relu"]).max(), node.name
    err, run = _errors(graph, net, x, [8, 16, 64, 256])
    worst = [float(err[t].max()) for t in (8, 16, 64, 256)]
    assert worst[1] < worst[0] and worst[2] < worst[1] / 4 and worst[3] < 1e-5, worst
    assert not any(s.any() for s in run.saturated.values())


@settings(max_examples=40, deadline=None, derandomize=True)
@given(kernel=st.tuples(st.integers(1, 4), st.integers(1, 4)),
       stride=st.tuples(st.integers(1, 3), st.integers(1, 3)),
       size=st.tuples(st.integers(1, 7), st.integers(1, 7)),
       data=st.data())
def test_edge_windows_give_the_exact_max(kernel, stride, size, data):
    """For any padding up to half the kernel, the max over the edge-padded windows is the max
    pooling of the input, bit for bit, whatever the input's sign: a padded position only
    repeats a value its window already holds."""
    padding = tuple(data.draw(st.integers(0, k // 2)) for k in kernel)
    if any(s + 2 * p < k for s, p, k in zip(size, padding, kernel)):
        return  # the kernel does not fit
    x = np.random.default_rng(data.draw(st.integers(0, 99))).normal(size=(2, 3) + size)
    attrs = dict(kernel=kernel, stride=stride, padding=padding)
    views = [window_forward(make_graph((3,) + size, [dict(
        name="w", op="window", inputs=["input"],
        attrs=dict(attrs, offset=(oy, ox), pad_mode="edge"))], "w", ops=SNN_OPS).nodes[0], x)
        for oy in range(kernel[0]) for ox in range(kernel[1])]
    pool = make_graph((3,) + size, [dict(name="p", op="maxpool2d", inputs=["input"],
                                         attrs=attrs)], "p")
    assert np.array_equal(np.maximum.reduce(views), ann.forward(pool, x))


def test_edge_window_refuses_a_pad_value():
    from refsnn.errors import ModelFormatError
    with pytest.raises(ModelFormatError, match="pad_value.*unused.*edge"):
        make_graph((1, 4, 4), [dict(name="w", op="window", inputs=["input"],
                                    attrs=dict(kernel=(2, 2), stride=(2, 2), padding=(1, 1),
                                               offset=(0, 0), pad_mode="edge",
                                               pad_value=-1.0))], "w", ops=SNN_OPS)


@pytest.mark.parametrize("threads", THREADS)
def test_numba_equals_numpy_and_file_round_trip(tmp_path, threads):
    numba.set_num_threads(threads)
    graph = padded_pool_net(3, 3, 2, relu_first=False)
    x = _data(graph, 5, 0)
    net = convert_signgd(graph, x, scale="channel")
    assert {n.attrs["pad_mode"] for n in net.graph.nodes if n.op == "window"} == {"edge"}
    save_snn(net, tmp_path / "net.h5")
    again = load_snn(tmp_path / "net.h5")
    neurons = net.neuron_nodes()
    runs = [Simulator(n, b).run(x, [5, 40], potentials=neurons)
            for n, b in ((net, "numpy"), (net, "numba"), (again, "numba"))]
    for run in runs[1:]:
        for key in ("readout", "potentials", "saturated"):
            a, b = getattr(runs[0], key), getattr(run, key)
            assert a.keys() == b.keys()
            for k in a:
                assert np.array_equal(a[k], b[k]), (key, k)


def resnet_stem(seed=0, size=16, width=4):
    """A resnet18-style stem, scaled down: conv 5x5 / stride 2 / padding 2 -> BN -> ReLU ->
    MaxPool2d(3, 2, 1) -> basic block (conv-BN-ReLU-conv-BN + identity, ReLU) -> global
    average pooling -> linear, on (1, size, size)."""
    rng = np.random.default_rng(seed)

    def conv(name, inp, c_in, k, stride, pad, std):
        return dict(name=name, op="conv2d", inputs=[inp],
                    attrs=dict(stride=(stride, stride), padding=(pad, pad)),
                    params=dict(weight=rng.normal(0, std, (width, c_in, k, k)),
                                bias=np.zeros(width)))

    def bn(name, inp):
        return dict(name=name, op="batchnorm", inputs=[inp], attrs=dict(eps=1e-5),
                    params=dict(gamma=rng.uniform(0.5, 1.5, width),
                                beta=rng.normal(0, 0.1, width),
                                mean=rng.normal(0, 0.1, width),
                                var=rng.uniform(0.5, 1.5, width)))

    s1 = (size + 4 - 5) // 2 + 1
    s2 = (s1 + 2 - 3) // 2 + 1
    nodes = [
        conv("conv1", "input", 1, 5, 2, 2, 0.4), bn("bn1", "conv1"),
        dict(name="relu1", op="relu", inputs=["bn1"]),
        dict(name="pool", op="maxpool2d", inputs=["relu1"],
             attrs=dict(kernel=(3, 3), stride=(2, 2), padding=(1, 1))),
        conv("b_conv1", "pool", width, 3, 1, 1, 0.25), bn("b_bn1", "b_conv1"),
        dict(name="b_relu1", op="relu", inputs=["b_bn1"]),
        conv("b_conv2", "b_relu1", width, 3, 1, 1, 0.25), bn("b_bn2", "b_conv2"),
        dict(name="b_add", op="add", inputs=["b_bn2", "pool"]),
        dict(name="b_relu2", op="relu", inputs=["b_add"]),
        dict(name="gap", op="avgpool2d", inputs=["b_relu2"],
             attrs=dict(kernel=(s2, s2), stride=(s2, s2))),
        dict(name="flat", op="flatten", inputs=["gap"]),
        dict(name="fc", op="linear", inputs=["flat"],
             params=dict(weight=rng.normal(0, 0.5, (3, width)), bias=rng.normal(0, 0.1, 3))),
    ]
    return make_graph((1, size, size), nodes, "fc")


@pytest.mark.parametrize("scale", SCALES)
def test_resnet_stem_converges(scale):
    graph = resnet_stem()
    x = _data(graph, 4, 11)
    net = convert_signgd(graph, x, scale=scale)
    windows = [n for n in net.graph.nodes if n.op == "window"]
    assert len(windows) == 9 and all(n.attrs["pad_mode"] == "edge" for n in windows)
    _check_geometric(graph, net, x)
