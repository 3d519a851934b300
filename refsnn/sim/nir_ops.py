"""Operators of NIR graphs simulated by refsnn (``docs/semantics.md``, "NIR graphs").

NIR's neuron and synapse nodes that refsnn's own operators do not already express, as
:class:`~refsnn.model.ops.OpSpec` schemas. Every parameter has the node's full per-sample
shape (the importer broadcasts NIR's scalars and per-channel arrays); the time step ``dt``
is not a graph property but the network's ``schedule["dt"]``. Nothing here imports ``nir``.

==============  ==================  =====================================================
op              NIR node            parameters
==============  ==================  =====================================================
``nir_if``      ``IF``              ``r``, ``v_threshold``, ``v_reset``
``lif``         ``LIF``             ``tau``, ``r``, ``v_leak``, ``v_threshold``, ``v_reset``
``li``          ``LI``              ``tau``, ``r``, ``v_leak``
``integrator``  ``I``               ``r``
``threshold``   ``Threshold``       ``threshold``
``hadamard``    ``Scale``           ``factor``
``sumpool2d``   ``SumPool2d``       (attrs ``kernel``, ``stride``, ``padding``)
==============  ==================  =====================================================
"""

from __future__ import annotations

import numpy as np

from refsnn.model.ops import POOL_ATTRS, OpSpec, ShapeRuleError, pool_out


def _full(*names):
    def shapes(attrs, in_shapes):
        return {n: in_shapes[0] for n in names}
    return shapes


def _positive(*names):
    """Shape rule: the output has the input's shape; the named parameters must be > 0."""
    def out(attrs, in_shapes, params):
        for n in names:
            if n in params and np.any(np.asarray(params[n]) <= 0):
                raise ShapeRuleError(n, "positive values", "a value <= 0")
        return in_shapes[0]
    return out


def _same(attrs, in_shapes, params):
    return in_shapes[0]


#: NIR neuron operators (their nodes are neuron layers: spikes are recorded and counted).
NIR_NEURON_OPS: dict[str, OpSpec] = {
    "nir_if": OpSpec("nir_if", 1, params=("r", "v_threshold", "v_reset"),
                     param_shapes=_full("r", "v_threshold", "v_reset"), out_shape=_same),
    "lif": OpSpec("lif", 1, params=("tau", "r", "v_leak", "v_threshold", "v_reset"),
                  param_shapes=_full("tau", "r", "v_leak", "v_threshold", "v_reset"),
                  out_shape=_positive("tau")),
    "threshold": OpSpec("threshold", 1, params=("threshold",),
                        param_shapes=_full("threshold"), out_shape=_same),
}

#: NIR operators that hold state or compute values but do not spike.
NIR_SYNAPSE_OPS: dict[str, OpSpec] = {
    "li": OpSpec("li", 1, params=("tau", "r", "v_leak"),
                 param_shapes=_full("tau", "r", "v_leak"), out_shape=_positive("tau")),
    "integrator": OpSpec("integrator", 1, params=("r",), param_shapes=_full("r"),
                         out_shape=_same),
    "hadamard": OpSpec("hadamard", 1, params=("factor",), param_shapes=_full("factor"),
                       out_shape=_same),
    "sumpool2d": OpSpec("sumpool2d", 1, attrs=POOL_ATTRS, out_shape=pool_out),
}


def sumpool_forward(node, x):
    """Sum pooling of ``x`` (B, C, H, W), zero padding: each output starts at +0 and adds the
    window's inputs in row-major window order ``(dy, dx)`` (one rounded addition each).

    Returns
    -------
    ndarray, shape (B, C, H_out, W_out)
    """
    (kh, kw), (sh, sw), (ph, pw) = (node.attrs["kernel"], node.attrs["stride"],
                                    node.attrs["padding"])
    b, c, h, w = x.shape
    oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    xp = np.zeros((b, c, h + 2 * ph, w + 2 * pw), x.dtype)
    xp[:, :, ph:ph + h, pw:pw + w] = x
    out = np.zeros((b, c, oh, ow), x.dtype)
    for dy in range(kh):
        for dx in range(kw):
            out += xp[:, :, dy:dy + sh * (oh - 1) + 1:sh, dx:dx + sw * (ow - 1) + 1:sw]
    return out


def hadamard_forward(node, x):
    """``x · factor`` element-wise (one rounded product); ``x`` (B, *shape)."""
    return x * node.params["factor"][None]
