"""refsnn.interop.onnx on hand-built ONNX graphs (onnx.helper): edge cases and refusals.

Skipped without the onnx package. Outputs are checked against ONNX's own reference evaluator
(part of the onnx package), the definition of each operator.
"""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402

from refsnn import ann  # noqa: E402
from refsnn.cli.main import main  # noqa: E402
from refsnn.errors import ModelFormatError  # noqa: E402
from refsnn.files import load_model  # noqa: E402
from refsnn.interop.onnx import load_onnx  # noqa: E402

RNG = np.random.default_rng(0)


def model(nodes, inits, in_shape=("N", 2, 6, 6), opset=17, out="y"):
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.DOUBLE, list(in_shape))],
        [helper.make_tensor_value_info(out, TensorProto.DOUBLE, None)],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def save(m, tmp_path, name="m.onnx"):
    path = tmp_path / name
    onnx.save(m, str(path))
    return path


def check_against_reference(m, tmp_path, shape=(3, 2, 6, 6)):
    x = RNG.standard_normal(shape)
    expected = ReferenceEvaluator(m).run(None, {"x": x})[0]
    graph = load_onnx(save(m, tmp_path))
    got = ann.forward(graph, x)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    return graph


W = RNG.standard_normal((3, 2, 3, 3))
B = RNG.standard_normal(3)


def _conv(**attrs):
    return model([helper.make_node("Conv", ["x", "w", "b"], ["y"], name="conv", **attrs)],
                 dict(w=W, b=B))


@pytest.mark.parametrize("attrs, padding", [
    (dict(pads=[1, 1, 1, 1]), (1, 1)),
    (dict(auto_pad="SAME_UPPER"), (1, 1)),
    (dict(auto_pad="SAME_LOWER", strides=[1, 1]), (1, 1)),
    (dict(auto_pad="VALID", strides=[2, 2]), (0, 0)),
])
def test_conv_padding(attrs, padding, tmp_path):
    graph = check_against_reference(_conv(**attrs), tmp_path)
    assert graph.nodes[0].attrs["padding"] == padding


@pytest.mark.parametrize("attrs, rows, cols", [
    (dict(pads=[0, 0, 1, 1]), (0, 1), (0, 1)),
    (dict(pads=[2, 0, 1, 1]), (2, 1), (0, 1)),
    (dict(auto_pad="SAME_UPPER", strides=[2, 2]), (0, 1), (0, 1)),  # 1 extra: at the end
    (dict(auto_pad="SAME_LOWER", strides=[2, 2]), (1, 0), (1, 0)),  # at the start
])
def test_conv_asymmetric_padding_is_a_pad_node(attrs, rows, cols, tmp_path):
    """Asymmetric zero padding becomes ``pad`` + an unpadded ``conv2d`` (as the PyTorch
    route writes padding='same' with an even kernel)."""
    graph = check_against_reference(_conv(**attrs), tmp_path)
    assert [(n.op, dict(n.attrs)) for n in graph.nodes] == [
        ("pad", dict(rows=rows, cols=cols)),
        ("conv2d", dict(stride=tuple(attrs.get("strides", (1, 1))), padding=(0, 0), groups=1))]


