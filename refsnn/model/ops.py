"""The operators a refsnn graph may hold: their attributes, parameters and shape rules.

Each operator is one :class:`OpSpec` in :data:`OPS`; loading, validation, the ANN forward pass
and conversion all look operators up here, so adding an operator is adding one entry.

Shapes are *per sample*: ``(C, H, W)`` for images, ``(N,)`` for vectors. The batch axis is
never part of a graph's shapes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np

Shape = tuple[int, ...]


class ShapeRuleError(ValueError):
    """Raised by a shape rule; the validator adds the file, path and field."""

    def __init__(self, field: str, expected: str, found: str):
        super().__init__(f"{field}: expected {expected}, found {found}")
        self.field = field
        self.expected = expected
        self.found = found


@dataclass(frozen=True)
class AttrSpec:
    """One attribute of an operator.

    ``kind`` is ``"int"``, ``"pair"`` (two ints), ``"float"`` or ``"str"``; ``default`` of
    ``None`` means the attribute is required; ``minimum`` bounds ints and pairs from below and
    ``choices`` restricts strings.
    """

    kind: str
    default: object = None
    minimum: int | None = None
    choices: tuple[str, ...] | None = None


@dataclass(frozen=True)
class OpSpec:
    """Schema of one operator.

    Parameters
    ----------
    name : str
        The name stored in the file's ``op`` attribute.
    n_inputs : int
        Number of inputs; ``-2`` means two or more.
    attrs : mapping of str to AttrSpec
        Allowed attributes.
    params : tuple of str
        Names of the parameter arrays, all required.
    param_shapes : callable
        ``(attrs, in_shapes) -> {name: shape}``, the shape each parameter must have.
    out_shape : callable
        ``(attrs, in_shapes, params) -> shape``; raises :class:`ShapeRuleError`.
    previous : bool
        The node's value at step ``t`` is its input's value at step ``t - 1`` (a recurrent
        edge): it is not ordered after its input, so a cycle through it is allowed; its shape
        comes from its attributes (``in_shapes`` holds None where the input comes later) and
        :func:`~refsnn.model.graph.make_graph` checks that its input has that shape.
    """

    name: str
    n_inputs: int
    attrs: Mapping[str, AttrSpec] = field(default_factory=dict)
    params: tuple[str, ...] = ()
    param_shapes: Callable = lambda attrs, in_shapes: {}
    out_shape: Callable = lambda attrs, in_shapes, params: in_shapes[0]
    previous: bool = False


def _need_rank(shape: Shape, ranks: tuple[int, ...], what: str) -> None:
    if len(shape) not in ranks:
        wanted = " or ".join(f"rank {r}" for r in ranks)
        raise ShapeRuleError("input shape", f"{wanted} ({what})", str(shape))


def _window_out(size: int, kernel: int, stride: int, pad: int, field_name: str) -> int:
    span = size + 2 * pad - kernel
    if span < 0:
        raise ShapeRuleError(field_name, f"kernel {kernel} to fit padded size {size + 2 * pad}",
                             f"kernel {kernel}")
    return span // stride + 1


def _linear_params(attrs, in_shapes):
    # Applied over the last axis, like torch.nn.Linear: (..., N) -> (..., M). The output width
    # is read from the weight itself, so only the input width N is fixed here.
    return {"weight": (None, in_shapes[0][-1]), "bias": (None,)}


def _linear_out(attrs, in_shapes, params):
    out = params["weight"].shape[0]
    if params["bias"].shape != (out,):
        raise ShapeRuleError("bias", f"shape ({out},)", str(params["bias"].shape))
    return tuple(in_shapes[0][:-1]) + (out,)


def _conv_params(attrs, in_shapes):
    _need_rank(in_shapes[0], (3,), "conv2d takes (C, H, W)")
    c = in_shapes[0][0]
    g = attrs["groups"]
    if c % g:
        raise ShapeRuleError("groups", f"a divisor of the {c} input channels", str(g))
    return {"weight": (None, c // g, None, None), "bias": (None,)}


def _conv_out(attrs, in_shapes, params):
    o, _, kh, kw = params["weight"].shape
    g = attrs["groups"]
    if o % g:
        raise ShapeRuleError("weight", f"output channels divisible by groups={g}", str(o))
    if params["bias"].shape != (o,):
        raise ShapeRuleError("bias", f"shape ({o},)", str(params["bias"].shape))
    _, h, w = in_shapes[0]
    sh, sw = attrs["stride"]
    ph, pw = attrs["padding"]
    return (o, _window_out(h, kh, sh, ph, "weight"), _window_out(w, kw, sw, pw, "weight"))


def _bn_params(attrs, in_shapes):
    _need_rank(in_shapes[0], (1, 3), "batchnorm takes (C,) or (C, H, W)")
    c = in_shapes[0][0]
    return {name: (c,) for name in ("gamma", "beta", "mean", "var")}


def _bn_out(attrs, in_shapes, params):
    if np.any(params["var"] < 0):
        raise ShapeRuleError("var", "non-negative variances", "a negative value")
    if attrs["eps"] < 0:
        raise ShapeRuleError("eps", "eps >= 0", str(attrs["eps"]))
    if np.any(params["var"] + attrs["eps"] <= 0):
        raise ShapeRuleError("var", "var + eps > 0", "var + eps <= 0")
    return in_shapes[0]


def pool_size(size: int, kernel: int, stride: int, pad: int, ceil_mode: int) -> int:
    """Output size of a pooling axis, PyTorch's rule: with ``ceil_mode`` the last window may
    run past the padded input (it covers what is left), but must start inside the input or
    its leading padding."""
    span = size + 2 * pad - kernel
    if not ceil_mode:
        return span // stride + 1
    out = -(-span // stride) + 1
    return out - 1 if (out - 1) * stride >= size + pad else out


def pool_overhang(size: int, kernel: int, stride: int, pad: int, out: int) -> int:
    """How far the last of ``out`` windows runs past the padded input (``ceil_mode``): pad
    that much more after the input, with a value that never wins."""
    return max(0, (out - 1) * stride + kernel - (size + 2 * pad))


def pool_out(attrs, in_shapes, params):
    _need_rank(in_shapes[0], (3,), "pooling takes (C, H, W)")
    c, h, w = in_shapes[0]
    kh, kw = attrs["kernel"]
    sh, sw = attrs["stride"]
    ph, pw = attrs["padding"]
    if 2 * ph > kh or 2 * pw > kw:
        raise ShapeRuleError("padding", "at most half the kernel", str((ph, pw)))
    ceil = attrs.get("ceil_mode", 0)
    if ceil > 1:
        raise ShapeRuleError("ceil_mode", "0 or 1", str(ceil))
    _window_out(h, kh, sh, ph, "kernel"), _window_out(w, kw, sw, pw, "kernel")  # fit checks
    return (c, pool_size(h, kh, sh, ph, ceil), pool_size(w, kw, sw, pw, ceil))


def _flatten_out(attrs, in_shapes, params):
    return (int(np.prod(in_shapes[0])),)


def _add_out(attrs, in_shapes, params):
    first = in_shapes[0]
    for s in in_shapes[1:]:
        if s != first:
            raise ShapeRuleError("inputs", f"equal shapes {first}", str(s))
    return first


def _hardtanh_out(attrs, in_shapes, params):
    lo, hi = attrs["min_value"], attrs["max_value"]
    if not lo < hi:
        raise ShapeRuleError("min_value", f"less than max_value={hi!r}", repr(lo))
    return in_shapes[0]


def _qcfs_out(attrs, in_shapes, params):
    if "clip" in params and not np.all(params["clip"] > 0):
        raise ShapeRuleError("clip", "a clip value lambda > 0", repr(float(params["clip"][0])))
    return in_shapes[0]


def axis_index(axis: str, shape: Shape) -> int:
    """The per-sample axis an ``axis`` attribute names: ``"last"`` or ``"channel"`` (axis 0)."""
    return len(shape) - 1 if axis == "last" else 0


def _along_axis(*names: str) -> Callable:
    """The ``param_shapes`` of an op with one vector per name along its ``axis`` attribute."""
    def param_shapes(attrs, in_shapes):
        d = in_shapes[0][axis_index(attrs["axis"], in_shapes[0])]
        return {name: (d,) for name in names}
    return param_shapes


def _layernorm_out(attrs, in_shapes, params):
    if not attrs["eps"] > 0:
        raise ShapeRuleError("eps", "eps > 0", repr(attrs["eps"]))
    return in_shapes[0]


def parse_shape(text: str) -> tuple[int, ...]:
    """The per-sample shape a ``reshape`` node's ``shape`` string (e.g. ``"16,8"``) names."""
    pieces = text.split(",")
    if not all(p.strip().isdigit() and p.strip().isascii() and int(p) > 0 for p in pieces):
        raise ShapeRuleError("shape", "positive integers written like '16,8'", repr(text))
    return tuple(int(p) for p in pieces)


