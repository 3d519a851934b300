"""SpikingJelly 2.0's own converter (``ann2snn``) against refsnn's conversion: the findings of
``examples/spikingjelly_converter.py``, kept as tests so that a change of behaviour on either
side fails here.

Skipped without torch or SpikingJelly 2.x (0.0.0.0.14's ``ann2snn`` is another API). On the
shipped MLP with a small calibration set:

- mode ``"max"`` with one calibration batch puts the threshold where refsnn's percentile 100
  does, as ``scale(1/θ) -> IFNode(v_threshold=1, soft reset) -> scale(θ)`` with both scales
  rounded to float32 (even in a float64 model), and its spikes agree with refsnn's
  (``refsnn compare``: no divergence or a benign rounding tie);
- mode ``"99.9%"`` is NumPy's linear percentile, as refsnn's ``--percentile 99.9``;
- over several calibration batches the threshold is a moving average (momentum 0.1) of the
  per-batch values, not the maximum over the data: ``refsnn compare`` names it ``threshold``;
- channel-wise, a channel silent on the calibration data gets ``eps = 1e-6`` (refsnn: the
  layer's threshold), which ``refsnn compare`` names ``channel threshold``;
- layer-wise, a ``MaxPool2d`` after a ReLU stays after the spiking block: it pools ``θ·spike``.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("spikingjelly")

from refsnn import ann  # noqa: E402
from refsnn.conversion import convert_if  # noqa: E402
from refsnn.data import load_data  # noqa: E402
from refsnn.interop.spikingjelly import release  # noqa: E402
from refsnn.model import load_refsnn_h5  # noqa: E402
from refsnn.oracle.compare import compare  # noqa: E402
from refsnn.oracle.trace import Layer, Trace, record_trace  # noqa: E402
from refsnn.sim.simulator import Simulator  # noqa: E402

if release().name != "2.0":
    pytest.skip("SpikingJelly 2.x's ann2snn API needed", allow_module_level=True)

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "spikingjelly_converter.py"
STEPS = 32


def _example():
    spec = importlib.util.spec_from_file_location("spikingjelly_converter", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def ex():
    return _example()


@pytest.fixture(scope="module")
def mlp():
    graph = load_refsnn_h5(ROOT / "data" / "models" / "mlp.h5")
    xc, _ = load_data(ROOT / "data" / "digits.h5", "train", limit=192)
    xt, _ = load_data(ROOT / "data" / "digits.h5", "test", limit=12)
    return graph, xc, xt


def _acts(graph, x, name):
    _, acts = ann.forward(graph, x, all_nodes=True)
    return acts[name]


def _relus(graph):
    return [n.name for n in graph.nodes if n.op == "relu"]


def _verdict(net, conv, ex, x):
    ref = record_trace(Simulator(net, "numpy"), x, STEPS)
    _, _, spikes = ex.sj_run(conv, x, STEPS, rasters=True)
    return compare(ref, Trace(STEPS, {k: Layer(v) for k, v in spikes.items()}))


def test_the_torch_rebuild_is_the_model(ex, mlp):
    import torch

    graph, _, xt = mlp
    for model in ("mlp", "resnet", "cnn_maxpool"):
        g = load_refsnn_h5(ROOT / "data" / "models" / f"{model}.h5")
        out = ex.ann_module(g)(torch.from_numpy(xt)).detach().numpy()
        np.testing.assert_allclose(out, ann.forward(g, xt), rtol=0, atol=1e-12, err_msg=model)


def test_max_mode_is_percentile_100(ex, mlp):
    """θ = refsnn's percentile-100 threshold, stored as a float32 buffer (``VoltageScaler``
    makes ``torch.tensor(scale)``, default dtype) even in a float64 model: both scalers are
    rounded to float32; the spikes still agree (no divergence, or a benign tie)."""
    graph, xc, xt = mlp
    conv = ex.sj_convert(graph, xc, mode="max")
    net = convert_if(graph, xc, percentile=100.0)
    for node in net.graph.nodes:
        if node.op != "if":
            continue
        theta = node.params["threshold"]
        assert conv.theta[node.name].dtype == np.float32
        np.testing.assert_array_equal(conv.theta[node.name], np.float32(theta[0]))
        assert conv.theta[node.name] != theta[0]  # the float32 rounding is visible
        scale0, v_threshold, kind = conv.structure[node.name]
        assert (kind, v_threshold, conv.neurons[node.name].v_reset) == ("IFNode", 1.0, None)
        np.testing.assert_array_equal(scale0, np.float32(1.0 / theta[0]))
    c = _verdict(net, conv, ex, xt)
    assert not c.real, c.first_divergence
    assert sum(int(layer.spikes.sum()) for layer in
               record_trace(Simulator(net, "numpy"), xt, STEPS).layers.values()) > 100


def test_percentile_mode_is_numpy_linear_percentile(ex, mlp):
    graph, xc, _ = mlp
    conv = ex.sj_convert(graph, xc, mode="99.9%")
    for name in _relus(graph):
        expected = np.percentile(_acts(graph, xc, name), 99.9)
        np.testing.assert_allclose(conv.theta[name], expected, rtol=1e-7, err_msg=name)  # float32
        assert conv.theta[name] < _acts(graph, xc, name).max()


def test_batched_calibration_is_a_moving_average(ex, mlp):
    """Batches of 64: θ = EMA of the per-batch maxima, below refsnn's global maximum; compare
    names the first layer's difference ``threshold``."""
    graph, xc, xt = mlp
    conv = ex.sj_convert(graph, xc, mode="max", batch=64)
    for name in _relus(graph):
        acts = _acts(graph, xc, name)
        ema = None
        for b in range(0, len(xc), 64):
            m = acts[b:b + 64].max()
            ema = m if ema is None else 0.9 * ema + 0.1 * m
        np.testing.assert_array_equal(conv.theta[name], np.float32(ema), err_msg=name)
        assert conv.theta[name] < acts.max(), name
    c = _verdict(convert_if(graph, xc, percentile=100.0), conv, ex, xt)
    first = c.first_divergence
    assert c.real and (first.name, first.kind) == ("relu1", "threshold"), first


