"""signGD conversion (Oh & Lee 2024): every nonlinearity becomes a signGD neuron.

Affine operators stay synapses and carry *increments* of estimates; each nonlinearity becomes
an ``sgd`` neuron tracking ``f`` of its input estimate; max pooling becomes a tree of two-input
max neurons over ``window`` synapses. The steps:

1. fold batch normalisation (:func:`refsnn.conversion.bnfold.fold_batchnorm`);
2. rewrite the graph: nonlinear ops -> ``sgd`` nodes, max pooling -> windows + max tree;
3. scales: ``scale = max |f|`` over the calibration set (per element, channel or layer; values
   <= 1e-5 become 1), so every target on the calibration data lies within ``[-1, 1]``, well
   inside the reach ``eta0 / (1 - gamma)`` (3 for the defaults);
4. initial input estimates ``x_init`` = each neuron's input when every neuron output and the
   encoder's output are 0 (the constant part ``c`` of the affine map feeding it), and the
   decoder's initial value = the output node's value in that same pass;
5. constants removed from the synapses (biases 0, constant window padding 0; an unfoldable
   batchnorm became an affine node whose bias is 0 too): they
   live in ``x_init`` and ``readout_init`` now, so per step the synapses carry only the linear
   part ``A`` of each affine map, and ``x_hat_t = A(v_t of the layers below) + c`` exactly.
"""

from __future__ import annotations

from dataclasses import replace
from types import MappingProxyType

import numpy as np

from refsnn import ann
from refsnn.checks import check_batch, check_choice
from refsnn.conversion.bnfold import fold_batchnorm
from refsnn.conversion.calibrate import Progress, element_max, forward_passes
from refsnn.conversion.signgd_compat import check_compat_ops, compat_max_pool
from refsnn.errors import ConversionError, OptionError
from refsnn.model.graph import Graph, Node, Rewrite
from refsnn.sim.network import NEURON_FORWARD, NEURON_OPS, SNN_OPS, SpikingNetwork

#: Operators that stay synapses: affine maps, applied per step to increments.
AFFINE = ("linear", "conv2d", "batchnorm", "avgpool2d", "flatten", "add", "identity",
          "transpose", "mean", "scale", "affine", "reshape", "concat", "expand", "slice",
          "upsample", "pad")

#: ANN operator -> the attributes it passes on to its signGD target (the function of its name).
ACTIVATIONS = {"relu": (), "leaky_relu": ("slope",), "silu": (), "sigmoid": (), "tanh": (),
               "hardtanh": ("min_value", "max_value"), "abs": (), "square": (), "exp": (),
               "multiply": (), "hardsigmoid": (), "hardswish": ()}
ENCODINGS = ("exact", "gd")
SCALES = ("element", "channel", "layer")
#: Operators of the draft graph, whose ``sgd`` nodes have no parameters yet.
_DRAFT_OPS = {**SNN_OPS, "sgd": replace(NEURON_OPS["sgd"], params=(),
                                        param_shapes=lambda attrs, in_shapes: {})}
#: The reference code's tie rules: inclusive (>=) for these targets, strict (>) for the others.
COMPAT_INCLUSIVE = ("relu", "square", "exp", "multiply")


