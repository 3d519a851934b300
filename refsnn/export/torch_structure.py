"""Exporter handlers for structure and eval-mode no-ops: concatenation, chunk/split pieces and
slices, broadcasting products (squeeze-and-excitation), matmul of two activations, zero
padding, nearest upsampling, clipped ReLU functions, ``F.layer_norm``, dropout and stochastic
depth in eval mode.

Part of :mod:`refsnn.export.torch` (needs torch), which merges this module's tables
(:data:`MODULES`, :data:`FUNCTIONS`, :data:`NAMED_FUNCTIONS`, :data:`METHODS`) into its own;
each handler is ``(exporter, fx_node[, module]) -> refsnn name`` and raises ``Refused`` with the
setting it cannot express.
"""

from __future__ import annotations

import operator

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.fx import Node as FxNode

from refsnn.export.torch_common import Refused, bind, to_numpy, unary
from refsnn.interop.nodes import emit_matmul, shape_text


def _upsample(ex, node, m):
    _, h, w = ex.shape(node.args[0])
    if m.mode != "nearest":
        raise Refused(f"mode={m.mode!r} is not supported (refsnn upsamples with "
                      f"mode='nearest')")
    _, oh, ow = ex.shape(node)
    if oh % h or ow % w:
        raise Refused(f"a non-integer scale from {(h, w)} to {(oh, ow)} (refsnn repeats each "
                      f"pixel an integer number of times)")
    return ex.emit(node, "upsample", [ex.src(node.args[0])], dict(scale=(oh // h, ow // w)))


def _zero_pad(ex, node, pads):
    """``pads`` as torch orders them: (left, right[, top, bottom])."""
    pads = [int(p) for p in pads]
    if len(pads) not in (2, 4) or min(pads) < 0:
        raise Refused(f"padding {tuple(pads)} (refsnn pads the last two axes by amounts "
                      f">= 0)")
    left, right, top, bottom = (pads + [0, 0])[:4]
    return ex.emit(node, "pad", [ex.src(node.args[0])],
                   dict(rows=(top, bottom), cols=(left, right)))


def _zeropad_module(ex, node, m):
    if float(getattr(m, "value", 0.0)) != 0.0:
        raise Refused(f"value={m.value!r} is not supported (refsnn pads with zeros)")
    return _zero_pad(ex, node, m.padding)


def _dropout(ex, node):
    """``F.dropout`` and its kin: the identity when ``training=False``. Their default is
    ``training=True``, which drops even in eval mode, so that is refused."""
    a = bind(lambda input, p=0.5, training=True, inplace=False: None, node)
    if a["training"] is not False:
        raise Refused("training=True (the functional dropout's default drops even in eval "
                      "mode; call it with training=self.training)")
    return ex.src(node.args[0])


def _stochastic_depth(ex, node):
    """torchvision's ``stochastic_depth``: the identity when not training (or ``p == 0``)."""
    a = bind(lambda input, p, mode, training=True: None, node)
    if a["training"] is not False and a["p"] != 0:
        raise Refused(f"training=True with p={a['p']!r} (it drops rows at random; export "
                      f"in eval mode)")
    return ex.src(node.args[0])


_relu6 = unary("hardtanh", min_value=lambda m: 0.0, max_value=lambda m: 6.0)


def _hardtanh(ex, node):
    a = bind(lambda input, min_val=-1.0, max_val=1.0, inplace=False: None, node)
    return ex.emit(node, "hardtanh", [ex.src(node.args[0])],
                   dict(min_value=float(a["min_val"]), max_value=float(a["max_val"])))


def _pad(ex, node):
    a = bind(lambda input, pad, mode="constant", value=None: None, node)
    if a["mode"] != "constant" or (a["value"] or 0.0) != 0.0:
        raise Refused(f"mode={a['mode']!r}, value={a['value']!r} is not supported (refsnn "
                      f"pads with zeros: mode='constant', value=0)")
    return _zero_pad(ex, node, a["pad"])


def _cat(ex, node):
    tensors = node.args[0] if node.args else node.kwargs.get("tensors")
    dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
    rank = len(ex.shape(node)) + 1
    if dim % rank == 0:
        raise Refused(f"concatenation along dim={dim}, the batch axis")
    if not isinstance(tensors, (list, tuple)) or len(tensors) < 1:
        raise Refused("the tensors are not given as a list")
    if len(tensors) == 1:
        return ex.src(tensors[0])
    return ex.emit(node, "concat", [ex.src(t) for t in tensors], dict(axis=dim % rank - 1))


def _split(ex, node):
    """``torch.chunk`` / ``split`` (and the methods): remember the pieces; each ``[i]`` taken
    from the result becomes a ``slice`` node (see :func:`_getitem`)."""
    meta = node.meta.get("tensor_meta")
    if not isinstance(meta, (tuple, list)):
        raise Refused("its value is not a tuple of tensors")
    sig = (lambda input, chunks, dim=0: None) if node.target in ("chunk", torch.chunk) else \
        (lambda tensor, split_size_or_sections, dim=0: None)
    src = node.args[0]
    rank = len(ex.shape(src)) + 1
    dim = bind(sig, node)["dim"] % rank
    if dim == 0:
        raise Refused("it splits the batch axis (axis 0)")
    start, pieces = 0, []
    for m in meta:
        size = int(m.shape[dim])
        pieces.append((dim - 1, start, start + size))
        start += size
    ex.pieces[node] = (ex.src(src), pieces)
    return None


def _getitem(ex, node):
    """A piece of a chunk/split, or ``x[:, a:b]``-style slicing along one axis."""
    src, index = node.args
    if src in ex.pieces:
        name, pieces = ex.pieces[src]
        if not isinstance(index, int):
            raise Refused(f"taking the pieces with {index!r} (refsnn takes chunk/split pieces "
                          f"one by one: a, b = x.chunk(2, 1))")
        axis, start, stop = pieces[index]
    else:
        index = index if isinstance(index, tuple) else (index,)
        shape = ex.shape(src)
        cut = [(i, s) for i, s in enumerate(index) if s != slice(None)]
        if (len(index) > len(shape) + 1 or len(cut) != 1 or cut[0][0] == 0
                or not isinstance(cut[0][1], slice) or cut[0][1].step not in (None, 1)):
            raise Refused(f"indexing with {index!r} (refsnn slices one per-sample axis, "
                          f"step 1)")
        axis = cut[0][0] - 1
        start, stop, _ = cut[0][1].indices(shape[axis])
        name = ex.src(src)
    return ex.emit(node, "slice", [name], dict(axis=axis, start=start, stop=stop))


def _matmul(ex, node):
    """``a @ b`` of two computed tensors, per sample ``(..., T, D) @ (..., D, S)``, as refsnn
    operators (:func:`refsnn.interop.nodes.emit_matmul`)."""
    a, b = node.args[:2]
    if not all(isinstance(t, FxNode) and t in ex.names for t in (a, b)):
        raise Refused("a product with a constant matrix (use nn.Linear)")
    sa, sb = ex.shape(a), ex.shape(b)
    if len(sa) < 2 or len(sa) != len(sb) or sa[:-2] != sb[:-2] or sa[-1] != sb[-2]:
        raise Refused(f"a product of per-sample shapes {sa} and {sb} (refsnn multiplies "
                      f"(..., T, D) by (..., D, S))")

    def emit(suffix, op, inputs, attrs, params, shape):
        return ex.emit(node, op, inputs, attrs, params, suffix=suffix and "." + suffix)
    return emit_matmul(emit, ex.src(a), ex.src(b), sa[:-2], *sa[-2:], sb[-1])


def _layernorm(ex, node, m: nn.LayerNorm):
    shape = tuple(m.normalized_shape)
    if len(shape) != 1:
        raise Refused(f"LayerNorm over {len(shape)} axes (refsnn normalises one axis)")
    d = shape[0]
    weight = to_numpy(m.weight) if m.weight is not None else np.ones(d)
    bias = to_numpy(m.bias) if getattr(m, "bias", None) is not None else np.zeros(d)
    return ex.emit(node, "layernorm", [ex.src(node.args[0])],
                   dict(axis="last", eps=float(m.eps)), dict(weight=weight, bias=bias))


def _const(ex, arg, what):
    if arg is None:
        return None
    if isinstance(arg, FxNode):
        if arg not in ex.consts:
            raise Refused(f"{what} is computed, not a parameter")
        return ex.consts[arg]
    return torch.as_tensor(arg)


def _layer_norm(ex, node):
    a = bind(lambda input, normalized_shape, weight=None, bias=None, eps=1e-5: None, node)
    shape = tuple(a["normalized_shape"]) if not isinstance(a["normalized_shape"], int) \
        else (a["normalized_shape"],)
    m = nn.LayerNorm(shape, eps=float(a["eps"]), dtype=torch.float64)
    with torch.no_grad():
        for key in ("weight", "bias"):
            value = _const(ex, a[key], key)
            getattr(m, key).copy_(value if value is not None else getattr(m, key))
    return _layernorm(ex, node, m)


def _per_sample_scale(ex, node, tensor_arg, const):
    """``x * c`` for a constant ``c`` broadcast along one axis: a refsnn ``scale`` node."""
    shape = ex.shape(tensor_arg)
    c = torch.as_tensor(const, dtype=torch.float64)
    if c.dim() == 0:
        d = shape[0]
        return ex.emit(node, "scale", [ex.src(tensor_arg)], dict(axis="channel"),
                       dict(weight=np.full(d, float(c))))
    c = c.reshape(tuple(c.shape[1:]) if c.dim() > len(shape) and c.shape[0] == 1 else c.shape)
    lead = (1,) * (len(shape) - c.dim())
    full = lead + tuple(c.shape)
    if len(full) == len(shape):
        if all(s == 1 for s in full[:-1]) and full[-1] == shape[-1]:
            return ex.emit(node, "scale", [ex.src(tensor_arg)], dict(axis="last"),
                           dict(weight=to_numpy(c.reshape(-1))))
        if full[0] == shape[0] and all(s == 1 for s in full[1:]):
            return ex.emit(node, "scale", [ex.src(tensor_arg)], dict(axis="channel"),
                           dict(weight=to_numpy(c.reshape(-1))))
    raise Refused(f"a constant factor of shape {tuple(c.shape)} on a tensor of per-sample shape "
                  f"{shape} (refsnn scales one axis: the channels or the last)")


def _mul(ex, node):
    a, b = node.args[:2]
    tensors = [x for x in (a, b) if isinstance(x, FxNode) and x in ex.names]
    if len(tensors) == 2:
        sa, sb = ex.shape(a), ex.shape(b)
        if sa == sb:
            return ex.emit(node, "multiply", [ex.src(a), ex.src(b)])
        out = ex.shape(node)
        inputs = []
        for t, shape in ((a, sa), (b, sb)):
            if shape == out:
                inputs.append(ex.src(t))
            elif len(shape) == len(out) and all(i in (1, o) for i, o in zip(shape, out)):
                # e.g. squeeze-and-excitation's gate (C, 1, 1) against (C, H, W)
                inputs.append(ex.emit(node, "expand", [ex.src(t)],
                                      dict(shape=shape_text(out)),
                                      suffix=f".expand{len(inputs)}"))
            else:
                raise Refused(f"a product of per-sample shapes {sa} and {sb} (refsnn "
                              f"broadcasts axes of size 1 of equal-rank tensors)")
        return ex.emit(node, "multiply", inputs)
    if len(tensors) == 1:
        t = tensors[0]
        other = b if t is a else a
        const = ex.consts.get(other, other) if isinstance(other, FxNode) else other
        if isinstance(const, FxNode):
            raise Refused(f"factor {other.name} is neither a tensor nor a constant")
        return _per_sample_scale(ex, node, t, const)
    raise Refused("no tensor operand")


#: Leaf module class (exact) -> handler ``(exporter, fx_node, module) -> refsnn name``.
MODULES = {
    nn.ReLU6: _relu6,
    nn.LayerNorm: _layernorm,
    nn.Upsample: _upsample,
    nn.UpsamplingNearest2d: _upsample,
    nn.ZeroPad2d: _zeropad_module,
    nn.ConstantPad2d: _zeropad_module,
}

#: Function -> handler ``(exporter, fx_node) -> refsnn name``.
FUNCTIONS = {
    F.relu6: _relu6,
    F.hardtanh: _hardtanh,
    F.pad: _pad,
    F.layer_norm: _layer_norm,
    F.dropout: _dropout,
    F.dropout2d: _dropout,
    F.alpha_dropout: _dropout,
    torch.cat: _cat,
    torch.concat: _cat,
    torch.concatenate: _cat,
    torch.matmul: _matmul,
    operator.matmul: _matmul,
    torch.chunk: _split,
    torch.split: _split,
    operator.getitem: _getitem,
    operator.mul: _mul,
    torch.mul: _mul,
}

#: Functions of other packages, by ``module.qualname`` (so the package is not imported).
NAMED_FUNCTIONS = {
    "torchvision.ops.stochastic_depth.stochastic_depth": _stochastic_depth,
}

#: Tensor method name -> handler ``(exporter, fx_node) -> refsnn name``.
METHODS = {"chunk": _split, "split": _split, "matmul": _matmul, "mul": _mul}
