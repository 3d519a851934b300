"""Multi-node patterns that exporters emit for one refsnn operator.

:func:`find_patterns` looks over the whole ONNX graph before the walk and returns, for each
match, the index of its last node (where the refsnn node is emitted) and the indices of the
nodes it covers (skipped by the walk). A pattern matches only if every value inside it feeds
nothing outside it and its constants are exactly the ones of the operator's definition (up to
the rounding of the constant to the model's float type); otherwise its nodes go through the
handlers one by one and are refused there (``Erf`` and ``Sqrt`` have no refsnn operator).

Patterns (``x`` the input tensor):

- GELU: ``x * 0.5 * (1 + Erf(x / sqrt(2)))`` in any association of the three factors.
- GELU (tanh): ``0.5 * x * (1 + Tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))``.
- SiLU: ``x * Sigmoid(x)``.
- LayerNorm: ``m = ReduceMean(x); d = x - m;
  (d / Sqrt(ReduceMean(d^2) + eps)) [* weight] [+ bias]`` over the last axis or the channels.
- QCFS: ``lam * Floor(Clip(x / lam, 0, 1) * L + 0.5) / L`` (refsnn's ``qcfs`` operator).
"""

from __future__ import annotations

import math

import numpy as np

from refsnn.interop.onnx.handlers import along_axis, attrs_of, decimal, mean_axis
from refsnn.interop.onnx.reader import Refused

_F32 = 2.0 ** -23  # relative rounding of a constant stored as float32


class _View:
    """Read-only look at the ONNX graph: producers, consumers, constants."""

    def __init__(self, r):
        self.r = r
        self.index = {id(n): i for i, n in enumerate(r.nodes_onnx)}

    def prod(self, value, op_type=None):
        i = self.r.producer.get(value)
        n = None if i is None else self.r.nodes_onnx[i]
        return n if n is not None and (op_type is None or n.op_type == op_type) else None

    def sole(self, value, op_type=None):
        """The one consumer of ``value`` (which is no graph output), of ``op_type``."""
        if not self.r.only_consumer(value):
            return None
        n = self.r.nodes_onnx[self.r.consumers[value][0]]
        return n if op_type is None or n.op_type == op_type else None

    def scalar(self, value):
        c = self.r.const(value) if value else None
        if c is None or c.size != 1 or c.dtype.kind not in "fiu":
            return None
        return float(c.reshape(()))

    def other(self, node, value):
        """The operand of binary ``node`` that is not ``value``."""
        a, b = node.input[:2]
        return b if a == value else a if b == value else None

    def idx(self, *nodes):
        return {self.index[id(n)] for n in nodes}


def _close(c, target):
    return c is not None and abs(c - target) <= _F32 * abs(target)


def _gelu_tail(v: _View, start, x):
    """From value ``start`` (the Erf's or Tanh's output), the Add of 1 and then the Mul nodes
    that multiply by ``x`` and by 0.5 (in any order): ``(covered nodes, output value)`` or
    None."""
    p = v.sole(start, "Add")
    if p is None or v.scalar(v.other(p, start)) != 1.0:
        return None
    need_x, need_half, covered, u = True, True, [p], p.output[0]
    while need_x or need_half:
        m = v.sole(u, "Mul")
        if m is None:
            return None
        o = v.other(m, u)
        h = v.prod(o, "Mul") if o else None
        if o == x and need_x:
            need_x = False
        elif v.scalar(o) == 0.5 and need_half:
            need_half = False
        elif need_x and need_half and h is not None and v.sole(o) is m and x in h.input[:2] \
                and v.scalar(v.other(h, x)) == 0.5:
            need_x = need_half = False
            covered.append(h)
        else:
            return None
        covered.append(m)
        u = m.output[0]
    return covered, u


def _emit(anchor, out, x, op, attrs=None, params_fn=None):
    """A fused emitter: refsnn ``op`` on tensor ``x`` as value ``out``, named by ``anchor``."""
    def run(r):
        src, shape = r.tensor(x)
        params = params_fn(r, shape) if params_fn else None
        r.emit(anchor, op, [src], attrs, params, output=out)
    return run