def _reshape_out(attrs, in_shapes, params):
    shape = parse_shape(attrs["shape"])
    if int(np.prod(shape)) != int(np.prod(in_shapes[0])):
        raise ShapeRuleError("shape", f"{int(np.prod(in_shapes[0]))} elements like the input "
                             f"{in_shapes[0]}", f"{shape}")
    return shape


def parse_perm(text: str, rank: int) -> tuple[int, ...]:
    """The permutation a ``transpose`` node's ``perm`` string (e.g. ``"1,0"``) names.

    Raises :class:`ShapeRuleError` unless ``text`` is comma-separated non-negative integers
    forming a permutation of ``0..rank-1``.
    """
    example = ",".join(str(i) for i in reversed(range(rank)))
    expected = f"a permutation of 0..{rank - 1} written like '{example}'"
    pieces = text.split(",")
    if not all(p.strip().isdigit() and p.strip().isascii() for p in pieces):
        raise ShapeRuleError("perm", expected, repr(text))
    perm = tuple(int(p) for p in pieces)
    if sorted(perm) != list(range(rank)):
        raise ShapeRuleError("perm", expected, repr(text))
    return perm


def _transpose_out(attrs, in_shapes, params):
    shape = in_shapes[0]
    return tuple(shape[i] for i in parse_perm(attrs["perm"], len(shape)))


