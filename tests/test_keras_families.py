"""The coverage families written with Keras layers (``benchmarks/keras_families.py``, issue 19)
and the Keras layers they need: each family is read from a .keras archive and must equal
Keras' own float32 forward pass within float32 rounding; a family refsnn cannot read is refused
by layer and class. Skipped without keras (the tests run it on the PyTorch backend).
"""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")
layers = keras.layers

from conftest import ROOT  # noqa: E402
from refsnn import ann  # noqa: E402
from refsnn.errors import ModelFormatError  # noqa: E402
from refsnn.files import load_model  # noqa: E402


@pytest.fixture(scope="module")
def kf():
    spec = importlib.util.spec_from_file_location("keras_families",
                                                  ROOT / "benchmarks" / "keras_families.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _compare(model, path, x, atol=1e-5):
    """Save, read back, and compare refsnn's ANN with Keras' predict; returns the graph."""
    model.save(path)
    graph = load_model(path)
    expected = model.predict(x, verbose=0).astype(np.float64)
    got = ann.forward(graph, x.transpose(0, 3, 1, 2).astype(np.float64) if x.ndim == 4 else
                      x.astype(np.float64))
    np.testing.assert_allclose(got, expected, rtol=0, atol=atol)
    assert np.ptp(expected, axis=0).max() > 1e-4  # the inputs are told apart
    return graph


READ = ["resnet18", "resnet50", "vgg11_bn", "mobilenet_v2", "mobilenet_v3_small",
        "efficientnet_b0", "regnet_x", "regnet_y", "convnext_tiny", "densenet", "shufflenet_v2",
        "squeezenet", "vit_tiny"]


@pytest.mark.parametrize("name", READ)
def test_keras_family_matches_keras(kf, name, tmp_path):
    x = np.random.default_rng(0).normal(size=(3, *kf.INPUT_SHAPE)).astype(np.float32)
    _compare(kf.make(name), tmp_path / "m.keras", x)


def test_every_family_is_tested(kf):
    assert set(kf.FAMILIES) == set(READ)


def _model(build, shape, seed=0):
    keras.utils.set_random_seed(seed)
    inp = keras.Input(shape)
    return keras.Model(inp, build(inp))


def test_multiply_broadcasts_a_gate_and_chains_three_inputs(tmp_path):
    def build(x):
        gate = layers.GlobalAveragePooling2D(keepdims=True)(x)
        gate = layers.Conv2D(3, 1, activation="sigmoid", bias_initializer="uniform")(gate)
        row = layers.AveragePooling2D((4, 1), name="rows")(x)  # (1, 4, 3): over H only
        y = layers.Multiply(name="mul")([x, gate, row])
        return layers.Flatten()(y)

    x = np.random.default_rng(1).normal(size=(4, 4, 4, 3)).astype(np.float32)
    graph = _compare(_model(build, (4, 4, 3)), tmp_path / "m.keras", x)
    ops = [n.op for n in graph.nodes]
    assert ops.count("expand") == 2 and ops.count("multiply") == 2
    assert graph.node("mul").op == "multiply"


def test_dense_on_an_image_is_a_1x1_conv(tmp_path):
    build = lambda x: layers.Flatten()(layers.Dense(5, name="d", bias_initializer="uniform")(x))
    x = np.random.default_rng(2).normal(size=(4, 3, 2, 4)).astype(np.float32)
    graph = _compare(_model(build, (3, 2, 4)), tmp_path / "m.keras", x)
    assert graph.node("d").op == "conv2d" and graph.node("d").params["weight"].shape == (5, 4, 1,
                                                                                          1)


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_reshape_permute_split_follow_keras_layout(suffix, tmp_path):
    """Channel shuffle (Reshape to rank 4, Permute, Reshape back), Permute of an image's H and
    W, Reshape of an image to a sequence, and keras.ops.split (a second output used first)."""
    def build(x):
        a, b = keras.ops.split(x, [1], axis=-1)  # channels 1 and 5
        y = layers.Concatenate()([layers.Conv2D(3, 1)(b), layers.Conv2D(3, 1)(a)])
        y = layers.Reshape((4, 3, 2, 3))(y)
        y = layers.Permute((1, 2, 4, 3))(y)
        y = layers.Reshape((4, 3, 6))(y)
        y = layers.Permute((2, 1, 3))(y)  # (3, 4, 6)
        y = layers.Conv2D(2, (1, 2))(y)  # not symmetric in H and W: the order matters
        y = layers.Reshape((-1, 2))(y)
        return layers.Flatten()(layers.Dense(3)(y))

    x = np.random.default_rng(3).normal(size=(4, 4, 3, 6)).astype(np.float32)
    graph = _compare(_model(build, (4, 3, 6)), tmp_path / f"m{suffix}", x)
    assert {"slice", "reshape", "transpose"} <= {n.op for n in graph.nodes}


def test_layer_scale_is_a_channel_scale(kf, tmp_path):
    def build(x):
        return layers.Flatten()(kf._layer_scale()(1e-6, 3, name="ls")(x))

    model = _model(build, (2, 2, 3))
    model.get_layer("ls").set_weights([np.array([0.5, -2.0, 3.0], np.float32)])
    x = np.random.default_rng(4).normal(size=(3, 2, 2, 3)).astype(np.float32)
    graph = _compare(model, tmp_path / "m.keras", x)
    assert graph.node("ls").op == "scale" and graph.node("ls").attrs["axis"] == "channel"


def test_same_padding_where_backends_disagree_is_refused_and_valid_is_read(tmp_path):
    """A 1x1 conv of stride 2 on an even size: 'valid' is read (TensorFlow's windows of
    'same'), 'same' is refused naming the layer, the kernel, the stride and the size."""
    x = np.random.default_rng(5).normal(size=(3, 4, 4, 2)).astype(np.float32)
    valid = lambda x: layers.Flatten()(layers.Conv2D(2, 1, 2, name="c")(x))
    _compare(_model(valid, (4, 4, 2)), tmp_path / "v.keras", x)
    same = lambda x: layers.Flatten()(layers.Conv2D(2, 1, 2, padding="same", name="c")(x))
    _model(same, (4, 4, 2)).save(tmp_path / "s.keras")
    with pytest.raises(ModelFormatError, match=r"layer 'c', class Conv2D.*padding 'same' with "
                       r"kernel 1 and stride 2 on size 4"):
        load_model(tmp_path / "s.keras")
    # odd sizes and kernels at least the stride agree across backends: read
    same3 = lambda x: layers.Flatten()(layers.Conv2D(2, 3, 2, padding="same")(x))
    _compare(_model(same3, (4, 4, 2)), tmp_path / "s3.keras", x)


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
@pytest.mark.parametrize("use_bias", [True, False])
def test_multi_head_attention_cross_with_key_and_value_dim(suffix, use_bias, tmp_path):
    """Cross-attention (query of 3 steps, key and value of 5), key_dim != value_dim, the
    output projected to another width; GlobalAveragePooling1D with keepdims."""
    def build(x):
        q = layers.Dense(3)(layers.Reshape((3, 4))(layers.Dense(12)(x)))
        kv = layers.Reshape((5, 3))(layers.Dense(15)(x))
        key = layers.Dense(3, bias_initializer="uniform")(kv)
        mha = layers.MultiHeadAttention(2, 3, value_dim=2, output_shape=(5,), use_bias=use_bias,
                                        bias_initializer="uniform", name="mha")
        y = mha(q, kv, key)
        return layers.Flatten()(layers.GlobalAveragePooling1D(keepdims=True)(y))

    x = np.random.default_rng(6).normal(size=(4, 7)).astype(np.float32)
    graph = _compare(_model(build, (7,)), tmp_path / f"m{suffix}", x)
    assert graph.node("mha").op == "linear" and "softmax" in {n.op for n in graph.nodes}
    assert np.any(graph.node("mha_query_dense").params["bias"]) == use_bias


@pytest.mark.parametrize("kwargs, found", [
    (dict(use_causal_mask=True), "use_causal_mask=True"),
    (dict(attention_mask=np.ones((3, 3), bool)), "attention_mask="),
])
def test_multi_head_attention_call_settings_are_refused(kwargs, found, tmp_path):
    def build(x):
        y = layers.Reshape((3, 2))(x)
        mask = kwargs.get("attention_mask")
        extra = dict(attention_mask=keras.ops.convert_to_tensor(mask)) if mask is not None \
            else kwargs
        return layers.Flatten()(layers.MultiHeadAttention(1, 2, name="mha")(y, y, **extra))

    _model(build, (6,)).save(tmp_path / "m.keras")
    with pytest.raises(ModelFormatError, match=r"/layers/mha: inbound_nodes: .*layer 'mha'.*"
                       f"found {found}"):
        load_model(tmp_path / "m.keras")
