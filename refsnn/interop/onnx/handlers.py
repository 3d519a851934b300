"""One handler per ONNX ``op_type`` that reads a run-time tensor: :data:`HANDLERS`.

A handler maps its node to one refsnn operator (or aliases its output), or raises
:class:`~refsnn.interop.onnx.reader.Refused` saying which field cannot be expressed exactly and
why. Shapes here are per sample; ``rank`` counts the batch axis as ONNX does where it says so.
"""

from __future__ import annotations

import math

import numpy as np
from onnx import TensorProto

from refsnn.interop.nodes import shape_text
from refsnn.interop.onnx.reader import BATCH, Refused, attrs_of
from refsnn.interop.onnx.structure import STRUCTURE, broadcast_product, tensor_matmul


def decimal(value) -> float:
    """A float attribute as the exporter's user wrote it: ONNX stores float attributes as
    float32, so 1e-5 arrives as 9.99999974738e-06; the shortest decimal that rounds to that
    float32 (here 1e-05) is taken, as the PyTorch route reads it from the module."""
    return float(str(np.float32(value)))


def _x(r, node, index=0):
    return r.tensor(node.input[index])


def _unused_extra_outputs(r, node) -> None:
    for v in node.output[1:]:
        if v and (r.consumers.get(v) or v in r.outputs):
            raise Refused("outputs", "only the first output used", f"'{v}' used as well")


def _unary(op, **attr_map):
    """Element-wise node -> refsnn ``op``; ``attr_map`` maps refsnn attrs to
    ``(onnx attribute, default)``."""
    def handler(r, node):
        a = attrs_of(node)
        attrs = {k: decimal(a[name]) if isinstance(d, float) and name in a
                 else a.get(name, d) for k, (name, d) in attr_map.items()}
        r.emit(node, op, [_x(r, node)[0]], attrs)
    return handler


# --- windows: pads, strides, auto_pad ------------------------------------------------------------

def _pads(r, node, kernel, in_hw, ceil_ok=False):
    """``(stride, (top, bottom), (left, right))`` of a 2-D Conv or pool, from ``pads`` or
    ``auto_pad`` (SAME_UPPER puts an odd extra row/column at the end, SAME_LOWER at the
    start); refuses what refsnn cannot express (``ceil_mode`` 1 only where ``ceil_ok``:
    refsnn's max pooling has it)."""
    a = attrs_of(node)
    if any(d != 1 for d in a.get("dilations", [1, 1])):
        raise Refused("dilations", "1 (refsnn has no dilation)", str(list(a["dilations"])))
    auto = a.get("auto_pad", "NOTSET")
    if a.get("ceil_mode", 0) and (not ceil_ok or auto not in ("NOTSET", "")):
        raise Refused("ceil_mode", "0 (refsnn's windows round the output size down; only "
                      "MaxPool with explicit pads has ceil_mode 1)", "1")
    strides = tuple(int(s) for s in a.get("strides", [1, 1]))
    if auto in ("NOTSET", ""):
        pads = [int(p) for p in a.get("pads", [0, 0, 0, 0])]
        if len(pads) != 4:
            raise Refused("pads", "4 values (a 2-D window)", str(pads))
        top, left, bottom, right = pads
        return strides, (top, bottom), (left, right)
    if auto == "VALID":
        return strides, (0, 0), (0, 0)
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        ends = []
        for size, k, s in zip(in_hw, kernel, strides):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            small, large = total // 2, total - total // 2
            ends.append((small, large) if auto == "SAME_UPPER" else (large, small))
        return strides, ends[0], ends[1]
    raise Refused("auto_pad", "NOTSET, VALID, SAME_UPPER or SAME_LOWER", repr(auto))


