"""SpikingJelly 2.0's own ANN-to-SNN converter against refsnn's conversion, side by side.

    python examples/spikingjelly_converter.py [--models mlp,cnn,cnn_maxpool,resnet]
                                              [--limit N] [--steps 8,16,32,64,128]

For each shipped ReLU model it rebuilds the ANN as a torch module (:func:`ann_module`, one
``nn.ReLU`` per refsnn ``relu`` node, float64), converts it with
``spikingjelly.activation_based.ann2snn.Converter(RateCodingRecipe(...))`` in several threshold
modes (and with ``LocalThresholdBalancingRecipe``), converts the same model with refsnn
(``convert_if``) at the matching setting, runs both on the test split of ``data/digits.h5``
(analog input every step, SpikingJelly single-step, float64) and prints markdown tables:
thresholds per layer, accuracy at each T, spikes per layer and step, and the first divergence
as ``refsnn compare`` names it (on the first 32 test images, T = 64).

What SpikingJelly's rate-coding recipe builds (read from its 2.0.0 source): BatchNorm fused into
the conv before it (``fuse_conv_bn_eval``); each ReLU replaced by ``VoltageScaler(1/s)`` ->
``IFNode(v_threshold=1.0, v_reset=None)`` -> ``VoltageScaler(s)``, with ``s`` from a
``VoltageHook`` on the ReLU's output; every other module (pooling, flatten, add, the last
linear) left as it is. With one calibration batch, ``s`` is the batch's max (mode ``"max"``) or
``torch.quantile`` (mode ``"99.9%"``, linear interpolation as NumPy's percentile); over several
batches it is an exponential moving average of the per-batch values (momentum 0.1).

Needs torch and SpikingJelly 2.0 (with loguru, tqdm and requests, which its ann2snn imports).
"""

from __future__ import annotations

import argparse
import contextlib
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from spikingjelly.activation_based import ann2snn, functional, neuron
from torch import nn

from refsnn import ann
from refsnn.conversion import convert_if
from refsnn.data import load_data
from refsnn.model import INPUT, load_refsnn_h5
from refsnn.oracle.compare import compare
from refsnn.oracle.trace import Layer, Trace, record_trace
from refsnn.sim.simulator import Simulator

ROOT = Path(__file__).resolve().parents[1]
STEPS = (8, 16, 32, 64, 128)


# ----------------------------------------------------------------------------- the ANN

def _t(a) -> torch.Tensor:
    return torch.from_numpy(np.array(a, dtype=np.float64))


def _linear(node):
    m = nn.Linear(*node.params["weight"].shape[::-1]).double()
    m.weight.data, m.bias.data = _t(node.params["weight"]), _t(node.params["bias"])
    return m


def _conv(node):
    w, a = node.params["weight"], node.attrs
    m = nn.Conv2d(w.shape[1] * a["groups"], w.shape[0], w.shape[2:], stride=tuple(a["stride"]),
                  padding=tuple(a["padding"]), groups=a["groups"]).double()
    m.weight.data, m.bias.data = _t(w), _t(node.params["bias"])
    return m


def _bn(node):
    p = node.params
    m = nn.BatchNorm2d(p["gamma"].shape[0], eps=node.attrs["eps"]).double()
    m.weight.data, m.bias.data = _t(p["gamma"]), _t(p["beta"])
    m.running_mean.data, m.running_var.data = _t(p["mean"]), _t(p["var"])
    return m


def _pool(cls):
    def build(node):
        a = node.attrs
        return cls(tuple(a["kernel"]), tuple(a["stride"]), tuple(a["padding"]))
    return build


#: refsnn operator -> torch module (``add`` is ``+`` in :meth:`GraphANN.forward`).
MODULES = {
    "linear": _linear,
    "conv2d": _conv,
    "batchnorm": _bn,
    "relu": lambda node: nn.ReLU(),
    "avgpool2d": _pool(nn.AvgPool2d),
    "maxpool2d": _pool(nn.MaxPool2d),
    "flatten": lambda node: nn.Flatten(),
}


class GraphANN(nn.Module):
    """A refsnn ReLU graph as a torch module that ``torch.fx`` traces into one call per node."""

    def __init__(self, graph):
        super().__init__()
        self.order = [(n.name, n.op, tuple(n.inputs)) for n in graph.nodes]
        self.output = graph.output
        self.layers = nn.ModuleDict({n.name: MODULES[n.op](n) for n in graph.nodes
                                     if n.op != "add"})

    def forward(self, x):
        values = {INPUT: x}
        for name, op, inputs in self.order:
            args = [values[i] for i in inputs]
            values[name] = args[0] + args[1] if op == "add" else self.layers[name](*args)
        return values[self.output]


def ann_module(graph) -> GraphANN:
    """``graph`` as a float64 torch module in eval mode (see :class:`GraphANN`)."""
    return GraphANN(graph).double().eval()


# ------------------------------------------------------------------ SpikingJelly's converter

