"""Write a refsnn trace from a SpikingJelly network, to check it with ``refsnn compare``.

    refsnn convert MODEL --calibration DATA -o net.h5
    refsnn trace net.h5 --data DATA --limit 8 --steps 64 -o ref.h5
    python examples/trace_from_spikingjelly.py ref.h5 net.h5 mine.h5
    refsnn compare ref.h5 mine.h5

Your own network needs only the first two functions: ``record_spikes`` hooks its spiking
modules (named as ``refsnn inspect net.h5`` names the neuron nodes) and runs it for ``T``
single steps on the reference trace's inputs; ``write_trace`` is the format's few h5py lines
(``docs/format.md``, "Trace"). ``mlp_from_refsnn`` stands in for your model here: it builds a
SpikingJelly MLP equal to refsnn's converted network (README, "Checking against
SpikingJelly", has the mapping), so that the two traces agree.

Needs torch and SpikingJelly (0.0.0.0.14 or 2.0); refsnn's core does not.
"""

from __future__ import annotations

import sys

import h5py
import numpy as np
import torch
from spikingjelly.activation_based import functional, neuron
from torch import nn


def record_spikes(model: nn.Module, neurons: dict, x: torch.Tensor, steps: int) -> dict:
    """Run ``model`` for ``steps`` single steps on the same input ``x``.

    Parameters
    ----------
    model : nn.Module
        A single-step SpikingJelly network.
    neurons : dict of str to nn.Module
        refsnn's neuron node name -> the spiking module whose output is that layer's spikes.
    x : Tensor, shape (B, *input_shape)

    Returns
    -------
    dict of str to bool ndarray, shape (steps, B, *layer_shape)
    """
    spikes = {name: [] for name in neurons}
    hooks = [module.register_forward_hook(
        lambda m, inputs, out, name=name: spikes[name].append(out.detach().cpu().numpy() > 0))
        for name, module in neurons.items()]
    functional.reset_net(model)
    with torch.no_grad():
        for _ in range(steps):
            model(x)
    for h in hooks:
        h.remove()
    return {name: np.stack(s) for name, s in spikes.items()}


def write_trace(path, spikes: dict, steps: int, producer: str = "spikingjelly") -> None:
    """Write ``spikes`` (name -> bool (T, B, ...), in layer order) as a ``refsnn-trace``."""
    with h5py.File(path, "w") as f:
        f.attrs.update(format="refsnn-trace", format_version=1, steps=steps,
                       layers=list(spikes), producer=producer)
        for name, s in spikes.items():
            f.create_dataset(f"layers/{name}/spikes", data=s)


class Times(nn.Module):
    """SpikingJelly's spike is 1, refsnn's carries the threshold: the next layer reads theta * s."""

    def __init__(self, theta: float):
        super().__init__()
        self.theta = theta

    def forward(self, x):
        return x * self.theta


def mlp_from_refsnn(path):
    """A SpikingJelly ``nn.Sequential`` equal to refsnn's converted MLP at ``path``.

    Returns
    -------
    model : nn.Sequential
    neurons : dict of str to neuron.IFNode
        refsnn's neuron node name -> its IFNode.
    """
    from refsnn.sim.network import load_snn

    net = load_snn(path)
    if net.method != "if" or net.encoding != "analog":
        raise SystemExit("this example rebuilds --method if networks with analog input")
    layers, neurons = [], {}
    for node in net.graph.nodes:
        if node.op == "linear":
            lin = nn.Linear(*np.shape(node.params["weight"])[::-1]).double()
            lin.weight.data = torch.from_numpy(np.array(node.params["weight"]))
            lin.bias.data = torch.from_numpy(np.array(node.params["bias"]))
            layers.append(lin)
        elif node.op == "flatten":
            layers.append(nn.Flatten())
        elif node.op == "if":
            theta = np.unique(node.params["threshold"])
            if theta.size != 1 or node.attrs["v_init"] != "zero":
                raise SystemExit(f"{node.name}: needs one threshold per layer and --v-init zero")
            reset = {"subtract": None, "zero": 0.0}[node.attrs["reset"]]
            neurons[node.name] = neuron.IFNode(v_threshold=float(theta[0]), v_reset=reset,
                                               step_mode="s")
            layers += [neurons[node.name], Times(float(theta[0]))]
        else:
            raise SystemExit(f"{node.name}: op {node.op} is not in this example's MLP")
    return nn.Sequential(*layers).eval(), neurons


def main(argv=None) -> int:
    ref_path, net_path, out_path = (argv if argv is not None else sys.argv[1:])
    with h5py.File(ref_path, "r") as f:
        x, steps = torch.from_numpy(f["inputs"][()]).double(), int(f.attrs["steps"])
    model, neurons = mlp_from_refsnn(net_path)
    write_trace(out_path, record_spikes(model, neurons, x, steps), steps)
    print(f"wrote {out_path}: {len(neurons)} layers, T = {steps}; now: refsnn compare "
          f"{ref_path} {out_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