@pytest.mark.parametrize("attrs, message", [
    (dict(dilations=[2, 2]), r"node 'conv' \(Conv\): dilations: expected 1"),
])
def test_conv_refusals(attrs, message, tmp_path):
    path = save(_conv(**attrs), tmp_path)
    with pytest.raises(ModelFormatError, match=message) as e:
        load_onnx(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def _pool(op, **attrs):
    return model([helper.make_node(op, ["x"], ["y"], name="pool", **attrs)], {})


def test_pools(tmp_path):
    check_against_reference(_pool("MaxPool", kernel_shape=[3, 3], strides=[2, 2],
                                  pads=[1, 1, 1, 1]), tmp_path)
    check_against_reference(_pool("AveragePool", kernel_shape=[2, 2], strides=[2, 2]),
                            tmp_path)
    check_against_reference(_pool("AveragePool", kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                                  count_include_pad=1), tmp_path)
    check_against_reference(_pool("GlobalAveragePool"), tmp_path)
    with pytest.raises(ModelFormatError, match=r"node 'pool' \(AveragePool\): "
                                               r"count_include_pad: expected 1 when padding"):
        load_onnx(save(_pool("AveragePool", kernel_shape=[3, 3], pads=[1, 1, 1, 1]), tmp_path))
    with pytest.raises(ModelFormatError, match=r"node 'pool' \(MaxPool\): pads: expected equal "
                                               r"padding at both ends .*found rows \(0, 1\), "
                                               r"columns \(0, 1\) \(begin, end\)"):
        load_onnx(save(_pool("MaxPool", kernel_shape=[2, 2], pads=[0, 0, 1, 1]), tmp_path))
    # MaxPool's ceil_mode is read (tests/test_onnx_coverage.py), AveragePool's is not
    with pytest.raises(ModelFormatError, match=r"node 'pool' \(AveragePool\): ceil_mode: "
                                               r"expected 0 .*only MaxPool"):
        load_onnx(save(_pool("AveragePool", kernel_shape=[2, 2], ceil_mode=1), tmp_path))


@pytest.mark.parametrize("op, c, first, expected_op", [
    ("Add", np.array([0.5, -1.0]).reshape(2, 1, 1), True, "affine"),
    ("Sub", np.array(0.25), True, "affine"),
    ("Sub", np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]), False, "affine"),
    ("Mul", np.array([3.0, -2.0]).reshape(1, 2, 1, 1), True, "scale"),
    ("Div", np.array(4.0), True, "scale"),
    ("Div", np.array([0.5, 0.125]).reshape(2, 1, 1), True, "scale"),
])
def test_arithmetic_by_constants_is_exact(op, c, first, expected_op, tmp_path):
    ins = ["x", "c"] if first else ["c", "x"]
    m = model([helper.make_node(op, ins, ["y"], name="arith")], dict(c=c))
    x = RNG.standard_normal((4, 2, 6, 6))
    expected = ReferenceEvaluator(m).run(None, {"x": x})[0]
    graph = load_onnx(save(m, tmp_path))
    assert [n.op for n in graph.nodes] == [expected_op]
    np.testing.assert_array_equal(ann.forward(graph, x), expected)  # bit for bit


@pytest.mark.parametrize("nodes, inits, message", [
    ([helper.make_node("Div", ["x", "c"], ["y"], name="d")], dict(c=np.array(3.0)),
     r"node 'd' \(Div\): B: expected a power of two.*found 3.0"),
    ([helper.make_node("Celu", ["x"], ["y"], name="celu")], {},
     r"node 'celu' \(Celu\): op_type: .*'Celu', which refsnn has no operator for"),
    ([helper.make_node("HardSigmoid", ["x"], ["y"], name="hsig")], {},
     r"node 'hsig' \(HardSigmoid\): alpha/beta: expected alpha = 1/6 and beta = 0.5 .*found "
     r"alpha = 0.2, beta = 0.5"),
    ([helper.make_node("Concat", ["x", "x"], ["y"], name="cat", axis=0)], {},
     r"node 'cat' \(Concat\): axis: expected a per-sample axis"),
    ([helper.make_node("Concat", ["x", "c"], ["y"], name="cat", axis=1)],
     dict(c=np.ones((1, 2, 6, 6))), r"node 'cat' \(Concat\): inputs: expected a tensor"),
    ([helper.make_node("Erf", ["x"], ["y"], name="erf")], {}, r"node 'erf' \(Erf\): op_type"),
    ([helper.make_node("Mul", ["x", "c"], ["y"], name="m")], dict(c=np.ones((2, 6, 1))),
     r"node 'm' \(Mul\): constant operand: expected a scalar or a vector along the channels"),
    ([helper.make_node("Transpose", ["x"], ["y"], name="t", perm=[1, 0, 2, 3])], {},
     r"node 't' \(Transpose\): perm: expected a permutation keeping the batch axis first"),
    ([helper.make_node("Flatten", ["x"], ["y"], name="f", axis=2)], {},
     r"node 'f' \(Flatten\): axis: expected 1"),
    ([helper.make_node("Reshape", ["x", "s"], ["y"], name="r")],
     dict(s=np.array([-1], dtype=np.int64)), r"node 'r' \(Reshape\): shape: .*merges or moves "
                                              r"the batch axis"),
    ([helper.make_node("Conv", ["x", "w"], ["y"], name="c")], {},
     r"node 'c' \(Conv\): inputs: .*'w' \(a missing initializer\?\)"),
    ([helper.make_node("Conv", ["x", "w"], ["y"], name="c")],
     dict(w=np.full((3, 2, 3, 3), np.nan)), r"node 'c' \(Conv\): weight: expected finite values "
                                            r"in 'w', found nan at index \(0, 0, 0, 0\)"),
    ([helper.make_node("Mul", ["x", "x"], ["z"], name="sq"),
      helper.make_node("Sub", ["z", "x"], ["y"], name="s")], {},
     r"node 's' \(Sub\): inputs: expected a constant operand"),
])
def test_refused_by_node(nodes, inits, message, tmp_path):
    path = save(model(nodes, inits), tmp_path)
    with pytest.raises(ModelFormatError, match=message) as e:
        load_onnx(path)
    assert str(e.value).startswith(f"{path}: ") and "\n" not in str(e.value)