def _window(r, node, kernel, in_hw, ceil_ok=False) -> tuple[tuple[int, int], tuple[int, int]]:
    """``(stride, padding)`` of a pool: :func:`_pads`, which must be symmetric (a padded
    max pool must not see zeros, so no ``pad`` node can take the difference)."""
    strides, rows, cols = _pads(r, node, kernel, in_hw, ceil_ok)
    if rows[0] != rows[1] or cols[0] != cols[1]:
        raise Refused("pads", "equal padding at both ends of each axis (refsnn's pools pad "
                      "symmetrically)", f"rows {rows}, columns {cols} (begin, end)")
    return strides, (rows[0], cols[0])


def _need_image(shape, what):
    if len(shape) != 3:
        raise Refused("input shape", f"(C, H, W) per sample ({what} is 2-D only)", str(shape))


def _conv(r, node):
    src, shape = _x(r, node)
    _need_image(shape, "refsnn's conv2d")
    w = r.param(node, 1, "weight")
    if w.ndim != 4:
        raise Refused("weight", "a 4-D (O, C/groups, kH, kW) weight", str(w.shape))
    b = r.param(node, 2, "bias", required=False)
    a = attrs_of(node)
    if "kernel_shape" in a and tuple(a["kernel_shape"]) != w.shape[2:]:
        raise Refused("kernel_shape", f"the weight's {w.shape[2:]}", str(a["kernel_shape"]))
    stride, rows, cols = _pads(r, node, w.shape[2:], shape[1:])
    padding = (rows[0], cols[0])
    if rows[0] != rows[1] or cols[0] != cols[1]:
        # asymmetric zero padding (PyTorch's padding='same' with an even kernel): a pad node,
        # then the convolution without padding, as the PyTorch route writes it
        src = r.emit(node, "pad", [src], dict(rows=rows, cols=cols),
                     output=f"{node.output[0]}#pad", suffix=".pad")
        padding = (0, 0)
    bias = np.zeros(w.shape[0], w.dtype) if b is None else b
    r.emit(node, "conv2d", [src], dict(stride=stride, padding=padding,
                                       groups=int(a.get("group", 1))),
           dict(weight=w, bias=bias))


def _gemm(r, node):
    src, shape = _x(r, node)
    if len(shape) != 1:
        raise Refused("input shape", "(K,) per sample (Gemm multiplies 2-D arrays)", str(shape))
    a = attrs_of(node)
    if a.get("transA", 0):
        raise Refused("transA", "0 (the batch axis stays first)", "1")
    if float(a.get("alpha", 1.0)) != 1.0:
        raise Refused("alpha", "1.0 (folding alpha into the weight would round differently)",
                      repr(a["alpha"]))
    w = r.param(node, 1, "B")
    if w.ndim != 2:
        raise Refused("B", "a 2-D weight", str(w.shape))
    weight = w if a.get("transB", 0) else w.T
    n = weight.shape[0]
    c = r.param(node, 2, "C", required=False)
    bias = np.zeros(n, w.dtype)
    if c is not None:
        beta = float(a.get("beta", 1.0))
        c = c * c.dtype.type(beta) if beta != 1.0 else c
        if c.size not in (1, n) or (c.ndim == 2 and c.shape[0] != 1):
            raise Refused("C", f"a bias broadcast along the {n} outputs", str(c.shape))
        bias = np.broadcast_to(c.reshape(-1), (n,)).copy()
    r.emit(node, "linear", [src], params=dict(weight=weight, bias=bias))


def _matmul(r, node):
    left, right = node.input[:2]
    if not r.is_tensor(left):
        raise Refused("A", "the tensor on the left (refsnn's linear multiplies the last axis "
                      "by a constant matrix)", f"the constant '{left}'")
    if r.is_tensor(right):
        tensor_matmul(r, node, left, right)
        return
    src, shape = _x(r, node)
    w = r.param(node, 1, "B")
    if w.ndim != 2:
        raise Refused("B", "a 2-D constant matrix (K, N)", str(w.shape))
    r.emit(node, "linear", [src], params=dict(weight=w.T, bias=np.zeros(w.shape[1], w.dtype)))


# --- element-wise arithmetic --------------------------------------------------------------------

