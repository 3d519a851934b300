"""What every route into refsnn (the PyTorch exporter, the ONNX and Keras readers) writes the
same way, so that the routes give the same graph: shape attributes as text, and the source
operators refsnn writes as several of its own (one recipe each).
"""

from __future__ import annotations

import numpy as np


def shape_text(dims) -> str:
    """Integers as refsnn's shape and permutation attributes spell them: ``"3,4,5"``."""
    return ",".join(str(int(d)) for d in dims)


def emit_matmul(emit, a: str, b: str, lead: tuple, t: int, d: int, s: int,
                b_transposed: bool = False) -> str:
    """``a @ b`` of two tensors, per sample ``(*lead, T, D) @ (*lead, D, S)``, as refsnn
    operators: both broadcast to ``(*lead, T, S, D)`` (``reshape`` + ``expand``; ``b``
    transposed to ``(*lead, S, D)`` first unless ``b_transposed`` says it is given so), a
    ``multiply`` (two-input neurons under signGD), a sum over ``D`` (a ``linear`` map of ones)
    and a ``reshape`` to ``(*lead, T, S)``.

    ``emit(suffix, op, inputs, attrs, params, shape)`` adds one node with per-sample output
    ``shape`` and returns its name; the last node's suffix is ''. Returns its name.
    """
    big, a_row, b_row = lead + (t, s, d), lead + (t, 1, d), lead + (1, s, d)
    ra = emit("a", "reshape", [a], dict(shape=shape_text(a_row)), None, a_row)
    ea = emit("a_wide", "expand", [ra], dict(shape=shape_text(big)), None, big)
    if not b_transposed:
        swap = list(range(len(lead) + 2))
        swap[-1], swap[-2] = swap[-2], swap[-1]
        b = emit("b_t", "transpose", [b], dict(perm=shape_text(swap)), None, lead + (s, d))
    rb = emit("b", "reshape", [b], dict(shape=shape_text(b_row)), None, b_row)
    eb = emit("b_wide", "expand", [rb], dict(shape=shape_text(big)), None, big)
    prod = emit("products", "multiply", [ea, eb], None, None, big)
    total = emit("sum", "linear", [prod], None, dict(weight=np.ones((1, d)), bias=np.zeros(1)),
                 lead + (t, s, 1))
    return emit("", "reshape", [total], dict(shape=shape_text(lead + (t, s))), None, lead + (t, s))