def convert_signgd(
    graph: Graph,
    calibration: np.ndarray,
    eta0: float = 0.15,
    gamma: float = 0.95,
    scale: str = "element",
    scale_floor: float | None = None,
    encoding: str | None = None,
    compat: bool = False,
    dtype=np.float64,
    progress: Progress | None = None,
) -> SpikingNetwork:
    """Convert a network with element-wise nonlinearities and max pooling into signGD neurons.

    Parameters
    ----------
    graph : Graph
        The trained ANN.
    calibration : ndarray, shape (B, *graph.input_shape)
        Inputs whose ANN activations set each neuron's scale.
    eta0, gamma : float
        Step-size schedule ``eta_t = eta0 * gamma**(t-1)``; ``eta0 > 0``, ``0 < gamma < 1``.
    scale : {"element", "channel", "layer"}
        Granularity of the scales (max |f| over the calibration set).
    scale_floor : float or None
        No scale is below this fraction of its layer's largest (0 <= scale_floor <= 1);
        None: 0.1, or 0 (no floor, as in the reference code) with ``compat``.
    encoding : {"exact", "gd"} or None
        ``exact`` delivers the input at step 1; ``gd`` is the reference code's encoder.
        None: ``exact``, or ``gd`` with ``compat`` (which refuses ``exact``).
    compat : bool
        Reproduce the reference code (snuhcs/snn_signgd): ``gd`` encoder, GELU as
        ``x * sigmoid(1.702 x)``, LeakyReLU slope 0.1, its tie rules, scales for ReLU
        neurons only (per element, no floor; every other neuron gets scale 1), and its max
        pooling (:mod:`refsnn.conversion.signgd_compat`). SiLU, sigmoid, tanh, hardtanh and
        multiply, which it cannot convert, are refused.
    dtype : {numpy.float64, numpy.float32}
    progress : callable, optional
        ``progress(pass_index, samples_done, samples_total)`` while calibrating (the forward
        over chunks of the calibration set, :mod:`refsnn.conversion.calibrate`); not an
        option: it changes no result.

    Raises
    ------
    ConversionError
        For an operator that is neither affine nor a supported nonlinearity.
    OptionError
        For invalid options.
    """
    if not (np.isfinite(eta0) and eta0 > 0):
        raise OptionError(f"--eta0: expected a positive number, found {eta0}")
    if not (0 < gamma < 1):
        raise OptionError(f"--gamma: expected a number in (0, 1), found {gamma}")
    check_choice("--scale", scale, SCALES)
    if scale_floor is None:
        scale_floor = 0.0 if compat else 0.1
    if not (0 <= scale_floor <= 1):
        raise OptionError(f"--scale-floor: expected a number in [0, 1], found {scale_floor}")
    if encoding is None:
        encoding = "gd" if compat else "exact"
    if compat and encoding != "gd":
        raise OptionError(f"--encoding {encoding} does not apply with --compat: the reference "
                          f"code feeds its input through its gd encoder; drop --encoding")
    if encoding == "poisson":
        # signGD neurons read increments of an input estimate; Poisson spikes would need an
        # encoder emitting increments of their running mean, which refsnn does not have.
        raise OptionError("--encoding: expected one of exact, gd, found 'poisson': signGD "
                          "takes exact or gd input (its neurons read increments of an input "
                          "estimate, not rate-coded spikes); use --method if for Poisson inputs")
    check_choice("--encoding", encoding, ENCODINGS)
    check_choice("--dtype", np.dtype(dtype).name, ("float64", "float32"))
    if compat:
        check_compat_ops(graph)
    for node in graph.nodes:
        if node.op not in AFFINE and node.op not in NEURONS:
            raise ConversionError(
                f"node '{node.name}': op '{node.op}' cannot be converted with --method signgd "
                f"(it is neither affine nor a supported nonlinearity)")

    folded = fold_batchnorm(graph)
    x = check_batch(calibration, graph.input_shape, what="calibration data")
    # A first graph with placeholder scales and initial states gives the activations (streamed
    # over chunks: only each neuron's running max |f| per element is kept)...
    draft = _rewrite(folded, compat).commit(dtype=np.float64, ops=_DRAFT_OPS)
    neurons = [node.name for node in draft.nodes if node.op == "sgd"]
    peaks = element_max(forward_passes(draft, x, neurons, progress,
                                       forward_ops=NEURON_FORWARD), np.abs)
    # ... and, with every neuron silent and a zero input, the constants c of the affine maps.
    silent = {"sgd": lambda node, *xs: np.zeros_like(xs[0])}
    _, zero = ann.forward(draft, np.zeros((1,) + graph.input_shape), all_nodes=True,
                          forward_ops={**NEURON_FORWARD, **silent})
    edit = draft.edit()
    for node in draft.nodes:
        if node.op == "sgd":
            edit.set_params(node.name, scale=_scale(peaks[node.name], scale, compat,
                                                    node.attrs["fn"], scale_floor),
                            x_init=np.stack([zero[i][0] for i in node.inputs]))
        _remove_constants(edit, node)
    readout_init = np.asarray(zero[folded.output][0], dtype=dtype)
    snn_graph = edit.commit(dtype=dtype, ops=SNN_OPS)
    options = {"eta0": float(eta0), "gamma": float(gamma), "scale": scale,
               "scale_floor": float(scale_floor), "compat": int(compat),
               "dtype": np.dtype(dtype).name, "calibration_samples": int(x.shape[0])}
    schedule = MappingProxyType({"eta0": float(eta0), "gamma": float(gamma)})
    return SpikingNetwork(snn_graph, "signgd", encoding, MappingProxyType(options),
                          decoder="estimate", schedule=schedule, readout_init=readout_init)


