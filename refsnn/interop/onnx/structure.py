"""Handlers for ONNX's structural operators: ``Slice``, ``Split``, ``Expand``, ``Pad``,
``Resize``/``Upsample``, a broadcasting product of two tensors (squeeze-and-excitation's
``(N, C, H, W) * (N, C, 1, 1)``) and ``MatMul`` of two tensors.

Each maps to the refsnn operators that refsnn's PyTorch exporter (:mod:`refsnn.export.torch`)
writes for the same PyTorch code (``x.chunk``/``x[:, a:b]`` -> ``slice``, ``F.pad`` -> ``pad``,
``nn.Upsample(mode='nearest')`` -> ``upsample``, ``x * gate`` -> ``expand`` + ``multiply``,
``a @ b`` -> ``reshape``/``expand``/``transpose``/``multiply``/``linear``), so both routes give
the same graph. Settings refsnn cannot express are refused with
:class:`~refsnn.interop.onnx.reader.Refused` naming the field. Shapes are per sample unless
called "full" (batch axis first, as ONNX counts).
"""

from __future__ import annotations

import numpy as np

from refsnn.interop.nodes import emit_matmul, shape_text
from refsnn.interop.onnx.reader import BATCH, Refused, attrs_of

#: An ONNX ``ends`` at least this large means "to the end of the axis" (exporters write
#: INT64_MAX or INT32_MAX for an open slice).
OPEN_END = 2 ** 31 - 1



def _ints(r, node, index, what, required=True):
    """Input ``index`` of ``node`` as a constant list of ints (None if absent and optional)."""
    arr = r.param(node, index, what, required=required)
    return None if arr is None else [int(v) for v in np.asarray(arr).reshape(-1)]


def _axis(axis: int, rank: int, field: str) -> int:
    if not -rank <= axis < rank:
        raise Refused(field, f"axes in [-{rank}, {rank})", str(axis))
    return axis % rank


# --- Slice, Split --------------------------------------------------------------------------------

def _slice_inputs(r, node):
    """``(starts, ends, axes, steps)`` from the attributes (opset < 10) or the inputs."""
    if r.opset < 10:
        a = attrs_of(node)
        starts, ends = list(a.get("starts", [])), list(a.get("ends", []))
        axes = list(a["axes"]) if "axes" in a else None
        return starts, ends, axes, None
    return (_ints(r, node, 1, "starts"), _ints(r, node, 2, "ends"),
            _ints(r, node, 3, "axes", required=False),
            _ints(r, node, 4, "steps", required=False))


def _slice(r, node):
    """``Slice`` with step 1 along per-sample axes: one refsnn ``slice`` per axis it cuts
    (in the order of ``axes``; an axis taken whole is no node), the batch axis only whole."""
    src, shape = r.tensor(node.input[0])
    rank = len(shape) + 1
    starts, ends, axes, steps = _slice_inputs(r, node)
    axes = list(range(len(starts))) if axes is None else axes
    steps = [1] * len(starts) if steps is None else steps
    if not len(starts) == len(ends) == len(axes) == len(steps):
        raise Refused("starts/ends/axes/steps", "lists of equal length",
                      f"{len(starts)}, {len(ends)}, {len(axes)}, {len(steps)} values")
    if any(s != 1 for s in steps):
        raise Refused("steps", "1 on every axis (refsnn's slice takes consecutive elements)",
                      str(steps))
    cuts = []
    for start, end, axis in zip(starts, ends, axes):
        axis = _axis(axis, rank, "axes")
        if axis == 0:
            if start != 0 or end < OPEN_END:
                raise Refused("axes", "per-sample axes (the batch axis taken whole)",
                              f"axis 0 sliced from {start} to {end}")
            continue
        dim = shape[axis - 1]
        lo, hi = (min(max(v + dim if v < 0 else v, 0), dim) for v in (start, end))
        if lo >= hi:
            raise Refused("starts/ends", f"a non-empty range of axis {axis} (size {dim})",
                          f"start {start}, end {end}")
        if (lo, hi) != (0, dim):
            cuts.append((axis - 1, lo, hi))
    for k, (axis, lo, hi) in enumerate(cuts):
        last = k == len(cuts) - 1
        src = r.emit(node, "slice", [src], dict(axis=axis, start=lo, stop=hi),
                     output=None if last else f"{node.output[0]}#slice{k}",
                     suffix="" if last else f".axis{axis + 1}")
    if not cuts:
        r.alias(node, node.input[0])