def test_shape_arithmetic_folds_and_keeps_the_batch(tmp_path):
    """``x.view(x.size(0), -1)`` as exporters write it: Shape, Gather, Unsqueeze, Concat."""
    nodes = [
        helper.make_node("Shape", ["x"], ["s"], name="shape"),
        helper.make_node("Gather", ["s", "zero"], ["b"], name="gather", axis=0),
        helper.make_node("Unsqueeze", ["b", "ax"], ["b1"], name="unsq"),
        helper.make_node("Concat", ["b1", "minus1"], ["t"], name="cat", axis=0),
        helper.make_node("Reshape", ["x", "t"], ["y"], name="reshape"),
    ]
    m = model(nodes, dict(zero=np.array(0, dtype=np.int64), ax=np.array([0], dtype=np.int64),
                          minus1=np.array([-1], dtype=np.int64)))
    graph = check_against_reference(m, tmp_path)
    assert [n.op for n in graph.nodes] == ["flatten"] and graph.shapes[graph.output] == (72,)


def test_file_errors(tmp_path):
    good = save(_conv(pads=[1, 1, 1, 1]), tmp_path)
    data = good.read_bytes()
    truncated = tmp_path / "t.onnx"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFormatError, match=r"t.onnx: /: (file|graph): expected an ONNX"):
        load_onnx(truncated)
    dynamic = save(model([helper.make_node("Relu", ["x"], ["y"], name="r")], {},
                         in_shape=("N", 2, "H", 6)), tmp_path, "d.onnx")
    with pytest.raises(ModelFormatError, match=r"graph input 'x': shape: expected fixed sizes "
                                               r"for every axis after the batch axis"):
        load_onnx(dynamic)
    # the registry: load_model and the command line read .onnx, one-line errors
    assert load_model(good).nodes[0].op == "conv2d"
    assert main(["inspect", str(truncated)]) == 1


def test_import_onnx_cli(tmp_path, capsys):
    path = save(_conv(pads=[1, 1, 1, 1]), tmp_path)
    out = tmp_path / "m.h5"
    assert main(["import-onnx", str(path), "-o", str(out)]) == 0
    assert f"wrote {out}: 1 nodes" in capsys.readouterr().out
    assert main(["inspect", str(out)]) == 0
    bad = save(_conv(dilations=[2, 2]), tmp_path, "bad.onnx")
    assert main(["import-onnx", str(bad), "-o", str(tmp_path / "bad.h5")]) == 1
    assert "node 'conv' (Conv): dilations" in capsys.readouterr().err
    assert not (tmp_path / "bad.h5").exists()


def _single(op, inits=None, in_shape=("N", 2, 6, 6), opset=17, inputs=("x",), **attrs):
    return model([helper.make_node(op, list(inputs) + list(inits or {}), ["y"], name="n",
                                   **attrs)], inits or {}, in_shape, opset)


