"""Read Keras models (legacy ``.h5`` and Keras 3 ``.keras``) with h5py, json and zipfile only.

No TensorFlow or Keras is imported. The result is an ordinary refsnn
:class:`~refsnn.model.graph.Graph` in refsnn's layout:

- **images are channels-first**: a Keras image tensor ``(H, W, C)`` is the refsnn tensor
  ``(C, H, W)``, so the model's input shape is ``(C, H, W)`` and data must be given as NCHW
  (``x_keras.transpose(0, 3, 1, 2)``); conv kernels ``(kh, kw, cin, cout)`` become
  ``(cout, cin, kh, kw)``, depthwise kernels ``(kh, kw, cin, m)`` a grouped conv with
  ``groups = cin`` and output channel ``c·m + j``;
- ``Flatten`` of an image first transposes ``(C, H, W)`` back to Keras' ``(H, W, C)`` order, so
  the ``Dense`` after it keeps its weights: the outputs are Keras' own, not a permutation;
- vectors ``(N,)`` and sequences ``(T, D)`` keep their layout; ``Dense`` acts on the last axis
  (a ``linear`` map of vectors and sequences; on an image, whose last Keras axis is the
  channels, a 1x1 ``conv2d``); ``Reshape``, ``Permute`` and ``Split`` work in Keras' order.

Layer weights come from ``model_weights/<layer>/<weight name>`` (``.h5``) or
``layers/<snake_case class>[_k]/vars/<i>`` (``.keras``, the path Keras' own loader computes).
Unsupported layers or settings are refused with a :class:`~refsnn.errors.ModelFormatError`
naming the layer and its class.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
import zlib

import h5py
import numpy as np

from refsnn.errors import ModelFormatError
from refsnn.io import H5_ERRORS, open_h5, read_dataset, unreadable
from refsnn.model.graph import INPUT, Graph, make_graph
from refsnn.model.ops import pool_size

#: Keras activation name -> (refsnn op, attrs); ``linear`` adds no node.
ACTIVATIONS = {
    "linear": None,
    "relu": ("relu", {}),
    "gelu": ("gelu", {"approximate": "none"}),
    "silu": ("silu", {}),
    "swish": ("silu", {}),
    "sigmoid": ("sigmoid", {}),
    "tanh": ("tanh", {}),
    "softmax": ("softmax", {}),
    "relu6": ("hardtanh", {"min_value": 0.0, "max_value": 6.0}),
    "hard_sigmoid": ("hardsigmoid", {}),
    "hard_silu": ("hardswish", {}),
    "hard_swish": ("hardswish", {}),
}


class _Refused(Exception):
    """Why a layer cannot be read; the reader adds file, layer and class."""


def _snake(name: str) -> str:
    # Keras' naming.to_snake_case, which names the weight groups of a .keras archive
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


class _Builder:
    """Collects refsnn node dicts; tracks each Keras tensor's refsnn name and shape."""

    def __init__(self):
        self.nodes: list[dict] = []
        self.shapes: dict[str, tuple] = {}  # refsnn name -> Keras shape (no batch axis)

    def add(self, name, op, inputs, keras_shape, attrs=None, params=None) -> str:
        self.nodes.append(dict(name=name, op=op, inputs=list(inputs), attrs=dict(attrs or {}),
                               params=dict(params or {})))
        self.shapes[name] = tuple(keras_shape)
        return name

    def activation(self, layer, src, act) -> str:
        act = act if isinstance(act, str) else (act or {}).get("config", {}).get("name", act)
        if act not in ACTIVATIONS:
            raise _Refused(f"activation {act!r} (supported: {', '.join(ACTIVATIONS)})")
        spec = ACTIVATIONS[act]
        if spec is None:
            return src
        if spec[0] == "softmax" and len(self.shapes[src]) == 3:
            raise _Refused("softmax over the channels of an image (refsnn's softmax is over the "
                           "last axis of its channels-first layout)")
        return self.add(f"{layer}_{act}", spec[0], [src], self.shapes[src], spec[1])


def _pair(v):
    return (int(v), int(v)) if isinstance(v, int) else tuple(int(i) for i in v)