def along_axis(c: np.ndarray, shape):
    """``(axis, vector)`` if the constant ``c`` broadcast against a per-sample ``shape`` (plus
    the batch axis) varies along the channels (axis 0) or the last axis only; else None."""
    rank = len(shape)
    c = np.asarray(c)
    if c.ndim > rank + 1 or (c.ndim == rank + 1 and c.shape[0] != 1):
        return None
    s = (1,) * (rank - c.ndim + (c.ndim == rank + 1)) + tuple(c.shape[c.ndim == rank + 1:])
    c = c.reshape(s)
    if all(d == 1 for d in s):
        return "channel", np.full(shape[0], c.reshape(()), dtype=c.dtype)
    if s[-1] == shape[-1] and all(d == 1 for d in s[:-1]):
        return "last", c.reshape(-1)
    if s[0] == shape[0] and all(d == 1 for d in s[1:]):
        return "channel", c.reshape(-1)
    return None


def _const_operand(r, node):
    """``(tensor src, shape, constant, tensor_first)`` of a binary node with one constant."""
    a, b = node.input[:2]
    first = r.is_tensor(a)
    src, shape = r.tensor(a if first else b)
    c = r.param(node, 1 if first else 0, "constant operand")
    hit = along_axis(c, shape)
    if hit is None:
        raise Refused("constant operand", f"a scalar or a vector along the channels or the "
                      f"last axis of per-sample shape {shape}", f"shape {c.shape}")
    return src, shape, hit, first


def _fold_bias(r, node, src, axis, vec) -> bool:
    """``linear``/``conv2d`` (no other consumer) followed by an added constant: fold it into
    the bias (``y + 0 + c == y + c`` exactly); ``scale`` followed by one: an ``affine``."""
    prev = r.by_name.get(src)
    value = next(v for v in node.input[:2] if r.is_tensor(v))
    if prev is not None and prev["op"] == "scale" and prev["attrs"]["axis"] == axis and \
            r.only_consumer(value) and vec.shape == prev["params"]["weight"].shape:
        # x * w followed by + c: refsnn's affine computes exactly x * w + c
        prev["op"] = "affine"
        prev["params"]["bias"] = np.asarray(vec, dtype=r.dtype)
        r.tensors[node.output[0]] = (src, r.shapes[src])
        return True
    if prev is None or prev["op"] not in ("linear", "conv2d"):
        return False
    want = "last" if prev["op"] == "linear" else "channel"
    if not r.only_consumer(value) or (axis != want and len(r.shapes[src]) > 1):
        return False
    if np.any(prev["params"]["bias"] != 0) or vec.shape != prev["params"]["bias"].shape:
        return False
    prev["params"]["bias"] = np.asarray(vec, dtype=r.dtype) + prev["params"]["bias"]
    r.tensors[node.output[0]] = (src, r.shapes[src])
    return True


def _binary(kind):
    def handler(r, node):
        a, b = node.input[:2]
        if r.is_tensor(a) and r.is_tensor(b):
            (sa, ha), (sb, hb) = r.tensor(a), r.tensor(b)
            op = {"Add": "add", "Mul": "multiply"}.get(kind)
            if op is None:
                raise Refused("inputs", "a constant operand (refsnn has no "
                              f"{kind.lower()} of two tensors)", f"tensors '{a}' and '{b}'")
            if ha != hb and op == "multiply":
                broadcast_product(r, node, a, b)
                return
            if ha != hb:
                raise Refused("inputs", "tensors of equal shapes (refsnn adds tensors without "
                              "broadcasting)", f"per-sample shapes {ha} and {hb}")
            r.emit(node, op, [sa, sb])
            return
        src, shape, (axis, vec), first = _const_operand(r, node)
        ones = np.ones_like(vec)
        if kind == "Add":
            if not _fold_bias(r, node, src, axis, vec):
                r.emit(node, "affine", [src], dict(axis=axis), dict(weight=ones, bias=vec))
        elif kind == "Sub":  # x - c == x + (-c); c - x == (-1) x + c, both exactly
            w, bias = (ones, -vec) if first else (-ones, vec)
            r.emit(node, "affine", [src], dict(axis=axis), dict(weight=w, bias=bias))
        elif kind == "Mul":
            r.emit(node, "scale", [src], dict(axis=axis), dict(weight=vec))
        else:  # Div
            if not first:
                raise Refused("A", "the tensor as dividend (refsnn has no reciprocal)",
                              "a constant divided by a tensor")
            mant, _ = np.frexp(vec)
            if np.any(np.abs(mant) != 0.5):
                raise Refused("B", "a power of two (x / c equals x * (1/c) exactly only then; "
                              "refsnn has no division)", repr(float(vec[np.abs(mant) != 0.5][0])))
            r.emit(node, "scale", [src], dict(axis=axis), dict(weight=1.0 / vec))
    return handler


