"""Model coverage (issue 19): the operators and patterns of torchvision's families.

The ANN reference of every new operator is checked against torch in float64, every family of
``benchmarks/families.py`` (small re-implementations; torchvision's wheel does not import on
the CPU torch here) exports exactly and converts, the NumPy reference simulator agrees bit for
bit with the Numba one on 1 and 2 threads for networks holding the new step operators, and
every refusal says what is refused in the user's terms.
"""

from __future__ import annotations

import importlib.util

import numba
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from conftest import ROOT, THREADS
from refsnn import ann
from refsnn.checks import check_batch
from refsnn.conversion import convert
from refsnn.errors import ConversionError, DataFormatError
from refsnn.model import make_graph
from refsnn.sim.network import ann_limit
from refsnn.sim.simulator import Simulator

torch = pytest.importorskip("torch")
nn, F = torch.nn, torch.nn.functional

from refsnn.export.torch import to_graph  # noqa: E402

pytestmark = pytest.mark.usefixtures("restore_threads")


def _families():
    spec = importlib.util.spec_from_file_location("families", ROOT / "benchmarks" / "families.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


FAM = _families()
X = torch.randn(6, *FAM.INPUT_SHAPE, generator=torch.Generator().manual_seed(0),
                dtype=torch.float64)
#: Families whose nonlinearities are ReLU or ReLU6 (and max pooling): IF converts them.
RELU_FAMILIES = ("resnet18", "resnet50", "vgg11_bn", "mobilenet_v2", "regnet_x", "densenet",
                 "shufflenet_v2", "squeezenet")


def _exported(name):
    module = FAM.make(name)
    with torch.no_grad():
        expected = module.double()(X).numpy()
    return to_graph(module, X), expected


@pytest.mark.parametrize("name", sorted(FAM.FAMILIES))
def test_family_exports_exactly(name):
    graph, expected = _exported(name)
    np.testing.assert_allclose(ann.forward(graph, X.numpy()), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", ["mobilenet_v3_small", "efficientnet_b0", "regnet_y",
                                  "convnext_tiny", "squeezenet", "shufflenet_v2", "vit_tiny"])
def test_family_converts_with_signgd(name):
    """SE products, hardswish, ceil_mode pooling, chunk/concat, F.layer_norm, attention
    (matmul of two activations, softmax over tokens): signGD at
    T = 64 predicts the ANN's class on every input."""
    graph, _ = _exported(name)
    x = X.numpy()
    net = convert(graph, "signgd", x)
    run = Simulator(net, "numba").run(x, [64])
    ref = ann.forward(graph, x)
    assert np.array_equal(np.argmax(run.readout[64], 1), np.argmax(ref, 1))
    assert np.max(np.abs(run.readout[64] - ref)) < 0.05 * np.max(np.abs(ref)) + 0.05


@pytest.mark.parametrize("name", RELU_FAMILIES)
def test_relu_family_converts_with_if(name):
    """ReLU and ReLU6 families convert with IF; the ANN limit (theta = the max activation) is
    the ANN itself, clipping included."""
    graph, _ = _exported(name)
    x = X.numpy()
    net = convert(graph, "if", x, percentile=100.0)
    np.testing.assert_allclose(ann_limit(net, x), ann.forward(graph, x), rtol=0, atol=1e-9)


# --- operators against torch ------------------------------------------------------------------