def _neuron(name, inputs, fn, compat, **attrs):
    tie = "inclusive" if (not compat or fn in COMPAT_INCLUSIVE) else "strict"
    return {"name": name, "op": "sgd", "inputs": list(inputs),
            "attrs": {"fn": fn, "tie": tie, **attrs}, "params": {}}


def _rewrite(graph: Graph, compat: bool) -> Rewrite:
    """Nonlinear nodes -> ``sgd`` nodes (placeholder params); max pooling -> window + max tree:
    the nodes :data:`NEURONS` gives, the last in the node's place (and name), the others before."""
    edit = graph.edit()
    for node in graph.nodes:
        if node.op in NEURONS:
            *before, last = NEURONS[node.op](node, compat, graph)
            for new in before:
                edit.add(**new, before=node.name)
            edit.replace(**last)
    return edit


def _activation(node: Node, compat: bool, graph: Graph) -> list[dict]:
    passed = {k: node.attrs[k] for k in ACTIVATIONS[node.op]}
    if compat and node.op == "leaky_relu":
        passed["slope"] = 0.1
    return [_neuron(node.name, node.inputs, node.op, compat, **passed)]


def _gelu(node: Node, compat: bool, graph: Graph) -> list[dict]:
    fn = "gelu_sigmoid" if compat else (
        "gelu_tanh" if node.attrs.get("approximate") == "tanh" else "gelu")
    return [_neuron(node.name, node.inputs, fn, compat)]


def _batchnorm(node: Node, compat: bool, graph: Graph) -> list[dict]:
    """One that could not be folded: an affine map, whose constant part moves into x_init
    like every bias (and is then exactly 0 in the synapse, in any dtype)."""
    p = node.params
    scale = p["gamma"] / np.sqrt(p["var"] + node.attrs["eps"])
    return [{"name": node.name, "op": "affine", "inputs": node.inputs,
             "attrs": {"axis": "channel"},
             "params": {"weight": scale, "bias": p["beta"] - p["mean"] * scale}}]


def _max_tree(d: Node, compat: bool, graph: Graph) -> list[dict]:
    """Max pooling as a balanced tree of two-input max neurons over the window positions.

    The last node keeps the pooling node's name, so consumers need no rewiring. A padded
    position repeats the nearest input position, which lies in the same window (``edge``
    windows, :mod:`refsnn.synapses.window`): every max neuron, including one whose inputs are
    all padded positions of some window, tracks the max of activations of that window, so
    no pad value ever reaches a target, a calibration statistic or a scale. ceil_mode's
    overhang past the input's end is padding too (edge: the last input row or column, which
    the window holds, since its window starts inside the input). ``compat`` builds the
    reference code's max pooling instead (:func:`~refsnn.conversion.signgd_compat.compat_max_pool`).
    """
    if compat:
        return compat_max_pool(d, lambda *args: _neuron(*args, compat=True))
    a = d.attrs
    kh, kw = a["kernel"]
    nodes, level = [], []
    for oy in range(kh):
        for ox in range(kw):
            nodes.append({"name": f"{d.name}.window{oy}{ox}", "op": "window",
                          "inputs": d.inputs,
                          "attrs": {"kernel": a["kernel"], "stride": a["stride"],
                                    "padding": a["padding"], "offset": (oy, ox),
                                    "ceil_mode": a["ceil_mode"], "pad_mode": "edge"},
                          "params": {}})
            level.append(nodes[-1]["name"])
    depth = 0
    while len(level) > 1:
        nxt = []
        for i in range(0, len(level) - 1, 2):
            last = len(level) == 2
            name = d.name if last else f"{d.name}.max{depth}_{i // 2}"
            nodes.append(_neuron(name, [level[i], level[i + 1]], "max", False))
            nxt.append(name)
        if len(level) % 2:
            nxt.append(level[-1])
        level, depth = nxt, depth + 1
    if level[0] != d.name:  # a 1x1 window: the pooling is the window itself
        nodes[-1]["name"] = d.name
    return nodes


def _spread(name, source, axis, reduce):
    return {"name": name, "op": "spread", "inputs": [source],
            "attrs": {"axis": axis, "reduce": reduce}, "params": {}}


