"""Write the golden cases of data/golden/ (see data/golden/README.md).

    PYTHONPATH=. python data/golden/make_golden.py

Each case is ``<case>.net.h5`` (a converted network, refsnn-snn) and ``<case>.trace.h5``
(refsnn's trace of it, NumPy reference backend, float64). Weights, biases, inputs and
calibration data are small dyadic rationals, so every sum is exact in float64 whatever the
summation order, and another correct float64 implementation must reproduce the spikes exactly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from refsnn import __version__
from refsnn.conversion import METHODS
from refsnn.model import make_graph
from refsnn.oracle.trace import record_trace, write_trace
from refsnn.sim.network import save_snn
from refsnn.sim.simulator import Simulator

HERE = Path(__file__).resolve().parent
STEPS = 16


def dyadic(rng, shape, scale=1.0, bits=3):
    k = int(scale * 2 ** bits)
    return rng.integers(-k, k + 1, shape) / 2.0 ** bits


def mlp(seed):
    rng = np.random.default_rng(seed)
    sizes, nodes, prev = (12, 10, 8, 3), [], "input"
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        nodes.append(dict(name=f"fc{i}", op="linear", inputs=[prev],
                          params=dict(weight=dyadic(rng, (b, a), 0.5),
                                      bias=dyadic(rng, b, 0.25))))
        prev = f"fc{i}"
        if i < len(sizes) - 2:
            nodes.append(dict(name=f"relu{i}", op="relu", inputs=[prev]))
            prev = f"relu{i}"
    return make_graph((12,), nodes, prev)


def mlp_delay(seed):
    """A residual MLP whose shortcut is a linear map (a projection), not a neuron layer:
    BSNN relays it with a ``delay`` node. 12 -> 8, ReLU, then linear-ReLU-linear plus the
    projected shortcut, ReLU, 8 -> 3."""
    rng = np.random.default_rng(seed)
    fc = lambda name, inp, a, b: dict(name=name, op="linear", inputs=[inp],
                                      params=dict(weight=dyadic(rng, (b, a), 0.5),
                                                  bias=dyadic(rng, b, 0.25)))
    return make_graph((12,), [
        fc("fc0", "input", 12, 8), dict(name="relu0", op="relu", inputs=["fc0"]),
        fc("short", "relu0", 8, 8),
        fc("fc1", "relu0", 8, 8), dict(name="relu1", op="relu", inputs=["fc1"]),
        fc("fc2", "relu1", 8, 8), dict(name="add", op="add", inputs=["fc2", "short"]),
        dict(name="relu2", op="relu", inputs=["add"]), fc("out", "relu2", 8, 3)], "out")


def cnn(seed):
    rng = np.random.default_rng(seed)
    conv = lambda name, inp, c_in: dict(
        name=name, op="conv2d", inputs=[inp], attrs=dict(padding=(1, 1)),
        params=dict(weight=dyadic(rng, (4, c_in, 3, 3), 0.5), bias=dyadic(rng, 4, 0.25)))
    return make_graph((2, 6, 6), [
        conv("conv", "input", 2), dict(name="relu", op="relu", inputs=["conv"]),
        conv("conv2", "relu", 4), dict(name="add", op="add", inputs=["conv2", "relu"]),
        dict(name="relu2", op="relu", inputs=["add"]),
        dict(name="pool", op="avgpool2d", inputs=["relu2"],
             attrs=dict(kernel=(2, 2), stride=(2, 2))),
        dict(name="flat", op="flatten", inputs=["pool"]),
        dict(name="fc", op="linear", inputs=["flat"],
             params=dict(weight=dyadic(rng, (3, 36), 0.5), bias=dyadic(rng, 3, 0.25)))], "fc")


def conv_relu_pool(rng):
    """conv 2->3 (3x3, padding 1), relu, max pooling 2x2/2 on a (2, 4, 4) input: the head of
    the max-pooling cases. Draws the conv's weight, then its bias."""
    return [
        dict(name="conv", op="conv2d", inputs=["input"], attrs=dict(padding=(1, 1)),
             params=dict(weight=dyadic(rng, (3, 2, 3, 3), 0.5), bias=dyadic(rng, 3, 0.25))),
        dict(name="relu", op="relu", inputs=["conv"]),
        dict(name="pool", op="maxpool2d", inputs=["relu"], attrs=dict(kernel=(2, 2), stride=(2, 2)))]


