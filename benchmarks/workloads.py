"""The benchmark's workloads and the work they represent.

A :class:`Workload` is a converted :class:`~refsnn.sim.network.SpikingNetwork` plus the inputs
it is run on. Three kinds:

* ``digits-cnn``, ``digits-mlp``: the shipped models, converted with IF (percentile 99.9,
  calibration = the train split), run on the test images;
* ``rand-mlp``: a 784-512-512-10 MLP with random weights, on random inputs in [0, 1];
* ``rand-vgg``: conv32-conv32-pool-conv64-pool-fc10 on 3x32x32 (3x3 kernels, padding 1,
  average pooling 2x2), random weights, random inputs in [0, 1].

The random networks are rescaled layer by layer so every layer stays active: each layer's
weights and bias are divided by the 99.9th percentile of its ReLU output on the benchmark
inputs (so that percentile is 1), then the network is converted with those same inputs as
calibration data.

This module also counts the work: :func:`fanout_map` gives, for every neuron (or input
element), how many synapses its event drives, and :func:`synaptic_events` turns spike counts
into synaptic events (spikes x fan-out).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from refsnn import ann
from refsnn.convert.if_ import convert_if
from refsnn.data import load_split
from refsnn.model.format import load_model
from refsnn.model.graph import INPUT, Graph, make_graph
from refsnn.sim.network import SpikingNetwork

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data" / "digits.h5"
MODELS = ROOT / "data" / "models"
PERCENTILE = 99.9


@dataclass
class Workload:
    """A converted network and its benchmark inputs.

    Attributes
    ----------
    name : str
    description : str
    net : SpikingNetwork
    x : ndarray, shape (N, *input_shape)
        Inputs; batch 32 uses ``x[:32]``, batch 1 uses ``x[:n_single]`` one at a time.
    n_single : int
        How many samples the batch-1 timings average over.
    oracle : bool
        Whether the (slow) refsnn NumPy reference backend is timed on it.
    """

    name: str
    description: str
    net: SpikingNetwork
    x: np.ndarray
    n_single: int
    oracle: bool = False


# --------------------------------------------------------------------------- the networks

def digits(name: str, n_single: int) -> Workload:
    """A shipped digits model, converted with IF (calibration = train split)."""
    graph = load_model(MODELS / f"{name}.h5")
    x_train, _ = load_split(DATA, "train", graph.input_shape)
    x_test, _ = load_split(DATA, "test", graph.input_shape)
    net = convert_if(graph, x_train, percentile=PERCENTILE)
    return Workload(f"digits-{name}", f"shipped `{name}.h5`, digits test images 1x8x8", net,
                    x_test, n_single, oracle=True)


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
    is the node just before it. Layers are handled front to back, so each sees the already
    rescaled layers below it. The output layer is scaled the same way on ``|output|``.
    """
    nodes = [dict(n, params=dict(n.get("params", {}))) for n in nodes]
    for i, node in enumerate(nodes):
        is_last = node["name"] == output
        if node["op"] != "relu" and not is_last:
            continue
        prefix = make_graph(input_shape, nodes[:i + 1], node["name"])
        act = ann.forward(prefix, x)
        scale = float(np.percentile(np.abs(act), PERCENTILE))
        layer = node if is_last else nodes[i - 1]
        if scale > 0:
            layer["params"] = {k: v / scale for k, v in layer["params"].items()}
    return make_graph(input_shape, nodes, output)


def rand_mlp(n_inputs: int, n_single: int, seed: int = 1) -> Workload:
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
    net = convert_if(graph, x, percentile=PERCENTILE)
    return Workload("rand-mlp", "MLP 784-512-512-10, random rescaled weights, random inputs "
                    "in [0, 1]", net, x, n_single)


def rand_vgg(n_inputs: int, n_single: int, seed: int = 2) -> Workload:
    """conv32-conv32-pool-conv64-pool-fc10 on 3x32x32, random rescaled weights."""
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
    net = convert_if(graph, x, percentile=PERCENTILE)
    return Workload("rand-vgg", "VGG-style conv32-conv32-pool-conv64-pool-fc10 on 3x32x32 "
                    "(3x3 pad 1, avgpool 2x2), random rescaled weights, random inputs in "
                    "[0, 1]", net, x, n_single)


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


def synaptic_events(net: SpikingNetwork, counts: dict, x: np.ndarray, steps: int) -> int:
    """Spikes x fan-out over a run, plus the input's non-zero values x fan-out x steps.

    ``counts`` are a run's per-neuron spike counts (``Run.counts``), ``x`` its inputs; with
    analog encoding every non-zero input value is an event at every step.
    """
    graph = net.graph
    total = 0
    for name, c in counts.items():
        total += int(np.sum(c * fanout_map(graph, name)[None]))
    if net.encoding == "analog":
        total += steps * int(np.sum((x != 0) * fanout_map(graph, INPUT)[None]))
    return total


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


def architecture(graph: Graph) -> str:
    """One line: the nodes and their output shapes."""
    return " -> ".join(f"{n.name}:{n.op}{list(graph.shapes[n.name])}" for n in graph.nodes)
