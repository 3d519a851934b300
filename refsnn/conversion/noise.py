"""Conversion of QCFS networks trained with residual-error noise (``--method noise``, NQ).

Huang et al., "Converting High-Performance and Low-Latency SNNs through Explicit Modelling of
Residual Error in ANNs" (IEEE TNNLS; arXiv 2404.17456). The ANN is trained with QCFS
activations ``h(x) = λ·floor(clip(x/λ, 0, 1)·L + 1/2)/L`` plus Gaussian noise whose per-layer
spread is the measured gap between ``h`` and the SNN's rate (:func:`measure_gap`, the one
definition, used by ``data/train_noise.py`` and by ``refsnn diagnose``'s ``gap`` table). The
conversion itself is fixed by the model, so it needs no calibration data:

- each ``qcfs`` node becomes an ``if`` node with threshold ``θ = λ``, initial membrane potential
  ``θ/2`` and reset by subtraction (a spike carries ``θ``, so the rate times ``θ`` is the
  represented activation);
- every other operator stays a synapse, as in the IF method; max pooling must read a ``qcfs``
  node (the paper's models use average pooling instead);
- the readout is the mean of the output node's values over the steps (the accumulated output
  divided by ``T``; same arg-max).

Each ``if`` node keeps its ``qcfs`` node's name; the levels ``L`` of every layer are kept in the
network's options (``levels``, a JSON object), so that the QCFS ANN the network was made from can
be evaluated from a converted file alone (:func:`qcfs_limit`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from refsnn import ann
from refsnn.checks import check_batch, check_choice
from refsnn.conversion.bnfold import fold_batchnorm
from refsnn.conversion.if_ import check_maxpool_reads
from refsnn.errors import ConversionError, OptionError
from refsnn.model.graph import Graph
from refsnn.neurons.if_ import IF
from refsnn.sim.network import NEURON_FORWARD, SNN_OPS, SpikingNetwork, represented_output
from refsnn.sim.record import concat_runs
from refsnn.sim.simulator import Run, Simulator

#: Operators the noise method converts: QCFS becomes IF neurons, the rest are synapses.
SUPPORTED = ("linear", "conv2d", "batchnorm", "qcfs", "avgpool2d", "maxpool2d", "flatten",
             "add", "identity", "transpose", "mean", "reshape", "scale", "affine")
ENCODINGS = ("analog", "poisson")
METHOD = "noise"


def convert_noise(graph: Graph, calibration=None, encoding: str = "analog",
                  dtype=np.float64) -> SpikingNetwork:
    """Convert a QCFS network: ``qcfs`` -> IF neurons with ``θ = λ``, ``u₀ = θ/2``, subtract.

    Parameters
    ----------
    graph : Graph
        The trained QCFS ANN (at least one ``qcfs`` node; no ``relu``).
    calibration : ndarray, shape (B, *graph.input_shape), optional
        Not used to set anything (the thresholds are the model's λ); checked for shape only,
        so the signature matches the other converters.
    encoding : {"analog", "poisson"}
        How the input drives the network.
    dtype : {numpy.float64, numpy.float32}
        Precision of the converted network and of its simulation.

    Raises
    ------
    ConversionError
        If the graph holds an operator the method cannot convert (ReLU included: it has no λ),
        no ``qcfs`` node, or max pooling that does not read a ``qcfs`` node.
    """
    check_choice("--encoding", encoding, ENCODINGS)
    check_choice("--dtype", np.dtype(dtype).name, ("float64", "float32"))
    for node in graph.nodes:
        if node.op not in SUPPORTED:
            hint = (" (a ReLU has no clip value λ: use --method if, or train with QCFS, see "
                    "data/train_noise.py)" if node.op == "relu" else "")
            raise ConversionError(
                f"node '{node.name}': op '{node.op}' cannot be converted with --method noise"
                f"{hint} (supported: {', '.join(SUPPORTED)})")
    if not any(node.op == "qcfs" for node in graph.nodes):
        raise ConversionError("--method noise converts QCFS networks; the graph has no qcfs "
                              "node (use --method if for ReLU networks)")
    if calibration is not None:
        check_batch(calibration, graph.input_shape, what="calibration data")
    folded = fold_batchnorm(graph)
    check_maxpool_reads(folded, "qcfs")
    edit, levels = folded.edit(), {}
    for node in folded.nodes:
        if node.op == "qcfs":
            levels[node.name] = int(node.attrs["levels"])
            edit.replace(node.name, IF.op, attrs={"reset": "subtract", "v_init": "half"},
                         params={"threshold": np.full(folded.shapes[node.name][0],
                                                      float(node.params["clip"][0]))})
    snn_graph = edit.commit(dtype=dtype, ops=SNN_OPS)
    options = {"levels": json.dumps(levels), "reset": "subtract", "v_init": "half",
               "readout": "potential", "dtype": np.dtype(dtype).name}
    return SpikingNetwork(snn_graph, METHOD, encoding, MappingProxyType(options))


def network_levels(net: SpikingNetwork) -> dict[str, int]:
    """The QCFS levels ``L`` of each neuron node of a ``noise`` network, from its options."""
    if net.method != METHOD:
        raise OptionError(f"QCFS levels exist for --method {METHOD} networks only, "
                          f"not {net.method!r}")
    levels = json.loads(str(net.options["levels"]))
    missing = set(net.neuron_nodes()) - set(levels)
    if missing:
        raise ConversionError(f"network option 'levels' names no level for {sorted(missing)}")
    return {name: int(levels[name]) for name in net.neuron_nodes()}


def qcfs_limit(net: SpikingNetwork, x: np.ndarray):
    """The QCFS ANN a ``noise`` network was converted from, evaluated on ``x``.

    Every ``if`` node acts as ``h(x) = qcfs(x, θ, L)`` (``θ = λ``), every synapse as in the
    ANN. This is the network's ANN, not its ``T -> ∞`` limit (that is ``clip(x, 0, θ)``,
    :func:`refsnn.sim.network.ann_limit`).

    Returns
    -------
    tuple
        ``(output, {node name: value})``, shapes ``(B, *node_shape)``, as
        :func:`refsnn.ann.forward` with ``all_nodes``.
    """
    levels = network_levels(net)

    def h(node, v):
        theta = node.params["threshold"].reshape((1, -1) + (1,) * (v.ndim - 2))
        return ann.qcfs(v, theta, levels[node.name])

    return ann.forward(net.graph, x, all_nodes=True, forward_ops={**NEURON_FORWARD, IF.op: h})


@dataclass(frozen=True)
class Gap:
    """The gap ``h(x) − count·θ/T`` of one neuron layer over a batch.

    Attributes
    ----------
    mean : float
        Mean of the gap over every element (sample × neuron) of the batch.
    sigma : float
        ``sqrt`` of the variance of the gap over every element (population variance, ``ddof=0``).
    values : ndarray, shape (B, *node_shape)
        The gap per element.
    """

    mean: float
    sigma: float
    values: np.ndarray


def gap_from_counts(net: SpikingNetwork, x: np.ndarray, counts: dict, steps: int) -> dict:
    """Per neuron layer, the gap between the QCFS ANN and the SNN's rate: the one definition.

    For layer ``l`` with ANN input ``x_l`` (the QCFS ANN run on the same batch, every layer
    quantised), ``gap = h_l(x_l) − N_l·θ_l/T`` where ``N_l`` is the layer's spike count after
    ``T = steps`` steps; ``Gap.mean`` and ``Gap.sigma`` are its mean and spread over every
    element of the batch (``σ_l`` of the method).

    Parameters
    ----------
    net : SpikingNetwork
        A ``noise`` network.
    x : ndarray, shape (B, *input_shape)
    counts : dict of str to int ndarray, shape (B, *node_shape)
        Spike counts of every neuron node after ``steps`` steps (``Run.counts``).
    steps : int
        ``T`` (the noise-induction length ``T_n`` of the method).

    Returns
    -------
    dict of str to Gap
        In graph order.
    """
    _, values = qcfs_limit(net, x)
    out = {}
    for name in net.neuron_nodes():
        gap = values[name] - represented_output(net, name, counts[name], steps)
        out[name] = Gap(float(np.mean(gap)), float(np.sqrt(np.var(gap))), gap)
    return out


def measure_gap(net: SpikingNetwork, x: np.ndarray, steps: int, batch_size: int | None = None,
                backend: str = "numba") -> tuple[dict, Run]:
    """Simulate ``x`` for ``steps`` steps and measure each layer's gap (:func:`gap_from_counts`).

    With ``batch_size``, the batch is split; the mean and the variance are averaged over the
    batches (the authors' estimate; equal to the whole-set values when the batches have equal
    size and equal means). ``Gap.values`` then holds every sample's gap.

    Returns
    -------
    (dict of str to Gap, Run)
        The gaps, and the run of all batches joined (its readout gives the SNN accuracy at
        ``T``).
    """
    if steps < 1:
        raise OptionError(f"steps: expected a positive integer, found {steps}")
    size = x.shape[0] if batch_size is None else batch_size
    sim = Simulator(net, backend)
    parts, runs = [], []
    for start in range(0, x.shape[0], size):
        xb = x[start:start + size]
        run = sim.run(xb, steps)
        parts.append(gap_from_counts(net, xb, run.counts, steps))
        runs.append(run)
    gaps = {}
    for name in parts[0]:
        var = float(np.mean([p[name].sigma ** 2 for p in parts]))
        gaps[name] = Gap(float(np.mean([p[name].mean for p in parts])), float(np.sqrt(var)),
                         np.concatenate([p[name].values for p in parts]))
    return gaps, concat_runs(runs)