def _gelu_erf(v: _View, e):
    d = v.prod(e.input[0])
    if d is None or d.op_type not in ("Div", "Mul") or v.sole(d.output[0]) is not e:
        return None
    x = d.input[0]
    c = v.scalar(d.input[1])
    if not (_close(c, math.sqrt(2.0)) if d.op_type == "Div" else _close(c, math.sqrt(0.5))):
        return None
    tail = _gelu_tail(v, e.output[0], x)
    if tail is None:
        return None
    return [d, e] + tail[0], tail[1], x, "gelu", dict(approximate="none")


def _cube_of(v: _View, value):
    """``x`` if ``value`` is ``x^3`` (Pow(x, 3) or x * (x * x) in any order), else None."""
    p = v.prod(value, "Pow")
    if p is not None and v.scalar(p.input[1]) == 3.0:
        return p.input[0], [p]
    m = v.prod(value, "Mul")
    if m is None:
        return None
    for a, b in (m.input[:2], m.input[1::-1][:2]):
        sq = v.prod(b, "Mul")
        if sq is not None and sq.input[0] == sq.input[1] == a and v.sole(b) is m:
            return a, [m, sq]
    return None


def _gelu_tanh(v: _View, t):
    inner = v.prod(t.input[0], "Mul")
    if inner is None or v.sole(inner.output[0]) is not t:
        return None
    for s_val in inner.input[:2]:
        if _close(v.scalar(v.other(inner, s_val)), math.sqrt(2.0 / math.pi)):
            break
    else:
        return None
    s = v.prod(s_val, "Add")
    if s is None or v.sole(s_val) is not inner:
        return None
    for x in s.input[:2]:
        k = v.prod(v.other(s, x), "Mul")
        if k is None or v.sole(k.output[0]) is not s:
            continue
        for cube_val in k.input[:2]:
            if not _close(v.scalar(v.other(k, cube_val)), 0.044715):
                continue
            cube = _cube_of(v, cube_val)
            if cube is not None and cube[0] == x and v.sole(cube_val) is k:
                tail = _gelu_tail(v, t.output[0], x)
                if tail is None:
                    return None
                nodes = cube[1] + [k, s, inner, t] + tail[0]
                return nodes, tail[1], x, "gelu", dict(approximate="tanh")
    return None


def _silu(v: _View, s):
    m = v.sole(s.output[0], "Mul")
    x = s.input[0]
    if m is None or v.other(m, s.output[0]) != x:
        return None
    return [s, m], m.output[0], x, "silu", None


def _reduce_axes(v: _View, node):
    a = attrs_of(node)
    if not a.get("keepdims", 1):
        return None
    if "axes" in a:
        return [int(i) for i in a["axes"]]
    c = v.r.const(node.input[1]) if len(node.input) > 1 and node.input[1] else None
    return None if c is None else [int(i) for i in c.reshape(-1)]


