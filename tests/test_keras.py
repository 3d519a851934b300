"""Keras models read with h5py alone: refsnn's ANN equals Keras' predictions.

Skipped without the ``keras`` package (CI installs keras 3.6 and uses it on the PyTorch
backend). The reader never imports Keras; the tests use it only to make and run real files.
A wrong layout (kernels not transposed to (out, in, kh, kw), the depthwise channel order, a
Flatten in CHW instead of Keras' HWC order, BN's epsilon or moving statistics) moves the
outputs far beyond the 1e-5 allowed.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")
layers = keras.layers

from refsnn import ann  # noqa: E402
from refsnn.cli.main import main  # noqa: E402
from refsnn.errors import ModelFormatError  # noqa: E402
from refsnn.files import file_kind, load_model  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIGITS = os.path.join(ROOT, "data", "digits.h5")


def _randomize_bn(model, seed=0):
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            c = layer.get_weights()[0].shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, c), rng.normal(0, 0.1, c),
                               rng.normal(0, 0.2, c), rng.uniform(0.5, 1.5, c)])
    return model


def residual_cnn():
    """Functional: conv+relu, BN, depthwise (x2 channels), residual add, pools, activations."""
    inp = keras.Input((8, 8, 3))
    x = layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")(inp)
    x = layers.BatchNormalization(name="bn", epsilon=1e-3)(x)
    y = layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2, name="dw")(x)
    y = layers.Conv2D(4, 1, name="pw")(y)
    y = layers.LeakyReLU(negative_slope=0.2, name="leaky")(y)
    x = layers.Add(name="add")([x, y])
    x = layers.ReLU(max_value=6.0, name="relu6")(x)
    x = layers.MaxPooling2D(name="maxpool")(x)
    x = layers.Conv2D(8, 3, strides=1, padding="valid", name="conv2")(x)
    x = layers.Activation("gelu", name="gelu")(x)
    x = layers.AveragePooling2D(pool_size=2, name="avgpool")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dense(6, activation="silu", name="fc1")(x)
    x = layers.Dropout(0.5, name="drop")(x)
    out = layers.Dense(5, activation="softmax", name="fc2")(x)
    return keras.Model(inp, out)


def flatten_cnn():
    """Sequential: conv, BN, Flatten of an image (HWC order), LayerNorm on a vector, tanh."""
    return keras.Sequential([
        keras.Input((6, 6, 2)),
        layers.Conv2D(3, 3, activation="sigmoid"),
        layers.BatchNormalization(),
        layers.Flatten(),
        layers.LayerNormalization(epsilon=1e-5),
        layers.Dense(7, activation="tanh"),
        layers.ReLU(),
        layers.Dense(3),
    ])


def sequence_mlp():
    """A (tokens, dim) input: LayerNorm and Dense over the last axis, residual, relu."""
    inp = keras.Input((4, 6))
    x = layers.LayerNormalization(name="ln")(inp)
    y = layers.Dense(6, activation="relu", name="fc")(x)
    x = layers.Add(name="res")([x, y])
    x = layers.Flatten(name="flat")(x)
    return keras.Model(inp, layers.Dense(2, name="head")(x))


MODELS = {"residual_cnn": residual_cnn, "flatten_cnn": flatten_cnn,
          "sequence_mlp": sequence_mlp}


def _to_refsnn(x):
    return x.transpose(0, 3, 1, 2) if x.ndim == 4 else x  # NHWC -> NCHW


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("suffix", [".h5", ".keras"])
def test_keras_file_matches_keras(name, suffix, tmp_path):
    keras.utils.set_random_seed(0)
    model = _randomize_bn(MODELS[name]())
    path = tmp_path / f"m{suffix}"
    model.save(path)
    x = np.random.default_rng(1).normal(0, 1, (6,) + model.input_shape[1:]).astype(np.float32)
    expected = np.asarray(model.predict(x, verbose=0), dtype=np.float64)
    graph = load_model(path)
    assert file_kind(path) == {".h5": "keras-h5", ".keras": "keras-archive"}[suffix]
    got = ann.forward(graph, _to_refsnn(x).astype(np.float64))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)


def test_keras_h5_and_archive_give_the_same_graph(tmp_path):
    keras.utils.set_random_seed(3)
    model = _randomize_bn(residual_cnn())
    model.save(tmp_path / "m.h5")
    model.save(tmp_path / "m.keras")
    a, b = load_model(tmp_path / "m.h5"), load_model(tmp_path / "m.keras")
    assert [n.name for n in a.nodes] == [n.name for n in b.nodes]
    for na, nb in zip(a.nodes, b.nodes):
        assert (na.op, na.attrs, na.inputs) == (nb.op, nb.attrs, nb.inputs)
        for k in na.params:
            np.testing.assert_array_equal(na.params[k], nb.params[k])
    assert a.input_shape == (3, 8, 8)  # channels-first, as every refsnn model


@pytest.mark.parametrize("build, message", [
    (lambda: keras.Sequential([keras.Input((4, 4, 2)), layers.UpSampling2D(name="up")]),
     r"/layers/up: class_name: .* found UpSampling2D \(layer 'up'\)"),
    (lambda: keras.Sequential([keras.Input((8, 8, 2)),
                               layers.Conv2D(2, 3, dilation_rate=2, name="c")]),
     r"/layers/c: config: .*layer 'c', class Conv2D.*dilation_rate"),
    (lambda: keras.Sequential([keras.Input((4, 4, 2)),
                               layers.Conv2D(3, 1, 2, padding="same", name="s")]),
     r"layer 's', class Conv2D.*padding 'same' with kernel 1 and stride 2 on size 4"),
])
def test_keras_refuses_by_layer_and_class(build, message, tmp_path):
    build().save(tmp_path / "m.keras")
    with pytest.raises(ModelFormatError, match=message):
        load_model(tmp_path / "m.keras")


def _digits_models(tmp_path):
    """The same CNN on the digits (1, 8, 8) as a Keras .h5, a .keras and a PyTorch export."""
    torch = pytest.importorskip("torch")
    from refsnn.export import from_torch

    keras.utils.set_random_seed(5)
    model = keras.Sequential([keras.Input((8, 8, 1)),
                              layers.Conv2D(4, 3, padding="same", activation="relu"),
                              layers.AveragePooling2D(2), layers.Flatten(), layers.Dense(10)])
    model.save(tmp_path / "k.h5")
    model.save(tmp_path / "k.keras")
    kc, bc, kd, bd = [np.asarray(w, np.float64) for w in model.get_weights()]

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 4, 3, padding=1)
            self.pool = torch.nn.AvgPool2d(2)
            self.fc = torch.nn.Linear(64, 10)

        def forward(self, x):
            x = self.pool(torch.relu(self.conv(x)))
            return self.fc(torch.flatten(x.permute(0, 2, 3, 1), 1))  # Keras' HWC flatten

    net = Net()
    with torch.no_grad():
        net.conv.weight.copy_(torch.from_numpy(kc.transpose(3, 2, 0, 1)))
        net.conv.bias.copy_(torch.from_numpy(bc))
        net.fc.weight.copy_(torch.from_numpy(kd.T))
        net.fc.bias.copy_(torch.from_numpy(bd))
    from_torch(net, torch.zeros(1, 1, 8, 8), tmp_path / "t.h5")
    return [tmp_path / "k.h5", tmp_path / "k.keras", tmp_path / "t.h5"]


def test_keras_torch_and_refsnn_agree_through_the_cli(tmp_path, capsys):
    """Done-when of issue 8: the three files evaluate alike and give the same ANN outputs."""
    import json

    from refsnn.data import load_data

    paths = _digits_models(tmp_path)
    x, _ = load_data(DIGITS, "test", (1, 8, 8), 40)
    outs = [ann.forward(load_model(p), x) for p in paths]
    np.testing.assert_allclose(outs[1], outs[0], atol=1e-12)
    np.testing.assert_allclose(outs[2], outs[0], rtol=0, atol=1e-5)
    results = []
    for p in paths:
        assert main(["inspect", str(p)]) == 0
        assert "input (1, 8, 8)" in capsys.readouterr().out
        assert main(["evaluate", str(p), "--data", DIGITS, "--limit", "40", "--steps", "16",
                     "--percentile", "100", "--json"]) == 0
        r = json.loads(capsys.readouterr().out)
        results.append((r["ann_accuracy"], r["results"][0]["accuracy"]))
    assert results[0] == results[1] == results[2]
    out = tmp_path / "net.h5"
    assert main(["convert", str(paths[1]), "--calibration", DIGITS, "-o", str(out)]) == 0
    assert out.exists()


def _as_keras2(config):
    """The Keras 2 (tf.keras) spelling of a Keras 3 functional config: inbound nodes as
    ``[[layer, node, tensor, kwargs]]`` and ``batch_input_shape``."""
    for layer in config["config"]["layers"]:
        layer["inbound_nodes"] = [[[t["config"]["keras_history"][0], 0, 0, {}]
                                   for t in _tensors(call["args"])]
                                  for call in layer["inbound_nodes"]]
        cfg = layer["config"]
        if "batch_shape" in cfg:
            cfg["batch_input_shape"] = cfg.pop("batch_shape")
        if layer["class_name"] == "LeakyReLU":
            cfg["alpha"] = cfg.pop("negative_slope")
    return config


def _tensors(arg):
    if isinstance(arg, dict):
        return [arg]
    return [t for a in arg for t in _tensors(a)]


def test_keras2_spelling_of_a_legacy_h5(tmp_path):
    """tf.keras' legacy files spell call records and input shapes differently; same graph."""
    import h5py
    import json

    keras.utils.set_random_seed(4)
    model = _randomize_bn(residual_cnn())
    model.save(tmp_path / "m.h5")
    with h5py.File(tmp_path / "m.h5", "r+") as f:
        config = json.loads(f.attrs["model_config"])
        f.attrs["model_config"] = json.dumps(_as_keras2(config))
    x = np.random.default_rng(2).normal(0, 1, (4, 8, 8, 3)).astype(np.float32)
    got = ann.forward(load_model(tmp_path / "m.h5"), _to_refsnn(x).astype(np.float64))
    np.testing.assert_allclose(got, model.predict(x, verbose=0), rtol=0, atol=1e-5)