def flatten_fc(rng, src):
    """flatten, then fc 12->3: the tail of the max-pooling cases (weight drawn, then bias)."""
    return [
        dict(name="flat", op="flatten", inputs=[src]),
        dict(name="fc", op="linear", inputs=["flat"],
             params=dict(weight=dyadic(rng, (3, 12), 0.5), bias=dyadic(rng, 3, 0.25)))]


def cnn_maxpool(seed):
    """Max pooling on IF spikes: a 2x2/2 pool, then a 3x3/1 pool with padding."""
    rng = np.random.default_rng(seed)
    # list items are built left to right: the draws keep the order the golden files were
    # made with (head conv, conv2, fc)
    return make_graph((2, 4, 4), [
        *conv_relu_pool(rng),
        dict(name="conv2", op="conv2d", inputs=["pool"], attrs=dict(padding=(1, 1)),
             params=dict(weight=dyadic(rng, (3, 3, 3, 3), 0.5), bias=dyadic(rng, 3, 0.25))),
        dict(name="relu2", op="relu", inputs=["conv2"]),
        dict(name="pool2", op="maxpool2d", inputs=["relu2"],
             attrs=dict(kernel=(3, 3), stride=(1, 1), padding=(1, 1))),
        *flatten_fc(rng, "pool2")], "fc")


def if_ops(seed):
    """The structural synapses on IF spikes: reshape, transpose, affine, identity, a linear map
    over the last axis, mean and scale; every factor dyadic (the mean divides by 4)."""
    rng = np.random.default_rng(seed)
    return make_graph((2, 4, 4), [
        dict(name="conv", op="conv2d", inputs=["input"], attrs=dict(padding=(1, 1)),
             params=dict(weight=dyadic(rng, (4, 2, 3, 3), 0.5), bias=dyadic(rng, 4, 0.25))),
        dict(name="relu", op="relu", inputs=["conv"]),
        dict(name="rows", op="reshape", inputs=["relu"], attrs=dict(shape="4,16")),
        dict(name="cols", op="transpose", inputs=["rows"], attrs=dict(perm="1,0")),
        dict(name="aff", op="affine", inputs=["cols"], attrs=dict(axis="last"),
             params=dict(weight=dyadic(rng, 4, 1.0), bias=dyadic(rng, 4, 0.25))),
        dict(name="same", op="identity", inputs=["aff"]),
        dict(name="mix", op="linear", inputs=["same"],
             params=dict(weight=dyadic(rng, (4, 4), 0.5), bias=dyadic(rng, 4, 0.25))),
        dict(name="relu2", op="relu", inputs=["mix"]),
        dict(name="avg", op="mean", inputs=["relu2"], attrs=dict(axis="last")),
        dict(name="gain", op="scale", inputs=["avg"], attrs=dict(axis="channel"),
             params=dict(weight=dyadic(rng, 16, 1.0))),
        dict(name="fc", op="linear", inputs=["gain"],
             params=dict(weight=dyadic(rng, (3, 16), 0.5), bias=dyadic(rng, 3, 0.25)))], "fc")


def if_structure(seed):
    """The structural synapses of the model-coverage families on IF spikes: a clipped ReLU
    (hardtanh 0..0.75, an IF neuron with theta <= 0.75), slice, concat, asymmetric zero pad,
    nearest upsampling, a squeeze-style mean broadcast back by expand, max pooling in
    ceil_mode, and an output log_softmax that the readout stops before."""
    rng = np.random.default_rng(seed)
    return make_graph((2, 4, 4), [
        dict(name="conv", op="conv2d", inputs=["input"], attrs=dict(padding=(1, 1)),
             params=dict(weight=dyadic(rng, (4, 2, 3, 3), 0.5), bias=dyadic(rng, 4, 0.25))),
        dict(name="clip", op="hardtanh", inputs=["conv"],
             attrs=dict(min_value=0.0, max_value=0.75)),
        dict(name="half", op="slice", inputs=["clip"], attrs=dict(axis=0, start=1, stop=3)),
        dict(name="gate", op="mean", inputs=["clip"], attrs=dict(axis="spatial", keepdims=1)),
        dict(name="wide", op="expand", inputs=["gate"], attrs=dict(shape="4,4,4")),
        dict(name="cat", op="concat", inputs=["half", "wide"], attrs=dict(axis=0)),
        dict(name="pad", op="pad", inputs=["cat"], attrs=dict(rows=(0, 1), cols=(1, 0))),
        dict(name="up", op="upsample", inputs=["pad"], attrs=dict(scale=(1, 2))),
        dict(name="mix", op="conv2d", inputs=["up"], attrs=dict(stride=(2, 2)),
             params=dict(weight=dyadic(rng, (3, 6, 1, 1), 0.5), bias=dyadic(rng, 3, 0.25))),
        dict(name="relu", op="relu", inputs=["mix"]),
        dict(name="pool", op="maxpool2d", inputs=["relu"],
             attrs=dict(kernel=(2, 2), stride=(2, 2), ceil_mode=1)),
        dict(name="flat", op="flatten", inputs=["pool"]),
        dict(name="fc", op="linear", inputs=["flat"],
             params=dict(weight=dyadic(rng, (3, 18), 0.5), bias=dyadic(rng, 3, 0.25))),
        dict(name="out", op="log_softmax", inputs=["fc"])], "out")


