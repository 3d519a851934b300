"""The benchmark's workloads and the work they represent.

A :class:`Workload` is a ReLU ANN, its calibration data and the inputs it is run on;
:func:`convert` turns it into a :class:`~refsnn.sim.network.SpikingNetwork` with one of the
benchmarked methods (``METHODS``: IF at the 99.9th percentile, analog input; signGD with its
defaults, exact input) in float64 or float32. The workloads:

* ``digits-cnn``, ``digits-mlp``: the shipped models (calibration = the train split), run on
  the test images;
* ``mlp``: a 784-512-512-10 MLP with random weights, on random inputs in [0, 1];
* ``vgg``: the issue's VGG-style CNN on 3x32x32, conv64-conv64-pool-conv128-conv128-pool-
  conv256-conv256-pool-fc512-fc10 (3x3 kernels, padding 1, **average** pooling 2x2: IF
  conversion takes max pooling only after ReLU neurons, and average pooling keeps the dense
  peers simple), random weights, random inputs in [0, 1];
* ``vgg-small``: a reduced VGG, conv32-conv32-pool-conv64-pool-fc10, for ``--quick``.

The random networks are rescaled layer by layer so every layer stays active: each layer's
weights and bias are divided by the 99.9th percentile of its ReLU output on the benchmark
inputs (so that percentile is 1), then the network is converted with those same inputs as
calibration data (IF thresholds at the 99.9th percentile, signGD scales from their maxima).

This module also counts the work: :func:`fanout_map` gives, for every neuron (or input
element), how many synapses its event drives, and :func:`synaptic_events` turns spike counts
into synaptic events (spikes x fan-out; for signGD, whose neurons emit a non-zero increment
every step, every neuron every step).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from refsnn import ann
from refsnn.conversion.if_ import convert_if
from refsnn.conversion.signgd import convert_signgd
from refsnn.data import load_data
from refsnn.model.format import load_refsnn_h5
from refsnn.model.graph import INPUT, Graph, make_graph
from refsnn.sim.network import NEURON_OPS, SpikingNetwork

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data" / "digits.h5"
MODELS = ROOT / "data" / "models"
PERCENTILE = 99.9


#: Benchmarked conversion method -> ``f(graph, calibration, dtype) -> SpikingNetwork``.
METHODS = {
    "if": lambda graph, calib, dtype: convert_if(graph, calib, percentile=PERCENTILE,
                                                 dtype=dtype),
    "signgd": lambda graph, calib, dtype: convert_signgd(graph, calib, dtype=dtype),
}


@dataclass
class Workload:
    """An ANN, its calibration data and its benchmark inputs.

    Attributes
    ----------
    name : str
    description : str
    graph : Graph
        The ReLU ANN.
    calibration : ndarray, shape (M, *input_shape)
        Sets IF thresholds / signGD scales.
    x : ndarray, shape (N, *input_shape)
        Inputs; batch 32 uses ``x[:32]``, batch 1 uses ``x[:n_single]`` one at a time.
    n_single : int
        How many samples the batch-1 timings average over.
    oracle : bool
        Whether the (slow) refsnn NumPy reference backend is timed on it.
    """

    name: str
    description: str
    graph: Graph
    calibration: np.ndarray
    x: np.ndarray
    n_single: int
    oracle: bool = False


def convert(work: Workload, method: str, dtype="float64") -> SpikingNetwork:
    """The workload's ANN converted with ``method`` (a key of ``METHODS``) in ``dtype``."""
    return METHODS[method](work.graph, work.calibration, np.dtype(dtype))


# --------------------------------------------------------------------------- the networks

def digits(name: str, n_single: int) -> Workload:
    """A shipped digits model (calibration = train split, inputs = test split)."""
    graph = load_refsnn_h5(MODELS / f"{name}.h5")
    x_train, _ = load_data(DATA, "train", graph.input_shape)
    x_test, _ = load_data(DATA, "test", graph.input_shape)
    return Workload(f"digits-{name}", f"shipped `{name}.h5`, digits test images 1x8x8", graph,
                    x_train, x_test, n_single, oracle=True)


def _relu(name, src):
    return {"name": name, "op": "relu", "inputs": [src]}


def _linear(rng, name, src, n_in, n_out):
    w = rng.standard_normal((n_out, n_in)) * np.sqrt(2.0 / n_in)
    return {"name": name, "op": "linear", "inputs": [src],
            "params": {"weight": w, "bias": np.zeros(n_out)}}


def _conv(rng, name, src, c_in, c_out):
    w = rng.standard_normal((c_out, c_in, 3, 3)) * np.sqrt(2.0 / (9 * c_in))
    return {"name": name, "op": "conv2d", "inputs": [src], "attrs": {"padding": (1, 1)},
            "params": {"weight": w, "bias": np.zeros(c_out)}}


def _avgpool(name, src):
    return {"name": name, "op": "avgpool2d", "inputs": [src],
            "attrs": {"kernel": (2, 2), "stride": (2, 2)}}


