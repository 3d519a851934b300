"""The Keras layer readers of :mod:`refsnn.interop.keras`: one function per Keras layer class
(the :data:`LAYERS` table), each adding the refsnn nodes that compute the layer in refsnn's
layout (images channels-first; see :mod:`refsnn.interop.keras` for the conventions).

A reader raises :class:`Refused` with the unsupported setting; the file reader adds the file,
the layer and its class to the message.
"""

from __future__ import annotations

import numpy as np

from refsnn.interop.nodes import emit_matmul, shape_text
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


class Refused(Exception):
    """Why a layer cannot be read; the reader adds file, layer and class."""


class Builder:
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
            raise Refused(f"activation {act!r} (supported: {', '.join(ACTIVATIONS)})")
        spec = ACTIVATIONS[act]
        if spec is None:
            return src
        if spec[0] == "softmax" and len(self.shapes[src]) == 3:
            raise Refused("softmax over the channels of an image (refsnn's softmax is over the "
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
            raise Refused(f"padding 'same' with kernel {k} and stride {s} on size {n} (Keras' "
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


def _check_channels_last(cfg, allowed=(None, "channels_last")) -> None:
    if cfg.get("data_format", "channels_last") not in allowed:
        raise Refused(f"data_format {cfg.get('data_format')!r} (channels_last only)")


def _image(shape):
    if len(shape) != 3:
        raise Refused(f"an input of Keras shape {shape}; expected an image (H, W, C)")
    return shape


def _conv_input(b, name, cfg, srcs):
    """A Conv2D or DepthwiseConv2D layer's settings, checked: ``(source, kernel, stride,
    (ph, pw), Keras shape)``, lopsided 'same' padding added as a ``pad`` node first."""
    _check_channels_last(cfg, ("channels_last",))
    if _pair(cfg.get("dilation_rate", 1)) != (1, 1):
        raise Refused(f"dilation_rate {cfg.get('dilation_rate')}")
    shape = _image(b.shapes[srcs[0]])
    kernel, stride = _pair(cfg["kernel_size"]), _pair(cfg.get("strides", 1))
    src, pad, shape = _symmetric(b, name, srcs[0], _padding(cfg, shape, kernel, stride), shape)
    return src, kernel, stride, pad, shape


def _conv_out(shape, kernel, stride, pad, channels):
    h, w, _ = shape
    return ((h + 2 * pad[0] - kernel[0]) // stride[0] + 1,
            (w + 2 * pad[1] - kernel[1]) // stride[1] + 1, channels)


def _conv2d(b, name, cfg, srcs, weights):
    src, kernel, stride, pad, shape = _conv_input(b, name, cfg, srcs)
    k = weights[0]  # (kh, kw, cin / groups, cout)
    bias = weights[1] if cfg.get("use_bias", True) else np.zeros(k.shape[3])
    out = b.add(name, "conv2d", [src], _conv_out(shape, kernel, stride, pad, k.shape[3]),
                dict(stride=stride, padding=pad, groups=int(cfg.get("groups", 1))),
                dict(weight=k.transpose(3, 2, 0, 1), bias=bias))
    return b.activation(name, out, cfg.get("activation", "linear"))


def _depthwise(b, name, cfg, srcs, weights):
    src, kernel, stride, pad, shape = _conv_input(b, name, cfg, srcs)
    k = weights[0]  # (kh, kw, cin, multiplier); output channel c * multiplier + j
    kh, kw, cin, mult = k.shape
    weight = k.transpose(2, 3, 0, 1).reshape(cin * mult, 1, kh, kw)
    bias = weights[1] if cfg.get("use_bias", True) else np.zeros(cin * mult)
    out = b.add(name, "conv2d", [src], _conv_out(shape, kernel, stride, pad, cin * mult),
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
        raise Refused(f"{key} {cfg.get(key)!r} (the last axis only)")


def _batchnorm(b, name, cfg, srcs, weights):
    shape = b.shapes[srcs[0]]
    _channel_axis(cfg, shape)
    if len(shape) == 2:
        raise Refused("BatchNormalization of a sequence (T, D)")
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
        raise Refused("rms_scaling=True")
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
        raise Refused(f"ReLU with threshold={thr}, negative_slope={slope}, max_value={top}")
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
        _check_channels_last(cfg)
        shape = _image(b.shapes[srcs[0]])
        kernel = _pair(cfg.get("pool_size", 2))
        stride = _pair(cfg.get("strides") or kernel)
        pads = _padding(cfg, shape, kernel, stride)
        if op == "avgpool2d" and pads != ((0, 0), (0, 0)):
            raise Refused("AveragePooling2D with padding 'same' that pads (Keras leaves the "
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
                raise Refused(f"padding 'same' of pool size {kernel}, strides {stride} on "
                              f"{shape[:2]}")
        return b.add(name, op, srcs, out_shape, attrs)
    return handler


def _global_avg(b, name, cfg, srcs, weights):
    _check_channels_last(cfg)
    shape = _image(b.shapes[srcs[0]])
    keep = bool(cfg.get("keepdims", False))
    return b.add(name, "mean", srcs, (1, 1, shape[2]) if keep else (shape[2],),
                 dict(axis="spatial", keepdims=int(keep)))


def _global_max(b, name, cfg, srcs, weights):
    _check_channels_last(cfg)
    h, w, c = _image(b.shapes[srcs[0]])
    keep = cfg.get("keepdims", False)
    pooled = b.add(name if keep else f"{name}_pool", "maxpool2d", srcs, (1, 1, c),
                   dict(kernel=(h, w), stride=(h, w)))
    return pooled if keep else b.add(name, "flatten", [pooled], (c,))


def _zero_padding(b, name, cfg, srcs, weights):
    _check_channels_last(cfg)
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
        raise Refused(f"Softmax over axis {axis} of Keras shape {shape} (refsnn's softmax is "
                      f"over the last axis of a vector or sequence)")
    return b.add(name, "softmax", srcs, shape)


def _concatenate(b, name, cfg, srcs, weights):
    shape = b.shapes[srcs[0]]
    axis = cfg.get("axis", -1) % (len(shape) + 1)
    if axis == 0:
        raise Refused("Concatenate along the batch axis")
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
        raise Refused(f"target_shape {cfg['target_shape']} for Keras shape {shape}")
    src = srcs[0]
    if len(shape) == 3:
        src = b.add(f"{name}_hwc", "transpose", [src], shape, dict(perm="1,2,0"))
    last = name if len(target) != 3 else f"{name}_flat"
    src = b.add(last, "reshape", [src], target, dict(shape=shape_text(target)))
    if len(target) == 3:
        src = b.add(name, "transpose", [src], target, dict(perm="2,0,1"))
    return src


def _permute(b, name, cfg, srcs, weights):
    """Keras' ``Permute(dims)`` (1-based over the per-sample axes) as one ``transpose``."""
    shape = b.shapes[srcs[0]]
    dims = [int(d) - 1 for d in cfg["dims"]]
    if sorted(dims) != list(range(len(shape))):
        raise Refused(f"dims {cfg['dims']} for Keras shape {shape}")
    out = tuple(shape[d] for d in dims)
    if len(shape) == 3:  # refsnn's output axis (C, H, W) <- Keras' output axis (2, 0, 1)
        perm = [_IMAGE_AXES[dims[j]] for j in (2, 0, 1)]
    else:
        perm = dims
    return b.add(name, "transpose", srcs, out, dict(perm=shape_text(perm)))


def _split(b, name, cfg, srcs, weights):
    """``keras.ops.split`` (the ``Split`` operation of a functional model): ``slice`` nodes."""
    shape = b.shapes[srcs[0]]
    axis = int(cfg.get("axis", 0)) % (len(shape) + 1)
    if axis == 0:
        raise Refused("Split along the batch axis")
    axis -= 1
    size = shape[axis]
    parts = cfg.get("indices_or_sections")
    if isinstance(parts, int):
        if parts < 1 or size % parts:
            raise Refused(f"indices_or_sections {parts} for an axis of size {size}")
        cuts = [size // parts * i for i in range(parts + 1)]
    else:
        cuts = [0, *(int(i) for i in parts), size]
        if cuts != sorted(cuts) or len(set(cuts)) != len(cuts) or cuts[-1] != size:
            raise Refused(f"indices_or_sections {parts} for an axis of size {size}")
    ours = _IMAGE_AXES[axis] if len(shape) == 3 else axis
    outs = []
    for i, (start, stop) in enumerate(zip(cuts, cuts[1:])):
        part = tuple(stop - start if a == axis else d for a, d in enumerate(shape))
        outs.append(b.add(name if i == 0 else f"{name}_{i}", "slice", srcs, part,
                          dict(axis=ours, start=start, stop=stop)))
    return outs


def _global_avg_1d(b, name, cfg, srcs, weights):
    _check_channels_last(cfg)
    shape = b.shapes[srcs[0]]
    if len(shape) != 2:
        raise Refused(f"an input of Keras shape {shape}; expected a sequence (T, D)")
    keep = bool(cfg.get("keepdims", False))
    return b.add(name, "mean", srcs, (1, shape[1]) if keep else (shape[1],),
                 dict(axis="channel", keepdims=int(keep)))  # refsnn's axis 0: the steps


def _contract(b, name, a, a_shape, c, c_shape):
    """``out[..., t, s] = sum_k a[..., t, k] · c[..., s, k]`` with refsnn operators, as the
    PyTorch exporter writes ``a @ cᵀ`` (:func:`refsnn.interop.nodes.emit_matmul`)."""
    def emit(suffix, op, inputs, attrs, params, shape):
        return b.add(f"{name}.{suffix}" if suffix else name, op, inputs, shape, attrs, params)
    return emit_matmul(emit, a, c, a_shape[:-2], *a_shape[-2:], c_shape[-2], b_transposed=True)


def _heads(b, name, src, shape, kernel, bias):
    """A projection ``(T, D) -> (T, H·K)`` (EinsumDense ``abc,cde->abde``), as ``(H, T, K)``."""
    d, h, k = kernel.shape
    t = shape[0]
    flat = b.add(f"{name}_dense", "linear", [src], (t, h * k), {},
                 dict(weight=kernel.reshape(d, h * k).T, bias=bias.reshape(h * k)))
    split = b.add(f"{name}_heads", "reshape", [flat], (t, h, k),
                  dict(shape=shape_text((t, h, k))))
    return b.add(f"{name}_by_head", "transpose", [split], (h, t, k), dict(perm="1,0,2"))


def _attention(b, name, cfg, srcs, weights):
    """``MultiHeadAttention(query, value[, key])`` over a sequence, Keras' computation:
    per head, ``softmax((q / sqrt(key_dim)) · kᵀ) · v``, then the output projection."""
    shapes = [b.shapes[s] for s in srcs]
    if len(srcs) not in (2, 3) or any(len(sh) != 2 for sh in shapes):
        raise Refused(f"inputs of Keras shapes {shapes} (query and value, and optionally key, "
                      f"each a sequence (T, D))")
    if cfg.get("attention_axes") not in (None, [1], 1):
        raise Refused(f"attention_axes {cfg.get('attention_axes')} (over the steps only)")
    w = list(weights)
    if not cfg.get("use_bias", True) and len(w) == 4:  # zero biases after each kernel
        w = [a for i, kern in enumerate(w)
             for a in (kern, np.zeros(kern.shape[-1:] if i == 3 else kern.shape[1:]))]
    if len(w) != 8:
        raise Refused(f"{len(weights)} weights (query, key, value and output kernels and "
                      f"biases)")
    qk, qb, kk, kb, vk, vb, ok, ob = w
    out_shape = cfg.get("output_shape")
    if out_shape not in (None, ok.shape[-1], [ok.shape[-1]]):
        raise Refused(f"output_shape {out_shape} (one output axis)")
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
    mixed = b.add(f"{name}_concat", "reshape", [mixed], (t, h * v),
                  dict(shape=shape_text((t, h * v))))
    return b.add(name, "linear", [mixed], (t, ok.shape[-1]), {},
                 dict(weight=ok.reshape(h * v, -1).T, bias=ob))


def _add(b, name, cfg, srcs, weights):
    return b.add(name, "add", srcs, b.shapes[srcs[0]])


def _multiply(b, name, cfg, srcs, weights):
    """The product of the inputs; an input with axes of size 1 where the others have more
    (squeeze-and-excitation's ``(1, 1, C)`` gate) is repeated along them (``expand``)."""
    shapes = [b.shapes[s] for s in srcs]
    if len(srcs) < 2 or len({len(s) for s in shapes}) != 1:
        raise Refused(f"Multiply of {len(srcs)} inputs of Keras shapes {shapes} (two or more "
                      f"of one rank)")
    full = tuple(max(d) for d in zip(*shapes))
    if any(a not in (1, f) for s in shapes for a, f in zip(s, full)):
        raise Refused(f"Multiply of Keras shapes {shapes} (each axis equal or 1)")
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