class _Ops(nn.Module):
    """Every new operator in one module: relu6, slice, SE-style broadcast product, concat,
    asymmetric pad, nearest upsampling, hardswish, hardsigmoid, ceil_mode max pooling,
    F.layer_norm, log_softmax; and eval-mode no-ops (dropout, stochastic depth, an assert)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.even = nn.Conv2d(6, 4, 2, padding="same")
        self.fc = nn.Linear(4, 5)

    def forward(self, x):
        torch._assert(x.shape[1] == 3, "three channels")
        y = F.relu6(self.conv(x))
        a, b = y.chunk(2, dim=1)
        gate = F.hardsigmoid(b.mean((2, 3), keepdim=True))
        y = torch.cat([a * gate, F.hardswish(y[:, 1:4])], dim=1)
        y = F.dropout(y, 0.3, training=self.training)
        y = FAM.stochastic_depth(y, 0.2, "row", self.training)
        y = self.even(F.interpolate(F.pad(y, (1, 0, 0, 2)), scale_factor=2))
        y = F.max_pool2d(y, 3, 2, ceil_mode=True)
        y = F.layer_norm(y.permute(0, 2, 3, 1), (4,)).permute(0, 3, 1, 2)
        return F.log_softmax(self.fc(y.mean((2, 3))), dim=-1)


def test_new_operators_match_torch():
    torch.manual_seed(3)
    m = _Ops().double().eval()
    x = torch.randn(4, 3, 5, 7, dtype=torch.float64)
    graph = to_graph(m, x)
    ops = {n.op for n in graph.nodes}
    assert {"hardtanh", "slice", "expand", "multiply", "concat", "pad", "upsample", "hardswish",
            "hardsigmoid", "maxpool2d", "layernorm", "log_softmax"} <= ops
    assert "identity" not in ops and "dropout" not in ops  # the no-ops left no node
    with torch.no_grad():
        np.testing.assert_allclose(ann.forward(graph, x.numpy()), m(x).numpy(), rtol=0,
                                   atol=1e-13)


@settings(max_examples=30, deadline=None)
@given(h=st.integers(3, 9), w=st.integers(3, 9), k=st.integers(2, 3), s=st.integers(1, 3),
       p=st.integers(0, 1))
def test_ceil_mode_max_pooling_matches_torch(h, w, k, s, p):
    x = torch.randn(2, 2, h, w, dtype=torch.float64, generator=torch.Generator().manual_seed(h))
    graph = to_graph(nn.MaxPool2d(k, s, p, ceil_mode=True), x)
    np.testing.assert_array_equal(ann.forward(graph, x.numpy()),
                                  F.max_pool2d(x, k, s, p, ceil_mode=True).numpy())


def test_export_float32(tmp_path):
    from refsnn.cli.main import main
    from refsnn.model import load_refsnn_h5

    (tmp_path / "net.py").write_text(
        "import torch\nimport torch.nn as nn\n\ndef make():\n    torch.manual_seed(0)\n"
        "    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU6(), nn.Flatten(), "
        "nn.Linear(288, 4))\n")
    for dtype in ("float64", "float32"):
        assert main(["export-torch", f"{tmp_path / 'net.py'}:make", "--input-shape", "3,8,8",
                     "-o", str(tmp_path / f"{dtype}.h5"), "--dtype", dtype]) == 0
    import h5py

    with h5py.File(tmp_path / "float32.h5") as f:
        assert f["nodes/layer_0/weight"].dtype == np.float32
    w64 = load_refsnn_h5(tmp_path / "float64.h5").node("layer_0").params["weight"]
    w32 = load_refsnn_h5(tmp_path / "float32.h5").node("layer_0").params["weight"]
    np.testing.assert_array_equal(w32, w64.astype(np.float32).astype(np.float64))


# --- conversions ------------------------------------------------------------------------------

def _clip_graph(max_value, scale=1.0):
    rng = np.random.default_rng(0)
    return make_graph((4,), [
        dict(name="fc", op="linear", inputs=["input"],
             params=dict(weight=rng.normal(size=(6, 4)) * scale, bias=np.zeros(6))),
        dict(name="clip", op="hardtanh", inputs=["fc"],
             attrs=dict(min_value=0.0, max_value=max_value)),
        dict(name="out", op="linear", inputs=["clip"],
             params=dict(weight=rng.normal(size=(3, 6)), bias=np.zeros(3)))], "out")


@settings(max_examples=25, deadline=None)
@given(max_value=st.floats(0.05, 8.0), percentile=st.floats(50, 100), scale=st.floats(0, 3))
def test_clipped_relu_is_an_if_neuron_with_theta_at_most_the_clip(max_value, percentile, scale):
    """theta <= m, so clip(clip(x, 0, m), 0, theta) = clip(x, 0, theta): the IF network's ANN
    limit is the clipped ReLU network with the threshold's clip, like a ReLU's."""
    graph = _clip_graph(max_value, scale)
    x = np.random.default_rng(1).normal(size=(32, 4))
    net = convert(graph, "if", x, percentile=percentile)
    theta = net.graph.node("clip").params["threshold"]
    assert np.all(theta <= max_value) and np.all(theta > 0)
    acts = ann.forward(graph, x, all_nodes=True)[1]["fc"]
    w = graph.node("out").params["weight"]
    expected = np.clip(acts, 0, theta[0]) @ w.T
    np.testing.assert_allclose(ann_limit(net, x), expected, rtol=1e-12, atol=1e-12)
    if percentile == 100:
        np.testing.assert_allclose(ann_limit(net, x), ann.forward(graph, x), atol=1e-12)


def test_clip_below_zero_is_refused_with_if():
    g = make_graph((4,), [dict(name="h", op="hardtanh", inputs=["input"],
                               attrs=dict(min_value=-1.0, max_value=1.0))], "h")
    with pytest.raises(ConversionError, match=r"node 'h': hardtanh with min_value=-1.0 cannot be "
                                              r"an IF neuron.*use --method signgd"):
        convert(g, "if", np.zeros((2, 4)))


def _keras_order(gamma):
    rng = np.random.default_rng(2)
    c = len(gamma)
    return make_graph((2, 4, 4), [
        dict(name="conv", op="conv2d", inputs=["input"], attrs=dict(padding=(1, 1)),
             params=dict(weight=rng.normal(size=(c, 2, 3, 3)), bias=np.zeros(c))),
        dict(name="relu", op="relu", inputs=["conv"]),
        dict(name="bn", op="batchnorm", inputs=["relu"],
             params=dict(gamma=np.asarray(gamma, float), beta=rng.normal(size=c),
                         mean=rng.normal(size=c), var=np.ones(c))),
        dict(name="pool", op="maxpool2d", inputs=["bn"], attrs=dict(kernel=(2, 2),
                                                                    stride=(2, 2))),
        dict(name="flat", op="flatten", inputs=["pool"]),
        dict(name="fc", op="linear", inputs=["flat"],
             params=dict(weight=rng.normal(size=(3, 4 * c)), bias=np.zeros(3)))], "fc")


def test_keras_order_relu_batchnorm_maxpool():
    """Conv(relu) -> BatchNorm -> MaxPool converts with IF when every BN scale is positive
    (the pooling moves before the BN, exactly); otherwise the refusal says why."""
    g = _keras_order([0.5, 2.0])
    x = np.random.default_rng(3).normal(size=(8, 2, 4, 4))
    net = convert(g, "if", x, percentile=100.0)
    assert net.graph.node("pool").inputs == ("relu",)
    np.testing.assert_allclose(ann_limit(net, x), ann.forward(g, x), rtol=0, atol=1e-12)
    with pytest.raises(ConversionError, match=r"node 'pool': maxpool2d must read a relu node "
                                              r"\(or hardtanh\) to be converted \(it reads 'bn', "
                                              r"a batchnorm node\).*only if all its scales are "
                                              r"positive"):
        convert(_keras_order([0.5, -1.0]), "if", x)


def test_output_softmax_readout_is_the_logits():
    """IF and BSNN stop before an output (log_)softmax: the argmax is the ANN's, said in the
    network's options, and evaluate compares the readout with the logits."""
    from refsnn.evaluation import evaluate

    rng = np.random.default_rng(4)
    g = make_graph((4,), [
        dict(name="fc", op="linear", inputs=["input"],
             params=dict(weight=rng.normal(size=(6, 4)), bias=np.zeros(6))),
        dict(name="relu", op="relu", inputs=["fc"]),
        dict(name="out", op="linear", inputs=["relu"],
             params=dict(weight=rng.normal(size=(3, 6)), bias=np.zeros(3))),
        dict(name="ls", op="log_softmax", inputs=["out"])], "ls")
    x = rng.normal(size=(16, 4))
    y = np.argmax(ann.forward(g, x), 1)
    for method in ("if", "bsnn"):
        net = convert(g, method, x, percentile=100.0)
        assert net.options["readout_before"] == "ls" and net.graph.output == "out"
        result = evaluate(net, x, y, [256], ann_graph=g)
        assert result.ann_accuracy == 1.0
        assert result.max_abs_error[256] < 0.2  # against the logits, not the log-probabilities