def signgd_mobile(seed):
    """MobileNetV3's pieces as signGD neurons: hardswish, a hardsigmoid gate broadcast by
    expand into a product (squeeze-and-excitation), max pooling in ceil_mode, log_softmax."""
    rng = np.random.default_rng(seed)
    return make_graph((2, 3, 3), [
        dict(name="conv", op="conv2d", inputs=["input"], attrs=dict(padding=(1, 1)),
             params=dict(weight=dyadic(rng, (3, 2, 3, 3), 0.5), bias=dyadic(rng, 3, 0.25))),
        dict(name="hs", op="hardswish", inputs=["conv"]),
        dict(name="squeeze", op="mean", inputs=["hs"], attrs=dict(axis="spatial", keepdims=1)),
        dict(name="fc1", op="conv2d", inputs=["squeeze"],
             params=dict(weight=dyadic(rng, (3, 3, 1, 1), 0.5), bias=dyadic(rng, 3, 0.25))),
        dict(name="gate", op="hardsigmoid", inputs=["fc1"]),
        dict(name="wide", op="expand", inputs=["gate"], attrs=dict(shape="3,3,3")),
        dict(name="se", op="multiply", inputs=["hs", "wide"]),
        dict(name="pool", op="maxpool2d", inputs=["se"],
             attrs=dict(kernel=(2, 2), stride=(2, 2), ceil_mode=1)),
        dict(name="flat", op="flatten", inputs=["pool"]),
        dict(name="fc", op="linear", inputs=["flat"],
             params=dict(weight=dyadic(rng, (3, 12), 0.5), bias=dyadic(rng, 3, 0.25))),
        dict(name="out", op="log_softmax", inputs=["fc"])], "out")


def mlp_qcfs(seed):
    """A QCFS MLP (the noise method's ANN) with a batchnorm that cannot be folded (it reads a
    QCFS node): eps 0 and var 4 make its scale gamma / 2 exactly."""
    rng = np.random.default_rng(seed)
    fc = lambda name, inp, a, b: dict(name=name, op="linear", inputs=[inp], params=dict(
        weight=dyadic(rng, (b, a), 0.5), bias=dyadic(rng, b, 0.25)))
    return make_graph((12,), [
        fc("fc0", "input", 12, 10),
        dict(name="q0", op="qcfs", inputs=["fc0"], attrs=dict(levels=4),
             params=dict(clip=np.array([1.5]))),
        dict(name="bn", op="batchnorm", inputs=["q0"], attrs=dict(eps=0.0),
             params=dict(gamma=dyadic(rng, 10, 1.0), beta=dyadic(rng, 10, 0.25),
                         mean=dyadic(rng, 10, 0.5), var=np.full(10, 4.0))),
        fc("fc1", "bn", 10, 8),
        dict(name="q1", op="qcfs", inputs=["fc1"], attrs=dict(levels=8),
             params=dict(clip=np.array([1.0]))),
        fc("fc2", "q1", 8, 3)], "fc2")


