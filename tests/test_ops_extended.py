"""The operators beyond the ReLU-CNN set: activations, layernorm, softmax, multiply, transpose,
mean, scale, and linear over the last axis of any rank.

Every forward function is checked against hand-computed values (always) and against PyTorch in
float64 (when torch is installed); the format side is checked by an exact save/load round trip
and by a clear ModelFormatError, naming the node and the field, for every constrained attribute.
"""

from __future__ import annotations

import math
import warnings

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from refsnn import ann
from refsnn.errors import ModelFormatError
from refsnn.model import load_refsnn_h5, make_graph, save_model

RTOL, ATOL = 1e-12, 1e-13
ACTIVATIONS = ("gelu", "silu", "sigmoid", "tanh", "leaky_relu", "hardtanh", "abs", "square",
               "exp")


def one_node(op, input_shape, attrs=None, params=None, dtype=np.float64):
    """A graph of a single node ``n`` reading the input."""
    node = dict(name="n", op=op, inputs=["input"], attrs=attrs or {}, params=params or {})
    return make_graph(input_shape, [node], "n", dtype=dtype)


def run(op, x, attrs=None, params=None):
    """Forward ``x`` (batched) through a one-node graph; also checks the recorded shape."""
    x = np.asarray(x, dtype=np.float64)
    graph = one_node(op, x.shape[1:], attrs, params)
    y = ann.forward(graph, x)
    assert y.shape == (x.shape[0],) + graph.shapes["n"]
    assert y.dtype == np.float64
    return y


def close(a, b):
    np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL)


# --- closed-form values, no torch needed -------------------------------------------------------

def test_gelu_values():
    x = [[0.0, 1.0, -1.0, 30.0, -30.0]]
    phi1 = 0.8413447460685429  # standard normal CDF at 1
    close(run("gelu", x), [[0.0, phi1, -(1 - phi1), 30.0, 0.0]])
    # gelu(1) in the tanh form (the value of the GPT-2 / BERT approximation)
    y = run("gelu", x, dict(approximate="tanh"))
    close(y, [[0.0, 0.8411919906082768, -(1 - 0.8411919906082768), 30.0, 0.0]])
    assert one_node("gelu", (3,)).nodes[0].attrs["approximate"] == "none"


def test_sigmoid_silu_tanh_values():
    x = [[0.0, math.log(3.0), -math.log(3.0)]]
    close(run("sigmoid", x), [[0.5, 0.75, 0.25]])
    close(run("silu", x), [[0.0, 0.75 * math.log(3.0), -0.25 * math.log(3.0)]])
    close(run("tanh", [[0.0, math.atanh(0.5), -math.atanh(0.5)]]), [[0.0, 0.5, -0.5]])


def test_leaky_relu_hardtanh_relu6_values():
    close(run("leaky_relu", [[-2.0, 0.0, 3.0]]), [[-0.02, 0.0, 3.0]])
    close(run("leaky_relu", [[-2.0, 0.0, 3.0]], dict(slope=0.2)), [[-0.4, 0.0, 3.0]])
    close(run("hardtanh", [[-3.0, -0.5, 0.5, 3.0]]), [[-1.0, -0.5, 0.5, 1.0]])
    relu6 = dict(min_value=0.0, max_value=6.0)
    close(run("hardtanh", [[-1.0, 0.0, 3.0, 6.0, 7.0]], relu6), [[0.0, 0.0, 3.0, 6.0, 6.0]])
    # integer attribute values are accepted for float attributes
    close(run("hardtanh", [[-1.0, 7.0]], dict(min_value=0, max_value=6)), [[0.0, 6.0]])


def test_abs_square_exp_values():
    close(run("abs", [[-2.5, 0.0, 1.5]]), [[2.5, 0.0, 1.5]])
    close(run("square", [[-3.0, 0.5, 0.0]]), [[9.0, 0.25, 0.0]])
    close(run("exp", [[0.0, math.log(2.0), -math.log(4.0)]]), [[1.0, 2.0, 0.25]])


