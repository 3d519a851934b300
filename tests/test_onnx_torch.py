"""ONNX files written by PyTorch's exporters, read by refsnn.interop.onnx.

Skipped without torch and onnx (CI installs both; onnxruntime too, when it installs). Each
network is exported to ONNX and read back; refsnn's NumPy forward pass is compared with the
float64 torch module and with onnxruntime, the graph with the one refsnn's own PyTorch exporter
(torch.fx) gives, and for the shipped models the graph and ``refsnn evaluate`` results with the
HDF5 file's.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
nn = torch.nn
F = torch.nn.functional

from refsnn import ann  # noqa: E402
from refsnn.cli.main import main  # noqa: E402
from refsnn.errors import ConversionError  # noqa: E402
from refsnn.export import from_torch  # noqa: E402
from refsnn.interop.onnx import load_onnx  # noqa: E402
from refsnn.model import load_refsnn_h5  # noqa: E402
from refsnn.model.graph import INPUT, Graph  # noqa: E402
from refsnn.model.ops import parse_perm, parse_shape  # noqa: E402
from test_export_torch import MODELS, _randomize_bn  # noqa: E402

DATA = Path(__file__).resolve().parent.parent / "data"


def export(module, x, path, opset=17, preserve=False, dynamo=False, dtype=None,
           dynamic_batch=False):
    """``torch.onnx.export`` of the module in eval mode (float64, or ``dtype``); ``preserve``
    keeps BatchNormalization nodes (the default EVAL mode folds them into the convolutions)."""
    dtype = dtype or torch.float64
    kw = {}
    if preserve:
        kw = dict(training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False)
    if dynamic_batch:  # a symbolic batch axis "batch" instead of the example's size
        kw.update(input_names=["x"], output_names=["y"],
                  dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.to(dtype).eval(), (x.to(dtype),), str(path), dynamo=dynamo,
                          opset_version=opset, **kw)
    return path


# --- networks written here (the others come from test_export_torch) ---------------------------

class MobileNetBlock(nn.Module):
    """MobileNetV2's inverted residual: 1x1 expand, depthwise 3x3, ReLU6, 1x1 project."""

    def __init__(self, c, e=2, stride=1):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c, c * e, 1, bias=False), nn.BatchNorm2d(c * e), nn.ReLU6(inplace=True),
            nn.Conv2d(c * e, c * e, 3, stride, 1, groups=c * e, bias=False),
            nn.BatchNorm2d(c * e), nn.ReLU6(inplace=True),
            nn.Conv2d(c * e, c, 1, bias=False), nn.BatchNorm2d(c))

    def forward(self, x):
        return x + self.body(x)


class MobileNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.BatchNorm2d(8), nn.ReLU6())
        self.block = MobileNetBlock(8)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(0.2)
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        x = self.pool(self.block(self.stem(x)))
        return self.fc(self.drop(torch.flatten(x, 1)))


