"""The families of :mod:`families` written with Keras layers (functional API).

The same small shapes as the PyTorch re-implementations (input 16 x 16 x 3, channels-last,
10 classes) and the same block structure, written the way Keras code (and keras.applications)
writes them: ``Conv2D(padding="same")``, ``BatchNormalization``, ``ReLU(max_value=6)`` for
ReLU6, ``DepthwiseConv2D``, ``GlobalAveragePooling2D(keepdims=True)`` + 1x1 ``Conv2D`` +
``Multiply`` for squeeze-and-excitation, ``Activation("swish" / "hard_sigmoid" /
"hard_swish" / "gelu")``, ``ZeroPadding2D`` + ``MaxPooling2D`` for a padded max pool,
``Dropout(noise_shape=(None, 1, 1, 1))`` for stochastic depth (keras.applications'
EfficientNet), ``Dense`` on images and keras.applications' ``LayerScale`` for ConvNeXt,
``keras.ops.split`` + ``Reshape`` / ``Permute`` for ShuffleNet's channel split and shuffle,
``MultiHeadAttention`` for the ViT. They are not keras.applications' models (fewer stages,
narrower). Needs keras (any backend; the tests use torch).

``FAMILIES`` maps a family name to a builder; ``make(name, seed)`` returns the model with
seeded random weights and random BatchNormalization statistics.
"""

from __future__ import annotations

import os

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
from keras import layers  # noqa: E402

INPUT_SHAPE = (16, 16, 3)  # Keras' (H, W, C)
CLASSES = 10


