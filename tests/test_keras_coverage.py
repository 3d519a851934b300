"""Keras layers and settings of keras.applications CNNs (issue 19), read with h5py alone.

Skipped without keras (CI installs keras 3.6 on the PyTorch backend). refsnn's ANN must equal
Keras' own float32 forward pass within float32 rounding.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")
layers = keras.layers

from refsnn import ann  # noqa: E402
from refsnn.conversion import convert  # noqa: E402
from refsnn.errors import ModelFormatError  # noqa: E402
from refsnn.files import load_model  # noqa: E402
from refsnn.sim.network import ann_limit  # noqa: E402

from test_keras import _randomize_bn  # noqa: E402  (BN statistics that make outputs differ)


def applications_cnn():
    """Rescaling, lopsided 'same' padding (stride 2 on even sizes) in Conv2D, DepthwiseConv2D
    and MaxPooling2D, ZeroPadding2D, Conv(relu) -> BN -> MaxPool, relu6 and hard_silu,
    Concatenate, GlobalMaxPooling2D, a Softmax layer."""
    inp = keras.Input((8, 8, 3))
    x = layers.Rescaling(1 / 127.5, offset=-1, name="resc")(inp)
    x = layers.Conv2D(4, 3, strides=2, padding="same", activation="relu", name="c1")(x)
    x = layers.BatchNormalization(name="bn")(x)
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="mp")(x)
    x = layers.ZeroPadding2D(((0, 1), (1, 0)), name="zp")(x)
    y = layers.DepthwiseConv2D(2, strides=2, padding="same", activation="relu6", name="dw")(x)
    z = layers.Conv2D(4, 1, strides=2, activation="relu", name="c2")(x)
    x = layers.Concatenate(name="cat")([y, z])
    x = layers.GlobalMaxPooling2D(name="gmp")(x)
    x = layers.Dense(3, name="fc")(x)
    return keras.Model(inp, layers.Softmax(name="sm")(x))


@pytest.mark.parametrize("suffix", [".h5", ".keras"])
def test_applications_layers_match_keras(suffix, tmp_path):
    keras.utils.set_random_seed(0)
    model = _randomize_bn(applications_cnn())
    model.save(tmp_path / f"m{suffix}")
    graph = load_model(tmp_path / f"m{suffix}")
    ops = [n.op for n in graph.nodes]
    assert {"affine", "pad", "concat", "softmax", "hardtanh"} <= set(ops)
    assert graph.node("mp").attrs["ceil_mode"] == 1  # padding (0, 1): one more after
    x = np.random.default_rng(1).uniform(0, 255, (6, 8, 8, 3)).astype(np.float32)
    expected = model.predict(x, verbose=0).astype(np.float64)
    got = ann.forward(graph, x.transpose(0, 3, 1, 2).astype(np.float64))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
    # and it converts with IF: the BN between ReLU and max pooling moves after the pooling,
    # the Softmax is dropped for the readout (argmax-preserving)
    xs = x.transpose(0, 3, 1, 2).astype(np.float64)
    net = convert(graph, "if", xs, percentile=100.0)
    assert net.options["readout_before"] == "sm"
    logits = ann.forward(graph, xs, all_nodes=True)[1]["fc"]
    np.testing.assert_allclose(ann_limit(net, xs), logits, rtol=0, atol=1e-9)


@pytest.mark.parametrize("app", ["MobileNetV2", "ResNet50"])
def test_keras_applications_load(app, tmp_path):
    keras.utils.set_random_seed(0)
    kwargs = dict(alpha=0.35) if app == "MobileNetV2" else {}
    model = getattr(keras.applications, app)(input_shape=(32, 32, 3), weights=None, classes=10,
                                             **kwargs)
    model.save(tmp_path / "m.keras")
    graph = load_model(tmp_path / "m.keras")
    x = np.random.default_rng(2).normal(size=(2, 32, 32, 3)).astype(np.float32)
    expected = model.predict(x, verbose=0).astype(np.float64)
    got = ann.forward(graph, x.transpose(0, 3, 1, 2).astype(np.float64))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("build, message", [
    (lambda: keras.Sequential([keras.Input((4, 4, 2)), layers.Softmax(name="s")]),
     r"layer 's', class Softmax.*Softmax over axis -1 of Keras shape \(4, 4, 2\)"),
    (lambda: keras.Sequential([keras.Input((8, 8, 2)),
                               layers.AveragePooling2D(3, 2, padding="same", name="a")]),
     r"layer 'a', class AveragePooling2D.*leaves the padding out of the divisor"),
])
def test_keras_refusals_name_layer_and_setting(build, message, tmp_path):
    build().save(tmp_path / "m.keras")
    with pytest.raises(ModelFormatError, match=message):
        load_model(tmp_path / "m.keras")