class Affine(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.alpha = nn.Parameter(torch.rand(dim) + 0.5)
        self.beta = nn.Parameter(torch.randn(dim) * 0.1)

    def forward(self, x):
        return self.alpha * x + self.beta


class ResMLP(nn.Module):
    """ResMLP (Touvron et al. 2021): Affine instead of LayerNorm, a linear token mixer."""

    def __init__(self, tokens=4, dim=8):
        super().__init__()
        self.patch = nn.Conv2d(3, dim, 4, stride=4)
        self.aff1, self.aff2 = Affine(dim), Affine(dim)
        self.token = nn.Linear(tokens, tokens)
        self.fc1, self.fc2 = nn.Linear(dim, 2 * dim), nn.Linear(2 * dim, dim)
        self.scale = nn.Parameter(torch.rand(dim) * 0.5)
        self.head = nn.Linear(dim, 5)

    def forward(self, x):
        x = self.patch(x).flatten(2).transpose(1, 2)
        x = x + self.token(self.aff1(x).transpose(1, 2)).transpose(1, 2)
        x = x + self.scale * self.fc2(F.gelu(self.fc1(self.aff2(x))))
        return self.head(x.mean(dim=1))


NETWORKS = {**MODELS, "mobilenet": MobileNet, "resmlp": ResMLP}


def _make(name, seed=0):
    torch.manual_seed(seed)
    return _randomize_bn(NETWORKS[name]()).double().eval()


def _ort(path, x):
    ort = pytest.importorskip("onnxruntime")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


#: Largest difference seen per comparison, printed by the last test for the README.
MEASURED: dict[str, float] = {}


@pytest.mark.parametrize("opset", [13, 17, 20])
@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_onnx_matches_torch_and_onnxruntime(name, opset, tmp_path):
    module = _make(name)
    x = torch.randn(5, 3, 8, 8, dtype=torch.float64)
    path = export(module, x[:2], tmp_path / "m.onnx", opset)
    graph = load_onnx(path)
    got = ann.forward(graph, x.numpy())
    with torch.no_grad():
        expected = module(x).numpy()
    d_torch = float(np.max(np.abs(got - expected)))
    # float64 throughout: the same arithmetic up to summation order
    assert d_torch < 1e-10, d_torch
    MEASURED[f"torch {name} {opset}"] = d_torch
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return
    # onnxruntime's CPU kernels are float32 (it has no float64 Conv): the float32 export, read
    # by refsnn into float64, against onnxruntime in float32
    path32 = export(module, x[:2], tmp_path / "m32.onnx", opset, dtype=torch.float32,
                    dynamic_batch=True)
    got32 = ann.forward(load_onnx(path32), x.numpy())
    ort = _ort(path32, x.numpy().astype(np.float32))
    d_ort = float(np.max(np.abs(got32 - ort)))
    assert d_ort < 1e-4 * max(1.0, float(np.max(np.abs(ort)))), d_ort
    MEASURED[f"ort {name} {opset}"] = d_ort


def test_onnx_dynamo_exporter(tmp_path):
    """The torch.export-based exporter (needs onnxscript): same outputs."""
    pytest.importorskip("onnxscript")
    for name in ("resnet", "convnext", "mobilenet"):
        module = _make(name)
        x = torch.randn(3, 3, 8, 8, dtype=torch.float64)
        path = export(module, x[:2], tmp_path / f"{name}.onnx", 18, dynamo=True)
        with torch.no_grad():
            expected = module(x).numpy()
        got = ann.forward(load_onnx(path), x.numpy())
        d = float(np.max(np.abs(got - expected)))
        assert d < 1e-10, (name, d)
        MEASURED[f"dynamo {name}"] = d


# --- the same graph as refsnn's own PyTorch exporter ------------------------------------------

def same_graph(a: Graph, b: Graph) -> dict:
    """Assert ``a`` and ``b`` are the same network up to node names: from the outputs back,
    the same operators, attributes, parameters (bit for bit) and wiring. Returns the names of
    ``b``'s nodes by ``a``'s."""
    assert a.input_shape == b.input_shape
    seen = {}

    def walk(na, nb):
        if na in seen:
            assert seen[na] == nb, (na, nb)
            return
        seen[na] = nb
        if na == INPUT or nb == INPUT:
            assert na == nb == INPUT, (na, nb)
            return
        x, y = a.node(na), b.node(nb)
        assert x.op == y.op, (na, nb, x.op, y.op)
        assert dict(x.attrs) == dict(y.attrs), (na, nb, dict(x.attrs), dict(y.attrs))
        assert set(x.params) == set(y.params), (na, nb)
        for k in x.params:
            np.testing.assert_array_equal(x.params[k], y.params[k], err_msg=f"{na}/{k}")
        assert len(x.inputs) == len(y.inputs), (na, nb)
        for ia, ib in zip(x.inputs, y.inputs):
            walk(ia, ib)

    walk(a.output, b.output)
    assert len(a.nodes) == len(b.nodes)
    return dict(seen)


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_onnx_graph_equals_torch_exporter(name, tmp_path):
    """With BatchNormalization kept (TrainingMode.PRESERVE on the eval module), the ONNX path
    gives the graph torch.fx gives, parameter for parameter."""
    module = _make(name)
    x = torch.zeros(2, 3, 8, 8, dtype=torch.float64)
    if name == "resmlp":
        # torch.fx refuses the Affine's "+ beta" (a parameter, not a tensor computed from the
        # input); the ONNX route reads it as refsnn's affine
        with pytest.raises(ConversionError, match="adds the constant aff1_beta"):
            from_torch(module, x, tmp_path / "fx.h5")
        graph = load_onnx(export(module, x, tmp_path / "m.onnx", 17, preserve=True))
        assert [n.op for n in graph.nodes].count("affine") == 2
        return
    fx_graph = from_torch(module, x, tmp_path / "fx.h5")
    for opset in (13, 17):
        onnx_graph = load_onnx(export(module, x, tmp_path / "m.onnx", opset, preserve=True))
        same_graph(onnx_graph, fx_graph)


def test_onnx_and_torch_exporter_same_spikes(tmp_path):
    """Converting either file gives the same spike trains (``refsnn trace`` + ``compare``)."""
    module = _make("resnet")
    x = torch.zeros(2, 3, 8, 8, dtype=torch.float64)
    from_torch(module, x, tmp_path / "fx.h5")
    export(module, x, tmp_path / "m.onnx", 17, preserve=True)
    names = same_graph(load_onnx(tmp_path / "m.onnx"), load_refsnn_h5(tmp_path / "fx.h5"))
    rng = np.random.default_rng(0)
    data = tmp_path / "d.h5"
    _write_data(data, rng.random((16, 3, 8, 8)), rng.integers(0, 5, 16))
    for src, out in (("m.onnx", "a.h5"), ("fx.h5", "b.h5")):
        assert main(["trace", str(tmp_path / src), "--data", str(data), "--split", "test",
                     "--steps", "16", "-o", str(tmp_path / out)]) == 0
    import h5py
    with h5py.File(tmp_path / "a.h5", "r") as a, h5py.File(tmp_path / "b.h5", "r") as b:
        assert len(a["layers"]) == len(b["layers"]) == 7
        for layer in a["layers"]:
            sa, sb = a[f"layers/{layer}/spikes"][()], b[f"layers/{names[layer]}/spikes"][()]
            assert sa.any()
            np.testing.assert_array_equal(sa, sb)


def _write_data(path, x, y):
    import h5py
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "refsnn-data"
        f.attrs["format_version"] = 1
        f.attrs["classes"] = int(y.max()) + 1
        for split in ("train", "test"):
            f[f"{split}/x"] = x
            f[f"{split}/y"] = y.astype(np.int64)


# --- shipped models: refsnn graph -> torch module -> ONNX -> refsnn graph -----------------------

class GraphModule(nn.Module):
    """A refsnn graph run by torch operations, written out op by op, so that tracing it gives the
    ONNX graph a user's PyTorch model of that architecture would."""

    def __init__(self, graph: Graph):
        super().__init__()
        self.graph = graph
        self.p = nn.ParameterDict({
            f"{n.name}__{k}": nn.Parameter(torch.from_numpy(np.array(v)), requires_grad=False)
            for n in graph.nodes for k, v in n.params.items()})

    def forward(self, x):
        values = {INPUT: x}
        for n in self.graph.nodes:
            p = {k: self.p[f"{n.name}__{k}"] for k in n.params}
            values[n.name] = OPS_TORCH[n.op](n, p, *(values[i] for i in n.inputs))
        return values[self.graph.output]


def _t_layernorm(n, p, x):
    if n.attrs["axis"] == "last":
        return F.layer_norm(x, (x.shape[-1],), p["weight"], p["bias"], n.attrs["eps"])
    shape = (-1,) + (1,) * (x.dim() - 2)
    mean = x.mean(dim=1, keepdim=True)
    d = x - mean
    var = (d ** 2).mean(dim=1, keepdim=True)
    return d / torch.sqrt(var + n.attrs["eps"]) * p["weight"].view(shape) + \
        p["bias"].view(shape)


def _t_along(n, v, x):
    return v if n.attrs["axis"] == "last" else v.view((-1,) + (1,) * (x.dim() - 2))


def _t_mean(n, p, x):
    r = x.dim() - 1
    axes = {"last": [r], "channel": [1], "spatial": list(range(2, r + 1))}[n.attrs["axis"]]
    return x.mean(dim=axes, keepdim=bool(n.attrs["keepdims"]))


def _t_qcfs(n, p, x):
    lam, levels = p["clip"], n.attrs["levels"]
    return lam * torch.floor(torch.clamp(x / lam, 0.0, 1.0) * levels + 0.5) / levels


OPS_TORCH = {
    "linear": lambda n, p, x: F.linear(x, p["weight"], p["bias"]),
    "conv2d": lambda n, p, x: F.conv2d(x, p["weight"], p["bias"], n.attrs["stride"],
                                       n.attrs["padding"], 1, n.attrs["groups"]),
    "batchnorm": lambda n, p, x: F.batch_norm(x, p["mean"], p["var"], p["gamma"], p["beta"],
                                              False, 0.0, n.attrs["eps"]),
    "relu": lambda n, p, x: F.relu(x),
    "avgpool2d": lambda n, p, x: F.avg_pool2d(x, n.attrs["kernel"], n.attrs["stride"],
                                              n.attrs["padding"]),
    "maxpool2d": lambda n, p, x: F.max_pool2d(x, n.attrs["kernel"], n.attrs["stride"],
                                              n.attrs["padding"]),
    "flatten": lambda n, p, x: torch.flatten(x, 1),
    "add": lambda n, p, *xs: sum(xs[1:], xs[0]),
    "gelu": lambda n, p, x: F.gelu(x, approximate=n.attrs["approximate"]),
    "silu": lambda n, p, x: F.silu(x),
    "layernorm": _t_layernorm,
    "scale": lambda n, p, x: x * _t_along(n, p["weight"], x),
    "affine": lambda n, p, x: x * _t_along(n, p["weight"], x) + _t_along(n, p["bias"], x),
    "mean": _t_mean,
    "reshape": lambda n, p, x: x.reshape((x.shape[0],) + parse_shape(n.attrs["shape"])),
    "transpose": lambda n, p, x: x.permute(
        0, *(i + 1 for i in parse_perm(n.attrs["perm"], x.dim() - 1))),
    "qcfs": _t_qcfs,
}

SHIPPED = sorted(p.stem for p in (DATA / "models").glob("*.h5"))


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_round_trip(name, tmp_path):
    """Every shipped model, written as a PyTorch module and exported to ONNX, reads back as
    the very graph in its HDF5 file; the outputs agree with torch and onnxruntime."""
    graph = load_refsnn_h5(DATA / "models" / f"{name}.h5")
    module = GraphModule(graph)
    x = torch.from_numpy(np.random.default_rng(0).random((6,) + graph.input_shape))
    with torch.no_grad():
        assert np.max(np.abs(module(x).numpy() - ann.forward(graph, x.numpy()))) < 1e-10
    for opset in (13, 20):
        path = export(module, x[:2], tmp_path / f"{name}.onnx", opset, preserve=True)
        same_graph(load_onnx(path), graph)


# converted with --method noise: the models with QCFS activations
QCFS = {name for name in SHIPPED
        if any(n.op == "qcfs" for n in load_refsnn_h5(DATA / "models" / f"{name}.h5").nodes)}
NON_RELU = {"cnn_silu", "convnext", "mixer", "resmlp", "mnist_convnext"}  # converted with signGD


def _data_of(name: str) -> list[str]:
    """The data a shipped model reads: digits, or MNIST / Fashion-MNIST (28x28) for the
    mnist_ / fashion_ models, whose thresholds then come from the first 64 training images
    (all of them would take minutes)."""
    prefix = name.split("_")[0]
    if prefix not in ("mnist", "fashion"):
        return ["--data", str(DATA / "digits.h5")]
    limit = [] if name in QCFS else ["--calibration-limit", "64"]
    return ["--data", str(DATA / f"{prefix}.h5"), *limit]


@pytest.mark.parametrize("name", SHIPPED)
def test_evaluate_onnx_reproduces_h5(name, tmp_path, capsys):
    """``refsnn evaluate model.onnx`` prints what ``refsnn evaluate model.h5`` prints."""
    h5 = DATA / "models" / f"{name}.h5"
    graph = load_refsnn_h5(h5)
    path = export(GraphModule(graph), torch.zeros((2,) + graph.input_shape), tmp_path /
                  f"{name}.onnx", 17, preserve=True)
    method = ["--method", "noise"] if name in QCFS else \
        ["--method", "signgd"] if name in NON_RELU else []
    results = []
    for model in (h5, path):
        assert main(["evaluate", str(model), *_data_of(name), "--limit", "16",
                     "--steps", "8,16", "--json"] + method) == 0
        out = json.loads(capsys.readouterr().out)
        out.pop("model")
        results.append(out)
    # the same numbers; the layers' names are the ONNX nodes' in the second
    names = same_graph(load_onnx(path), graph)
    results[1]["sin"] = {names[k]: v for k, v in (results[1]["sin"] or {}).items()} \
        if results[1]["sin"] is not None else None
    results[1]["saturated"] = {names[k.split(".")[0]] + k[len(k.split(".")[0]):]: v
                               for k, v in results[1]["saturated"].items()}
    for k, v in results[1]["options"].items():  # per-layer options, e.g. QCFS levels
        if isinstance(v, str) and v.startswith("{"):
            results[1]["options"][k] = json.dumps({names[n]: x for n, x in json.loads(v).items()})
    assert results[0] == results[1]


def test_three_commands_from_pytorch_to_snn_accuracy(tmp_path, capsys):
    """The README's example: a PyTorch module exported to ONNX, imported, evaluated as SNN."""
    graph = load_refsnn_h5(DATA / "models" / "cnn.h5")
    onnx_path = tmp_path / "cnn.onnx"
    # 1. (in Python) torch.onnx.export(module, example, "cnn.onnx", dynamo=False)
    export(GraphModule(graph), torch.zeros((1,) + graph.input_shape), onnx_path, 17)
    # 2. refsnn import-onnx cnn.onnx -o cnn.h5
    assert main(["import-onnx", str(onnx_path), "-o", str(tmp_path / "cnn.h5")]) == 0
    assert f"wrote {tmp_path / 'cnn.h5'}" in capsys.readouterr().out
    # 3. refsnn evaluate cnn.h5 --data data/digits.h5 (or cnn.onnx directly)
    assert main(["evaluate", str(tmp_path / "cnn.h5"), "--data", str(DATA / "digits.h5"),
                 "--limit", "64", "--steps", "32", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ann_accuracy"] > 0.9 and out["results"][0]["accuracy"] > 0.8
    # the default (EVAL) export folds BatchNorm into the convolutions: same function
    x = np.random.default_rng(1).random((8,) + graph.input_shape)
    d = np.max(np.abs(ann.forward(load_refsnn_h5(tmp_path / "cnn.h5"), x) - ann.forward(graph, x)))
    assert d < 1e-12
