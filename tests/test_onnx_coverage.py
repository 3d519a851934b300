"""The ONNX reader's structural operators and the model-coverage families (issue 19).

Skipped without torch and onnx (and the onnxruntime comparisons without onnxruntime). Each
mapping is a small PyTorch module exported with ``torch.onnx.export(dynamo=False)``: refsnn's
float64 forward pass must equal torch's float64 one (to 1e-12), onnxruntime's on a float32
export (float32 rounding), and the graph must be the one refsnn's own PyTorch exporter writes.
Each refusal has its own test, matched on the ONNX node and the setting. Every family of
``benchmarks/families.py`` is read from ONNX and compared with torch the same ways.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
nn = torch.nn
F = torch.nn.functional

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from refsnn import ann  # noqa: E402
from refsnn.errors import ConversionError, ModelFormatError  # noqa: E402
from refsnn.export.torch import to_graph  # noqa: E402
from refsnn.interop.onnx import load_onnx  # noqa: E402
from test_onnx_torch import export, same_graph  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import families  # noqa: E402


class Fn(nn.Module):
    """A module whose forward is ``f(x)`` (torch.fx and ONNX both trace it)."""

    def __init__(self, f):
        super().__init__()
        self.f = f

    def forward(self, x):
        return self.f(x)


class SE(nn.Module):
    """Squeeze-and-excitation: ``x * sigmoid(conv(avgpool(x)))``, a (C, 1, 1) gate."""

    def __init__(self, c=4):
        super().__init__()
        self.pool, self.fc = nn.AdaptiveAvgPool2d(1), nn.Conv2d(c, c, 1)

    def forward(self, x):
        return x * torch.sigmoid(self.fc(self.pool(x)))


class GateFirst(SE):
    def forward(self, x):
        return torch.sigmoid(self.fc(self.pool(x))) * x


def _swap(pieces):
    a, b = pieces
    return torch.cat((b, a), 1)


#: name -> (module factory, refsnn ops the ONNX file must give, in order of appearance).
MAPPINGS = {
    "chunk": (lambda: Fn(lambda x: _swap(x.chunk(2, 1))),
              ["slice", "slice", "concat"]),
    "split_sizes": (lambda: Fn(lambda x: _swap(torch.split(x, [1, 3], 1))),
                    ["slice", "slice", "concat"]),
    "slice_two_axes": (lambda: Fn(lambda x: x[:, :, 1:-1, 2:]), ["slice", "slice"]),
    "slice_channels": (lambda: Fn(lambda x: x[:, 1:3]), ["slice"]),
    "expand": (lambda: Fn(lambda x: x[:, :, :1, :].expand(-1, -1, 6, -1)),
               ["slice", "expand"]),
    "pad": (lambda: Fn(lambda x: F.pad(x, (1, 2, 0, 1))), ["pad"]),
    "zero_pad": (lambda: nn.ZeroPad2d((1, 0, 2, 1)), ["pad"]),
    "upsample2": (lambda: nn.Upsample(scale_factor=2), ["upsample"]),
    "upsample2x3": (lambda: nn.Upsample(scale_factor=(2, 3)), ["upsample"]),
    "interpolate_size": (lambda: Fn(lambda x: F.interpolate(x, size=(12, 18))), ["upsample"]),
    "se_gate": (SE, ["avgpool2d", "conv2d", "sigmoid", "expand", "multiply"]),
    "se_gate_first": (GateFirst, ["avgpool2d", "conv2d", "sigmoid", "expand", "multiply"]),
    "matmul": (lambda: Fn(lambda x: x @ x.transpose(-1, -2)),
               ["transpose", "reshape", "expand", "transpose", "reshape", "expand", "multiply",
                "linear", "reshape"]),
    "maxpool_ceil": (lambda: nn.MaxPool2d(3, 2, ceil_mode=True), ["maxpool2d"]),
    "maxpool_ceil_pad": (lambda: nn.MaxPool2d(2, 2, 1, ceil_mode=True), ["maxpool2d"]),
    "cat_one": (lambda: Fn(lambda x: torch.relu(torch.cat([x], 1))), ["relu"]),
    # an even kernel with padding='same': ONNX's SAME_UPPER, the extra row/column at the end
    "conv_same_even": (lambda: nn.Sequential(nn.Conv2d(4, 3, (2, 4), padding="same")),
                       ["pad", "conv2d"]),
}

X = torch.randn(3, 4, 6, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def _module(name):
    torch.manual_seed(0)
    return MAPPINGS[name][0]().double().eval()


def _ort(path, x):
    ort = pytest.importorskip("onnxruntime")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


@pytest.mark.parametrize("opset", [9, 10, 11, 13, 17])
@pytest.mark.parametrize("name", sorted(MAPPINGS))
def test_mapping_matches_torch(name, opset, tmp_path):
    """Opset 9 has ``Upsample``, ``Slice``/``Pad`` with attributes and no ``ceil_mode``."""
    module = _module(name)
    if opset == 10 and MAPPINGS[name][1] == ["upsample"]:
        pytest.skip("torch.onnx.export itself fails on nearest interpolation at opset 10")
    if opset == 9 and name.startswith("maxpool_ceil"):
        # MaxPool-8 has no ceil_mode: torch pads the end instead, which refsnn refuses
        with pytest.raises(ModelFormatError, match=r"\(MaxPool\): pads: expected equal padding"):
            load_onnx(export(module, X, tmp_path / "m.onnx", opset))
        return
    graph = load_onnx(export(module, X, tmp_path / "m.onnx", opset))
    assert [n.op for n in graph.nodes] == MAPPINGS[name][1]
    with torch.no_grad():
        expected = module(X).numpy()
    np.testing.assert_allclose(ann.forward(graph, X.numpy()), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", sorted(MAPPINGS))
def test_mapping_matches_onnxruntime(name, tmp_path):
    """onnxruntime has no float64 convolution on the CPU: a float32 export, float32 input."""
    path = export(_module(name), X, tmp_path / "m.onnx", 17, dtype=torch.float32)
    x = X.numpy().astype(np.float32)
    got = ann.forward(load_onnx(path), x.astype(np.float64))
    np.testing.assert_allclose(got, _ort(path, x), rtol=1e-6, atol=1e-6)


#: Mappings the PyTorch route refuses (torch.fx sees the tensor method or the index itself).
TORCH_REFUSES = {"expand": r"tensor method \.expand\(\)",
                 "slice_two_axes": r"refsnn slices one per-sample axis"}


@pytest.mark.parametrize("name", sorted(MAPPINGS))
def test_mapping_is_the_torch_exporters_graph(name, tmp_path):
    module = _module(name)
    if name in TORCH_REFUSES:
        with pytest.raises(ConversionError, match=TORCH_REFUSES[name]):
            to_graph(module, X)
        return
    same_graph(load_onnx(export(module, X, tmp_path / "m.onnx", 17)), to_graph(module, X))


# --- refusals -------------------------------------------------------------------------------------

def _refused(module, message, tmp_path, opset=17):
    path = export(module.double().eval(), X, tmp_path / "m.onnx", opset)
    with pytest.raises(ModelFormatError, match=message) as e:
        load_onnx(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("f, message", [
    (lambda x: x[:, ::2], r"\(Slice\): steps: expected 1 on every axis .*found \[2\]"),
    (lambda x: x[1:], r"\(Slice\): axes: expected per-sample axes \(the batch axis taken "
                      r"whole\), found axis 0 sliced from 1"),
    (lambda x: F.pad(x, (1, 1, 1, 1), mode="reflect"),
     r"\(Pad\): mode: expected 'constant' \(refsnn pads with zeros\), found 'reflect'"),
    (lambda x: F.pad(x, (1, 1), value=1.0),
     r"\(Pad\): constant_value: expected 0 \(refsnn pads with zeros\), found 1.0"),
    (lambda x: F.pad(x, (-1, -1)),
     r"\(Pad\): pads: expected amounts >= 0 \(negative pads crop"),
    (lambda x: F.pad(x, (0, 0, 0, 0, 1, 1)),
     r"\(Pad\): pads: expected padding of the last two axes \(H, W\).*over axes "
     r"\[0, 1, 2, 3\] of a tensor of rank 4"),
    (nn.Upsample(scale_factor=2, mode="bilinear"),
     r"\(Resize\): mode: expected 'nearest' \(refsnn's upsample repeats pixels\), found "
     r"'linear'"),
    (nn.Upsample(scale_factor=1.5),
     r"\(Resize\): scales/sizes: expected integer factors >= 1 of H and W.*found \(6, 6\) to "
     r"\(9, 9\)"),
    (lambda x: x + x[:, :1],
     r"\(Add\): inputs: expected tensors of equal shapes \(refsnn adds tensors without "
     r"broadcasting\), found per-sample shapes \(4, 6, 6\) and \(1, 6, 6\)"),
    (lambda x: x @ x[:, :1],
     r"\(MatMul\): inputs: expected per-sample shapes \(\.\.\., T, D\) and \(\.\.\., D, S\).*"
     r"found \(4, 6, 6\) and \(1, 6, 6\)"),
])
def test_torch_exported_refusals(f, message, tmp_path):
    _refused(f if isinstance(f, nn.Module) else Fn(f), r"node '[^']*' " + message, tmp_path)


def _hand(node, inits, in_shape=(2, 4, 6, 6), opset=17):
    """A one-node model; an input ``m`` is the mean of ``x`` over the channels (keepdims 0)."""
    pre = [helper.make_node("ReduceMean", ["x"], ["m"], axes=[1], keepdims=0)] \
        if "m" in node.input else []
    graph = helper.make_graph(
        pre + [node], "g", [helper.make_tensor_value_info("x", TensorProto.DOUBLE, list(in_shape))],
        [helper.make_tensor_value_info(o, TensorProto.DOUBLE, None) for o in node.output[:1]],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _i64(*v):
    return np.array(v, dtype=np.int64)


@pytest.mark.parametrize("node, inits, message", [
    (helper.make_node("Slice", ["x", "s", "e", "a"], ["y"], name="sl"),
     dict(s=_i64(4), e=_i64(2), a=_i64(2)),
     r"node 'sl' \(Slice\): starts/ends: expected a non-empty range of axis 2 \(size 6\), "
     r"found start 4, end 2"),
    (helper.make_node("Split", ["x"], ["y", "z"], name="sp", axis=0),
     {}, r"node 'sp' \(Split\): axis: expected a per-sample axis"),
    (helper.make_node("Split", ["x", "s"], ["y", "z"], name="sp", axis=1),
     dict(s=_i64(1, 2)), r"node 'sp' \(Split\): split: expected 2 sizes >= 0 adding up to 4 "
                         r"\(axis 1\), found \[1, 2\]"),
    (helper.make_node("Expand", ["x", "s"], ["y"], name="ex"),
     dict(s=_i64(1, 2, 4, 6, 6)), r"node 'ex' \(Expand\): shape: expected at most 4 axes"),
    (helper.make_node("Expand", ["x", "s"], ["y"], name="ex"),
     dict(s=_i64(4, 1, 1, 1)), r"node 'ex' \(Expand\): shape: expected the batch axis left as "
                               r"it is"),
    (helper.make_node("Expand", ["x", "s"], ["y"], name="ex"),
     dict(s=_i64(1, 8, 6, 6)), r"node 'ex' \(Expand\): shape: expected a shape that per-sample "
                               r"shape \(4, 6, 6\) broadcasts to, found \[1, 8, 6, 6\]"),
    (helper.make_node("Resize", ["x", "", "s"], ["y"], name="rs", mode="nearest",
                      coordinate_transformation_mode="asymmetric", nearest_mode="ceil"),
     dict(s=np.array([1, 1, 2, 2], dtype=np.float32)),
     r"node 'rs' \(Resize\): coordinate_transformation_mode/nearest_mode: expected pixels "
     r"repeated 2x2 .*found 'asymmetric'/'ceil', which picks other pixels"),
    (helper.make_node("Resize", ["x", "", "s"], ["y"], name="rs", mode="nearest"),
     dict(s=np.array([1, 2, 1, 1], dtype=np.float32)),
     r"node 'rs' \(Resize\): scales/sizes: expected 1 on the batch and channel axes"),
    (helper.make_node("Resize", ["x", "", "", "s"], ["y"], name="rs", mode="nearest",
                      keep_aspect_ratio_policy="not_larger"),
     dict(s=_i64(2, 4, 12, 12)), r"node 'rs' \(Resize\): keep_aspect_ratio_policy: expected "
                                 r"'stretch'"),
    (helper.make_node("Mul", ["x", "m"], ["y"], name="mul"), {},
     r"node 'mul' \(Mul\): inputs: expected tensors whose per-sample shapes broadcast axis by "
     r"axis \(equal rank, each axis equal or 1\), found per-sample shapes \(4, 6, 6\) and "
     r"\(6, 6\)"),
    (helper.make_node("MatMul", ["x", "x"], ["y"], name="mm"), {},
     r"node 'mm' \(MatMul\): inputs: expected per-sample shapes \(\.\.\., T, D\) and "
     r"\(\.\.\., D, S\)"),
])
def test_hand_built_refusals(node, inits, message, tmp_path):
    in_shape = (2, 4, 6, 5) if node.op_type == "MatMul" else (2, 4, 6, 6)
    path = tmp_path / "m.onnx"
    onnx.save(_hand(node, inits, in_shape, opset=18 if "policy" in message else 17), str(path))
    with pytest.raises(ModelFormatError, match=message) as e:
        load_onnx(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_resize_modes_that_repeat_pixels_are_read(tmp_path):
    """Nearest resizes whose coordinate modes pick in[y // s] for an integer scale read as
    ``upsample`` (checked on the reference evaluator's output), e.g. ONNX's defaults."""
    from onnx.reference import ReferenceEvaluator
    x = np.random.default_rng(0).standard_normal((2, 4, 6, 6))
    for attrs in (dict(), dict(coordinate_transformation_mode="pytorch_half_pixel"),
                  dict(coordinate_transformation_mode="asymmetric", nearest_mode="floor")):
        m = _hand(helper.make_node("Resize", ["x", "", "s"], ["y"], name="rs", mode="nearest",
                                   **attrs), dict(s=np.array([1, 1, 3, 2], dtype=np.float32)))
        path = tmp_path / "m.onnx"
        onnx.save(m, str(path))
        graph = load_onnx(path)
        assert [(n.op, n.attrs["scale"]) for n in graph.nodes] == [("upsample", (3, 2))]
        np.testing.assert_array_equal(ann.forward(graph, x),
                                      ReferenceEvaluator(m).run(None, {"x": x})[0])


# --- the families of benchmarks/families.py ----------------------------------------------------

FX = torch.randn(2, *families.INPUT_SHAPE, generator=torch.Generator().manual_seed(0),
                 dtype=torch.float64)


@pytest.mark.parametrize("name", sorted(families.FAMILIES))
def test_family_reads_from_onnx(name, tmp_path):
    """Each family, exported as users do (EVAL mode: torch folds BatchNorm), reads back and
    matches torch's float64 forward pass; with BatchNorm kept it is the torch exporter's graph
    (ViT: an equal network, ONNX merges the two transposes around ``k`` into one)."""
    module = families.make(name).double()
    graph = load_onnx(export(module, FX, tmp_path / "m.onnx", 17))
    with torch.no_grad():
        expected = module(FX).numpy()
    np.testing.assert_allclose(ann.forward(graph, FX.numpy()), expected, rtol=0, atol=1e-12)
    kept = load_onnx(export(module, FX, tmp_path / "bn.onnx", 17, preserve=True))
    if name != "vit_tiny":
        same_graph(kept, to_graph(module, FX))
    np.testing.assert_allclose(ann.forward(kept, FX.numpy()), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", sorted(families.FAMILIES))
def test_family_matches_onnxruntime(name, tmp_path):
    path = export(families.make(name), FX, tmp_path / "m.onnx", 17, dtype=torch.float32)
    x = FX.numpy().astype(np.float32)
    got = ann.forward(load_onnx(path), x.astype(np.float64))
    np.testing.assert_allclose(got, _ort(path, x), rtol=1e-5, atol=1e-5)