def rescale(input_shape, nodes: list[dict], output: str, x: np.ndarray) -> Graph:
    """Scale each ReLU's feeding layer so the ReLU's 99.9th percentile on ``x`` is 1.

    ``nodes`` are in order, each reading the one before it (a chain); the layer feeding a ReLU
    is the node just before it; the output layer is scaled the same way on ``|output|``.
    The random networks have zero biases, so the network is positively homogeneous (ReLU,
    average pooling, linear maps): dividing a layer by ``s`` divides every later activation by
    ``s``. One forward pass of the unscaled network then gives every percentile ``P_k``, and
    the layer feeding ReLU ``k`` is divided by ``P_k / P_(k-1)`` (``P_0 = 1``), which makes each
    rescaled percentile 1 (instead of one forward pass per layer, slow on the VGG).
    """
    nodes = [dict(n, params=dict(n.get("params", {}))) for n in nodes]
    for n in nodes:
        if np.any(n["params"].get("bias", 0) != 0):
            raise ValueError(f"rescale: node {n['name']} has a non-zero bias")
    _, acts = ann.forward(make_graph(input_shape, nodes, output), x, all_nodes=True)
    previous = 1.0
    for i, node in enumerate(nodes):
        if node["op"] != "relu" and node["name"] != output:
            continue
        p = float(np.percentile(np.abs(acts[node["name"]]), PERCENTILE))
        if p > 0:
            layer = node if node["name"] == output else nodes[i - 1]
            layer["params"] = {k: v / (p / previous) for k, v in layer["params"].items()}
            previous = p
    return make_graph(input_shape, nodes, output)


def mlp(n_inputs: int, n_single: int, seed: int = 1) -> Workload:
    """784-512-512-10 MLP, random weights, rescaled; random inputs in [0, 1]."""
    rng = np.random.default_rng(seed)
    nodes = [
        {"name": "flatten", "op": "flatten", "inputs": [INPUT]},
        _linear(rng, "fc1", "flatten", 784, 512), _relu("relu1", "fc1"),
        _linear(rng, "fc2", "relu1", 512, 512), _relu("relu2", "fc2"),
        _linear(rng, "fc", "relu2", 512, 10),
    ]
    x = rng.random((n_inputs, 1, 28, 28))
    graph = rescale((1, 28, 28), nodes, "fc", x)
    return Workload("mlp", "MLP 784-512-512-10, random rescaled weights, random inputs "
                    "in [0, 1]", graph, x, x, n_single)


def vgg(n_inputs: int, n_single: int, seed: int = 3) -> Workload:
    """The issue's VGG: conv64-conv64-pool-conv128-conv128-pool-conv256-conv256-pool-fc512-fc10.

    3x32x32 input, 3x3 kernels with padding 1, average pooling 2x2, random rescaled weights,
    random inputs in [0, 1].
    """
    rng = np.random.default_rng(seed)
    nodes, src, c_in, k = [], INPUT, 3, 0
    for block, c_out in enumerate((64, 128, 256), start=1):
        for _ in range(2):
            k += 1
            nodes += [_conv(rng, f"conv{k}", src, c_in, c_out), _relu(f"relu{k}", f"conv{k}")]
            src, c_in = f"relu{k}", c_out
        nodes.append(_avgpool(f"pool{block}", src))
        src = f"pool{block}"
    nodes += [{"name": "flatten", "op": "flatten", "inputs": [src]},
              _linear(rng, "fc1", "flatten", 256 * 4 * 4, 512), _relu("relu_fc1", "fc1"),
              _linear(rng, "fc", "relu_fc1", 512, 10)]
    x = rng.random((n_inputs, 3, 32, 32))
    graph = rescale((3, 32, 32), nodes, "fc", x)
    return Workload("vgg", "VGG-style conv64-conv64-pool-conv128-conv128-pool-conv256-conv256-"
                    "pool-fc512-fc10 on 3x32x32 (3x3 pad 1, average pooling 2x2), random "
                    "rescaled weights, random inputs in [0, 1]", graph, x, x, n_single)


def vgg_small(n_inputs: int, n_single: int, seed: int = 2) -> Workload:
    """conv32-conv32-pool-conv64-pool-fc10 on 3x32x32, random rescaled weights (--quick)."""
    rng = np.random.default_rng(seed)
    nodes = [
        _conv(rng, "conv1", INPUT, 3, 32), _relu("relu1", "conv1"),
        _conv(rng, "conv2", "relu1", 32, 32), _relu("relu2", "conv2"),
        _avgpool("pool1", "relu2"),
        _conv(rng, "conv3", "pool1", 32, 64), _relu("relu3", "conv3"),
        _avgpool("pool2", "relu3"),
        {"name": "flatten", "op": "flatten", "inputs": ["pool2"]},
        _linear(rng, "fc", "flatten", 64 * 8 * 8, 10),
    ]
    x = rng.random((n_inputs, 3, 32, 32))
    graph = rescale((3, 32, 32), nodes, "fc", x)
    return Workload("vgg-small", "reduced VGG conv32-conv32-pool-conv64-pool-fc10 on 3x32x32 "
                    "(3x3 pad 1, avgpool 2x2), random rescaled weights, random inputs in "
                    "[0, 1]", graph, x, x, n_single)