def test_layernorm_last_axis_values():
    # mean 2, biased variance 2/3: z = (x - 2) / sqrt(2/3 + eps)
    eps = 1e-5
    y = run("layernorm", [[1.0, 2.0, 3.0]], dict(eps=eps),
            dict(weight=np.ones(3), bias=np.zeros(3)))
    close(y, [np.array([-1.0, 0.0, 1.0]) / math.sqrt(2 / 3 + eps)])
    y = run("layernorm", [[1.0, 2.0, 3.0]], dict(eps=eps),
            dict(weight=np.array([2.0, 3.0, -1.0]), bias=np.array([0.5, 0.25, 1.0])))
    close(y, [np.array([-2.0, 0.0, -1.0]) / math.sqrt(2 / 3 + eps) + [0.5, 0.25, 1.0]])


@pytest.mark.parametrize("axis", ["last", "channel"])
def test_layernorm_normalises(axis):
    rng = np.random.default_rng(0)
    x = rng.normal(1.5, 3.0, (4, 3, 5, 6))
    d = 6 if axis == "last" else 3
    dim = -1 if axis == "last" else 1
    eps = 1e-5
    y = run("layernorm", x, dict(axis=axis, eps=eps), dict(weight=np.ones(d), bias=np.zeros(d)))
    v = np.var(x, axis=dim, keepdims=True)
    np.testing.assert_allclose(np.mean(y, axis=dim), 0.0, atol=1e-13)
    # variance of the output is exactly v / (v + eps), that is 1 up to eps / v
    close(np.var(y, axis=dim, keepdims=True), v / (v + eps))
    assert np.all(np.abs(np.var(y, axis=dim, keepdims=True) - 1.0) <= eps / v)


def test_layernorm_channel_is_per_position():
    # at every (h, w) the channels are normalised on their own: the other positions do not matter
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 4, 3, 3))
    w, b = rng.normal(size=4), rng.normal(size=4)
    y = run("layernorm", x, dict(axis="channel"), dict(weight=w, bias=b))
    for i in range(3):
        for j in range(3):
            alone = run("layernorm", x[:, :, i, j], dict(axis="channel"), dict(weight=w, bias=b))
            close(y[:, :, i, j], alone)


def test_softmax_values():
    close(run("softmax", [[0.0, math.log(2.0)], [5.0, 5.0]]), [[1 / 3, 2 / 3], [0.5, 0.5]])
    rng = np.random.default_rng(2)
    x = rng.normal(0, 4, (3, 2, 7))
    y = run("softmax", x)
    assert np.all(y > 0)
    close(np.sum(y, axis=-1), np.ones((3, 2)))
    close(run("softmax", x + 1000.0), y)  # shift invariant


@settings(deadline=None, max_examples=60)
@given(hnp.arrays(np.float64, st.tuples(st.integers(1, 3), st.integers(1, 6)),
                  elements=st.floats(-1e4, 1e4)))
def test_softmax_and_sigmoid_are_probabilities(x):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = run("softmax", x)
        s = run("sigmoid", x)
    assert np.all((y >= 0) & (y <= 1))
    np.testing.assert_allclose(np.sum(y, axis=-1), 1.0, rtol=1e-13)
    assert np.all((s >= 0) & (s <= 1))


def test_multiply_values():
    nodes = [dict(name="t", op="tanh", inputs=["input"]),
             dict(name="m", op="multiply", inputs=["input", "t"])]
    graph = make_graph((3,), nodes, "m")
    x = np.array([[2.0, -3.0, 0.0]])
    close(ann.forward(graph, x), x * np.tanh(x))
    graph = make_graph((2,), [dict(name="m", op="multiply", inputs=["input", "input"])], "m")
    close(ann.forward(graph, np.array([[3.0, -4.0]])), [[9.0, 16.0]])


def test_transpose_values():
    x = np.arange(6.0).reshape(1, 2, 3)
    close(run("transpose", x, dict(perm="1,0")), x[0].T[None])
    x = np.arange(24.0).reshape(1, 2, 3, 4)
    y = run("transpose", x, dict(perm="2,0,1"))
    assert y.shape == (1, 4, 2, 3)
    for i in range(2):
        for j in range(3):
            for k in range(4):
                assert y[0, k, i, j] == x[0, i, j, k]
    close(run("transpose", x, dict(perm="0, 1, 2")), x)  # spaces allowed; identity permutation