def test_channel_wise_silent_channel_gets_eps(ex, mlp):
    graph, xc, _ = mlp
    conv = ex.sj_convert(graph, xc, mode="max", channel_wise=True)
    net = convert_if(graph, xc, percentile=100.0, per_channel=True)
    found = 0
    for node in net.graph.nodes:
        if node.op != "if":
            continue
        acts = _acts(graph, xc, node.name)
        silent = acts.max(axis=0) <= 0
        theta, sj = node.params["threshold"], conv.theta[node.name]
        # float64 here (ChannelVoltageScaler keeps the dtype); torch sums in its own order
        np.testing.assert_allclose(sj[~silent], theta[~silent], rtol=1e-13)
        assert sj.dtype == np.float64
        np.testing.assert_array_equal(sj[silent], 1e-6)
        np.testing.assert_array_equal(theta[silent], acts.max())  # refsnn: the layer's value
        found += int(silent.sum())
    assert found > 0, "the example should have channels silent on the calibration data"
    # on 32 test images some of them fire: refsnn compare names the per-channel difference
    xt, _ = load_data(ROOT / "data" / "digits.h5", "test", limit=32)
    ref = record_trace(Simulator(net, "numpy"), xt, 64)
    _, _, spikes = ex.sj_run(conv, xt, 64, rasters=True)
    first = compare(ref, Trace(64, {k: Layer(v) for k, v in spikes.items()})).first_divergence
    assert (first.name, first.kind) == ("relu2", "channel threshold"), first


def test_layerwise_max_pool_reads_the_spikes(ex, mlp):
    """cnn_maxpool: SpikingJelly's MaxPool2d reads scaler1 (θ·spike), i.e. pools spikes;
    refsnn's IF conversion pools running input counts instead (docs/semantics.md)."""
    import torch

    _, xc, _ = mlp
    graph = load_refsnn_h5(ROOT / "data" / "models" / "cnn_maxpool.h5")
    conv = ex.sj_convert(graph, xc[:32], mode="max")
    modules = dict(conv.model.named_modules())
    pools = [n for n in conv.model.graph.nodes
             if n.op == "call_module" and isinstance(modules[n.target], torch.nn.MaxPool2d)]
    assert len(pools) == 2
    for p in pools:
        # the step-mode adapter may wrap the pool; its input chain starts at a scaler1
        src = p.args[0]
        assert src.op == "call_module" and src.target.endswith("scaler1"), src.target