def signgd_activations(seed):
    """Every element-wise signGD target of the plain conversion, side by side on one linear
    map, summed (multiply of two of them included), then an unfoldable batchnorm."""
    rng = np.random.default_rng(seed)
    acts = [("gelu", {}), ("gelu_t", dict(op="gelu", attrs=dict(approximate="tanh"))),
            ("leaky", dict(op="leaky_relu", attrs=dict(slope=0.125))), ("silu", {}),
            ("sigmoid", {}), ("tanh", {}),
            ("hard", dict(op="hardtanh", attrs=dict(min_value=-0.5, max_value=0.75))),
            ("abs", {}), ("square", {}), ("exp", {})]
    nodes = [dict(name="fc", op="linear", inputs=["input"],
                  params=dict(weight=dyadic(rng, (6, 8), 0.5), bias=dyadic(rng, 6, 0.25)))]
    for name, spec in acts:
        nodes.append(dict(name=name, op=spec.get("op", name), inputs=["fc"],
                          attrs=spec.get("attrs", {})))
    nodes.append(dict(name="prod", op="multiply", inputs=["tanh", "silu"]))
    nodes.append(dict(name="sum", op="add", inputs=[n for n, _ in acts] + ["prod"]))
    # a batchnorm that cannot be folded (it reads an add): signGD makes it an affine synapse
    nodes.append(dict(name="bn", op="batchnorm", inputs=["sum"], attrs=dict(eps=0.0),
                      params=dict(gamma=dyadic(rng, 6, 1.0), beta=dyadic(rng, 6, 0.25),
                                  mean=dyadic(rng, 6, 0.5), var=np.full(6, 4.0))))
    nodes.append(dict(name="out", op="linear", inputs=["bn"],
                      params=dict(weight=dyadic(rng, (3, 6), 0.5), bias=dyadic(rng, 3, 0.25))))
    return make_graph((8,), nodes, "out")


def signgd_tokens(seed):
    """A token mixer on (4 tokens, 6 features): LayerNorm, GELU, transpose, softmax, mean,
    reshape and scale, as signGD rewrites them (spread, square, normalize, affine, exp, divide neurons)."""
    rng = np.random.default_rng(seed)
    return make_graph((4, 6), [
        dict(name="fc", op="linear", inputs=["input"],
             params=dict(weight=dyadic(rng, (8, 6), 0.5), bias=dyadic(rng, 8, 0.25))),
        dict(name="ln", op="layernorm", inputs=["fc"],
             params=dict(weight=dyadic(rng, 8, 1.0), bias=dyadic(rng, 8, 0.25))),
        dict(name="g", op="gelu", inputs=["ln"]),
        dict(name="t", op="transpose", inputs=["g"], attrs=dict(perm="1,0")),
        dict(name="fc2", op="linear", inputs=["t"],
             params=dict(weight=dyadic(rng, (4, 4), 0.5), bias=dyadic(rng, 4, 0.25))),
        dict(name="sm", op="softmax", inputs=["fc2"]),
        dict(name="m", op="mean", inputs=["sm"], attrs=dict(axis="last")),
        dict(name="r", op="reshape", inputs=["m"], attrs=dict(shape="2,4")),
        dict(name="s", op="scale", inputs=["r"], attrs=dict(axis="last"),
             params=dict(weight=dyadic(rng, 4, 1.0))),
        dict(name="flat", op="flatten", inputs=["s"]),
        dict(name="out", op="linear", inputs=["flat"],
             params=dict(weight=dyadic(rng, (3, 8), 0.5), bias=dyadic(rng, 3, 0.25)))], "out")


def cnn_signgd_maxpool(seed):
    """Max pooling as signGD max trees: 2x2/2 (4 windows, two levels), then 1x3/1 with
    padding (3 windows: an odd level carried up the tree, padded windows)."""
    rng = np.random.default_rng(seed)
    return make_graph((2, 4, 4), [
        *conv_relu_pool(rng),
        dict(name="pool2", op="maxpool2d", inputs=["pool"],
             attrs=dict(kernel=(1, 3), stride=(1, 1), padding=(0, 1))),
        *flatten_fc(rng, "pool2")], "fc")


def mlp_gelu(seed):
    """The MLP with GELU, for the compat conversion (GELU as x * sigmoid(1.702 x))."""
    g = mlp(seed)
    edit = g.edit()
    for node in g.nodes:
        if node.op == "relu":
            edit.replace(node.name, "gelu")
    return edit.commit()