@pytest.mark.parametrize("axis, keepdims, shape", [
    ("last", 0, (3, 4)), ("last", 1, (3, 4, 1)),
    ("channel", 0, (4, 5)), ("channel", 1, (1, 4, 5)),
    ("spatial", 0, (3,)), ("spatial", 1, (3, 1, 1)),
])
def test_mean_values(axis, keepdims, shape):
    x = np.random.default_rng(3).normal(size=(2, 3, 4, 5))
    graph = one_node("mean", (3, 4, 5), dict(axis=axis, keepdims=keepdims))
    assert graph.shapes["n"] == shape
    y = run("mean", x, dict(axis=axis, keepdims=keepdims))
    b = 1  # check one output value by an explicit sum
    if axis == "last":
        want = sum(x[b, 2, 1, k] for k in range(5)) / 5
        got = y[b, 2, 1, 0] if keepdims else y[b, 2, 1]
    elif axis == "channel":
        want = sum(x[b, c, 1, 3] for c in range(3)) / 3
        got = y[b, 0, 1, 3] if keepdims else y[b, 1, 3]
    else:
        want = sum(x[b, 2, i, j] for i in range(4) for j in range(5)) / 20
        got = y[b, 2, 0, 0] if keepdims else y[b, 2]
    assert got == pytest.approx(want, rel=1e-13)


def test_mean_spatial_is_global_average_pooling():
    x = np.random.default_rng(4).normal(size=(3, 2, 4, 4))
    pool = make_graph((2, 4, 4), [
        dict(name="p", op="avgpool2d", inputs=["input"], attrs=dict(kernel=(4, 4), stride=(4, 4))),
        dict(name="f", op="flatten", inputs=["p"])], "f")
    close(run("mean", x, dict(axis="spatial")), ann.forward(pool, x))


@pytest.mark.parametrize("axis", ["channel", "last"])
def test_scale_values(axis):
    x = np.random.default_rng(5).normal(size=(2, 3, 4))
    w = np.array([2.0, -1.0, 0.5]) if axis == "channel" else np.array([1.0, 2.0, 3.0, 4.0])
    y = run("scale", x, dict(axis=axis), dict(weight=w))
    for c in range(3):
        for k in range(4):
            assert y[1, c, k] == x[1, c, k] * (w[c] if axis == "channel" else w[k])
    assert one_node("scale", (3, 4), params=dict(weight=w if axis == "channel" else w[:3])) \
        .nodes[0].attrs["axis"] == "channel"


def test_linear_over_last_axis():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(2, 3, 4, 5))
    w, b = rng.normal(size=(6, 5)), rng.normal(size=6)
    y = run("linear", x, params=dict(weight=w, bias=b))
    assert y.shape == (2, 3, 4, 6)
    for i in range(3):
        for j in range(4):
            close(y[1, i, j], w @ x[1, i, j] + b)
    # rank 1 is unchanged: (N,) -> (M,)
    graph = one_node("linear", (5,), params=dict(weight=w, bias=b))
    assert graph.shapes["n"] == (6,)
    close(ann.forward(graph, x[:, 0, 0]), x[:, 0, 0] @ w.T + b)


def test_float32_graphs_stay_float32():
    graph = every_op_graph(np.float32)
    x = np.random.default_rng(7).normal(size=(2,) + graph.input_shape)
    _, acts = ann.forward(graph, x, all_nodes=True)
    for name, value in acts.items():
        assert value.dtype == np.float32, name