def _same_padding(size, kernel, stride):
    """Keras' 'same' padding of one axis: (before, after), the extra one after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return (total // 2, total - total // 2)


def _padding(cfg, shape, kernel, stride):
    """((top, bottom), (left, right)) of a layer's padding setting.

    'same' where a window is narrower than the stride's remainder (``kernel - 1 <
    (size - 1) % stride``, e.g. a 1x1 conv of stride 2 on an even size) is refused: there
    TensorFlow's and JAX's windows start at the first row, Keras' torch backend crops the
    first row (negative padding), and a saved model does not say which backend it was made for.
    """
    if cfg.get("padding", "valid") == "valid":
        return ((0, 0), (0, 0))
    for n, k, s in zip(shape[:2], kernel, stride):
        if k - 1 < (n - 1) % s:
            raise _Refused(f"padding 'same' with kernel {k} and stride {s} on size {n} (Keras' "
                           f"backends place these windows differently: TensorFlow and JAX "
                           f"from the first row, torch one row later); padding 'valid' gives "
                           f"TensorFlow's windows")
    return (_same_padding(shape[0], kernel[0], stride[0]),
            _same_padding(shape[1], kernel[1], stride[1]))


def _symmetric(b, name, src, pads, shape):
    """Symmetric padding for a conv: lopsided 'same' padding (stride 2 on even sizes) becomes a
    ``pad`` node of the difference first. Returns (source, (ph, pw), Keras shape)."""
    (top, bottom), (left, right) = pads
    if (top, left) == (bottom, right):
        return src, (top, left), shape
    h, w, c = shape
    extra = (bottom - top, right - left)
    src = b.add(f"{name}_pad", "pad", [src], (h + extra[0], w + extra[1], c),
                dict(rows=(0, extra[0]), cols=(0, extra[1])))
    return src, (top, left), b.shapes[src]


def _image(shape):
    if len(shape) != 3:
        raise _Refused(f"an input of Keras shape {shape}; expected an image (H, W, C)")
    return shape


def _check_conv_cfg(cfg):
    if cfg.get("data_format", "channels_last") != "channels_last":
        raise _Refused(f"data_format {cfg.get('data_format')!r} (channels_last only)")
    if _pair(cfg.get("dilation_rate", 1)) != (1, 1):
        raise _Refused(f"dilation_rate {cfg.get('dilation_rate')}")


def _conv_out(shape, kernel, stride, pad, channels):
    h, w, _ = shape
    return ((h + 2 * pad[0] - kernel[0]) // stride[0] + 1,
            (w + 2 * pad[1] - kernel[1]) // stride[1] + 1, channels)


def _conv2d(b, name, cfg, srcs, weights):
    _check_conv_cfg(cfg)
    shape = _image(b.shapes[srcs[0]])
    kernel, stride = _pair(cfg["kernel_size"]), _pair(cfg.get("strides", 1))
    src, pad, shape = _symmetric(b, name, srcs[0], _padding(cfg, shape, kernel, stride), shape)
    srcs = [src]
    k = weights[0]  # (kh, kw, cin / groups, cout)
    bias = weights[1] if cfg.get("use_bias", True) else np.zeros(k.shape[3])
    out = b.add(name, "conv2d", srcs, _conv_out(shape, kernel, stride, pad, k.shape[3]),
                dict(stride=stride, padding=pad, groups=int(cfg.get("groups", 1))),
                dict(weight=k.transpose(3, 2, 0, 1), bias=bias))
    return b.activation(name, out, cfg.get("activation", "linear"))


def _depthwise(b, name, cfg, srcs, weights):
    _check_conv_cfg(cfg)
    shape = _image(b.shapes[srcs[0]])
    kernel, stride = _pair(cfg["kernel_size"]), _pair(cfg.get("strides", 1))
    src, pad, shape = _symmetric(b, name, srcs[0], _padding(cfg, shape, kernel, stride), shape)
    srcs = [src]
    k = weights[0]  # (kh, kw, cin, multiplier); output channel c * multiplier + j
    kh, kw, cin, mult = k.shape
    weight = k.transpose(2, 3, 0, 1).reshape(cin * mult, 1, kh, kw)
    bias = weights[1] if cfg.get("use_bias", True) else np.zeros(cin * mult)
    out = b.add(name, "conv2d", srcs, _conv_out(shape, kernel, stride, pad, cin * mult),
                dict(stride=stride, padding=pad, groups=cin), dict(weight=weight, bias=bias))
    return b.activation(name, out, cfg.get("activation", "linear"))


def _dense(b, name, cfg, srcs, weights):
    shape = b.shapes[srcs[0]]
    k = weights[0]  # (in, out)
    bias = weights[1] if cfg.get("use_bias", True) else np.zeros(k.shape[1])
    if len(shape) == 3:  # Keras' last axis is the channels: a 1x1 convolution
        out = b.add(name, "conv2d", srcs, shape[:-1] + (k.shape[1],),
                    dict(stride=(1, 1), padding=(0, 0), groups=1),
                    dict(weight=k.T[:, :, None, None], bias=bias))
    else:
        out = b.add(name, "linear", srcs, shape[:-1] + (k.shape[1],), {},
                    dict(weight=k.T, bias=bias))
    return b.activation(name, out, cfg.get("activation", "linear"))


def _channel_axis(cfg, shape, key="axis"):
    axis = cfg.get(key, -1)
    axis = axis[0] if isinstance(axis, list) and len(axis) == 1 else axis
    if not isinstance(axis, int) or axis % (len(shape) + 1) != len(shape):
        raise _Refused(f"{key} {cfg.get(key)!r} (the last axis only)")


def _batchnorm(b, name, cfg, srcs, weights):
    shape = b.shapes[srcs[0]]
    _channel_axis(cfg, shape)
    if len(shape) == 2:
        raise _Refused("BatchNormalization of a sequence (T, D)")
    c = shape[-1]
    w = list(weights)
    gamma = w.pop(0) if cfg.get("scale", True) else np.ones(c)
    beta = w.pop(0) if cfg.get("center", True) else np.zeros(c)
    mean, var = w
    return b.add(name, "batchnorm", srcs, shape, dict(eps=float(cfg.get("epsilon", 1e-3))),
                 dict(gamma=gamma, beta=beta, mean=mean, var=var))


def _layernorm(b, name, cfg, srcs, weights):
    shape = b.shapes[srcs[0]]
    _channel_axis(cfg, shape)
    if cfg.get("rms_scaling", False):
        raise _Refused("rms_scaling=True")
    d = shape[-1]
    w = list(weights)
    gamma = w.pop(0) if cfg.get("scale", True) else np.ones(d)
    beta = w.pop(0) if cfg.get("center", True) else np.zeros(d)
    axis = "channel" if len(shape) == 3 else "last"
    return b.add(name, "layernorm", srcs, shape, dict(axis=axis, eps=float(cfg.get("epsilon",
                                                                                   1e-3))),
                 dict(weight=gamma, bias=beta))


def _activation(b, name, cfg, srcs, weights):
    act = cfg["activation"]
    out = b.activation(name, srcs[0], act)
    if out == srcs[0]:
        return b.add(name, "identity", srcs, b.shapes[srcs[0]])
    return out


def _relu(b, name, cfg, srcs, weights):
    slope, thr = cfg.get("negative_slope", 0.0), cfg.get("threshold", 0.0)
    top = cfg.get("max_value")
    if thr not in (0, 0.0) or (slope not in (0, 0.0) and top is not None):
        raise _Refused(f"ReLU with threshold={thr}, negative_slope={slope}, max_value={top}")
    shape = b.shapes[srcs[0]]
    if top is not None:
        return b.add(name, "hardtanh", srcs, shape, dict(min_value=0.0, max_value=float(top)))
    if slope not in (0, 0.0):
        return b.add(name, "leaky_relu", srcs, shape, dict(slope=float(slope)))
    return b.add(name, "relu", srcs, shape)


def _leaky(b, name, cfg, srcs, weights):
    slope = cfg.get("negative_slope", cfg.get("alpha", 0.3))
    return b.add(name, "leaky_relu", srcs, b.shapes[srcs[0]], dict(slope=float(slope)))


def _pool(op):
    def handler(b, name, cfg, srcs, weights):
        if cfg.get("data_format", "channels_last") not in (None, "channels_last"):
            raise _Refused(f"data_format {cfg.get('data_format')!r} (channels_last only)")
        shape = _image(b.shapes[srcs[0]])
        kernel = _pair(cfg.get("pool_size", 2))
        stride = _pair(cfg.get("strides") or kernel)
        pads = _padding(cfg, shape, kernel, stride)
        if op == "avgpool2d" and pads != ((0, 0), (0, 0)):
            raise _Refused("AveragePooling2D with padding 'same' that pads (Keras leaves the "
                           "padding out of the divisor, refsnn counts it as zeros)")
        pad = (pads[0][0], pads[1][0])
        attrs = dict(kernel=kernel, stride=stride, padding=pad)
        out_shape = _conv_out(shape, kernel, stride, pad, shape[2])
        if pads[0][0] != pads[0][1] or pads[1][0] != pads[1][1]:
            # one more after than before: the windows of ceil_mode, whose overhang (like
            # Keras' padding) never wins
            attrs["ceil_mode"] = 1
            out_shape = tuple(pool_size(n, k, s, p, 1) for n, k, s, p in
                              zip(shape[:2], kernel, stride, pad)) + (shape[2],)
            if out_shape[:2] != (-(-shape[0] // stride[0]), -(-shape[1] // stride[1])):
                raise _Refused(f"padding 'same' of pool size {kernel}, strides {stride} on "
                               f"{shape[:2]}")
        return b.add(name, op, srcs, out_shape, attrs)
    return handler


def _global_avg(b, name, cfg, srcs, weights):
    if cfg.get("data_format", "channels_last") not in (None, "channels_last"):
        raise _Refused(f"data_format {cfg.get('data_format')!r} (channels_last only)")
    shape = _image(b.shapes[srcs[0]])
    keep = bool(cfg.get("keepdims", False))
    return b.add(name, "mean", srcs, (1, 1, shape[2]) if keep else (shape[2],),
                 dict(axis="spatial", keepdims=int(keep)))


def _global_max(b, name, cfg, srcs, weights):
    if cfg.get("data_format", "channels_last") not in (None, "channels_last"):
        raise _Refused(f"data_format {cfg.get('data_format')!r} (channels_last only)")
    h, w, c = _image(b.shapes[srcs[0]])
    pooled = b.add(name if cfg.get("keepdims", False) else f"{name}_pool", "maxpool2d", srcs,
                   (1, 1, c), dict(kernel=(h, w), stride=(h, w)))
    if cfg.get("keepdims", False):
        return pooled
    return b.add(name, "flatten", [pooled], (c,))


def _zero_padding(b, name, cfg, srcs, weights):
    if cfg.get("data_format", "channels_last") not in (None, "channels_last"):
        raise _Refused(f"data_format {cfg.get('data_format')!r} (channels_last only)")
    h, w, c = _image(b.shapes[srcs[0]])
    pad = cfg.get("padding", 1)
    if isinstance(pad, int):
        rows = cols = (pad, pad)
    elif all(isinstance(p, int) for p in pad):
        rows, cols = (pad[0], pad[0]), (pad[1], pad[1])
    else:
        rows, cols = tuple(pad[0]), tuple(pad[1])
    return b.add(name, "pad", srcs, (h + sum(rows), w + sum(cols), c),
                 dict(rows=tuple(int(i) for i in rows), cols=tuple(int(i) for i in cols)))


def _rescaling(b, name, cfg, srcs, weights):
    shape = b.shapes[srcs[0]]
    c = shape[-1]
    scale = np.broadcast_to(np.asarray(cfg.get("scale", 1.0), dtype=np.float64), (c,))
    offset = np.broadcast_to(np.asarray(cfg.get("offset", 0.0), dtype=np.float64), (c,))
    axis = "channel" if len(shape) == 3 else "last"  # Keras' last axis, refsnn's channels
    return b.add(name, "affine", srcs, shape, dict(axis=axis),
                 dict(weight=scale.copy(), bias=offset.copy()))


def _softmax_layer(b, name, cfg, srcs, weights):
    shape = b.shapes[srcs[0]]
    axis = cfg.get("axis", -1)
    if axis not in (-1, len(shape)) or len(shape) == 3:
        raise _Refused(f"Softmax over axis {axis} of Keras shape {shape} (refsnn's softmax is "
                       f"over the last axis of a vector or sequence)")
    return b.add(name, "softmax", srcs, shape)


def _concatenate(b, name, cfg, srcs, weights):
    shape = b.shapes[srcs[0]]
    axis = cfg.get("axis", -1) % (len(shape) + 1)
    if axis == 0:
        raise _Refused("Concatenate along the batch axis")
    axis -= 1
    # Keras (H, W, C) is refsnn (C, H, W): Keras axis 2 (channels) is refsnn axis 0
    ours = (axis + 1) % 3 if len(shape) == 3 else axis
    out = list(shape)
    out[axis] = sum(b.shapes[s][axis] for s in srcs)
    return b.add(name, "concat", srcs, tuple(out), dict(axis=ours))


def _flatten(b, name, cfg, srcs, weights):
    shape = b.shapes[srcs[0]]
    src = srcs[0]
    if len(shape) == 3:  # refsnn holds (C, H, W); Keras flattens (H, W, C)
        src = b.add(f"{name}_hwc", "transpose", [src], shape, dict(perm="1,2,0"))
    return b.add(name, "flatten", [src], (int(np.prod(shape)),))


def _text(shape) -> str:
    return ",".join(str(int(d)) for d in shape)


#: refsnn's axis of each axis of a Keras image (H, W, C), which refsnn holds as (C, H, W)
_IMAGE_AXES = (1, 2, 0)


def _reshape(b, name, cfg, srcs, weights):
    """Keras' row-major reshape of its own layout: an image is first transposed to Keras'
    ``(H, W, C)`` order, and an image result transposed back to refsnn's ``(C, H, W)``."""
    shape = b.shapes[srcs[0]]
    target = [int(d) for d in cfg["target_shape"]]
    if target.count(-1) == 1:
        target[target.index(-1)] = int(np.prod(shape)) // -int(np.prod(target))
    target = tuple(target)
    if int(np.prod(target)) != int(np.prod(shape)):
        raise _Refused(f"target_shape {cfg['target_shape']} for Keras shape {shape}")
    src = srcs[0]
    if len(shape) == 3:
        src = b.add(f"{name}_hwc", "transpose", [src], shape, dict(perm="1,2,0"))
    last = name if len(target) != 3 else f"{name}_flat"
    src = b.add(last, "reshape", [src], target, dict(shape=_text(target)))
    if len(target) == 3:
        src = b.add(name, "transpose", [src], target, dict(perm="2,0,1"))
    return src