@pytest.mark.parametrize("m, ops", [
    (_single("Clip", dict(lo=np.array(0.0), hi=np.array(6.0))), ["hardtanh"]),
    (_single("Clip", dict(lo=np.array(0.0))), ["relu"]),
    (_single("Concat", inputs=("x", "x"), axis=-3), ["concat"]),
    (model([helper.make_node("Relu", ["x"], ["r"], name="r"),
            helper.make_node("Concat", ["x", "r"], ["y"], name="cat", axis=3)], {}),
     ["relu", "concat"]),
    (_single("LeakyRelu", alpha=0.25), ["leaky_relu"]),
    (_single("Pow", dict(e=np.array(2.0))), ["square"]),
    (_single("Unsqueeze", dict(a=np.array([-1], dtype=np.int64))), ["reshape"]),
    (_single("ReduceMean", dict(a=np.array([1], dtype=np.int64)), opset=18, keepdims=0),
     ["mean"]),
    (_single("ReduceMean", dict(a=np.array([2, 3], dtype=np.int64)), opset=18), ["mean"]),
    (_single("Transpose", perm=[0, 2, 3, 1]), ["transpose"]),
    (_single("Softmax", axis=-1), ["softmax"]),
    (_single("LayerNormalization", dict(s=RNG.random(6) + 0.5, b=RNG.standard_normal(6)),
             epsilon=2.0 ** -10), ["layernorm"]),
    (_single("BatchNormalization", dict(g=RNG.random(2) + 0.5, b=RNG.standard_normal(2),
                                        m=RNG.standard_normal(2), v=RNG.random(2) + 0.5),
             epsilon=2.0 ** -10),
     ["batchnorm"]),
    (_single("Gemm", dict(w=RNG.standard_normal((4, 5)), c=RNG.standard_normal((1, 4))),
             in_shape=("N", 5), transB=1, beta=0.5), ["linear"]),
    (model([helper.make_node("MatMul", ["x", "w"], ["z"], name="mm"),
            helper.make_node("Add", ["z", "b"], ["y"], name="bias")],
           dict(w=RNG.standard_normal((6, 3)), b=RNG.standard_normal(3))), ["linear"]),
    (model([helper.make_node("Squeeze", ["x", "a"], ["y"], name="sq")],
           dict(a=np.array([3], dtype=np.int64)), in_shape=("N", 2, 6, 1)), ["reshape"]),
])
def test_single_operators_match_the_reference(m, ops, tmp_path):
    shape = tuple(3 if isinstance(d, str) else d for d in
                  [d.dim_value or d.dim_param for d in
                   m.graph.input[0].type.tensor_type.shape.dim])
    graph = check_against_reference(m, tmp_path, shape)
    assert [n.op for n in graph.nodes] == ops


@pytest.mark.parametrize("m, op, exact", [
    (_single("HardSwish", opset=14), "hardswish", lambda x: x * np.clip(x + 3, 0, 6) / 6),
    (_single("HardSigmoid", alpha=1 / 6, beta=0.5), "hardsigmoid",
     lambda x: np.clip(x + 3, 0, 6) / 6),
])
def test_hard_activations_read_as_pytorchs(m, op, exact, tmp_path):
    """HardSwish and HardSigmoid (alpha 1/6, beta 1/2) are refsnn's ``relu6(x + 3) / 6`` forms,
    PyTorch's definitions in float64; ONNX's reference evaluator uses alpha as the float32
    number 1/6 rounds to, so it differs from them by that rounding (here < 5e-8)."""
    x = 4 * RNG.standard_normal((3, 2, 6, 6))
    graph = load_onnx(save(m, tmp_path))
    assert [n.op for n in graph.nodes] == [op]
    got = ann.forward(graph, x)
    np.testing.assert_array_equal(got, exact(x))
    np.testing.assert_allclose(got, ReferenceEvaluator(m).run(None, {"x": x})[0], rtol=0,
                               atol=5e-8)


def test_float32_attributes_read_as_their_decimal(tmp_path):
    """ONNX float attributes are float32: 0.2 and 1e-5 arrive rounded, refsnn reads 0.2, 1e-05
    (what the exporting framework held); the reference evaluator uses the float32 values."""
    graph = load_onnx(save(_single("LeakyRelu", alpha=0.2), tmp_path))
    assert graph.nodes[0].attrs["slope"] == 0.2 and float(np.float32(0.2)) != 0.2
    m = _single("BatchNormalization", dict(g=np.ones(2), b=np.zeros(2), m=np.zeros(2),
                                           v=np.ones(2)), epsilon=1e-5)
    assert load_onnx(save(m, tmp_path)).nodes[0].attrs["eps"] == 1e-5