@pytest.mark.parametrize("op", ["sigmoid", "softmax", "silu", "gelu", "tanh"])
def test_huge_inputs_give_no_warnings(op):
    x = np.array([[1e4, -1e4, 0.0], [1e4, 1e4, -1e4], [-1e4, -1e4, -1e4]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = run(op, x)
    assert np.all(np.isfinite(y))
    if op == "sigmoid":
        close(y[0], [1.0, 0.0, 0.5])
    if op == "softmax":
        close(y, [[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [1 / 3, 1 / 3, 1 / 3]])


# --- against PyTorch (float64) -----------------------------------------------------------------

@pytest.fixture
def torch():
    return pytest.importorskip("torch")


def _t(torch, a):
    return torch.tensor(np.asarray(a), dtype=torch.float64)


@pytest.fixture
def x4():
    return np.random.default_rng(8).normal(0, 2.5, (3, 4, 5, 6))


@pytest.mark.parametrize("op, attrs, reference", [
    ("gelu", {}, lambda t, F: F.gelu(t)),
    ("gelu", dict(approximate="tanh"), lambda t, F: F.gelu(t, approximate="tanh")),
    ("silu", {}, lambda t, F: F.silu(t)),
    ("sigmoid", {}, lambda t, F: F.sigmoid(t)),
    ("tanh", {}, lambda t, F: F.tanh(t)),
    ("leaky_relu", {}, lambda t, F: F.leaky_relu(t)),
    ("leaky_relu", dict(slope=0.3), lambda t, F: F.leaky_relu(t, negative_slope=0.3)),
    ("hardtanh", {}, lambda t, F: F.hardtanh(t)),
    ("hardtanh", dict(min_value=-0.5, max_value=2.0), lambda t, F: F.hardtanh(t, -0.5, 2.0)),
    ("hardtanh", dict(min_value=0.0, max_value=6.0), lambda t, F: F.relu6(t)),
    ("abs", {}, lambda t, F: t.abs()),
    ("square", {}, lambda t, F: t.square()),
    ("exp", {}, lambda t, F: t.exp()),
    ("softmax", {}, lambda t, F: t.softmax(-1)),
    ("transpose", dict(perm="2,0,1"), lambda t, F: t.permute(0, 3, 1, 2)),
    ("transpose", dict(perm="1,2,0"), lambda t, F: t.permute(0, 2, 3, 1)),
    ("mean", dict(axis="last"), lambda t, F: t.mean(-1)),
    ("mean", dict(axis="channel"), lambda t, F: t.mean(1)),
    ("mean", dict(axis="spatial"), lambda t, F: t.mean((2, 3))),
    ("mean", dict(axis="spatial", keepdims=1), lambda t, F: t.mean((2, 3), keepdim=True)),
    ("mean", dict(axis="channel", keepdims=1), lambda t, F: t.mean(1, keepdim=True)),
])
def test_elementwise_and_structural_vs_torch(torch, x4, op, attrs, reference):
    want = reference(_t(torch, x4), torch.nn.functional).numpy()
    got = run(op, x4, attrs)
    assert got.shape == want.shape
    close(got, want)


def test_layernorm_last_vs_torch(torch, x4):
    rng = np.random.default_rng(9)
    w, b = rng.normal(size=6), rng.normal(size=6)
    got = run("layernorm", x4, dict(eps=1e-6), dict(weight=w, bias=b))
    want = torch.nn.functional.layer_norm(_t(torch, x4), (6,), _t(torch, w), _t(torch, b), 1e-6)
    close(got, want.numpy())


def test_layernorm_channel_vs_torch(torch, x4):
    # ConvNeXt's channels-first LayerNorm, computed in torch over dim 1
    rng = np.random.default_rng(10)
    w, b = rng.normal(size=4), rng.normal(size=4)
    got = run("layernorm", x4, dict(axis="channel"), dict(weight=w, bias=b))
    t = _t(torch, x4)
    mean = t.mean(1, keepdim=True)
    var = t.var(1, unbiased=False, keepdim=True)
    want = (t - mean) / torch.sqrt(var + 1e-5) * _t(torch, w)[:, None, None] \
        + _t(torch, b)[:, None, None]
    close(got, want.numpy())


def test_multiply_vs_torch(torch, x4):
    nodes = [dict(name="s", op="sigmoid", inputs=["input"]),
             dict(name="m", op="multiply", inputs=["s", "input"])]
    got = ann.forward(make_graph(x4.shape[1:], nodes, "m"), x4)
    t = _t(torch, x4)
    close(got, torch.mul(torch.sigmoid(t), t).numpy())


@pytest.mark.parametrize("axis", ["channel", "last"])
def test_scale_vs_torch(torch, x4, axis):
    w = np.random.default_rng(11).normal(size=4 if axis == "channel" else 6)
    got = run("scale", x4, dict(axis=axis), dict(weight=w))
    tw = _t(torch, w)
    want = _t(torch, x4) * (tw[:, None, None] if axis == "channel" else tw)
    close(got, want.numpy())


def test_linear_last_axis_vs_torch(torch):
    rng = np.random.default_rng(12)
    x = rng.normal(size=(2, 3, 4, 5))
    w, b = rng.normal(size=(7, 5)), rng.normal(size=7)
    got = run("linear", x, params=dict(weight=w, bias=b))
    want = torch.nn.functional.linear(_t(torch, x), _t(torch, w), _t(torch, b))
    close(got, want.numpy())


# --- the model format: round trip --------------------------------------------------------------

def every_op_graph(dtype=np.float64):
    """A (3, 4, 5)-input graph that uses every operator added here."""
    rng = np.random.default_rng(13)

    def p(*shape):
        return rng.normal(size=shape).astype(dtype)

    chain = [
        ("g1", "gelu", {}, {}),
        ("g2", "gelu", dict(approximate="tanh"), {}),
        ("si", "silu", {}, {}),
        ("lr", "leaky_relu", dict(slope=0.1), {}),
        ("ht", "hardtanh", dict(min_value=-2.0, max_value=1.5), {}),
        ("r6", "hardtanh", dict(min_value=0.0, max_value=6.0), {}),
        ("ab", "abs", {}, {}),
        ("sq", "square", {}, {}),
        ("th", "tanh", {}, {}),
        ("ex", "exp", {}, {}),
        ("sg", "sigmoid", {}, {}),
        ("lnc", "layernorm", dict(axis="channel", eps=1e-6), dict(weight=p(3), bias=p(3))),
        ("scc", "scale", {}, dict(weight=p(3))),
        ("lnl", "layernorm", {}, dict(weight=p(5), bias=p(5))),
        ("scl", "scale", dict(axis="last"), dict(weight=p(5))),
        ("fc", "linear", {}, dict(weight=p(6, 5), bias=p(6))),
        ("tr", "transpose", dict(perm="2,0,1"), {}),  # (6, 3, 4)
        ("sm", "softmax", {}, {}),
    ]
    nodes, prev = [], "input"
    for name, op, attrs, params in chain:
        nodes.append(dict(name=name, op=op, inputs=[prev], attrs=attrs, params=params))
        prev = name
    nodes += [
        dict(name="mul", op="multiply", inputs=["tr", "sm"]),
        dict(name="m1", op="mean", inputs=["mul"], attrs=dict(axis="last", keepdims=1)),
        dict(name="m2", op="mean", inputs=["m1"], attrs=dict(axis="channel")),   # (3, 1)
        dict(name="m3", op="mean", inputs=["m2"], attrs=dict(axis="spatial")),   # (3,)
    ]
    return make_graph((3, 4, 5), nodes, "m3", dtype=dtype)


def test_every_op_graph_shapes():
    graph = every_op_graph()
    assert graph.shapes["fc"] == (3, 4, 6)
    assert graph.shapes["tr"] == (6, 3, 4)
    assert graph.shapes["m1"] == (6, 3, 1)
    assert graph.shapes["m2"] == (3, 1)
    assert graph.shapes["m3"] == (3,)
    _, acts = ann.forward(graph, np.zeros((1, 3, 4, 5)), all_nodes=True)
    for name, shape in graph.shapes.items():
        assert acts[name].shape == (1,) + shape, name


def test_round_trip_every_new_op(tmp_path):
    graph = every_op_graph()
    assert {n.op for n in graph.nodes} >= set(ACTIVATIONS) | {
        "layernorm", "softmax", "multiply", "transpose", "mean", "scale", "linear"}
    save_model(graph, tmp_path / "a.h5")
    again = load_refsnn_h5(tmp_path / "a.h5")
    assert again.input_shape == graph.input_shape and again.output == graph.output
    assert dict(again.shapes) == dict(graph.shapes)
    assert [(n.name, n.op, n.inputs, dict(n.attrs)) for n in again.nodes] == \
        [(n.name, n.op, n.inputs, dict(n.attrs)) for n in graph.nodes]
    for a, b in zip(again.nodes, graph.nodes):
        for key, value in a.attrs.items():
            assert type(value) is type(b.attrs[key]), (a.name, key)
        assert a.params.keys() == b.params.keys()
        for k in a.params:
            assert a.params[k].dtype == b.params[k].dtype
            assert np.array_equal(a.params[k], b.params[k])
    x = np.random.default_rng(14).normal(size=(3, 3, 4, 5))
    assert np.array_equal(ann.forward(again, x), ann.forward(graph, x))
    save_model(again, tmp_path / "b.h5")
    assert (tmp_path / "a.h5").read_bytes() == (tmp_path / "b.h5").read_bytes()


# --- the model format: errors ------------------------------------------------------------------

def _node_error(op, input_shape, attrs=None, params=None, inputs=("input",)):
    node = dict(name="bad", op=op, inputs=list(inputs), attrs=attrs or {}, params=params or {})
    with pytest.raises(ModelFormatError) as info:
        make_graph(input_shape, [node], "bad")
    return info.value


W5 = np.ones(5)


@pytest.mark.parametrize("op, shape, attrs, params, path, field, fragment", [
    ("gelu", (5,), dict(approximate="fast"), {}, "", "approximate", "one of ['none', 'tanh']"),
    ("gelu", (5,), dict(approximate=1), {}, "", "approximate", "a string"),
    ("leaky_relu", (5,), dict(slope="big"), {}, "", "slope", "a real number"),
    ("hardtanh", (5,), dict(min_value=1.0, max_value=1.0), {}, "", "min_value",
     "expected less than max_value=1.0, found 1.0"),
    ("hardtanh", (5,), dict(min_value=0.0, max_value=-6.0), {}, "", "min_value",
     "found 0.0"),
    ("hardtanh", (5,), dict(max_value=-2.0), {}, "", "min_value", "max_value=-2.0, found -1.0"),
    ("layernorm", (5,), dict(eps=0.0), dict(weight=W5, bias=W5), "", "eps", "eps > 0"),
    ("layernorm", (5,), dict(eps=-1e-5), dict(weight=W5, bias=W5), "", "eps", "found -1e-05"),
    ("layernorm", (3, 5), {}, dict(weight=np.ones(4), bias=W5), "/weight", "shape",
     "expected (5,), found (4,)"),
    ("layernorm", (3, 5), dict(axis="channel"), dict(weight=np.ones(3), bias=W5), "/bias",
     "shape", "expected (3,), found (5,)"),
    ("layernorm", (3, 5), dict(axis="spatial"), dict(weight=W5, bias=W5), "", "axis",
     "one of ['last', 'channel']"),
    ("layernorm", (5,), {}, dict(weight=W5), "/bias", "dataset", "missing"),
    ("softmax", (3, 5), dict(axis="channel"), {}, "", "axis", "one of ['last']"),
    ("transpose", (2, 3, 4), dict(perm="0,0,1"), {}, "", "perm", "a permutation of 0..2"),
    ("transpose", (2, 3, 4), dict(perm="1,0"), {}, "", "perm", "found '1,0'"),
    ("transpose", (2, 3, 4), dict(perm="0,1,3"), {}, "", "perm", "a permutation of 0..2"),
    ("transpose", (2, 3), dict(perm="a,b"), {}, "", "perm", "written like '1,0'"),
    ("transpose", (2, 3), dict(perm="-1,0"), {}, "", "perm", "a permutation of 0..1"),
    ("transpose", (2, 3), dict(perm=""), {}, "", "perm", "found ''"),
    ("transpose", (2, 3), dict(perm=np.array([1, 0])), {}, "", "perm", "a string"),
    ("transpose", (2, 3), {}, {}, "", "perm", "missing"),
    ("mean", (3, 4), dict(axis="last", keepdims=2), {}, "", "keepdims", "0 or 1"),
    ("mean", (3, 4), dict(axis="last", keepdims=-1), {}, "", "keepdims", "values >= 0"),
    ("mean", (3, 4), dict(axis="all"), {}, "", "axis", "one of ['last', 'channel', 'spatial']"),
    ("mean", (3, 4), {}, {}, "", "axis", "missing"),
    ("mean", (5,), dict(axis="spatial"), {}, "", "input shape", "rank >= 2"),
    ("mean", (5,), dict(axis="last"), {}, "", "keepdims", "1 when the mean leaves no axis"),
    ("scale", (3, 5), {}, dict(weight=W5), "/weight", "shape", "expected (3,), found (5,)"),
    ("scale", (3, 5), dict(axis="last"), dict(weight=np.ones(3)), "/weight", "shape",
     "expected (5,), found (3,)"),
    ("linear", (3, 4, 5), {}, dict(weight=np.ones((6, 4)), bias=np.ones(6)), "/weight",
     "shape", "expected (*, 5), found (6, 4)"),
    ("linear", (3, 4, 5), {}, dict(weight=np.ones((6, 5)), bias=np.ones(5)), "", "bias",
     "expected shape (6,)"),
    ("silu", (5,), dict(beta=1.0), {}, "", "beta", "attributes of silu"),
])
def test_bad_node_in_memory(op, shape, attrs, params, path, field, fragment):
    err = _node_error(op, shape, attrs, params)
    assert err.file == "<memory>"
    assert err.path == "/nodes/bad" + path, str(err)
    assert err.field == field, str(err)
    message = str(err)
    assert message.startswith(f"<memory>: /nodes/bad{path}: {field}: expected "), message
    assert fragment in message, message


def test_multiply_needs_two_equal_shapes():
    nodes = [dict(name="m", op="mean", inputs=["input"], attrs=dict(axis="last", keepdims=1)),
             dict(name="bad", op="multiply", inputs=["input", "m"])]
    with pytest.raises(ModelFormatError, match=r"^<memory>: /nodes/bad: inputs: expected equal "
                                               r"shapes \(3, 4\), found \(3, 1\)$"):
        make_graph((3, 4), nodes, "bad")
    err = _node_error("multiply", (3,), inputs=("input", "input", "input"))
    assert (err.path, err.field) == ("/nodes/bad", "inputs")
    assert "2 input(s) for multiply" in str(err)


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "model.h5"
    save_model(every_op_graph(), path)
    return path


def _edit(path, fn):
    with h5py.File(path, "r+") as f:
        fn(f["nodes"])


def _replace(group, name, data):
    del group[name]
    group.create_dataset(name, data=data)


@pytest.mark.parametrize("edit, path, field, fragment", [
    (lambda n: n["g2"].attrs.__setitem__("approximate", "fast"), "/nodes/g2", "approximate",
     "one of ['none', 'tanh']"),
    (lambda n: n["ht"].attrs.__setitem__("min_value", 1.5), "/nodes/ht", "min_value",
     "less than max_value=1.5, found 1.5"),
    (lambda n: n["lnc"].attrs.__setitem__("eps", 0.0), "/nodes/lnc", "eps", "eps > 0"),
    (lambda n: _replace(n["lnl"], "weight", np.ones(3)), "/nodes/lnl/weight", "shape",
     "expected (5,), found (3,)"),
    (lambda n: n["tr"].attrs.__setitem__("perm", "2,1,1"), "/nodes/tr", "perm",
     "a permutation of 0..2"),
    (lambda n: n["m1"].attrs.__setitem__("keepdims", 2), "/nodes/m1", "keepdims", "0 or 1"),
    (lambda n: _replace(n["scc"], "weight", np.ones(4)), "/nodes/scc/weight", "shape",
     "expected (3,), found (4,)"),
    (lambda n: n["mul"].attrs.__setitem__("inputs", ["tr", "sg"]), "/nodes/mul", "inputs",
     "equal shapes (6, 3, 4), found (3, 4, 5)"),
    (lambda n: _replace(n["fc"], "weight", np.ones((6, 4))), "/nodes/fc/weight", "shape",
     "expected (*, 5), found (6, 4)"),
])
def test_bad_node_in_file(saved, edit, path, field, fragment):
    _edit(saved, edit)
    with pytest.raises(ModelFormatError) as info:
        load_refsnn_h5(saved)
    err = info.value
    assert err.file == str(saved)
    assert (err.path, err.field) == (path, field), str(err)
    message = str(err)
    assert message.startswith(f"{saved}: {path}: {field}: expected "), message
    assert fragment in message, message