def conv_bn(x, cout, k, stride=1, groups=1, act="relu", depthwise=False):
    """Conv (no bias) + BatchNormalization + activation; ``act`` None, "relu6" (the layer
    ``ReLU(max_value=6)``) or an ``Activation`` name. 1x1 convs are 'valid' (as in
    keras.applications): a strided 1x1 'same' conv is placed differently by Keras' backends."""
    padding = "valid" if k == 1 else "same"
    if depthwise:
        x = layers.DepthwiseConv2D(k, stride, padding=padding, use_bias=False)(x)
    else:
        x = layers.Conv2D(cout, k, stride, padding=padding, groups=groups, use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    if act == "relu6":
        return layers.ReLU(max_value=6.0)(x)
    if act == "relu":
        return layers.ReLU()(x)
    return layers.Activation(act)(x) if act else x


def classifier(x, dropout=0.2):
    x = layers.GlobalAveragePooling2D()(x)
    if dropout:
        x = layers.Dropout(dropout)(x)
    return layers.Dense(CLASSES)(x)


def squeeze_excite(x, squeeze, act, gate):
    """x * gate(conv(act(conv(mean over H, W of x)))), the product broadcast over H, W."""
    c = x.shape[-1]
    s = layers.GlobalAveragePooling2D(keepdims=True)(x)
    s = layers.Conv2D(squeeze, 1, activation=act)(s)
    s = layers.Conv2D(c, 1, activation=gate)(s)
    return layers.Multiply()([x, s])


def _model(build):
    inp = keras.Input(INPUT_SHAPE)
    return keras.Model(inp, build(inp))


# --- ResNet -----------------------------------------------------------------------------------

def _stem_resnet(x):
    x = conv_bn(x, 8, 3)
    x = layers.ZeroPadding2D(1)(x)
    return layers.MaxPooling2D(3, 2)(x)


def basic_block(x, cout, stride):
    cin = x.shape[-1]
    shortcut = x if stride == 1 and cin == cout else conv_bn(x, cout, 1, stride, act=None)
    y = conv_bn(x, cout, 3, stride)
    y = conv_bn(y, cout, 3, act=None)
    return layers.ReLU()(layers.Add()([y, shortcut]))


def bottleneck(x, width, stride, groups=1, expansion=4, se=False):
    cin, cout = x.shape[-1], width * expansion
    shortcut = x if stride == 1 and cin == cout else conv_bn(x, cout, 1, stride, act=None)
    y = conv_bn(x, width, 1)
    y = conv_bn(y, width, 3, stride, groups)
    if se:
        y = squeeze_excite(y, max(1, cin // 4), "relu", "sigmoid")
    y = conv_bn(y, cout, 1, act=None)
    return layers.ReLU()(layers.Add()([y, shortcut]))


def resnet18(x):
    x = _stem_resnet(x)
    x = basic_block(x, 8, 1)
    x = basic_block(x, 16, 2)
    return classifier(x, 0)


def resnet50(x):
    x = _stem_resnet(x)
    x = bottleneck(x, 4, 1)
    x = bottleneck(x, 8, 2)
    return classifier(x, 0)


# --- VGG with BN ------------------------------------------------------------------------------

def vgg_bn(x, cfg=(8, "M", 16, "M", 16)):
    for v in cfg:
        if v == "M":
            x = layers.MaxPooling2D(2)(x)
        else:
            x = layers.Conv2D(v, 3, padding="same")(x)
            x = layers.BatchNormalization()(x)
            x = layers.ReLU()(x)
    x = layers.AveragePooling2D(2)(x)  # 4 x 4 -> 2 x 2 (torch's AdaptiveAvgPool2d((2, 2)))
    x = layers.Flatten()(x)
    x = layers.Dense(32, activation="relu")(x)
    x = layers.Dropout(0.5)(x)
    return layers.Dense(CLASSES)(x)


# --- MobileNetV2 / V3, EfficientNet ----------------------------------------------------------

def inverted_residual(x, cout, stride, expand):
    cin = x.shape[-1]
    y = conv_bn(x, cin * expand, 1, act="relu6")
    y = conv_bn(y, None, 3, stride, act="relu6", depthwise=True)
    y = conv_bn(y, cout, 1, act=None)
    return layers.Add()([x, y]) if stride == 1 and cin == cout else y


def mobilenet_v2(x):
    x = conv_bn(x, 8, 3, 2, act="relu6")
    x = inverted_residual(x, 8, 1, 1)
    x = inverted_residual(x, 12, 2, 4)
    x = inverted_residual(x, 12, 1, 4)
    x = conv_bn(x, 32, 1, act="relu6")
    return classifier(x)


def mbconv(x, cout, stride, expand, act, gate, sd_rate=0.0):
    """MobileNetV3's block (act hard_swish / relu, gate hard_sigmoid) or EfficientNet's
    (act swish, gate sigmoid, stochastic depth as a per-sample Dropout on the residual)."""
    cin = x.shape[-1]
    y = conv_bn(x, cin * expand, 1, act=act) if expand != 1 else x
    y = conv_bn(y, None, 3, stride, act=act, depthwise=True)
    y = squeeze_excite(y, max(1, cin // 4), "relu" if gate == "hard_sigmoid" else "swish",
                       gate)
    y = conv_bn(y, cout, 1, act=None)
    if stride == 1 and cin == cout:
        if sd_rate:
            y = layers.Dropout(sd_rate, noise_shape=(None, 1, 1, 1))(y)
        y = layers.Add()([y, x])
    return y


def mobilenet_v3_small(x):
    x = conv_bn(x, 8, 3, 2, act="hard_swish")
    x = mbconv(x, 8, 1, 1, "relu", "hard_sigmoid")
    x = mbconv(x, 12, 2, 3, "hard_swish", "hard_sigmoid")
    x = mbconv(x, 12, 1, 3, "hard_swish", "hard_sigmoid")
    x = conv_bn(x, 32, 1, act="hard_swish")
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dense(24, activation="hard_swish")(x)
    x = layers.Dropout(0.2)(x)
    return layers.Dense(CLASSES)(x)


def efficientnet_b0(x):
    x = conv_bn(x, 8, 3, 2, act="swish")
    x = mbconv(x, 8, 1, 1, "swish", "sigmoid", 0.1)
    x = mbconv(x, 12, 2, 4, "swish", "sigmoid", 0.1)
    x = mbconv(x, 12, 1, 4, "swish", "sigmoid", 0.2)
    x = conv_bn(x, 32, 1, act="swish")
    return classifier(x)


# --- RegNet -----------------------------------------------------------------------------------

def regnet(x, se):
    x = conv_bn(x, 8, 3, 2)
    x = bottleneck(x, 8, 1, groups=2, expansion=1, se=se)
    x = bottleneck(x, 16, 2, groups=4, expansion=1, se=se)
    return classifier(x, 0)


# --- ConvNeXt ---------------------------------------------------------------------------------

def _layer_scale():
    # keras.applications' ConvNeXt's own layer (a per-channel learned scale); not exported
    # by keras.applications, so imported from its module
    from keras.src.applications.convnext import LayerScale
    return LayerScale


def cn_block(x, sd_rate=0.1):
    dim = x.shape[-1]
    y = layers.DepthwiseConv2D(7, padding="same")(x)
    y = layers.LayerNormalization(epsilon=1e-6)(y)
    y = layers.Dense(4 * dim, activation="gelu")(y)
    y = layers.Dense(dim)(y)
    y = _layer_scale()(1e-6, dim)(y)
    y = layers.Dropout(sd_rate, noise_shape=(None, 1, 1, 1))(y)
    return layers.Add()([x, y])


def convnext_tiny(x):
    x = layers.Conv2D(8, 4, 4)(x)
    x = layers.LayerNormalization(epsilon=1e-6)(x)
    x = cn_block(x)
    x = layers.LayerNormalization(epsilon=1e-6)(x)
    x = layers.Conv2D(16, 2, 2)(x)
    x = cn_block(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.LayerNormalization(epsilon=1e-6)(x)
    return layers.Dense(CLASSES)(x)


# --- DenseNet ---------------------------------------------------------------------------------

def densenet(x, growth=4, n_layers=3, bn_size=2, drop=0.1):
    x = conv_bn(x, 8, 3)
    x = layers.ZeroPadding2D(1)(x)
    x = layers.MaxPooling2D(3, 2)(x)
    features = [x]
    for _ in range(n_layers):
        y = layers.Concatenate()(features) if len(features) > 1 else features[0]
        y = layers.ReLU()(layers.BatchNormalization()(y))
        y = layers.Conv2D(bn_size * growth, 1, use_bias=False)(y)
        y = layers.ReLU()(layers.BatchNormalization()(y))
        y = layers.Conv2D(growth, 3, padding="same", use_bias=False)(y)
        features.append(layers.Dropout(drop)(y))
    x = layers.Concatenate()(features)
    x = layers.ReLU()(layers.BatchNormalization()(x))
    x = layers.Conv2D(x.shape[-1] // 2, 1, use_bias=False)(x)
    x = layers.AveragePooling2D(2)(x)
    x = layers.ReLU()(layers.BatchNormalization()(x))
    return classifier(x, 0)


# --- ShuffleNetV2 -----------------------------------------------------------------------------

def channel_shuffle(x, groups=2):
    h, w, c = x.shape[1:]
    x = layers.Reshape((h, w, groups, c // groups))(x)
    x = layers.Permute((1, 2, 4, 3))(x)
    return layers.Reshape((h, w, c))(x)


def shuffle_unit(x, cout, stride):
    half = cout // 2
    if stride > 1:
        left = conv_bn(x, None, 3, stride, act=None, depthwise=True)
        left = conv_bn(left, half, 1)
        right = x
    else:
        left, right = keras.ops.split(x, 2, axis=-1)
    right = conv_bn(right, half, 1)
    right = conv_bn(right, None, 3, stride, act=None, depthwise=True)
    right = conv_bn(right, half, 1)
    return channel_shuffle(layers.Concatenate()([left, right]))


def shufflenet_v2(x):
    x = conv_bn(x, 8, 3, 2)
    x = shuffle_unit(x, 16, 2)
    x = shuffle_unit(x, 16, 1)
    x = conv_bn(x, 32, 1)
    return classifier(x, 0)


# --- SqueezeNet -------------------------------------------------------------------------------

def fire(x, squeeze, e1, e3):
    x = layers.Conv2D(squeeze, 1, activation="relu")(x)
    return layers.Concatenate()([layers.Conv2D(e1, 1, activation="relu")(x),
                                 layers.Conv2D(e3, 3, padding="same", activation="relu")(x)])


def squeezenet(x):
    x = layers.Conv2D(8, 3, 2, activation="relu")(x)
    x = layers.MaxPooling2D(3, 2)(x)  # 7 -> 3, as torch's ceil_mode pooling here
    x = fire(x, 4, 8, 8)
    x = fire(x, 4, 8, 8)
    x = layers.Dropout(0.5)(x)
    x = layers.Conv2D(CLASSES, 1, activation="relu")(x)
    return layers.GlobalAveragePooling2D()(x)


# --- ViT (attention) ---------------------------------------------------------------------------

def vit_tiny(x, dim=8, heads=2):
    x = layers.Conv2D(dim, 4, 4)(x)  # 4 x 4 patches
    x = layers.Reshape((-1, dim))(x)  # (tokens, dim)
    y = layers.LayerNormalization(epsilon=1e-6)(x)
    y = layers.MultiHeadAttention(heads, dim // heads)(y, y)
    x = layers.Add()([x, y])
    y = layers.LayerNormalization(epsilon=1e-6)(x)
    y = layers.Dense(2 * dim, activation="gelu")(y)
    y = layers.Dense(dim)(y)
    x = layers.Add()([x, y])
    x = layers.LayerNormalization(epsilon=1e-6)(x)
    x = layers.GlobalAveragePooling1D()(x)  # the mean over tokens
    return layers.Dense(CLASSES)(x)


FAMILIES = {
    "resnet18": resnet18,
    "resnet50": resnet50,
    "vgg11_bn": vgg_bn,
    "mobilenet_v2": mobilenet_v2,
    "mobilenet_v3_small": mobilenet_v3_small,
    "efficientnet_b0": efficientnet_b0,
    "regnet_x": lambda x: regnet(x, False),
    "regnet_y": lambda x: regnet(x, True),
    "convnext_tiny": convnext_tiny,
    "densenet": densenet,
    "shufflenet_v2": shufflenet_v2,
    "squeezenet": squeezenet,
    "vit_tiny": vit_tiny,
}


def randomize_bn(model, seed: int = 1):
    """Random BatchNormalization statistics and affine parameters (Keras' initial mean 0,
    var 1, gamma 1, beta 0 would make these untrained networks answer alike for every
    input)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            c = layer.get_weights()[0].shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, c), rng.normal(0, 0.1, c),
                               rng.normal(0, 0.2, c), rng.uniform(0.5, 1.5, c)])
    return model


def make(name: str, seed: int = 0):
    """Family ``name`` as a Keras model with seeded random weights and BN statistics."""
    keras.utils.set_random_seed(seed)
    model = _model(FAMILIES[name])
    # LayerScale starts at 1e-6, which would hide the ConvNeXt blocks: a random scale
    rng = np.random.default_rng(seed + 2)
    for layer in model.layers:
        if type(layer).__name__ == "LayerScale":
            layer.set_weights([rng.uniform(0.5, 1.5, w.shape) for w in layer.get_weights()])
    return randomize_bn(model, seed + 1)