# --------------------------------------------------------------------------- counting work

def _axis_taps(size, kernel, stride, pad, out):
    """Per input position along one axis: how many kernel taps reach a valid output."""
    taps = np.zeros(size, dtype=np.int64)
    for i in range(size):
        for k in range(kernel):
            n = i + pad - k
            if n >= 0 and n % stride == 0 and n // stride < out:
                taps[i] += 1
    return taps


def _window_spread(down, in_shape, attrs):
    """Pooling: an input element reaches every window holding it; sum those windows' maps."""
    c, h, w = in_shape
    (kh, kw), (sh, sw), (ph, pw) = attrs["kernel"], attrs["stride"], attrs["padding"]
    ho, wo = down.shape[1], down.shape[2]
    out = np.zeros(in_shape, dtype=np.int64)
    for oy in range(ho):
        for ox in range(wo):
            y0, x0 = oy * sh - ph, ox * sw - pw
            ys = slice(max(y0, 0), min(y0 + kh, h))
            xs = slice(max(x0, 0), min(x0 + kw, w))
            out[:, ys, xs] += down[:, oy:oy + 1, ox:ox + 1]
    return out


def fanout_map(graph: Graph, name: str) -> np.ndarray:
    """Synapses driven by one event of each element of node ``name`` (shape of the node).

    The synapses counted are those of the linear / conv layers the element reaches; pooling,
    flatten, identity and add pass events through (an element that reaches a pooled value
    reaches whatever that pooled value drives), and are not counted as synapses themselves.
    """
    shape = graph.shapes[name]
    total = np.zeros(shape, dtype=np.int64)
    for node in graph.consumers(name):
        if node.op == "linear":
            total += node.params["weight"].shape[0]
        elif node.op == "conv2d":
            o, cg, kh, kw = node.params["weight"].shape
            _, h, w = shape
            ho, wo = graph.shapes[node.name][1:]
            (sy, sx), (py, px) = node.attrs["stride"], node.attrs["padding"]
            ty = _axis_taps(h, kh, sy, py, ho)
            tx = _axis_taps(w, kw, sx, px, wo)
            total += (o // node.attrs["groups"]) * (ty[:, None] * tx[None, :])[None]
        elif node.op in ("avgpool2d", "maxpool2d"):
            total += _window_spread(fanout_map(graph, node.name), shape, node.attrs)
        elif node.op in ("flatten", "identity", "add", "batchnorm"):
            total += fanout_map(graph, node.name).reshape(shape)
        # a neuron node reading this one directly drives no synapse
    return total


#: Encoding -> on how many of ``steps`` steps a non-zero input value is an event.
INPUT_EVENT_STEPS = {
    "analog": lambda steps: steps,  # the analog sample, every step
    "exact": lambda steps: 1,       # signGD: the input's increment x at step 1, then 0
}


def synaptic_events(net: SpikingNetwork, counts: dict, x: np.ndarray, steps: int) -> int:
    """Events x fan-out over a run of ``x`` for ``steps`` steps.

    IF neurons: an event is a spike (``counts``, a run's per-neuron spike counts,
    ``Run.counts``). signGD (``sgd``) neurons emit a non-zero increment ``-+eta_t * scale`` every
    step, whether they spike or not, so each is an event every step. The input adds its
    non-zero values x fan-out on the steps its encoding delivers them (``INPUT_EVENT_STEPS``).
    """
    graph = net.graph
    batch = x.shape[0]
    total = 0
    for name, c in counts.items():
        fan = fanout_map(graph, name)[None]
        if graph.node(name).op == "sgd":
            total += steps * batch * int(np.sum(fan))
        else:
            total += int(np.sum(c * fan))
    nonzero = int(np.sum((x != 0) * fanout_map(graph, INPUT)[None]))
    return total + INPUT_EVENT_STEPS[net.encoding](steps) * nonzero


def dense_macs(graph: Graph, batch: int) -> int:
    """Multiply-adds of one dense step of every synapse layer (what a GEMM peer does)."""
    total = 0
    for node in graph.nodes:
        out = int(np.prod(graph.shapes[node.name]))
        if node.op == "linear":
            total += out * node.params["weight"].shape[1]
        elif node.op == "conv2d":
            _, cg, kh, kw = node.params["weight"].shape
            total += out * cg * kh * kw
        elif node.op in ("avgpool2d", "maxpool2d"):
            kh, kw = node.attrs["kernel"]
            total += out * kh * kw
    return batch * total


def synapse_bytes(graph: Graph) -> int:
    """Bytes of the weights of every linear / conv layer (what one dense step must read)."""
    return sum(int(node.params["weight"].nbytes) for node in graph.nodes
               if node.op in ("linear", "conv2d"))


def state_elements(graph: Graph) -> int:
    """Neurons per sample (each has a potential read and written every step)."""
    return sum(int(np.prod(graph.shapes[n.name])) for n in graph.nodes if n.op in NEURON_OPS)


def architecture(graph: Graph) -> str:
    """One line: the nodes and their output shapes."""
    return " -> ".join(f"{n.name}:{n.op}{list(graph.shapes[n.name])}" for n in graph.nodes)