def _pow(r, node):
    e = r.param(node, 1, "exponent")
    if e.size != 1 or float(e.reshape(())) != 2.0:
        raise Refused("exponent", "2 (refsnn's square)", str(e.reshape(-1)[:4].tolist()))
    r.emit(node, "square", [_x(r, node)[0]])


def _clip(r, node):
    if r.opset < 11:
        a = attrs_of(node)
        lo, hi = decimal(a.get("min", -np.inf)), decimal(a.get("max", np.inf))
    else:
        lo_a = r.param(node, 1, "min", required=False)
        hi_a = r.param(node, 2, "max", required=False) if len(node.input) > 2 else None
        lo = -np.inf if lo_a is None else float(lo_a.reshape(()))
        hi = np.inf if hi_a is None else float(hi_a.reshape(()))
    src = _x(r, node)[0]
    if lo == 0.0 and hi == np.inf:
        r.emit(node, "relu", [src])
    elif np.isfinite(lo) and np.isfinite(hi) and lo < hi:
        r.emit(node, "hardtanh", [src], dict(min_value=lo, max_value=hi))
    else:
        raise Refused("min, max", "finite bounds min < max (hardtanh, ReLU6) or min 0 without "
                      "max (ReLU)", f"min {lo}, max {hi}")


def _batchnorm(r, node):
    _unused_extra_outputs(r, node)
    a = attrs_of(node)
    if a.get("training_mode", 0):
        raise Refused("training_mode", "0 (inference with running statistics)", "1")
    src, shape = _x(r, node)
    gamma, beta, mean, var = (r.param(node, i, w) for i, w in
                              enumerate(("scale", "B", "input_mean", "input_var"), start=1))
    r.emit(node, "batchnorm", [src], dict(eps=decimal(a.get("epsilon", 1e-5))),
           dict(gamma=gamma, beta=beta, mean=mean, var=var))


def _pool(op):
    def handler(r, node):
        _unused_extra_outputs(r, node)
        src, shape = _x(r, node)
        _need_image(shape, f"refsnn's {op}")
        a = attrs_of(node)
        kernel = tuple(int(k) for k in a.get("kernel_shape", ()))
        if len(kernel) != 2:
            raise Refused("kernel_shape", "2 values (a 2-D window)", str(list(kernel)))
        stride, padding = _window(r, node, kernel, shape[1:], ceil_ok=op == "maxpool2d")
        if op == "avgpool2d" and any(padding) and not a.get("count_include_pad", 0):
            raise Refused("count_include_pad", "1 when padding (refsnn divides by the kernel "
                          "area, counting the zeros of the padding)", "0")
        attrs = dict(kernel=kernel, stride=stride, padding=padding)
        if a.get("ceil_mode", 0):
            # ONNX's ceil_mode (a last window that starts in the input or its leading
            # padding and runs past the end) is PyTorch's, refsnn's ceil_mode 1
            attrs["ceil_mode"] = 1
        r.emit(node, op, [src], attrs)
    return handler


def _global_pool(op):
    def handler(r, node):
        src, shape = _x(r, node)
        _need_image(shape, f"refsnn's {op}")
        k = tuple(shape[1:])
        r.emit(node, op, [src], dict(kernel=k, stride=k))
    return handler