def test_bsnn_synchronises_concat_inputs():
    """A concat whose inputs are neuron layers of different stages gets synchronous neurons,
    like an add; the readout then matches the ANN limit closely at many steps."""
    rng = np.random.default_rng(5)
    g = make_graph((3,), [
        dict(name="fc1", op="linear", inputs=["input"],
             params=dict(weight=rng.uniform(0, 1, (4, 3)), bias=np.zeros(4))),
        dict(name="a", op="relu", inputs=["fc1"]),
        dict(name="fc2", op="linear", inputs=["a"],
             params=dict(weight=rng.uniform(0, 1, (4, 4)), bias=np.zeros(4))),
        dict(name="b", op="relu", inputs=["fc2"]),
        dict(name="cat", op="concat", inputs=["a", "b"], attrs=dict(axis=0)),
        dict(name="out", op="linear", inputs=["cat"],
             params=dict(weight=rng.normal(size=(2, 8)), bias=np.zeros(2)))], "out")
    x = rng.uniform(0, 1, (8, 3))
    net = convert(g, "bsnn", x, percentile=100.0, period=8)
    assert net.graph.node("cat").inputs == ("a_sync1", "b")
    run = Simulator(net, "numba").run(x, [800])
    np.testing.assert_allclose(run.readout[800], ann.forward(g, x), atol=0.15)