def _split_sizes(r, node, dim, n):
    a = attrs_of(node)
    sizes = a.get("split") if r.opset < 13 else \
        _ints(r, node, 1, "split", required=False)
    if sizes is not None:
        return [int(s) for s in sizes]
    if "num_outputs" in a:  # opset 18: pieces of ceil(dim / n), the last one smaller
        size = -(-dim // int(a["num_outputs"]))
        return [min(size, dim - i * size) for i in range(int(a["num_outputs"]))]
    if dim % n:
        raise Refused("split", f"sizes, or a size {dim} that {n} outputs divide evenly",
                      "none")
    return [dim // n] * n


def _split(r, node):
    """``Split`` along a per-sample axis: one refsnn ``slice`` per output (as PyTorch's
    ``chunk``/``split`` pieces are in the PyTorch route)."""
    src, shape = r.tensor(node.input[0])
    rank = len(shape) + 1
    axis = _axis(int(attrs_of(node).get("axis", 0)), rank, "axis")
    if axis == 0:
        raise Refused("axis", "a per-sample axis (not 0, the batch axis)", "0")
    dim = shape[axis - 1]
    sizes = _split_sizes(r, node, dim, len(node.output))
    if len(sizes) != len(node.output) or sum(sizes) != dim or min(sizes) < 0:
        raise Refused("split", f"{len(node.output)} sizes >= 0 adding up to {dim} (axis {axis})",
                      str(sizes))
    start = 0
    for k, (value, size) in enumerate(zip(node.output, sizes)):
        if value and size:
            r.emit(node, "slice", [src], dict(axis=axis - 1, start=start, stop=start + size),
                   output=value, suffix=f".{k}")
        elif value and (r.consumers.get(value) or value in r.outputs):
            raise Refused("split", "non-empty pieces", f"output '{value}' of size 0")
        start += size


# --- Expand, broadcasting products ----------------------------------------------------------------

def _expand(r, node):
    """``Expand`` (ONNX's two-way broadcast) to a per-sample shape of the same rank: refsnn's
    ``expand`` (axes of size 1 repeated); the batch axis must stay as it is."""
    src, shape = r.tensor(node.input[0])
    target = _ints(r, node, 1, "shape")
    full = [BATCH] + list(shape)
    if len(target) > len(full):
        raise Refused("shape", f"at most {len(full)} axes (refsnn does not add axes by "
                      "broadcasting)", str(target))
    target = [1] * (len(full) - len(target)) + target
    if target[0] not in (1, BATCH, r.static_batch):
        raise Refused("shape", "the batch axis left as it is (1 or the batch size)",
                      f"{target[0]} in {target}")
    out = []
    for have, want in zip(shape, target[1:]):
        if want not in (1, have) and have != 1:
            raise Refused("shape", f"a shape that per-sample shape {shape} broadcasts to",
                          str(target))
        out.append(have if want == 1 else want)
    if tuple(out) == tuple(shape):
        r.alias(node, node.input[0])
    else:
        r.emit(node, "expand", [src], dict(shape=shape_text(out)))


def broadcast_product(r, node, a: str, b: str) -> None:
    """``Mul`` of two tensors of unequal per-sample shapes of equal rank, each axis of size 1
    or the other's (squeeze-and-excitation's gate ``(C, 1, 1)`` on ``(C, H, W)``): each
    operand that is smaller is broadcast with an ``expand``, then one ``multiply``."""
    (sa, ha), (sb, hb) = r.tensor(a), r.tensor(b)
    if len(ha) != len(hb) or any(x != y and 1 not in (x, y) for x, y in zip(ha, hb)):
        raise Refused("inputs", "tensors whose per-sample shapes broadcast axis by axis "
                      "(equal rank, each axis equal or 1)", f"per-sample shapes {ha} and {hb}")
    out = tuple(max(x, y) for x, y in zip(ha, hb))
    inputs = []
    for k, (src, shape) in enumerate(((sa, ha), (sb, hb))):
        if tuple(shape) != out:
            src = r.emit(node, "expand", [src], dict(shape=shape_text(out)),
                         output=f"{node.output[0]}#expand{k}", suffix=f".expand{k}")
        inputs.append(src)
    r.emit(node, "multiply", inputs)


def tensor_matmul(r, node, a: str, b: str) -> None:
    """``MatMul`` of two tensors, per sample ``(..., T, D) @ (..., D, S)``, written as the
    PyTorch route writes ``a @ b`` (:func:`refsnn.interop.nodes.emit_matmul`)."""
    (sa, ha), (sb, hb) = r.tensor(a), r.tensor(b)
    if len(ha) < 2 or len(ha) != len(hb) or ha[:-2] != hb[:-2] or ha[-1] != hb[-2]:
        raise Refused("inputs", "per-sample shapes (..., T, D) and (..., D, S) (refsnn "
                      "multiplies tensors of equal rank without broadcasting the leading axes)",
                      f"{ha} and {hb}")
    key = node.output[0]

    def emit(suffix, op, inputs, attrs, params, shape):
        return r.emit(node, op, inputs, attrs, params, output=suffix and f"{key}#{suffix}",
                      suffix=suffix and f".{suffix}")
    emit_matmul(emit, sa, sb, tuple(ha[:-2]), *ha[-2:], hb[-1])


# --- Pad ------------------------------------------------------------------------------------------

def _pad(r, node):
    """``Pad`` with zeros (mode constant, value 0) of the last two axes of ``(N, C, H, W)``:
    refsnn's ``pad`` (``rows = (top, bottom)``, ``cols = (left, right)``)."""
    src, shape = r.tensor(node.input[0])
    a = attrs_of(node)
    mode = a.get("mode", "constant")
    if mode != "constant":
        raise Refused("mode", "'constant' (refsnn pads with zeros)", repr(mode))
    rank = len(shape) + 1
    if r.opset < 11:
        pads, value, axes = [int(p) for p in a.get("pads", [])], float(a.get("value", 0.0)), None
    else:
        pads = _ints(r, node, 1, "pads")
        v = r.param(node, 2, "constant_value", required=False) if len(node.input) > 2 else None
        value = 0.0 if v is None or v.size == 0 else float(np.asarray(v).reshape(-1)[0])
        axes = _ints(r, node, 3, "axes", required=False) if len(node.input) > 3 else None
    if value != 0.0:
        raise Refused("constant_value", "0 (refsnn pads with zeros)", repr(value))
    axes = list(range(rank)) if axes is None else [_axis(x, rank, "axes") for x in axes]
    if len(pads) != 2 * len(axes):
        raise Refused("pads", f"{2 * len(axes)} values (begin and end of each axis)",
                      str(pads))
    n = len(axes)
    amounts = {ax: (pads[i], pads[n + i]) for i, ax in enumerate(axes)}
    if any(p < 0 for p in pads):
        raise Refused("pads", "amounts >= 0 (negative pads crop; refsnn only pads)", str(pads))
    padded = [ax for ax, p in amounts.items() if p != (0, 0)]
    if rank != 4 or any(ax < 2 for ax in padded):
        raise Refused("pads", "padding of the last two axes (H, W) of an (N, C, H, W) tensor "
                      "only (refsnn's pad)", f"{pads} over axes {axes} of a tensor of rank "
                      f"{rank}")
    if not padded:
        r.alias(node, node.input[0])
        return
    r.emit(node, "pad", [src], dict(rows=amounts.get(2, (0, 0)), cols=amounts.get(3, (0, 0))))


# --- Resize, Upsample -----------------------------------------------------------------------------

def _resize_target(r, node, full):
    """Output size per full axis, from ``scales`` (``floor(size · scale)``, ONNX's rule) or
    ``sizes``, with ``axes`` (opset 18) when given. Returns ``(sizes, constant inputs)``: the
    constants are fed to ONNX's reference evaluator for the exactness check."""
    a = attrs_of(node)
    rank = len(full)
    if node.op_type == "Upsample" and r.opset < 9:
        scales, sizes, consts = [float(s) for s in a.get("scales", [])], None, []
    else:
        index = {"Upsample": (1, None), "Resize": (1, None) if r.opset < 11 else (2, 3)}
        si, zi = index[node.op_type]
        consts = [r.param(node, i, "roi/scales/sizes", required=False)
                  if i < len(node.input) and node.input[i] else None
                  for i in range(1, len(node.input))]
        sc = consts[si - 1] if si - 1 < len(consts) else None
        sz = consts[zi - 1] if zi is not None and zi - 1 < len(consts) else None
        scales = None if sc is None or sc.size == 0 else [float(v) for v in sc.reshape(-1)]
        sizes = None if sz is None or sz.size == 0 else [int(v) for v in sz.reshape(-1)]
        if sizes is not None and sizes[0] == BATCH and "axes" not in a:
            # sizes built from Shape(x): the marker stands for the batch size
            sizes[0] = full[0]
            consts[zi - 1] = np.array(sizes, dtype=sz.dtype)
    axes = [_axis(int(x), rank, "axes") for x in a.get("axes", range(rank))]
    if sizes is not None and a.get("keep_aspect_ratio_policy", "stretch") != "stretch":
        raise Refused("keep_aspect_ratio_policy", "'stretch' (sizes taken as given)",
                      repr(a["keep_aspect_ratio_policy"]))
    given = scales if scales is not None else sizes
    if given is None or len(given) != len(axes):
        raise Refused("scales/sizes", f"{len(axes)} scales or sizes",
                      "none" if given is None else str(given))
    out = list(full)
    for ax, g in zip(axes, given):
        out[ax] = int(np.floor(full[ax] * g)) if scales is not None else g
    return out, consts


def _resize(r, node):
    """``Resize``/``Upsample`` in mode nearest by integer factors of H and W: refsnn's
    ``upsample`` (each pixel repeated ``scale`` times). Whether the node's
    ``coordinate_transformation_mode`` and ``nearest_mode`` pick exactly those pixels is
    checked by running the node (ONNX's reference evaluator) on an image of pixel indices."""
    from refsnn.interop.onnx.fold import evaluate
    src, shape = r.tensor(node.input[0])
    if len(shape) != 3:
        raise Refused("input shape", "(C, H, W) per sample (refsnn's upsample is 2-D)",
                      str(shape))
    a = attrs_of(node)
    mode = a.get("mode", "nearest")
    if mode != "nearest":
        raise Refused("mode", "'nearest' (refsnn's upsample repeats pixels)", repr(mode))
    c, h, w = shape
    full = [r.static_batch or 1, c, h, w]
    out, consts = _resize_target(r, node, full)
    if out[0] != full[0] or out[1] != c:
        raise Refused("scales/sizes", "1 on the batch and channel axes", f"output {out} from "
                      f"{full}")
    oh, ow = out[2:]
    if oh < h or ow < w or oh % h or ow % w:
        raise Refused("scales/sizes", "integer factors >= 1 of H and W (refsnn repeats each "
                      "pixel an integer number of times)", f"{(h, w)} to {(oh, ow)}")
    scale = (oh // h, ow // w)
    index = np.arange(float(full[0] * c * h * w)).reshape(full)
    picked = evaluate(r, node, [index] + consts)[0]
    want = np.repeat(np.repeat(index, scale[0], axis=2), scale[1], axis=3)
    if picked.shape != want.shape or not np.array_equal(picked, want):
        raise Refused("coordinate_transformation_mode/nearest_mode", f"pixels repeated "
                      f"{scale[0]}x{scale[1]} (out[y, x] = in[y // {scale[0]}, x // {scale[1]}])",
                      f"{a.get('coordinate_transformation_mode', 'half_pixel')!r}/"
                      f"{a.get('nearest_mode', 'round_prefer_floor')!r}, which picks other "
                      "pixels")
    if scale == (1, 1):
        r.alias(node, node.input[0])
    else:
        r.emit(node, "upsample", [src], dict(scale=scale))


#: ONNX ``op_type`` -> handler, merged into :data:`refsnn.interop.onnx.handlers.HANDLERS`.
STRUCTURE = {
    "Slice": _slice,
    "Split": _split,
    "Expand": _expand,
    "Pad": _pad,
    "Resize": _resize,
    "Upsample": _resize,
}