def mean_axes(axis: str, rank: int) -> tuple[int, ...]:
    """The per-sample axes a ``mean`` node averages over, for an input of rank ``rank``."""
    if axis == "last":
        return (rank - 1,)
    if axis == "channel":
        return (0,)
    return tuple(range(1, rank))  # "spatial": every axis after the channels


def _mean_out(attrs, in_shapes, params):
    shape = in_shapes[0]
    if attrs["keepdims"] > 1:
        raise ShapeRuleError("keepdims", "0 or 1", str(attrs["keepdims"]))
    if attrs["axis"] == "spatial" and len(shape) < 2:
        raise ShapeRuleError("input shape", "rank >= 2 (axis 'spatial' averages the axes after "
                             "the channels of (C, H, W) or (C, ...))", str(shape))
    axes = mean_axes(attrs["axis"], len(shape))
    if attrs["keepdims"]:
        return tuple(1 if i in axes else s for i, s in enumerate(shape))
    out = tuple(s for i, s in enumerate(shape) if i not in axes)
    if not out:
        raise ShapeRuleError("keepdims", f"1 when the mean leaves no axis of {shape} "
                             "(a per-sample shape has rank >= 1)", "0")
    return out


def _concat_out(attrs, in_shapes, params):
    first = in_shapes[0]
    axis = attrs["axis"]
    if axis >= len(first):
        raise ShapeRuleError("axis", f"a per-sample axis of {first} (0..{len(first) - 1})",
                             str(axis))
    for s in in_shapes[1:]:
        if len(s) != len(first) or any(a != b for i, (a, b) in enumerate(zip(s, first))
                                        if i != axis):
            raise ShapeRuleError("inputs", f"shapes equal to {first} except along axis {axis}",
                                 str(s))
    return tuple(sum(s[axis] for s in in_shapes) if i == axis else d
                 for i, d in enumerate(first))