def _permute(b, name, cfg, srcs, weights):
    """Keras' ``Permute(dims)`` (1-based over the per-sample axes) as one ``transpose``."""
    shape = b.shapes[srcs[0]]
    dims = [int(d) - 1 for d in cfg["dims"]]
    if sorted(dims) != list(range(len(shape))):
        raise _Refused(f"dims {cfg['dims']} for Keras shape {shape}")
    out = tuple(shape[d] for d in dims)
    if len(shape) == 3:  # refsnn's output axis (C, H, W) <- Keras' output axis (2, 0, 1)
        perm = [_IMAGE_AXES[dims[j]] for j in (2, 0, 1)]
    else:
        perm = dims
    return b.add(name, "transpose", srcs, out, dict(perm=_text(perm)))


def _split(b, name, cfg, srcs, weights):
    """``keras.ops.split`` (the ``Split`` operation of a functional model): ``slice`` nodes."""
    shape = b.shapes[srcs[0]]
    axis = int(cfg.get("axis", 0)) % (len(shape) + 1)
    if axis == 0:
        raise _Refused("Split along the batch axis")
    axis -= 1
    size = shape[axis]
    parts = cfg.get("indices_or_sections")
    if isinstance(parts, int):
        if parts < 1 or size % parts:
            raise _Refused(f"indices_or_sections {parts} for an axis of size {size}")
        cuts = [size // parts * i for i in range(parts + 1)]
    else:
        cuts = [0, *(int(i) for i in parts), size]
        if cuts != sorted(cuts) or len(set(cuts)) != len(cuts) or cuts[-1] != size:
            raise _Refused(f"indices_or_sections {parts} for an axis of size {size}")
    ours = _IMAGE_AXES[axis] if len(shape) == 3 else axis
    outs = []
    for i, (start, stop) in enumerate(zip(cuts, cuts[1:])):
        part = tuple(stop - start if a == axis else d for a, d in enumerate(shape))
        outs.append(b.add(name if i == 0 else f"{name}_{i}", "slice", srcs, part,
                          dict(axis=ours, start=start, stop=stop)))
    return outs


def _global_avg_1d(b, name, cfg, srcs, weights):
    if cfg.get("data_format", "channels_last") not in (None, "channels_last"):
        raise _Refused(f"data_format {cfg.get('data_format')!r} (channels_last only)")
    shape = b.shapes[srcs[0]]
    if len(shape) != 2:
        raise _Refused(f"an input of Keras shape {shape}; expected a sequence (T, D)")
    keep = bool(cfg.get("keepdims", False))
    return b.add(name, "mean", srcs, (1, shape[1]) if keep else (shape[1],),
                 dict(axis="channel", keepdims=int(keep)))  # refsnn's axis 0: the steps


def _contract(b, name, a, a_shape, c, c_shape):
    """``out[..., t, s] = sum_k a[..., t, k] · c[..., s, k]`` with refsnn operators: both
    repeated to ``(..., T, S, K)`` (``reshape`` + ``expand``), a ``multiply``, and the sum over
    ``K`` as a ``linear`` map of weights 1 (the decomposition the PyTorch exporter uses)."""
    lead, (t, k), s = a_shape[:-2], a_shape[-2:], c_shape[-2]
    big = lead + (t, s, k)
    ra = b.add(f"{name}.a", "reshape", [a], lead + (t, 1, k), dict(shape=_text(lead + (t, 1, k))))
    ea = b.add(f"{name}.a_wide", "expand", [ra], big, dict(shape=_text(big)))
    rc = b.add(f"{name}.b", "reshape", [c], lead + (1, s, k), dict(shape=_text(lead + (1, s, k))))
    ec = b.add(f"{name}.b_wide", "expand", [rc], big, dict(shape=_text(big)))
    prod = b.add(f"{name}.products", "multiply", [ea, ec], big)
    total = b.add(f"{name}.sum", "linear", [prod], lead + (t, s, 1), {},
                  dict(weight=np.ones((1, k)), bias=np.zeros(1)))
    return b.add(name, "reshape", [total], lead + (t, s), dict(shape=_text(lead + (t, s))))


def _heads(b, name, src, shape, kernel, bias):
    """A projection ``(T, D) -> (T, H·K)`` (EinsumDense ``abc,cde->abde``), as ``(H, T, K)``."""
    d, h, k = kernel.shape
    t = shape[0]
    flat = b.add(f"{name}_dense", "linear", [src], (t, h * k), {},
                 dict(weight=kernel.reshape(d, h * k).T, bias=bias.reshape(h * k)))
    split = b.add(f"{name}_heads", "reshape", [flat], (t, h, k), dict(shape=_text((t, h, k))))
    return b.add(f"{name}_by_head", "transpose", [split], (h, t, k), dict(perm="1,0,2"))


def _attention(b, name, cfg, srcs, weights):
    """``MultiHeadAttention(query, value[, key])`` over a sequence, Keras' computation:
    per head, ``softmax((q / sqrt(key_dim)) · kᵀ) · v``, then the output projection."""
    shapes = [b.shapes[s] for s in srcs]
    if len(srcs) not in (2, 3) or any(len(sh) != 2 for sh in shapes):
        raise _Refused(f"inputs of Keras shapes {shapes} (query and value, and optionally key, "
                       f"each a sequence (T, D))")
    if cfg.get("attention_axes") not in (None, [1], 1):
        raise _Refused(f"attention_axes {cfg.get('attention_axes')} (over the steps only)")
    w = list(weights)
    if not cfg.get("use_bias", True) and len(w) == 4:  # zero biases after each kernel
        w = [a for i, kern in enumerate(w)
             for a in (kern, np.zeros(kern.shape[-1:] if i == 3 else kern.shape[1:]))]
    if len(w) != 8:
        raise _Refused(f"{len(weights)} weights (query, key, value and output kernels and "
                       f"biases)")
    qk, qb, kk, kb, vk, vb, ok, ob = w
    out_shape = cfg.get("output_shape")
    if out_shape not in (None, ok.shape[-1], [ok.shape[-1]]):
        raise _Refused(f"output_shape {out_shape} (one output axis)")
    query, value = srcs[:2]
    key = srcs[2] if len(srcs) == 3 else value
    (t, _), (s, _) = shapes[0], shapes[1]
    h, k, v = qk.shape[1], qk.shape[2], vk.shape[2]
    q = _heads(b, f"{name}_query", query, shapes[0], qk, qb)
    q = b.add(f"{name}_query_scaled", "scale", [q], (h, t, k), dict(axis="last"),
              dict(weight=np.full(k, 1.0 / np.sqrt(float(cfg["key_dim"])))))
    kt = _heads(b, f"{name}_key", key, b.shapes[key], kk, kb)
    scores = _contract(b, f"{name}_scores", q, (h, t, k), kt, (h, s, k))
    attn = b.add(f"{name}_softmax", "softmax", [scores], (h, t, s))
    vt = _heads(b, f"{name}_value", value, shapes[1], vk, vb)
    vt = b.add(f"{name}_value_t", "transpose", [vt], (h, v, s), dict(perm="0,2,1"))
    mixed = _contract(b, f"{name}_mix", attn, (h, t, s), vt, (h, v, s))  # (H, T, V)
    mixed = b.add(f"{name}_steps", "transpose", [mixed], (t, h, v), dict(perm="1,0,2"))
    mixed = b.add(f"{name}_concat", "reshape", [mixed], (t, h * v), dict(shape=_text((t, h * v))))
    return b.add(name, "linear", [mixed], (t, ok.shape[-1]), {},
                 dict(weight=ok.reshape(h * v, -1).T, bias=ob))


def _add(b, name, cfg, srcs, weights):
    return b.add(name, "add", srcs, b.shapes[srcs[0]])


def _multiply(b, name, cfg, srcs, weights):
    """The product of the inputs; an input with axes of size 1 where the others have more
    (squeeze-and-excitation's ``(1, 1, C)`` gate) is repeated along them (``expand``)."""
    shapes = [b.shapes[s] for s in srcs]
    if len(srcs) < 2 or len({len(s) for s in shapes}) != 1:
        raise _Refused(f"Multiply of {len(srcs)} inputs of Keras shapes {shapes} (two or more "
                       f"of one rank)")
    full = tuple(max(d) for d in zip(*shapes))
    if any(a not in (1, f) for s in shapes for a, f in zip(s, full)):
        raise _Refused(f"Multiply of Keras shapes {shapes} (each axis equal or 1)")
    ours = (full[2],) + full[:2] if len(full) == 3 else full  # refsnn's (C, H, W)
    wide = []
    for i, (src, shape) in enumerate(zip(srcs, shapes)):
        if shape != full:
            src = b.add(f"{name}_expand{i}", "expand", [src], full,
                        dict(shape=",".join(map(str, ours))))
        wide.append(src)
    out = wide[0]
    for i, other in enumerate(wide[1:], 1):  # refsnn's multiply takes two inputs
        out = b.add(name if i == len(wide) - 1 else f"{name}_{i}", "multiply", [out, other],
                    full)
    return out


def _layer_scale(b, name, cfg, srcs, weights):
    """keras.applications ConvNeXt's ``LayerScale``: ``x * gamma`` over the last axis."""
    shape = b.shapes[srcs[0]]
    axis = "channel" if len(shape) == 3 else "last"
    return b.add(name, "scale", srcs, shape, dict(axis=axis), dict(weight=weights[0]))


def _dropout(b, name, cfg, srcs, weights):
    return srcs[0]  # the identity at inference: no node


#: Keras layer class -> reader ``(builder, name, config, input names, weights) -> output name``.
LAYERS = {
    "Dense": _dense,
    "Conv2D": _conv2d,
    "DepthwiseConv2D": _depthwise,
    "BatchNormalization": _batchnorm,
    "LayerNormalization": _layernorm,
    "Activation": _activation,
    "ReLU": _relu,
    "LeakyReLU": _leaky,
    "AveragePooling2D": _pool("avgpool2d"),
    "MaxPooling2D": _pool("maxpool2d"),
    "GlobalAveragePooling2D": _global_avg,
    "Flatten": _flatten,
    "Add": _add,
    "Dropout": _dropout,
    "Multiply": _multiply,
    "LayerScale": _layer_scale,
    "Reshape": _reshape,
    "Permute": _permute,
    "Split": _split,
    "GlobalAveragePooling1D": _global_avg_1d,
    "MultiHeadAttention": _attention,
    "GlobalMaxPooling2D": _global_max,
    "ZeroPadding2D": _zero_padding,
    "Rescaling": _rescaling,
    "Softmax": _softmax_layer,
    "Concatenate": _concatenate,
}


def _history(arg):
    """The ``keras_history`` names of a call's tensor arguments (nested lists allowed)."""
    if isinstance(arg, dict) and arg.get("class_name") == "__keras_tensor__":
        return [_tensor(*arg["config"]["keras_history"])]
    if isinstance(arg, (list, tuple)):
        return [n for a in arg for n in _history(a)]
    return []


def _tensor(layer, node=0, index=0, *rest) -> str:
    """The key of output ``index`` of a layer: its name, ``name#i`` for a later output."""
    return f"{layer}#{index}" if index else layer


def _unread_kwarg(kwargs) -> str | None:
    """A call's keyword argument that would change the result and is not read (any value but
    None or False: a mask, ``key=`` given by keyword, ``use_causal_mask=True``,
    ``training=True``...), as ``"name=value"``; None if there is none."""
    for k, v in (kwargs if isinstance(kwargs, dict) else {}).items():
        if v is not None and v is not False:
            return f"{k}={repr(v)[:60]}"
    return None


def _inbound(call, file, name):
    """Input layer names of one call, Keras 3 ``{"args": [...], "kwargs": {...}}`` or Keras 2
    ``[[layer, node, tensor, kwargs], ...]``, and an unread keyword argument (or None)."""
    if isinstance(call, dict):
        return _history(call.get("args", [])), _unread_kwarg(call.get("kwargs"))
    if isinstance(call, list) and all(isinstance(e, list) and e and isinstance(e[0], str)
                                      for e in call):
        unread = [u for e in call if (u := _unread_kwarg(e[3] if len(e) > 3 else None))]
        return [_tensor(*e[:3]) for e in call], (unread or [None])[0]
    raise ModelFormatError(file, f"/layers/{name}", "inbound_nodes",
                           "Keras 3 {'args': ...} or Keras 2 [[layer, node, tensor, kwargs]]",
                           repr(call)[:80])


def _layers(config, file):
    """``(class, name, config, inbound names, unread keyword argument or None)`` in file
    order, and the output name."""
    cls = config.get("class_name")
    cfg = config.get("config", {})
    if cls == "Sequential":
        layers, prev = [], None
        for layer in cfg.get("layers", []):
            name = layer["config"]["name"]
            layers.append((layer["class_name"], name, layer["config"], [prev] if prev else [],
                           None))
            prev = name
        return layers, prev
    if cls in ("Functional", "Model"):
        layers = []
        for layer in cfg.get("layers", []):
            calls = layer.get("inbound_nodes", [])
            if len(calls) > 1:
                raise ModelFormatError(file, f"/layers/{layer['name']}", "inbound_nodes",
                                       "a layer called once (shared layers are not supported)",
                                       f"{len(calls)} calls")
            srcs, unread = _inbound(calls[0], file, layer["name"]) if calls else ([], None)
            layers.append((layer["class_name"], layer["name"], layer["config"], srcs, unread))
        outs = cfg.get("output_layers", [])
        outs = [outs] if outs and isinstance(outs[0], str) else outs
        if len(outs) != 1:
            raise ModelFormatError(file, "/", "output_layers", "one output", str(outs))
        return layers, _tensor(*outs[0][:3])
    raise ModelFormatError(file, "/", "class_name", "Sequential or Functional", repr(cls))


def build_graph(config: dict, weights: dict, file: str, dtype=np.float64) -> Graph:
    """A refsnn graph from a Keras model config and ``{layer name: [arrays]}``.

    Raises
    ------
    ModelFormatError
        For an unsupported layer class or setting (naming the layer and its class) or a
        malformed config.
    """
    layers, output = _layers(config, file)
    b = _Builder()
    names: dict[str, str] = {}  # Keras layer name -> refsnn name of its output
    input_shape = None
    for cls, name, cfg, srcs, unread in layers:
        path = f"/layers/{name}"
        if cls == "InputLayer":
            shape = cfg.get("batch_shape") or cfg.get("batch_input_shape")
            if input_shape is not None or shape is None or None in shape[1:]:
                raise ModelFormatError(file, path, "batch_shape",
                                       "one input with a fixed per-sample shape", str(shape))
            keras_shape = tuple(int(s) for s in shape[1:])
            input_shape = (keras_shape[2],) + keras_shape[:2] if len(keras_shape) == 3 \
                else keras_shape
            names[name] = INPUT
            b.shapes[INPUT] = keras_shape
            continue
        reader = LAYERS.get(cls)
        if reader is None:
            raise ModelFormatError(file, path, "class_name",
                                   f"a supported layer ({', '.join(['InputLayer', *LAYERS])})",
                                   f"{cls} (layer '{name}')")
        if unread is not None:
            raise ModelFormatError(file, path, "inbound_nodes", f"call arguments refsnn reads "
                                   f"(layer '{name}', class {cls}; keyword arguments only None "
                                   f"or False)", unread)
        for w in weights.get(name, []):
            w = np.asarray(w)
            if w.dtype.kind not in "fiu":  # complex would be cast silently, strings fail late
                raise ModelFormatError(file, path, "weights", f"real numbers (layer '{name}')",
                                       f"{w.dtype} {w.shape}")
        try:
            missing = [s for s in srcs if s not in names]
            if missing or not srcs:
                raise _Refused(f"inputs {srcs} (layers not read before it)")
            out = reader(b, name, cfg, [names[s] for s in srcs],
                         [np.asarray(w, dtype=np.float64) for w in weights.get(name, [])])
            outs = out if isinstance(out, list) else [out]  # a layer of several outputs
            names.update({_tensor(name, 0, i): o for i, o in enumerate(outs)})
        except _Refused as e:
            raise ModelFormatError(file, path, "config", f"settings refsnn can express "
                                   f"(layer '{name}', class {cls})", str(e)) from None
        except (KeyError, IndexError, ValueError) as e:
            raise ModelFormatError(file, path, "weights", f"the weights of a {cls} layer",
                                   f"{type(e).__name__}: {e}") from None
    if input_shape is None:
        raise ModelFormatError(file, "/layers", "InputLayer", "an input layer", "none")
    out = names.get(output)
    if out is None or out == INPUT:
        raise ModelFormatError(file, "/", "output", "a layer's output", repr(output))
    return make_graph(input_shape, b.nodes, out, file=file, dtype=dtype)


def _config(text, file: str, where: str) -> dict:
    """A Keras model config (a JSON object) from a string or bytes attribute or file."""
    try:
        config = json.loads(text.decode("utf-8") if isinstance(text, bytes) else text)
    except (TypeError, ValueError) as e:  # not text, not UTF-8, not JSON
        raise ModelFormatError(file, where, "model_config", "a Keras model config (JSON)",
                               f"{type(e).__name__}: {e}") from None
    if not isinstance(config, dict):
        raise ModelFormatError(file, where, "model_config", "a JSON object",
                               type(config).__name__)
    return config


#: What interpreting a malformed (but valid JSON) config raises: a missing key, a list where
#: a dict belongs, a string where a number belongs, ...
_CONFIG_ERRORS = (KeyError, IndexError, TypeError, ValueError, AttributeError)


def _build(config, weights, file, dtype) -> Graph:
    """:func:`build_graph`, with any error of a malformed config as a ModelFormatError."""
    try:
        return build_graph(config, weights, file, dtype)
    except _CONFIG_ERRORS as e:
        raise ModelFormatError(file, "/", "model_config", "a Keras model config refsnn "
                               "understands", f"{type(e).__name__}: {e}") from None


def load_keras_h5(path, dtype=np.float64) -> Graph:
    """Read a legacy Keras HDF5 file (``model.save("m.h5")``): ``model_config`` and
    ``model_weights/<layer>/<weight name>`` in each layer's ``weight_names`` order."""
    file = str(path)
    with open_h5(path, "Keras model file") as f:
        try:
            config, weights = _h5_parts(f, file)
        except H5_ERRORS as e:  # damaged file: h5py fails mid-read
            raise unreadable(file, e) from None
    return _build(config, weights, file, dtype)


def _h5_parts(f, file: str):
    """The config and ``{layer: [arrays]}`` of an open legacy Keras file."""
    from refsnn.model.format import _names

    if "model_config" not in f.attrs:
        raise ModelFormatError(file, "/", "model_config", "a Keras model config",
                               "nothing (missing)")
    config = _config(f.attrs["model_config"], file, "/")
    weights = {}
    group = f.get("model_weights")
    if not isinstance(group, h5py.Group):
        raise ModelFormatError(file, "/model_weights", "group", "the layers' weights",
                               "nothing (missing)" if group is None else "a dataset")
    for name, g in group.items():
        where = f"/model_weights/{name}"
        if not isinstance(g, h5py.Group):
            raise ModelFormatError(file, where, "kind", "a group per layer", "a dataset")
        names = _names(g.attrs.get("weight_names", np.array([], dtype=object)),
                       lambda found: ModelFormatError(file, where, "weight_names",
                                                      "a string array", found))
        for n in names:
            if n not in g:
                raise ModelFormatError(file, f"{where}/{n}", "dataset", "a weight named in "
                                       "weight_names", "nothing (missing)")
        weights[name] = [read_dataset(g, n, file, f"{where}/{n}") for n in names]
    return config, weights


#: Layer class -> its sub-layers whose variables a ``.keras`` archive stores under the
#: layer's group (``layers/<layer>/<sub-layer>/vars``), in the order of the legacy ``.h5``.
SUBLAYERS = {"MultiHeadAttention": ("query_dense", "key_dense", "value_dense", "output_dense")}


def _vars(h5, where, name, file):
    """The arrays ``0, 1, ...`` of a ``vars`` group, ``[]`` without one; checks its name."""
    g = h5.get(where)
    if g is None:
        return []
    if not isinstance(g, h5py.Group):
        raise ModelFormatError(file, where, "kind", "a group of variables", "a dataset")
    stored = g.attrs.get("name")
    if name is not None and stored is not None and not (isinstance(stored, str) and
                                                        stored == name):
        raise ModelFormatError(file, where, "name", repr(name), repr(stored))
    for i in range(len(g)):
        if str(i) not in g:
            raise ModelFormatError(file, f"{where}/{i}", "dataset", f"variables 0..{len(g) - 1}",
                                   "nothing (missing)")
    return [read_dataset(g, str(i), file, f"{where}/{i}") for i in range(len(g))]


def _archive_weights(config, h5: h5py.File, file):
    """Each layer's variables in a ``.keras`` archive, at the path Keras' loader uses."""
    layers, _ = _layers(config, file)
    used: dict[str, int] = {}
    weights = {}
    for cls, name, cfg, *_ in layers:
        key = _snake(cls)
        used[key] = used.get(key, -1) + 1
        key = key if used[key] == 0 else f"{key}_{used[key]}"
        weights[name] = _vars(h5, f"/layers/{key}/vars", name, file)
        for sub in SUBLAYERS.get(cls, ()):
            weights[name] += _vars(h5, f"/layers/{key}/{sub}/vars", None, file)
    return weights


def load_keras_archive(path, dtype=np.float64) -> Graph:
    """Read a Keras 3 ``.keras`` archive (a zip of ``config.json`` and ``model.weights.h5``)."""
    file = str(path)
    try:
        with zipfile.ZipFile(path) as z:
            text = z.read("config.json")
            blob = z.read("model.weights.h5")
    except (zipfile.BadZipFile, zipfile.LargeZipFile, KeyError, OSError, ValueError, EOFError,
            RuntimeError, NotImplementedError, zlib.error) as e:
        raise ModelFormatError(file, "/", "file", "a .keras archive with config.json and "
                               "model.weights.h5", f"unreadable ({e})") from None
    config = _config(text, file, "config.json")
    try:
        with h5py.File(io.BytesIO(blob), "r") as h5:
            weights = _archive_weights(config, h5, file)
    except _CONFIG_ERRORS + H5_ERRORS as e:  # a damaged weights file, or a config without
        raise ModelFormatError(file, "model.weights.h5", "file", "readable weights for the "
                               "config's layers", f"{type(e).__name__}: {e}") from None
    return _build(config, weights, file, dtype)