@dataclass
class SJConversion:
    """A network converted by SpikingJelly and its thresholds by refsnn's ReLU name."""

    model: nn.Module
    neurons: dict                      # relu name -> IF module (IFNode or HalfThresholdIFNode)
    theta: dict                        # relu name -> ndarray (C,) or scalar: the scale s
    structure: dict = field(default_factory=dict)  # relu name -> (scaler0, v_threshold, kind)


def _calibration_batches(xc: np.ndarray, batch: int | None):
    x = torch.from_numpy(np.ascontiguousarray(xc))
    return [x] if batch is None else list(torch.split(x, batch))


def sj_convert(graph, xc: np.ndarray, recipe: str = "rate", mode="max", batch: int | None = None,
               channel_wise: bool = False) -> SJConversion:
    """Convert ``graph`` with SpikingJelly 2.0's ``ann2snn.Converter``.

    Parameters
    ----------
    graph : Graph
        A ReLU network (every relu becomes one SpikingJelly spiking block).
    xc : ndarray, shape (N, *input_shape)
        Calibration inputs.
    recipe : {"rate", "ltb"}
        ``RateCodingRecipe`` or ``LocalThresholdBalancingRecipe``.
    mode : str or float
        The rate-coding recipe's threshold mode: ``"max"``, ``"99.9%"``, or a float in (0, 1].
    batch : int, optional
        Calibration batch size (default: all of ``xc`` in one batch).
    channel_wise : bool
        The rate-coding recipe's per-channel thresholds.
    """
    loader = _calibration_batches(xc, batch)
    if recipe == "ltb":
        r = ann2snn.LocalThresholdBalancingRecipe(dataloader=loader)
    else:
        r = ann2snn.RateCodingRecipe(dataloader=loader, mode=mode, channel_wise=channel_wise)
    with contextlib.redirect_stderr(io.StringIO()):  # tqdm's bar and loguru's info line
        model = ann2snn.Converter(r).convert(ann_module(graph))
    modules = dict(model.named_modules())
    relus = [n.name for n in graph.nodes if n.op == "relu"]
    ifs = [(name, m) for name, m in modules.items()
           if isinstance(m, (neuron.IFNode, neuron.HalfThresholdIFNode))]
    if len(ifs) != len(relus):
        raise RuntimeError(f"SpikingJelly made {len(ifs)} spiking nodes for {len(relus)} ReLUs")
    conv = SJConversion(model, {}, {})
    # fx keeps the nodes in execution order, which is refsnn's graph order here
    for relu, (name, m) in zip(relus, ifs):
        prefix = name.rsplit(".", 1)[0]
        scale0 = modules[prefix + ".scaler0"].scale.detach().numpy().copy()
        conv.neurons[relu] = m
        conv.theta[relu] = modules[prefix + ".scaler1"].scale.detach().numpy().copy()
        conv.structure[relu] = (scale0, float(m.v_threshold), type(m).__name__)
    return conv


@torch.no_grad()
def sj_run(conv: SJConversion, x: np.ndarray, steps: int, rasters: bool = False):
    """Run SpikingJelly's converted network for ``steps`` single steps on analog input ``x``.

    Returns
    -------
    readout : dict of int to ndarray, shape (B, classes)
        Mean of the output over steps ``1..T`` for every ``T`` in :data:`STEPS` up to ``steps``.
    step_counts : dict of str to ndarray, shape (steps,)
        Spikes per step summed over the batch, by refsnn's ReLU name.
    spikes : dict of str to bool ndarray, shape (steps, B, ...), only if ``rasters``
    """
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64))
    record = {name: [] for name in conv.neurons}
    hooks = [m.register_forward_hook(lambda mod, i, out, name=name: record[name].append(
        out.detach().numpy() != 0)) for name, m in conv.neurons.items()]
    functional.reset_net(conv.model)
    total, readout = 0, {}
    try:
        for t in range(1, steps + 1):
            total = total + conv.model(xt)
            if t in STEPS:
                readout[t] = (total / t).numpy()
    finally:
        for h in hooks:
            h.remove()
    counts = {k: np.array([int(s.sum()) for s in v]) for k, v in record.items()}
    spikes = {k: np.stack(v) for k, v in record.items()} if rasters else None
    return readout, counts, spikes


# ------------------------------------------------------------------------ the comparison

#: Row name -> (SpikingJelly conversion options, refsnn convert_if options or None).
SETTINGS = {
    "max": (dict(mode="max"), dict(percentile=100.0)),
    "99.9%": (dict(mode="99.9%"), dict(percentile=99.9)),
    "max, batches of 64": (dict(mode="max", batch=64), dict(percentile=100.0)),
    "0.9 (x max)": (dict(mode=0.9), None),
    "max, channel-wise": (dict(mode="max", channel_wise=True),
                          dict(percentile=100.0, per_channel=True)),
    "LTB (local threshold balancing)": (dict(recipe="ltb"), None),
}


def accuracy(readout: dict, y: np.ndarray) -> dict:
    return {t: float(np.mean(np.argmax(r, 1) == y)) for t, r in readout.items()}