def _expand_out(attrs, in_shapes, params):
    shape = parse_shape(attrs["shape"])
    src = in_shapes[0]
    if len(src) != len(shape) or any(a not in (1, b) for a, b in zip(src, shape)):
        raise ShapeRuleError("shape", f"a shape of rank {len(src)} that {src} broadcasts to "
                             f"(each axis equal or the input's is 1)", str(shape))
    return shape


def _slice_out(attrs, in_shapes, params):
    shape, axis = in_shapes[0], attrs["axis"]
    if axis >= len(shape):
        raise ShapeRuleError("axis", f"a per-sample axis of {shape} (0..{len(shape) - 1})",
                             str(axis))
    if not attrs["start"] < attrs["stop"] <= shape[axis]:
        raise ShapeRuleError("stop", f"start < stop <= {shape[axis]} (axis {axis})",
                             f"start {attrs['start']}, stop {attrs['stop']}")
    return tuple(attrs["stop"] - attrs["start"] if i == axis else d for i, d in enumerate(shape))


def _upsample_out(attrs, in_shapes, params):
    _need_rank(in_shapes[0], (3,), "upsample takes (C, H, W)")
    c, h, w = in_shapes[0]
    sh, sw = attrs["scale"]
    return (c, h * sh, w * sw)


def _pad_out(attrs, in_shapes, params):
    _need_rank(in_shapes[0], (3,), "pad takes (C, H, W)")
    c, h, w = in_shapes[0]
    return (c, h + sum(attrs["rows"]), w + sum(attrs["cols"]))


POOL_ATTRS = {
    "kernel": AttrSpec("pair", minimum=1),
    "stride": AttrSpec("pair", minimum=1),
    "padding": AttrSpec("pair", default=(0, 0), minimum=0),
}