# --- NumPy reference = Numba, 1 and 2 threads ------------------------------------------------

def _golden_graph(name):
    spec = importlib.util.spec_from_file_location("make_golden",
                                                  ROOT / "data" / "golden" / "make_golden.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return getattr(mod, name)(0)


@pytest.mark.parametrize("case, method", [("if_structure", "if"), ("signgd_mobile", "signgd"),
                                          ("if_structure", "bsnn")])
def test_numpy_and_numba_agree_bit_for_bit(case, method):
    graph = _golden_graph(case)
    x = np.random.default_rng(6).uniform(0, 1, (5,) + graph.input_shape)
    net = convert(graph, method, x)
    ref = Simulator(net, "numpy").run(x, [12])
    for threads in THREADS:
        numba.set_num_threads(threads)
        run = Simulator(net, "numba").run(x, [12])
        np.testing.assert_array_equal(run.readout[12], ref.readout[12])
        for name in ref.counts:
            np.testing.assert_array_equal(run.counts[name], ref.counts[name])


# --- refusals ---------------------------------------------------------------------------------

class _Stack(nn.Module):
    def forward(self, x):
        return torch.stack([x, x], 1)


class _Outer(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = _Stack()

    def forward(self, x):
        return self.block(x)


class _Fn(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


@pytest.mark.parametrize("module, message", [
    # an internal function path never shows; the user's module and line do
    (_Outer(), r"^function torch\.stack \(node 'stack'\) in module 'block' \(_Stack\) at "
               r"test_model_coverage\.py, line \d+ cannot be exported to refsnn: no refsnn "
               r"operator for this function$"),
    (nn.Sequential(nn.AvgPool2d(2, ceil_mode=True)),
     r"^module '0' \(AvgPool2d\) cannot be exported to refsnn: ceil_mode=True is not supported "
     r"\(refsnn pools with ceil_mode=False, count_include_pad=True, divisor_override=None\)$"),
    (_Fn(lambda x: F.dropout(x, 0.5)), r"function F\.dropout .*training=True \(the functional "
                                       r"dropout's default drops even in eval mode; call it "
                                       r"with training=self\.training\)"),
    (_Fn(lambda x: torch.cat([x, x], 0)), r"function torch\.cat .*concatenation along dim=0, "
                                          r"the batch axis"),
    (_Fn(lambda x: F.pad(x, (1, 1, 1, 1), mode="reflect")), r"mode='reflect', value=None is not "
                                                      r"supported \(refsnn pads with zeros"),
    (_Fn(lambda x: F.max_pool2d(x, 2, return_indices=True)[0]),
     r"^function F\.max_pool2d_with_indices \(node 'max_pool2d_with_indices'\) at "
     r"test_model_coverage\.py, line \d+ cannot be exported to refsnn: no refsnn operator"),
    (_Fn(lambda x: torch.cat(x.chunk(3, 1)[::-1], 1)),
     r"cannot be exported to refsnn: taking the pieces with slice\(None, None, -1\) \(refsnn "
     r"takes chunk/split pieces one by one"),
    (nn.LogSoftmax(dim=1), r"log_softmax over dim=1 \(refsnn's log_softmax is over the last "
                           r"axis, dim=-1\)"),
])
def test_refusals_name_the_user_code_and_setting(module, message):
    with pytest.raises(ConversionError, match=message):
        to_graph(module, torch.zeros(2, 3, 8, 8))


def test_channels_last_is_named_with_its_fix():
    conv = nn.Sequential(nn.Conv2d(3, 4, 3))
    with pytest.raises(ConversionError, match=r"looks channels-last \(H, W, C\).*--input-shape "
                                              r"3,16,16.*x\.transpose\(0, 3, 1, 2\)"):
        to_graph(conv, torch.zeros(2, 16, 16, 3))
    with pytest.raises(DataFormatError, match=r"the data is channels-last \(H, W, C\).*"
                                              r"x\.transpose\(0, 3, 1, 2\)"):
        check_batch(np.zeros((2, 16, 16, 3)), (3, 16, 16))


def test_zero_pad_before_max_pooling_of_relu_folds_into_the_pooling():
    """Keras ResNet50's ZeroPadding2D -> MaxPooling2D after a ReLU converts with IF: on
    activations >= 0 the zero padding is the pooling's own padding, exactly."""
    rng = np.random.default_rng(7)
    g = make_graph((2, 6, 6), [
        dict(name="conv", op="conv2d", inputs=["input"], attrs=dict(padding=(1, 1)),
             params=dict(weight=rng.normal(size=(3, 2, 3, 3)), bias=np.zeros(3))),
        dict(name="relu", op="relu", inputs=["conv"]),
        dict(name="pad", op="pad", inputs=["relu"], attrs=dict(rows=(1, 1), cols=(1, 1))),
        dict(name="pool", op="maxpool2d", inputs=["pad"], attrs=dict(kernel=(3, 3),
                                                                    stride=(2, 2))),
        dict(name="flat", op="flatten", inputs=["pool"]),
        dict(name="fc", op="linear", inputs=["flat"],
             params=dict(weight=rng.normal(size=(2, 27)), bias=np.zeros(2)))], "fc")
    x = rng.normal(size=(6, 2, 6, 6))
    net = convert(g, "if", x, percentile=100.0)
    assert net.graph.node("pool").attrs["padding"] == (1, 1)
    assert "pad" not in [n.name for n in net.graph.nodes]
    np.testing.assert_allclose(ann_limit(net, x), ann.forward(g, x), rtol=0, atol=1e-12)
    lopsided = make_graph((2, 6, 6), [dict(name="relu", op="relu", inputs=["input"]),
                                      dict(name="pad", op="pad", inputs=["relu"],
                                           attrs=dict(rows=(0, 1), cols=(0, 1))),
                                      dict(name="pool", op="maxpool2d", inputs=["pad"],
                                           attrs=dict(kernel=(2, 2), stride=(2, 2)))], "pool")
    with pytest.raises(ConversionError, match=r"node 'pool': maxpool2d must read a relu node.*"
                                              r"it reads 'pad', a pad node"):
        convert(lopsided, "if", x)


def test_schema_errors_are_said_in_the_users_terms():
    """A value the format rejects (LayerNorm eps 0) is named by the user's module, not by a
    path in no file (``<torch ...>: /nodes/ln``)."""
    module = nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8, eps=0.0))
    with pytest.raises(ConversionError, match=r"^module '1' \(LayerNorm\) cannot be exported to "
                                              r"refsnn: eps: expected eps > 0, found 0\.0$"):
        to_graph(module, torch.zeros(2, 4))