def _gelu_erf(sqrt2=np.sqrt(2.0)):
    nodes = [helper.make_node("Div", ["x", "r2"], ["a"], name="div"),
             helper.make_node("Erf", ["a"], ["e"], name="erf"),
             helper.make_node("Add", ["e", "one"], ["p"], name="add"),
             helper.make_node("Mul", ["x", "p"], ["q"], name="mul"),
             helper.make_node("Mul", ["q", "half"], ["y"], name="mul2")]
    return model(nodes, dict(r2=np.array(sqrt2), one=np.array(1.0), half=np.array(0.5)))


def test_gelu_pattern_and_its_limits(tmp_path):
    from scipy.special import erf
    graph = load_onnx(save(_gelu_erf(), tmp_path))
    x = RNG.standard_normal((3, 2, 6, 6))
    # (ONNX's reference evaluator computes Erf in float32: compared with the definition)
    np.testing.assert_allclose(ann.forward(graph, x), 0.5 * x * (1 + erf(x / np.sqrt(2.0))),
                               rtol=0, atol=1e-15)
    assert [(n.op, n.attrs["approximate"]) for n in graph.nodes] == [("gelu", "none")]
    # another constant is another function: not GELU, and Erf alone is refused
    with pytest.raises(ModelFormatError, match=r"node 'div' \(Div\): B: expected a power of "
                                               r"two"):
        load_onnx(save(_gelu_erf(1.5), tmp_path))


def test_dead_branches_dropped_and_random_refused(tmp_path):
    nodes = [helper.make_node("Relu", ["x"], ["y"], name="r"),
             helper.make_node("Sigmoid", ["x"], ["unused"], name="dead")]
    graph = load_onnx(save(model(nodes, {}), tmp_path))
    assert [n.op for n in graph.nodes] == ["relu"]
    nodes = [helper.make_node("RandomNormal", [], ["c"], name="rand", shape=[1]),
             helper.make_node("Mul", ["x", "c"], ["y"], name="m")]
    with pytest.raises(ModelFormatError, match=r"node 'rand' \(RandomNormal\): op_type: "
                                               r"expected a deterministic operator"):
        load_onnx(save(model(nodes, {}), tmp_path))


def test_convert_and_diagnose_read_onnx(tmp_path, capsys):
    from pathlib import Path
    data = Path(__file__).resolve().parent.parent / "data" / "digits.h5"
    nodes = [helper.make_node("Flatten", ["x"], ["f"], name="flat"),
             helper.make_node("Gemm", ["f", "w1", "b1"], ["h"], name="fc1", transB=1),
             helper.make_node("Relu", ["h"], ["a"], name="relu"),
             helper.make_node("Gemm", ["a", "w2", "b2"], ["y"], name="fc2", transB=1)]
    inits = dict(w1=RNG.standard_normal((16, 64)) * 0.2, b1=np.zeros(16),
                 w2=RNG.standard_normal((10, 16)) * 0.2, b2=np.zeros(10))
    path = save(model(nodes, inits, in_shape=("N", 1, 8, 8)), tmp_path)
    assert main(["convert", str(path), "--calibration", str(data), "--calibration-limit", "32",
                 "-o", str(tmp_path / "net.h5")]) == 0
    assert "1 neuron layers" in capsys.readouterr().out
    assert main(["diagnose", str(path), "--data", str(data), "--limit", "8", "--steps", "8",
                 "--json"]) == 0
    assert '"diagnostics"' in capsys.readouterr().out


def test_every_truncation_is_a_one_line_error(tmp_path):
    """A file cut anywhere either still reads (cut at a field boundary after what matters) or
    ends in a ModelFormatError of one line naming the file; never another exception."""
    data = save(_conv(pads=[1, 1, 1, 1]), tmp_path).read_bytes()
    cut = tmp_path / "cut.onnx"
    errors = 0
    for n in range(0, len(data), 3):
        cut.write_bytes(data[:n])
        try:
            load_onnx(cut)
        except ModelFormatError as e:
            assert str(e).startswith(f"{cut}: ") and "\n" not in str(e)
            errors += 1
    assert errors > len(data) // 6
