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
    """

    name: str
    n_inputs: int
    attrs: Mapping[str, AttrSpec] = field(default_factory=dict)
    params: tuple[str, ...] = ()
    param_shapes: Callable = lambda attrs, in_shapes: {}
    out_shape: Callable = lambda attrs, in_shapes, params: in_shapes[0]


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
    _need_rank(in_shapes[0], (1,), "linear takes a vector; add a flatten node first")
    # The output width is read from the weight itself, so only the input width is fixed here.
    return {"weight": (None, in_shapes[0][0]), "bias": (None,)}


def _linear_out(attrs, in_shapes, params):
    out = params["weight"].shape[0]
    if params["bias"].shape != (out,):
        raise ShapeRuleError("bias", f"shape ({out},)", str(params["bias"].shape))
    return (out,)


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


def _pool_out(attrs, in_shapes, params):
    _need_rank(in_shapes[0], (3,), "pooling takes (C, H, W)")
    c, h, w = in_shapes[0]
    kh, kw = attrs["kernel"]
    sh, sw = attrs["stride"]
    ph, pw = attrs["padding"]
    if 2 * ph > kh or 2 * pw > kw:
        raise ShapeRuleError("padding", "at most half the kernel", str((ph, pw)))
    return (c, _window_out(h, kh, sh, ph, "kernel"), _window_out(w, kw, sw, pw, "kernel"))


def _flatten_out(attrs, in_shapes, params):
    return (int(np.prod(in_shapes[0])),)


def _add_out(attrs, in_shapes, params):
    first = in_shapes[0]
    for s in in_shapes[1:]:
        if s != first:
            raise ShapeRuleError("inputs", f"equal shapes {first}", str(s))
    return first


_POOL_ATTRS = {
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
        OpSpec("avgpool2d", 1, attrs=_POOL_ATTRS, out_shape=_pool_out),
        OpSpec("maxpool2d", 1, attrs=_POOL_ATTRS, out_shape=_pool_out),
        OpSpec("flatten", 1, out_shape=_flatten_out),
        OpSpec("add", -2, out_shape=_add_out),
        OpSpec("identity", 1),
    ]
}
