"""Sinabs 3.1's ANN-to-SNN converter (``sinabs.from_model``) against refsnn's, side by side.

    python benchmarks/sinabs_converter.py [--models mlp,cnn,cnn_maxpool] [--limit N]
                                          [--steps 128]

The same shipped ReLU models and inputs as ``examples/spikingjelly_converter.py`` (analog input
every step; calibration on the training split of ``data/digits.h5``, test on its test split).
Each model, with its BatchNorms folded into the conv before them (refsnn's ``fold_batchnorm``;
``from_model`` keeps a ``BatchNorm2d`` as it is), is rebuilt as a torch module with one
``nn.ReLU`` per ReLU (:class:`FlatANN`) and scaled in one of two ways:

- ``sinabs.utils.normalize_weights(ann, x, output_layers, param_layers, percentile)``,
  Sinabs' own weight normalisation (percentile 99 is its default): each ReLU's parameter layer
  (weight *and* bias) divided by the percentile of that ReLU's output in the network as
  already scaled;
- refsnn's thresholds, exactly: the parameter layer before a ReLU with threshold ``θ`` whose
  input spikes stand for ``θ_in`` gets ``W · θ_in / θ`` and ``b / θ``, the last layer
  ``W · θ_in`` (the network refsnn simulates, with spikes of 1).

then converted with ``sinabs.from_model`` (float32, Sinabs' dtype: its spikes are float32) and
run one step per call. It prints markdown tables: accuracy at each T beside refsnn's, the most
spikes a neuron emitted in one step, and where Sinabs' spikes first depart from refsnn's trace
(``refsnn compare``, first 32 test images, T = 64) with the departures that reproduce Sinabs'
counts at that layer (:func:`refsnn.interop.sinabs.departures`, a replay of refsnn's recorded
current). Needs torch and Sinabs 3.1.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from refsnn.conversion import convert_if
from refsnn.conversion.bnfold import fold_batchnorm
from refsnn.data import load_data
from refsnn.interop.sinabs import departures
from refsnn.model import INPUT, load_refsnn_h5
from refsnn.oracle.compare import compare
from refsnn.oracle.trace import Layer, Trace, record_trace
from refsnn.sim.simulator import Simulator

ROOT = Path(__file__).resolve().parents[1]
STEPS = (8, 16, 32, 64, 128)
COMPARE_IMAGES, COMPARE_STEPS = 32, 64


def _modules():
    """The torch module per refsnn op of the SpikingJelly comparison (one home for the
    rebuild: ``examples/spikingjelly_converter.py``'s ``MODULES``)."""
    path = ROOT / "examples" / "spikingjelly_converter.py"
    spec = importlib.util.spec_from_file_location("spikingjelly_converter", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module.MODULES


class FlatANN(nn.Module):
    """A refsnn ReLU graph (BatchNorms folded) as a torch module whose direct children are
    its nodes, by refsnn name: ``normalize_weights`` looks layers up among the children and
    ``from_model`` replaces the ``nn.ReLU`` children."""

    def __init__(self, graph):
        super().__init__()
        modules = _modules()
        self.order = [(n.name, n.op, tuple(n.inputs)) for n in graph.nodes]
        self.output = graph.output
        for n in graph.nodes:
            if n.op == "add":
                raise NotImplementedError(f"node '{n.name}': a residual add (normalize_weights "
                                          "scales one parameter layer per ReLU)")
            self.add_module(n.name, modules[n.op](n))

    def forward(self, x):
        values = {INPUT: x}
        for name, op, inputs in self.order:
            values[name] = getattr(self, name)(*(values[i] for i in inputs))
        return values[self.output]


def _source(graph, name):
    """The ReLU (or the input) whose spikes reach node ``name`` through pooling/flatten."""
    if name == INPUT:
        return INPUT
    node = graph.node(name)
    while node.op != "relu":
        if node.inputs[0] == INPUT:
            return INPUT
        node = graph.node(node.inputs[0])
    return node.name


@dataclass
class SinabsConversion:
    network: object        # sinabs.network.Network
    factors: dict          # relu name -> the threshold it stands for, in the ANN's units


def sinabs_convert(graph, xc, batch: int, percentile=None, theta=None, **from_model_kw):
    """Scale a folded ReLU ``graph`` with ``normalize_weights(percentile)`` or refsnn's
    thresholds ``theta`` (relu name -> float) and convert it with ``sinabs.from_model``."""
    import sinabs
    from sinabs.utils import normalize_weights

    ann = FlatANN(graph).float().eval()
    relus = [n.name for n in graph.nodes if n.op == "relu"]
    params = {r: graph.node(r).inputs[0] for r in relus}
    if percentile is not None:
        before = {r: getattr(ann, p).weight.detach().clone() for r, p in params.items()}
        with torch.no_grad():
            normalize_weights(ann, torch.from_numpy(xc.astype(np.float32)), relus,
                              [params[r] for r in relus], percentile=percentile)
        factors, total = {}, 1.0
        for r in relus:  # what each layer's spike stands for: the product of the divisors
            w = getattr(ann, params[r]).weight.detach()
            i = int(torch.argmax(before[r].abs()))
            total *= float(before[r].reshape(-1)[i] / w.reshape(-1)[i])
            factors[r] = total
    else:
        factors = dict(theta)
        with torch.no_grad():
            for n in graph.nodes:
                if n.op not in ("linear", "conv2d"):
                    continue
                src = _source(graph, n.inputs[0])
                t_in = 1.0 if src == INPUT else factors[src]
                layer = getattr(ann, n.name)
                out = [r for r, p in params.items() if p == n.name]
                t_out = factors[out[0]] if out else 1.0
                layer.weight.mul_(t_in / t_out)
                layer.bias.div_(t_out)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = sinabs.from_model(ann, batch_size=batch, **from_model_kw)
    return SinabsConversion(net.eval(), factors)


@torch.no_grad()
def sinabs_run(conv: SinabsConversion, x, steps: int):
    """Run the converted network one step per call on analog input ``x`` (B, ...).

    Returns
    -------
    readout : dict of int to ndarray, shape (B, classes)
        Mean output over steps ``1..T`` for each ``T`` in :data:`STEPS` up to ``steps``.
    counts : dict of str to ndarray, shape (steps, B, ...)
        Spikes per step of each ReLU's ``IAFSqueeze`` (several per step are possible).
    """
    import sinabs

    snn = conv.network.spiking_model
    for m in snn.modules():
        if isinstance(m, sinabs.layers.SqueezeMixin):
            m.batch_size = len(x)
    record = {}
    hooks = [m.register_forward_hook(lambda mod, i, out, name=name: record.setdefault(
        name, []).append(out.numpy().copy())) for name, m in snn.named_children()
        if isinstance(m, sinabs.layers.IAFSqueeze)]
    sinabs.reset_states(snn)
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    total, readout = 0, {}
    try:
        for t in range(1, steps + 1):
            total = total + snn(xt).double()
            if t in STEPS:
                readout[t] = (total / t).numpy()
    finally:
        for h in hooks:
            h.remove()
    return readout, {k: np.rint(np.stack(v)).astype(np.int64) for k, v in record.items()}


#: Row name -> (``normalize_weights``' options, or None for refsnn's thresholds put into the
#: weights; ``from_model`` options; the percentile of refsnn's row beside it).
SETTINGS = {
    "normalize_weights 99 (Sinabs' default)": (dict(percentile=99.0), {}, 99.0),
    "normalize_weights 100 (max)": (dict(percentile=100.0), {}, 100.0),
    "refsnn's θ (max), from_model defaults": (None, {}, 100.0),
    "refsnn's θ (max), min_v_mem=None": (None, dict(min_v_mem=None), 100.0),
    "refsnn's θ (max), SingleSpike": (None, dict(spike_fn="single"), 100.0),
    "refsnn's θ (max), SingleSpike, min_v_mem=None":
        (None, dict(spike_fn="single", min_v_mem=None), 100.0),
}


def convert_setting(graph, xc, batch, setting):
    """Sinabs' conversion and refsnn's ``convert_if`` network of row ``setting``."""
    from sinabs.activation import SingleSpike

    scale, kw, percentile = SETTINGS[setting]
    net = convert_if(graph, xc, percentile=percentile)
    kw = {**kw, **({"spike_fn": SingleSpike} if kw.get("spike_fn") == "single" else {})}
    if scale is None:
        theta = {n.name: float(n.params["threshold"][0]) for n in net.graph.nodes if n.op == "if"}
        return sinabs_convert(graph, xc, batch, theta=theta, **kw), net
    return sinabs_convert(graph, xc, batch, **scale, **kw), net


def verdict(net, conv: SinabsConversion, x, steps: int = COMPARE_STEPS):
    """``refsnn compare`` on Sinabs' spikes (a neuron fired in a step or not) against refsnn's
    trace, and, at the first layer whose spike *counts* differ from refsnn's (one spike a step
    at most: compare's boolean traces do not show several), the departures whose replay of
    refsnn's recorded current gives Sinabs' counts.

    Returns
    -------
    comparison : Comparison
    layer : str or None
        The first layer whose counts differ.
    found : tuple of str or None
        :func:`refsnn.interop.sinabs.departures`' answer there (``()``: no difference).
    text : str
        Both, for a table cell.
    """
    ref = record_trace(Simulator(net, "numpy"), x, steps)
    _, counts = sinabs_run(conv, x, steps)
    c = compare(ref, Trace(steps, {k: Layer(v > 0) for k, v in counts.items()}))
    f = c.first_divergence
    text = "compare: " + ("no divergence" if f is None else
                          f"{f.name}: {f.kind}" + (f" ({f.detail})" if f.detail else ""))
    layer = next((k for k, v in ref.layers.items()
                  if not np.array_equal(counts[k], v.spikes.astype(np.int64))), None)
    if layer is None:
        return c, None, (), (text + "; same counts").replace("|", "\\|")
    found, why = departures(ref.layers[layer], counts[layer])
    return c, layer, found, (text + f"; counts first differ at {layer}: {why}").replace(
        "|", "\\|")


def accuracy(readout: dict, y) -> dict:
    return {t: float(np.mean(np.argmax(r, 1) == y)) for t, r in readout.items()}


def compare_model(model, x_cal, x_test, y_test, steps):
    graph = fold_batchnorm(load_refsnn_h5(ROOT / "data" / "models" / f"{model}.h5"))
    ts = [t for t in STEPS if t <= steps]
    print(f"\n#### {model}\n")
    print("| setting | who | thresholds per layer | " + " | ".join(f"T={t}" for t in ts)
          + f" | spikes per step (most) | compare ({COMPARE_IMAGES} images, "
          f"T={COMPARE_STEPS}) and the replay |")
    print("|" + "---|" * (len(ts) + 5))
    done = {}
    for setting in SETTINGS:
        conv, net = convert_setting(graph, x_cal, len(x_test), setting)
        pct = SETTINGS[setting][2]
        if pct not in done:
            run = Simulator(net, "numba").run(x_test, ts)
            theta = [float(n.params["threshold"][0]) for n in net.graph.nodes if n.op == "if"]
            done[pct] = True
            print(f"| percentile {pct:g} | refsnn | " + ", ".join(f"{v:.4g}" for v in theta)
                  + " | " + " | ".join(f"{100 * a:.2f}" for a in
                                      accuracy(run.readout, y_test).values()) + " | 1 | |")
        readout, counts = sinabs_run(conv, x_test, steps)
        most = max(int(v.max(initial=0)) for v in counts.values())
        conv_small, _ = convert_setting(graph, x_cal, COMPARE_IMAGES, setting)
        _, _, _, text = verdict(net, conv_small, x_test[:COMPARE_IMAGES])
        print(f"| {setting} | Sinabs | " + ", ".join(f"{v:.4g}" for v in conv.factors.values())
              + " | " + " | ".join(f"{100 * a:.2f}" for a in accuracy(readout, y_test).values())
              + f" | {most} | {text} |")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="mlp,cnn,cnn_maxpool")
    p.add_argument("--data", default=str(ROOT / "data" / "digits.h5"))
    p.add_argument("--limit", type=int, default=None, help="first N test images")
    p.add_argument("--steps", type=int, default=max(STEPS))
    args = p.parse_args(argv)
    import sinabs
    x_cal, _ = load_data(args.data, "train")
    x_test, y_test = load_data(args.data, "test", limit=args.limit)
    print(f"Sinabs {sinabs.__version__}, torch {torch.__version__}; calibration: the "
          f"{len(x_cal)} training images; test: {len(x_test)} images")
    for model in args.models.split(","):
        compare_model(model, x_cal, x_test, y_test, args.steps)


if __name__ == "__main__":
    main()