def _reshaped(r, node, src, shape, new):
    """Emit ``node`` as the per-sample reshape ``shape`` -> ``new`` (alias if equal)."""
    new = tuple(int(d) for d in new)
    if new == tuple(shape):
        r.tensors[node.output[0]] = (src, tuple(shape))
    elif len(new) == 1:
        r.emit(node, "flatten", [src])
    else:
        r.emit(node, "reshape", [src], dict(shape=shape_text(new)))


def _flatten(r, node):
    src, shape = _x(r, node)
    axis = int(attrs_of(node).get("axis", 1))
    if axis % (len(shape) + 1) != 1:
        raise Refused("axis", "1 (flatten each sample; the batch axis stays apart)", str(axis))
    _reshaped(r, node, src, shape, (int(np.prod(shape)),))


def _reshape(r, node):
    src, shape = _x(r, node)
    target = r.param(node, 1, "shape").astype(np.int64).reshape(-1).tolist()
    allowzero = int(attrs_of(node).get("allowzero", 0))
    full = [BATCH] + list(shape)
    out = [full[i] if (t == 0 and not allowzero and i < len(full)) else t
           for i, t in enumerate(target)]
    n = int(np.prod(shape))
    rest = out[1:]
    if -1 in rest:
        known = int(np.prod([d for d in rest if d != -1]))
        if rest.count(-1) > 1 or known == 0 or n % known:
            raise Refused("shape", f"a target for {n} elements per sample", str(target))
        rest = [n // known if d == -1 else d for d in rest]
    batch_kept = bool(out) and (out[0] == BATCH or (out[0] == -1 and int(np.prod(rest)) == n)
                                or (out[0] == r.static_batch and int(np.prod(rest)) == n))
    if not batch_kept or any(d <= 0 or d == BATCH for d in rest) or int(np.prod(rest)) != n:
        raise Refused("shape", "a target that keeps the batch axis first and reshapes each "
                      "sample", f"{target} for an input of per-sample shape {shape} (it merges "
                      "or moves the batch axis)")
    _reshaped(r, node, src, shape, rest)


def _raw_axes(r, node):
    a = attrs_of(node)
    if "axes" in a:
        return [int(x) for x in a["axes"]]
    if len(node.input) > 1 and node.input[1]:
        return [int(x) for x in r.param(node, 1, "axes").reshape(-1).tolist()]
    return None


def _axes(r, node, rank_full):
    """The ``axes`` (attribute, or input from opset 13/18 on) normalised against
    ``rank_full`` (batch axis included), sorted; None if absent."""
    axes = _raw_axes(r, node)
    return None if axes is None else sorted(x % rank_full for x in axes)


def _squeeze(unsqueeze: bool):
    def handler(r, node):
        src, shape = _x(r, node)
        raw = _raw_axes(r, node)
        rank_full = len(shape) + 1 + (len(raw or []) if unsqueeze else 0)
        axes = None if raw is None else sorted(x % rank_full for x in raw)
        if axes is None:
            if unsqueeze:
                raise Refused("axes", "the axes to insert", "none")
            axes = [i + 1 for i, d in enumerate(shape) if d == 1]
        if 0 in axes:
            raise Refused("axes", "axes after the batch axis", str(axes))
        if unsqueeze:
            new = list(shape)
            for ax in axes:
                new.insert(ax - 1, 1)
        else:
            if any(shape[ax - 1] != 1 for ax in axes):
                raise Refused("axes", "axes of size 1", f"{axes} of per-sample shape {shape}")
            new = [d for i, d in enumerate(shape) if i + 1 not in axes]
        if not new:
            raise Refused("axes", "at least one axis left per sample", str(axes))
        _reshaped(r, node, src, shape, new)
    return handler


def _transpose(r, node):
    src, shape = _x(r, node)
    rank = len(shape) + 1
    perm = [int(p) for p in attrs_of(node).get("perm", list(reversed(range(rank))))]
    if perm[0] != 0:
        raise Refused("perm", "a permutation keeping the batch axis first", str(perm))
    per = [p - 1 for p in perm[1:]]
    if per == list(range(len(shape))):
        r.tensors[node.output[0]] = (src, shape)
        return
    r.emit(node, "transpose", [src], dict(perm=shape_text(per)))


def mean_axis(axes, rank):
    """refsnn's ``mean``/``layernorm`` axis name for ONNX ``axes`` of a tensor of per-sample
    rank ``rank`` (batch axis 0 included in ``axes``); None if it has none."""
    per = tuple(a - 1 for a in axes)
    if per == (rank - 1,):
        return "last"
    if per == (0,):
        return "channel"
    if rank >= 2 and per == tuple(range(1, rank)):
        return "spatial"
    return None


def _reduce_mean(r, node):
    src, shape = _x(r, node)
    axes = _axes(r, node, len(shape) + 1)
    a = attrs_of(node)
    if axes is None or axes == []:
        if a.get("noop_with_empty_axes", 0):
            r.alias(node, node.input[0])
            return
        raise Refused("axes", "per-sample axes (not the batch axis)", "all axes")
    axis = mean_axis(axes, len(shape))
    if axis is None:
        raise Refused("axes", "the last axis, the channels (1) or all axes after the channels",
                      f"{axes} of a tensor of rank {len(shape) + 1}")
    r.emit(node, "mean", [src], dict(axis=axis, keepdims=int(a.get("keepdims", 1))))


def _layer_norm(r, node):
    _unused_extra_outputs(r, node)
    src, shape = _x(r, node)
    a = attrs_of(node)
    if int(a.get("axis", -1)) % (len(shape) + 1) != len(shape):
        raise Refused("axis", "the last axis only (refsnn's layernorm normalises one axis)",
                      str(a.get("axis")))
    d = shape[-1]
    w = r.param(node, 1, "scale")
    b = r.param(node, 2, "B", required=False)
    b = np.zeros(d, w.dtype) if b is None else b
    for name, v in (("scale", w), ("B", b)):
        if v.size != d:
            raise Refused(name, f"{d} values (the last axis)", str(v.shape))
    r.emit(node, "layernorm", [src], dict(axis="last", eps=decimal(a.get("epsilon", 1e-5))),
           dict(weight=w.reshape(-1), bias=b.reshape(-1)))


def _softmax(r, node):
    src, shape = _x(r, node)
    rank = len(shape) + 1
    axis = int(attrs_of(node).get("axis", -1 if r.opset >= 13 else 1)) % rank
    if axis != rank - 1:
        raise Refused("axis", "the last axis (refsnn's softmax)", f"axis {axis} of rank {rank}")
    r.emit(node, "softmax", [src])


def _alias(r, node):
    if node.op_type == "Dropout" and len(node.input) > 2 and node.input[2]:
        t = r.const(node.input[2])
        if t is None or bool(t.reshape(())):
            raise Refused("training_mode", "false (inference)", "true or computed")
    _unused_extra_outputs(r, node)
    r.alias(node, node.input[0])


#: ``Cast`` targets read as the tensor itself: refsnn computes in float32 or float64 (the dtype
#: the model is read in), so a cast to either is widening or same-width and changes no value.
_ALIAS_CASTS = frozenset({TensorProto.FLOAT, TensorProto.DOUBLE})

#: ``Cast`` targets that are no real-number type (every other one rounds: narrowing floats,
#: integers, bool).
_NOT_REAL = frozenset({"UNDEFINED", "STRING", "COMPLEX64", "COMPLEX128"})


def _cast(r, node):
    """``Cast`` to FLOAT or DOUBLE: an alias. Any other target is refused: a narrowing cast
    (float16, bfloat16, every float8/float4, integers) rounds every value, and refsnn has no
    rounding operator; dropping it would lose the rounding (65519 → 65504 in float16)."""
    to = attrs_of(node).get("to", TensorProto.UNDEFINED)
    known = isinstance(to, int) and to in TensorProto.DataType.values()
    if not known or to not in _ALIAS_CASTS:
        name = TensorProto.DataType.Name(to) if known else repr(to)
        raise Refused("to", "FLOAT or DOUBLE (a widening or same-width cast, read as the tensor "
                      "itself: refsnn's operators compute in float32/float64)",
                      f"{name}, not an ONNX tensor type" if not known else
                      f"{name}, not a real-number type" if name in _NOT_REAL else
                      f"{name} (a narrowing cast: it rounds every value to {name}, and refsnn "
                      "has no operator that does)")
    r.alias(node, node.input[0])


def _shape(r, node):
    _, shape = _x(r, node)
    a = attrs_of(node)
    full = np.array([BATCH] + list(shape), dtype=np.int64)
    r.consts[node.output[0]] = full[a.get("start", 0):a.get("end", len(full))]


def _hardsigmoid(r, node):
    """ONNX's ``clip(alpha·x + beta, 0, 1)`` with PyTorch's ``alpha = 1/6``, ``beta = 1/2`` is
    refsnn's ``hardsigmoid`` (``relu6(x + 3) / 6``); other slopes have no refsnn operator."""
    a = attrs_of(node)
    alpha, beta = a.get("alpha", 0.2), a.get("beta", 0.5)
    if np.float32(alpha) != np.float32(1 / 6) or np.float32(beta) != np.float32(0.5):
        raise Refused("alpha/beta", "alpha = 1/6 and beta = 0.5 (hardsigmoid as "
                      "relu6(x + 3) / 6)", f"alpha = {decimal(alpha)}, beta = {decimal(beta)}")
    r.emit(node, "hardsigmoid", [_x(r, node)[0]])


def _concat(r, node):
    """``Concat`` of run-time tensors along a per-sample axis (refsnn's axes leave out the
    batch axis); a constant operand or the batch axis is refused."""
    rank = 1 + len(_x(r, node)[1])
    axis = attrs_of(node).get("axis")
    if axis is None or not -rank <= axis < rank:
        raise Refused("axis", f"an axis in [-{rank}, {rank})", repr(axis))
    axis = axis + rank if axis < 0 else axis
    if axis == 0:
        raise Refused("axis", "a per-sample axis (not 0, the batch axis)", "0")
    inputs = [r.tensor(v)[0] for v in node.input]
    if len(inputs) == 1:  # e.g. DenseNet's torch.cat([features]): the tensor itself
        r.alias(node, node.input[0])
        return
    r.emit(node, "concat", inputs, {"axis": axis - 1})


HANDLERS = {
    "Conv": _conv,
    "Gemm": _gemm,
    "MatMul": _matmul,
    "Add": _binary("Add"),
    "Sub": _binary("Sub"),
    "Mul": _binary("Mul"),
    "Div": _binary("Div"),
    "Pow": _pow,
    "Relu": _unary("relu"),
    "LeakyRelu": _unary("leaky_relu", slope=("alpha", 0.01)),
    "Sigmoid": _unary("sigmoid"),
    "Tanh": _unary("tanh"),
    "Abs": _unary("abs"),
    "Exp": _unary("exp"),
    "Gelu": _unary("gelu", approximate=("approximate", "none")),
    "Clip": _clip,
    "HardSwish": _unary("hardswish"),
    "HardSigmoid": _hardsigmoid,
    "Concat": _concat,
    "BatchNormalization": _batchnorm,
    "MaxPool": _pool("maxpool2d"),
    "AveragePool": _pool("avgpool2d"),
    "GlobalAveragePool": _global_pool("avgpool2d"),
    "GlobalMaxPool": _global_pool("maxpool2d"),
    "Flatten": _flatten,
    "Reshape": _reshape,
    "Squeeze": _squeeze(False),
    "Unsqueeze": _squeeze(True),
    "Transpose": _transpose,
    "ReduceMean": _reduce_mean,
    "LayerNormalization": _layer_norm,
    "Softmax": _softmax,
    "Identity": _alias,
    "Dropout": _alias,
    "Cast": _cast,
    "Shape": _shape,
    **STRUCTURE,
}
"""ONNX ``op_type`` -> handler ``(reader, node)`` for nodes that read a run-time tensor."""