def _layernorm(d: Node, compat: bool, graph: Graph) -> list[dict]:
    """LayerNorm as neurons: u = x - mean(x) (synapse), q = u**2 (square neuron),
    m = mean(q) (synapse), r = u / sqrt(m + eps) (two-input neuron), y = weight * r + bias."""
    n, axis, eps = d.name, d.attrs["axis"], d.attrs["eps"]
    return [
        _spread(f"{n}.center", d.inputs[0], axis, "center"),
        _neuron(f"{n}.square", [f"{n}.center"], "square", compat),
        _spread(f"{n}.var", f"{n}.square", axis, "mean"),
        _neuron(f"{n}.norm", [f"{n}.center", f"{n}.var"], "normalize", compat, eps=eps),
        {"name": n, "op": "affine", "inputs": [f"{n}.norm"], "attrs": {"axis": axis},
         "params": d.params},
    ]


def _softmax(d: Node, compat: bool, graph: Graph) -> list[dict]:
    """softmax as neurons: e = exp(x) (neuron), s = sum(e) (synapse), y = e / s (neuron).

    The exp neuron's scale (max of exp(x) on the calibration data) keeps its target within
    reach however large the logits; y's divisor counts as at least 1e-12."""
    n = d.name
    return [
        _neuron(f"{n}.exp", d.inputs, "exp", compat),
        _spread(f"{n}.sum", f"{n}.exp", "last", "sum"),
        _neuron(n, [f"{n}.exp", f"{n}.sum"], "divide", compat, eps=1e-12),
    ]


def _log_softmax(d: Node, compat: bool, graph: Graph) -> list[dict]:
    """log_softmax as neurons: e = exp(x) (neuron), s = sum(e) (synapse), l = log(s) (neuron),
    y = x - l (synapses: a scale by -1 and an add). The log's argument counts as at least
    1e-12."""
    n, src, width = d.name, d.inputs[0], graph.shapes[d.name][-1]
    return [
        _neuron(f"{n}.exp", [src], "exp", compat),
        _spread(f"{n}.sum", f"{n}.exp", "last", "sum"),
        _neuron(f"{n}.log", [f"{n}.sum"], "log", compat, eps=1e-12),
        {"name": f"{n}.neg", "op": "scale", "inputs": [f"{n}.log"], "attrs": {"axis": "last"},
         "params": {"weight": -np.ones(width)}},
        {"name": n, "op": "add", "inputs": [src, f"{n}.neg"], "attrs": {}, "params": {}},
    ]


def _scale(peak: np.ndarray, granularity: str, compat: bool, fn: str,
           floor: float) -> np.ndarray:
    """Per-element scales from a neuron's calibration activations ``f``.

    Parameters
    ----------
    peak : ndarray, shape sample_shape
        ``max |f|`` over the calibration samples, per element (max is exact in any order, so
        the maxima over channels or the layer taken from it are those of all of ``|f|``).

    Returns
    -------
    ndarray, shape sample_shape
    """
    if compat and fn != "relu":
        return np.ones(peak.shape)
    # the sample axes of act (B, C, ...) that granularity reduces, less the sample axis 0
    axes = {"element": (), "channel": tuple(range(1, peak.ndim)),
            "layer": tuple(range(peak.ndim))}[granularity]
    m = np.max(peak, axis=axes, keepdims=True)
    # A relative floor: a neuron with a tiny scale amplifies the wobble of the layers below
    # (its target moves by sum |w| * scale_below * eta_t / scale per step) until it cannot
    # follow; the floor bounds that gain.
    m = np.maximum(m, floor * np.max(peak))
    m = np.where(m > 1e-5, m, 1.0)
    return np.broadcast_to(m, peak.shape).copy()


def _remove_constants(edit: Rewrite, node: Node) -> None:
    """Zero a synapse's constant part; it lives in ``x_init`` / ``readout_init`` now."""
    if node.op in ("linear", "conv2d", "affine"):
        edit.set_params(node.name, bias=np.zeros_like(node.params["bias"]))
    elif node.op == "window" and node.attrs["pad_mode"] == "constant":
        edit.replace(node.name, attrs={**node.attrs, "pad_value": 0.0})


#: Nonlinear operator -> ``f(node, compat, graph)``: the nodes that replace it, the last
#: named as the node.
NEURONS = {**{op: _activation for op in ACTIVATIONS}, "gelu": _gelu, "batchnorm": _batchnorm,
           "maxpool2d": _max_tree, "layernorm": _layernorm, "softmax": _softmax,
           "log_softmax": _log_softmax}