#: case -> (graph factory, method, conversion options)
CASES = {
    "mlp_if": (mlp, "if", dict(percentile=100)),
    "mlp_if_zero_half": (mlp, "if", dict(percentile=100, reset="zero", v_init="half")),
    "cnn_if_residual": (cnn, "if", dict(percentile=100)),
    "cnn_if_per_channel": (cnn, "if", dict(percentile=100, per_channel=True)),
    "mlp_bsnn": (mlp, "bsnn", dict(percentile=100, period=2)),
    "cnn_bsnn_residual": (cnn, "bsnn", dict(percentile=100, period=4, v_init="zero")),
    "mlp_bsnn_delay": (mlp_delay, "bsnn", dict(percentile=100, period=2)),
    "mlp_signgd": (mlp, "signgd", dict()),
    "mlp_if_poisson": (mlp, "if", dict(percentile=100, encoding="poisson")),
    "cnn_if_maxpool": (cnn_maxpool, "if", dict(percentile=100)),
    "if_ops": (if_ops, "if", dict(percentile=100)),
    "mlp_noise": (mlp_qcfs, "noise", dict()),
    "signgd_activations": (signgd_activations, "signgd", dict()),
    "signgd_tokens": (signgd_tokens, "signgd", dict()),
    "cnn_signgd_maxpool": (cnn_signgd_maxpool, "signgd", dict()),
    "mlp_signgd_compat": (mlp_gelu, "signgd", dict(compat=True)),
    # NIR-exportable (reset to zero, u0 = 0): what the NIR framework adapters can run (a
    # residual CNN case would exceed the golden data's size budget; the NIR tests and
    # benchmarks/nir_frameworks.py run the shipped CNN and ResNet instead)
    "mlp_if_reset_zero": (mlp, "if", dict(percentile=100, reset="zero")),
    "if_structure": (if_structure, "if", dict(percentile=100)),
    "signgd_mobile": (signgd_mobile, "signgd", dict()),
}

#: case -> (network, conversion, tolerance), the rows of README.md's table
EXACT = "exact (dyadic)"
ORDER = "refsnn's order (not dyadic)"
MLP = "MLP: linear-ReLU x2-linear, 12 -> 10 -> 8 -> 3"
CNN = "conv-ReLU-conv-add-ReLU-avgpool-linear on (2, 6, 6)"
DESCRIBE = {
    "mlp_if": (MLP, "`if`, percentile 100", EXACT),
    "mlp_if_zero_half": ("the MLP", "`if`, percentile 100, `--reset zero --v-init half`", EXACT),
    "cnn_if_residual": (CNN, "`if`, percentile 100", EXACT),
    "cnn_if_per_channel": ("the CNN", "`if`, percentile 100, `--per-channel`", EXACT),
    "mlp_bsnn": ("the MLP", "`bsnn`, percentile 100, `--period 2`", EXACT),
    "cnn_bsnn_residual": ("the CNN", "`bsnn`, percentile 100, `--period 4 --v-init zero`",
                          EXACT),
    "mlp_bsnn_delay": ("residual MLP 12 -> 8 with a linear (projection) shortcut -> 3",
                       "`bsnn`, percentile 100, `--period 2` (the shortcut through a `delay`)",
                       EXACT),
    "mlp_signgd": ("the MLP", "`signgd`, defaults", ORDER),
    "mlp_if_poisson": ("the MLP, inputs in [-1, 1]", "`if`, percentile 100, "
                       "`--encoding poisson` (input spikes stored in `/encoded`)", EXACT),
    "cnn_if_maxpool": ("conv-ReLU-maxpool 2x2/2-conv-ReLU-maxpool 3x3/1 pad 1-linear on "
                       "(2, 4, 4)", "`if`, percentile 100 (max pooling on spikes)", EXACT),
    "if_ops": ("conv-ReLU-reshape-transpose-affine-identity-linear-ReLU-mean-scale-linear on "
               "(2, 4, 4)", "`if`, percentile 100", EXACT),
    "mlp_noise": ("QCFS MLP 12 -> 10 -> 8 -> 3 (L = 4, 8; λ = 1.5, 1) with an unfoldable "
                  "batchnorm", "`noise`", EXACT),
    "signgd_activations": ("linear, then GELU, GELU-tanh, LeakyReLU, SiLU, sigmoid, tanh, "
                           "hardtanh, abs, square, exp and tanh·SiLU (multiply) side by side, "
                           "summed, unfoldable batchnorm, linear", "`signgd`, defaults", ORDER),
    "signgd_tokens": ("(4, 6) tokens: linear-LayerNorm-GELU-transpose-linear-softmax-mean-"
                      "reshape-scale-flatten-linear", "`signgd`, defaults", ORDER),
    "cnn_signgd_maxpool": ("conv-ReLU-maxpool 2x2/2-maxpool 1x3/1 pad (0, 1)-linear on "
                           "(2, 4, 4) (max trees)", "`signgd`, defaults", ORDER),
    "mlp_signgd_compat": ("the MLP with GELU", "`signgd --compat` (`gd` encoding, GELU as "
                          "x·σ(1.702x), strict ties)", ORDER),
    "mlp_if_reset_zero": ("the MLP", "`if`, percentile 100, `--reset zero` (NIR-exportable)",
                          EXACT),
    "if_structure": ("conv-ReLU6-style clip (hardtanh 0..0.75)-slice, mean-expand, concat-"
                     "pad (0,1)x(1,0)-upsample 1x2-conv 1x1/2-ReLU-maxpool 2x2/2 ceil_mode-"
                     "linear-log_softmax on (2, 4, 4)", "`if`, percentile 100 (readout before "
                     "the log_softmax)", EXACT),
    "signgd_mobile": ("conv-hardswish-SE (mean, 1x1 conv, hardsigmoid, expand, multiply)-"
                      "maxpool 2x2/2 ceil_mode-linear-log_softmax on (2, 3, 3)",
                      "`signgd`, defaults", ORDER),
}