OPS: dict[str, OpSpec] = {
    spec.name: spec
    for spec in [
        OpSpec("linear", 1, params=("weight", "bias"),
               param_shapes=_linear_params, out_shape=_linear_out),
        OpSpec("conv2d", 1,
               attrs={"stride": AttrSpec("pair", default=(1, 1), minimum=1),
                      "padding": AttrSpec("pair", default=(0, 0), minimum=0),
                      "groups": AttrSpec("int", default=1, minimum=1)},
               params=("weight", "bias"), param_shapes=_conv_params, out_shape=_conv_out),
        OpSpec("batchnorm", 1, attrs={"eps": AttrSpec("float", default=1e-5)},
               params=("gamma", "beta", "mean", "var"),
               param_shapes=_bn_params, out_shape=_bn_out),
        OpSpec("relu", 1),
        OpSpec("avgpool2d", 1, attrs=POOL_ATTRS, out_shape=pool_out),
        # ceil_mode 1: PyTorch's ceil_mode=True (extra windows over what is left at the end)
        OpSpec("maxpool2d", 1, attrs={**POOL_ATTRS,
                                      "ceil_mode": AttrSpec("int", default=0, minimum=0)},
               out_shape=pool_out),
        OpSpec("flatten", 1, out_shape=_flatten_out),
        OpSpec("add", -2, out_shape=_add_out),
        OpSpec("identity", 1),
        # Element-wise activations: output shape = input shape.
        OpSpec("gelu", 1, attrs={"approximate": AttrSpec("str", default="none",
                                                         choices=("none", "tanh"))}),
        OpSpec("silu", 1),
        OpSpec("sigmoid", 1),
        OpSpec("tanh", 1),
        OpSpec("leaky_relu", 1, attrs={"slope": AttrSpec("float", default=0.01)}),
        # relu6 is hardtanh with min_value 0 and max_value 6.
        OpSpec("hardtanh", 1,
               attrs={"min_value": AttrSpec("float", default=-1.0),
                      "max_value": AttrSpec("float", default=1.0)},
               out_shape=_hardtanh_out),
        # QCFS (Bu et al. 2022): lambda * floor(clip(x / lambda, 0, 1) * levels + 1/2) / levels,
        # one clip value lambda per layer.
        OpSpec("qcfs", 1, attrs={"levels": AttrSpec("int", minimum=1)}, params=("clip",),
               param_shapes=lambda attrs, in_shapes: {"clip": (1,)}, out_shape=_qcfs_out),
        OpSpec("abs", 1),
        OpSpec("square", 1),
        OpSpec("exp", 1),
        # Normalisation, reductions and structure.
        OpSpec("layernorm", 1,
               attrs={"axis": AttrSpec("str", default="last", choices=("last", "channel")),
                      "eps": AttrSpec("float", default=1e-5)},
               params=("weight", "bias"), param_shapes=_along_axis("weight", "bias"),
               out_shape=_layernorm_out),
        OpSpec("softmax", 1, attrs={"axis": AttrSpec("str", default="last", choices=("last",))}),
        OpSpec("multiply", 2, out_shape=_add_out),
        OpSpec("transpose", 1, attrs={"perm": AttrSpec("str")}, out_shape=_transpose_out),
        OpSpec("mean", 1,
               attrs={"axis": AttrSpec("str", choices=("last", "channel", "spatial")),
                      "keepdims": AttrSpec("int", default=0, minimum=0)},
               out_shape=_mean_out),
        OpSpec("scale", 1,
               attrs={"axis": AttrSpec("str", default="channel", choices=("last", "channel"))},
               params=("weight",), param_shapes=_along_axis("weight")),
        # Per-channel (or last-axis) affine map weight * x + bias, e.g. ResMLP's Aff.
        OpSpec("affine", 1,
               attrs={"axis": AttrSpec("str", default="channel", choices=("last", "channel"))},
               params=("weight", "bias"), param_shapes=_along_axis("weight", "bias")),
        # A C-order reshape of the per-sample array, e.g. (C, H, W) -> (C, H*W).
        OpSpec("reshape", 1, attrs={"shape": AttrSpec("str")}, out_shape=_reshape_out),
        # Concatenation of two or more inputs along one per-sample axis (0: the channels).
        OpSpec("concat", -2, attrs={"axis": AttrSpec("int", minimum=0)},
               out_shape=_concat_out),
        # The elements start..stop-1 along one per-sample axis (torch.chunk / split pieces).
        OpSpec("slice", 1, attrs={"axis": AttrSpec("int", minimum=0),
                                  "start": AttrSpec("int", minimum=0),
                                  "stop": AttrSpec("int", minimum=1)}, out_shape=_slice_out),
        # Broadcast to a larger shape of the same rank (axes of size 1 repeated), e.g. the
        # per-channel gate (C, 1, 1) of squeeze-and-excitation to (C, H, W).
        OpSpec("expand", 1, attrs={"shape": AttrSpec("str")}, out_shape=_expand_out),
        # Nearest-neighbour upsampling by integer factors: out[c, y, x] = in[c, y // sh, x // sw].
        OpSpec("upsample", 1, attrs={"scale": AttrSpec("pair", minimum=1)},
               out_shape=_upsample_out),
        # Zero padding, possibly asymmetric: rows = (top, bottom), cols = (left, right).
        OpSpec("pad", 1, attrs={"rows": AttrSpec("pair", minimum=0),
                                "cols": AttrSpec("pair", minimum=0)}, out_shape=_pad_out),
        # MobileNetV3's hardsigmoid relu6(x + 3) / 6 and hardswish x * hardsigmoid(x).
        OpSpec("hardsigmoid", 1),
        OpSpec("hardswish", 1),
        # log(softmax(x)) over the last axis, e.g. the classic MNIST net's output.
        OpSpec("log_softmax", 1,
               attrs={"axis": AttrSpec("str", default="last", choices=("last",))}),
    ]
}