def first_divergence(net, conv: SJConversion, x: np.ndarray, steps: int = 64) -> str:
    """``refsnn compare``'s verdict on SpikingJelly's spikes against refsnn's trace."""
    ref = record_trace(Simulator(net, "numpy"), x, steps)
    _, _, spikes = sj_run(conv, x, steps, rasters=True)
    other = Trace(steps, {k: Layer(v) for k, v in spikes.items()})
    c = compare(ref, other)
    f = c.first_divergence
    if f is None:
        return "no divergence"
    text = f"{f.name}: {f.kind}" + (f" ({f.detail})" if f.detail else "")
    return text.replace("|", "\\|")  # a table cell


def _fmt_theta(v) -> str:
    v = np.ravel(v)
    return f"{v[0]:.4g}" if np.unique(v).size == 1 else f"{v.min():.3g}..{v.max():.3g} (per ch.)"


def compare_model(model: str, x_cal, x_test, y_test, steps: int, compare_limit: int = 32):
    """Print the side-by-side tables of one shipped model."""
    graph = load_refsnn_h5(ROOT / "data" / "models" / f"{model}.h5")
    torch_out = ann_module(graph)(torch.from_numpy(x_test)).detach().numpy()
    gap = float(np.abs(torch_out - ann.forward(graph, x_test)).max())
    ann_acc = float(np.mean(np.argmax(torch_out, 1) == y_test))
    print(f"\n### {model} (ANN {100 * ann_acc:.2f} %; torch rebuild vs refsnn forward: "
          f"max |diff| {gap:.1e})\n")
    ts = [t for t in STEPS if t <= steps]
    head = "| setting | who | thresholds per layer | " + " | ".join(f"T={t}" for t in ts)
    print(head + " | compare (32 images, T=64) |")
    print("|" + "---|" * (len(ts) + 4))
    details, done = [], {}
    for setting, (sj_opts, ref_opts) in SETTINGS.items():
        conv = sj_convert(graph, x_cal, **sj_opts)
        sj_readout, sj_counts, _ = sj_run(conv, x_test, steps)
        sj_acc = accuracy(sj_readout, y_test)
        net = ref_counts = None
        if ref_opts is not None:
            key = tuple(sorted(ref_opts.items()))
            if key not in done:  # settings that share refsnn's options share its run
                net = convert_if(graph, x_cal, **ref_opts)
                done[key] = net, Simulator(net, "numba").run(x_test, ts)
            net, run = done[key]
            ref_acc = accuracy(run.readout, y_test)
            ref_counts = run.step_counts
            ref_theta = {n.name: n.params["threshold"] for n in net.graph.nodes if n.op == "if"}
            print(f"| {setting} | refsnn | "
                  + ", ".join(_fmt_theta(v) for v in ref_theta.values()) + " | "
                  + " | ".join(f"{100 * ref_acc[t]:.2f}" for t in ts) + " | |")
        verdict = "" if net is None else first_divergence(net, conv, x_test[:compare_limit])
        print(f"| {setting} | SpikingJelly | "
              + ", ".join(_fmt_theta(v) for v in conv.theta.values()) + " | "
              + " | ".join(f"{100 * sj_acc[t]:.2f}" for t in ts) + f" | {verdict} |")
        if setting == "max":
            details.append((ref_counts, sj_counts))
    ref_counts, sj_counts = details[0]
    marks = [t for t in (1, 2, 4, 8, 16, 32, 64, 128) if t <= steps]
    print(f"\nSpikes per test image at step t (setting max; refsnn / SpikingJelly):\n")
    print("| layer | " + " | ".join(f"t={t}" for t in marks) + " | total over T |")
    print("|" + "---|" * (len(marks) + 2))
    n = len(x_test)
    for name in sj_counts:
        r, s = ref_counts[name], sj_counts[name]
        print(f"| {name} | " + " | ".join(f"{r[t - 1] / n:.2f} / {s[t - 1] / n:.2f}"
                                          for t in marks)
              + f" | {r[:steps].sum() / n:.1f} / {s.sum() / n:.1f} |")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="mlp,cnn,cnn_maxpool,resnet")
    p.add_argument("--data", default=str(ROOT / "data" / "digits.h5"))
    p.add_argument("--limit", type=int, default=None, help="first N test images")
    p.add_argument("--steps", type=int, default=max(STEPS))
    args = p.parse_args(argv)
    x_cal, _ = load_data(args.data, "train")
    x_test, y_test = load_data(args.data, "test", limit=args.limit)
    import spikingjelly
    from importlib.metadata import version
    print(f"SpikingJelly {version('spikingjelly')}, torch {torch.__version__}; calibration: "
          f"the {len(x_cal)} training images; test: {len(x_test)} images "
          f"({Path(spikingjelly.__file__).parent})")
    for model in args.models.split(","):
        compare_model(model, x_cal, x_test, y_test, args.steps)


if __name__ == "__main__":
    main()