README = """\
# Golden cases (conformance suite)

Written by `PYTHONPATH=. python data/golden/make_golden.py` (which also writes this README;
refsnn {version}, also in each trace's `producer` attribute), NumPy reference backend, float64,
T = {steps} steps, 2 samples (the trace's `/inputs`).

| case | network | conversion | tolerance |
|---|---|---|---|
{rows}

Each case is `<case>.net.h5` (the converted network, `refsnn-snn`) and `<case>.trace.h5`
(`refsnn-trace`, docs/format.md; spikes and the input currents or signGD targets that
`refsnn compare` replays, no potentials, to stay small).
Run: `python -m pytest --pyargs refsnn.conformance.suite --refsnn-conformance=ADAPTER`, one
case: add `--refsnn-case=CASE`.

Tolerances. A mismatch is benign (a rounding tie) only where refsnn's potential was within
`rtol * theta` of the threshold (`Adapter.rtol`, default 1e-5; a float32 backend may raise
it), and only in layers `refsnn compare` can replay from what the trace records (IF and
bistable layers: their input current; signGD layers: their target,
`|v - target| <= rtol * max(|v|, |target|)`).

- **exact (dyadic)**: weights, biases, inputs, calibration samples, clip values and the
  batchnorm scales (eps 0, var 4) are dyadic rationals (integers over 8), so every sum is
  exact in float64, and in float32, in any order: a correct backend reproduces every spike,
  exact ties `u = theta`, where they occur, included (they fire: `>=`). The Poisson case's input spikes are
  refsnn's random draws, stored per step in `/encoded`; a backend receives them through
  `Adapter.run_encoded` (a backend without it skips the case).
- **refsnn's order (not dyadic)**: signGD's step sizes `0.15·0.95^(t−1)`, its targets
  (exp, tanh, erf, ...) and its scales are not dyadic: a backend reproduces the spikes
  exactly only if it follows refsnn's documented order of operations (`docs/semantics.md`)
  and computes the targets to the same bits (NumPy/SciPy's functions); a mismatch is benign
  only where the recorded target ties with the estimate within that relative `rtol`.

Together the cases contain every op of refsnn's simulator (`STEP_OPS`), every signGD target,
encoding, decoder and conversion method; `tests/test_conformance.py` fails when one is added
without a case.
"""

#: Cases whose inputs are drawn in [-1, 1] (Poisson: a spike probability); the others in [0, 1].
SIGNED_INPUT = ("mlp_if_poisson",)


def main(cases=None):
    """Write every case (or only ``cases``, names) and the README."""
    for case, (factory, method, options) in CASES.items():
        if cases and case not in cases:
            continue
        graph = factory(0)
        rng = np.random.default_rng(1)
        low = -8 if case in SIGNED_INPUT else 0
        calib = rng.integers(low, 9, (16,) + graph.input_shape) / 8.0
        x = rng.integers(low, 9, (2,) + graph.input_shape) / 8.0
        net = METHODS[method](graph, calib, **options)
        save_snn(net, HERE / f"{case}.net.h5")
        attrs = {"producer": f"refsnn {__version__}", "model": f"{case}.net.h5",
                 "method": method, "encoding": net.encoding, "backend": "numpy",
                 "command": "PYTHONPATH=. python data/golden/make_golden.py"}
        trace = record_trace(Simulator(net, "numpy"), x, STEPS, attrs=attrs)
        for layer in trace.layers.values():
            layer.potentials = None  # not needed to compare or classify: keeps the files small
        write_trace(HERE / f"{case}.trace.h5", trace)
        print(case)
    rows = "\n".join(f"| `{case}` | " + " | ".join(DESCRIBE[case]) + " |" for case in CASES)
    (HERE / "README.md").write_text(README.format(version=__version__, steps=STEPS, rows=rows))


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