def _layernorm(v: _View, m1):
    x = m1.input[0]
    axes = _reduce_axes(v, m1)
    sub = v.sole(m1.output[0], "Sub")
    if axes is None or sub is None or sub.input[:2] != [x, m1.output[0]]:
        return None
    d = sub.output[0]
    users = [v.r.nodes_onnx[i] for i in v.r.consumers.get(d, [])]
    pw = next((n for n in users if n.op_type == "Pow"), None)
    div = next((n for n in users if n.op_type == "Div"), None)
    if len(users) != 2 or d in v.r.outputs or pw is None or div is None or \
            div.input[0] != d or v.scalar(pw.input[1]) != 2.0:
        return None
    m2 = v.sole(pw.output[0], "ReduceMean")
    add = v.sole(m2.output[0], "Add") if m2 is not None else None
    if m2 is None or _reduce_axes(v, m2) != axes or add is None:
        return None
    eps = v.scalar(v.other(add, m2.output[0]))
    if eps is not None and v.r.const(v.other(add, m2.output[0])).dtype == np.float32:
        eps = decimal(eps)  # as a float32 attribute: the decimal the exporter was given
    sq = v.sole(add.output[0], "Sqrt")
    if eps is None or sq is None or v.sole(sq.output[0]) is not div or div.input[1] != \
            sq.output[0]:
        return None
    nodes, out, w_val, b_val = [m1, sub, pw, m2, add, sq, div], div.output[0], None, None
    mul = v.sole(out, "Mul")
    if mul is not None and v.r.const(v.other(mul, out)) is not None:
        nodes.append(mul)
        w_val, out = v.other(mul, out), mul.output[0]
    plus = v.sole(out, "Add")
    if plus is not None and v.r.const(v.other(plus, out)) is not None:
        nodes.append(plus)
        b_val, out = v.other(plus, out), plus.output[0]

    def params(r, shape):
        ax = mean_axis(sorted(a % (len(shape) + 1) for a in axes), len(shape))
        if ax not in ("last", "channel"):
            raise Refused("axes", "the last axis or the channels (a LayerNorm pattern)",
                          str(axes))
        dim = shape[-1] if ax == "last" else shape[0]
        out = {}
        for key, val, default in (("weight", w_val, 1.0), ("bias", b_val, 0.0)):
            if val is None:
                out[key] = np.full(dim, default)
                continue
            hit = along_axis(r.const(val), shape)
            if hit is None or (hit[0] != ax and len(shape) > 1) or hit[1].size != dim:
                raise Refused(key, f"a vector along the normalised axis ({ax})",
                              f"shape {r.const(val).shape}")
            out[key] = hit[1]
        attrs["axis"] = ax
        return out

    attrs = dict(eps=eps)
    return nodes, out, x, "layernorm", attrs, params


def _qcfs(v: _View, f):
    add = v.prod(f.input[0], "Add")
    if add is None or v.sole(add.output[0]) is not f:
        return None
    scaled = next((i for i in add.input[:2] if v.scalar(v.other(add, i)) == 0.5), None)
    mul = v.prod(scaled, "Mul") if scaled else None
    if mul is None or v.sole(scaled) is not add:
        return None
    clipped = next((i for i in mul.input[:2] if v.scalar(v.other(mul, i)) is not None), None)
    clip = v.prod(clipped, "Clip") if clipped else None
    levels = v.scalar(v.other(mul, clipped)) if clipped else None
    if clip is None or v.sole(clipped) is not mul or levels is None or levels < 1 or \
            levels != int(levels):
        return None
    lo_hi = [v.scalar(i) if i else None for i in list(clip.input[1:3]) + [None] * 2][:2]
    if lo_hi != [0.0, 1.0]:
        return None
    div = v.prod(clip.input[0], "Div")
    if div is None or v.sole(clip.input[0]) is not clip:
        return None
    x, lam = div.input[0], v.scalar(div.input[1])
    back = v.sole(f.output[0], "Mul")
    if lam is None or lam <= 0 or back is None or v.scalar(v.other(back, f.output[0])) != lam:
        return None
    last = v.sole(back.output[0], "Div")
    if last is None or last.input[0] != back.output[0] or v.scalar(last.input[1]) != levels:
        return None
    return ([div, clip, mul, add, f, back, last], last.output[0], x, "qcfs",
            dict(levels=int(levels)), lambda r, shape: dict(clip=np.array([lam])))


#: Anchor ``op_type`` -> matcher ``(view, node) -> (nodes, out, x, op, attrs[, params_fn])``.
MATCHERS = {
    "Erf": _gelu_erf,
    "Tanh": _gelu_tanh,
    "Sigmoid": _silu,
    "ReduceMean": _layernorm,
    "Floor": _qcfs,
}


def find_patterns(reader):
    """``(fused, covered)``: node index -> emitter ``(reader) -> None`` for the last node of
    each match, and the indices of every node a match covers."""
    v = _View(reader)
    fused, covered = {}, set()
    for node in reader.nodes_onnx:
        matcher = MATCHERS.get(node.op_type)
        hit = matcher(v, node) if matcher else None
        if hit is None:
            continue
        nodes, out, x, op, attrs = hit[:5]
        idx = v.idx(*nodes)
        if idx & covered:
            continue
        last = max(idx)
        if v.r.nodes_onnx[last].output[0] != out:
            continue
        covered |= idx
        fused[last] = _emit(v.r.nodes_onnx[min(idx)], out, x, op, attrs,
                            hit[5] if len(hit) > 5 else None)
    return fused, covered
