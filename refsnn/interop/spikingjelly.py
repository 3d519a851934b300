"""Run a converted IF network in SpikingJelly, to line refsnn up against it step by step.

Needs torch and SpikingJelly, 0.0.0.0.14 or 2.0 (``pip install --no-deps spikingjelly==2.0.0``
plus ``loguru``; 0.0.0.0.14 needs nothing more); the core never imports this module. What differs
between the two releases is in one place, :data:`RELEASES`, chosen by the installed
distribution's major version (:func:`release`).

The mapping (also in the README, "Checking against SpikingJelly"):

- an ``if`` node with one threshold ``θ`` for the whole layer is
  ``neuron.IFNode(v_threshold=θ, v_reset=None, step_mode="s")`` (``v_reset=None`` is reset by
  subtraction; ``--reset zero`` is ``v_reset=0.0``), in eval mode, on float64 tensors.
  SpikingJelly fires when ``v >= v_threshold`` (``surrogate.heaviside`` and its eval kernels
  use ``>=``), as refsnn does;
- SpikingJelly's spike is ``1``, refsnn's is ``θ``: the next layer reads ``θ · spike``;
- ``--v-init half`` sets the node's ``v`` to ``θ/2`` after ``reset()``;
- one ``single_step`` pass through every node per step, in graph order, with no delay (layer
  ``l+1`` sees layer ``l``'s spikes of the same step), and the encoder's input every step;
- the readout is the mean over steps of the output node's values, as refsnn's ``mean`` decoder;
- ``--method noise`` networks are IF networks too (``θ = λ``, ``u0 = θ/2``, subtraction), and an
  unfolded ``batchnorm`` is refsnn's per-step ``x * scale + shift``;
- ``run(..., encoded=...)`` feeds given per-step inputs (e.g. a trace's recorded Poisson
  spikes) instead of the encoder's.

Per-channel thresholds (``--per-channel``): ``IFNode.v_threshold`` is one float, so SpikingJelly
0.0.0.0.14 refuses them; 2.0 runs them as ``neuron.ActivationAwareIFNode(v_threshold=θ_c,
channel_dim=1)`` (``v + x + 0 >= θ_c``, the same rule and the same resets).

Refused: per-channel thresholds on 0.0.0.0.14, and ``maxpool2d`` on spikes (refsnn's rule outputs the running maximum of the input *counts*; SpikingJelly's
``MaxPool2d`` on spikes fires whenever any input fires, which is a different network).

Float rounding: torch sums a convolution in its own order, refsnn in ascending event order, so
potentials can differ in the last bit and a spike can move when ``u`` is within rounding of
``θ``. With weights, biases, inputs and thresholds that are small dyadic rationals (integers
over a power of two) every sum is exact in float64 and the two must agree exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import version as _dist_version
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from spikingjelly.activation_based import functional, neuron

from refsnn import ann
from refsnn.errors import ConversionError
from refsnn.model.graph import INPUT
from refsnn.model.ops import mean_axes, parse_perm, parse_shape
from refsnn.neurons.if_ import IF
from refsnn.sim.encoders import ENCODERS


def _t(a):
    return torch.from_numpy(np.array(a))  # a writable copy


def _conv(node):
    w, b = _t(node.params["weight"]), _t(node.params["bias"])
    a = node.attrs
    return lambda x: F.conv2d(x, w, b, stride=tuple(a["stride"]), padding=tuple(a["padding"]),
                              groups=a["groups"])


def _linear(node):
    w, b = _t(node.params["weight"]), _t(node.params["bias"])
    return lambda x: F.linear(x, w, b)


def _avgpool(node):
    a = node.attrs
    # count_include_pad=True: padding counts as zero and the divisor is kh*kw, as refsnn.
    return lambda x: F.avg_pool2d(x, tuple(a["kernel"]), tuple(a["stride"]), tuple(a["padding"]),
                                  count_include_pad=True)


def _channel_vec(v, x, axis):
    shape = [1] * x.dim()
    shape[axis] = -1
    return v.reshape(shape)


def _axis(node, x):
    return x.dim() - 1 if node.attrs["axis"] == "last" else 1


def _scale(node):
    w = _t(node.params["weight"])
    return lambda x: x * _channel_vec(w, x, _axis(node, x))


def _affine(node):
    w, b = _t(node.params["weight"]), _t(node.params["bias"])
    return lambda x: x * _channel_vec(w, x, _axis(node, x)) + _channel_vec(b, x, _axis(node, x))


def _mean(node):
    def f(x):
        axes = tuple(1 + i for i in mean_axes(node.attrs["axis"], x.dim() - 1))
        return x.mean(dim=axes, keepdim=bool(node.attrs["keepdims"]))
    return f


def _transpose(node):
    def f(x):
        perm = parse_perm(node.attrs["perm"], x.dim() - 1)
        return x.permute((0,) + tuple(1 + i for i in perm))
    return f


#: Synapse operator -> builder of its torch function (per step, batched).
SYNAPSES = {
    "linear": _linear,
    "conv2d": _conv,
    "avgpool2d": _avgpool,
    "flatten": lambda node: lambda x: x.flatten(1),
    "add": lambda node: lambda *xs: ann.FORWARD["add"](node, *xs),  # in input order
    "identity": lambda node: lambda x: x,
    "reshape": lambda node: lambda x: x.reshape((x.shape[0],) + parse_shape(node.attrs["shape"])),
    "transpose": _transpose,
    "mean": _mean,
    "scale": _scale,
    "affine": _affine,
}

def _batchnorm(node):
    # an unfolded batchnorm: refsnn's per-step affine map x * scale + shift, with scale and
    # shift computed in NumPy as refsnn does (so both apply the same float64 numbers)
    p = node.params
    scale = p["gamma"] / np.sqrt(p["var"] + node.attrs["eps"])
    shift, scale = _t(p["beta"] - p["mean"] * scale), _t(scale)
    return lambda x: x * _channel_vec(scale, x, 1) + _channel_vec(shift, x, 1)


SYNAPSES["batchnorm"] = _batchnorm

#: Methods whose networks are IF neurons and synapses only (``noise``: QCFS nodes became IF
#: neurons with u0 = theta/2 and reset by subtraction).
IF_METHODS = ("if", "noise")

#: refsnn's ``reset`` attribute -> IFNode's ``v_reset``.
V_RESET = {"subtract": None, "zero": 0.0}


def _scalar_if(theta: float, v_reset):
    return neuron.IFNode(v_threshold=theta, v_reset=v_reset, step_mode="s")


def _channel_if(theta: np.ndarray, v_reset):
    # 2.0: v + x + v_offset >= v_threshold per channel; v_offset 0 adds +0.0, exact
    return neuron.ActivationAwareIFNode(v_threshold=_t(theta), v_offset=0.0, channel_dim=1,
                                        v_reset=v_reset, step_mode="s")


@dataclass(frozen=True)
class Release:
    """What differs between SpikingJelly releases for this module.

    Attributes
    ----------
    name : str
        The release line, as the README's settings table names it.
    per_channel : callable or None
        ``(theta (C,), v_reset) -> node`` for a layer with one threshold per channel (axis 1);
        None where the release cannot express it.
    """

    name: str
    per_channel: Callable | None


#: Major version of the installed distribution -> its :class:`Release`. Both run a
#: one-threshold layer as ``neuron.IFNode`` with the same signature and rule.
RELEASES = {
    "0": Release("0.0.0.0.14", None),
    "2": Release("2.0", _channel_if),
}


def release(version: str | None = None) -> Release:
    """The :class:`Release` of ``version`` (default: the installed distribution's).

    Raises
    ------
    ConversionError
        For a release line this module does not know.
    """
    version = _dist_version("spikingjelly") if version is None else version
    major = version.split(".", 1)[0]
    if major not in RELEASES:
        raise ConversionError(
            f"SpikingJelly {version} is not supported (supported: "
            f"{', '.join(r.name for r in RELEASES.values())})")
    return RELEASES[major]


class _IF:
    """One ``if`` node as a SpikingJelly IFNode that emits ``θ · spike``."""

    def __init__(self, node, rel: Release):
        theta = np.asarray(node.params["threshold"])
        v_reset = V_RESET[node.attrs["reset"]]
        half = node.attrs["v_init"] == "half"
        if np.unique(theta).size == 1:
            self.theta = float(theta[0])
            self.node = _scalar_if(self.theta, v_reset)
            self.v_init = self.theta / 2 if half else None
        elif rel.per_channel is None:
            raise ConversionError(
                f"node '{node.name}': per-channel thresholds cannot be expressed in "
                f"SpikingJelly {rel.name} (IFNode.v_threshold is one float); convert without "
                f"--per-channel, or use SpikingJelly 2.0 (ActivationAwareIFNode)")
        else:
            self.theta = _t(theta)
            self.node = rel.per_channel(theta, v_reset)
            self.v_init = _t(theta / 2) if half else None  # (C,)
        self.node.eval()

    def _channels(self, v, x):
        return v if isinstance(v, float) else _channel_vec(v, x, 1)

    def reset(self):
        functional.reset_net(self.node)
        self.first = True

    def __call__(self, x):
        if self.first and self.v_init is not None:
            # set at the first step, as a tensor shaped like x: both releases accept a float,
            # but 2.0 replaces a tensor state shaped unlike its input by zeros
            self.node.v = torch.zeros_like(x) + self._channels(self.v_init, x)
        self.first = False
        spike = self.node(x)
        self.last_spike = spike
        return spike * self._channels(self.theta, x)


class SpikingJellyNetwork:
    """A converted IF network rebuilt from SpikingJelly IFNodes and torch functions.

    Parameters
    ----------
    net : SpikingNetwork
        Made by ``convert_if`` (per-channel thresholds need SpikingJelly 2.0) or by
        ``convert_noise``.

    Raises
    ------
    ConversionError
        For a method other than ``if`` or ``noise``, per-channel thresholds on SpikingJelly
        0.0.0.0.14, an operator without a SpikingJelly counterpart (``maxpool2d``) or an
        unknown SpikingJelly release.
    """

    def __init__(self, net):
        if net.method not in IF_METHODS:
            raise ConversionError(f"SpikingJelly check: only --method "
                                  f"{' or '.join(IF_METHODS)} networks, found --method "
                                  f"{net.method}")
        self.net = net
        self.release = release()
        self.fns = {}
        self.neurons = {}
        for node in net.graph.nodes:
            if node.op == IF.op:
                self.neurons[node.name] = self.fns[node.name] = _IF(node, self.release)
            elif node.op in SYNAPSES:
                self.fns[node.name] = SYNAPSES[node.op](node)
            else:
                raise ConversionError(
                    f"node '{node.name}': op '{node.op}' has no SpikingJelly counterpart with "
                    f"refsnn's semantics (supported: if, {', '.join(SYNAPSES)})")

    @torch.no_grad()
    def run(self, x: np.ndarray, steps: int, seed: int = 0, encoded: np.ndarray | None = None):
        """Simulate ``steps`` steps of a batch.

        Parameters
        ----------
        x : ndarray, shape (B, *input_shape)
            Inputs, encoded by refsnn's own encoder (so Poisson trains are the same).
        steps : int
        seed : int
            Seed of the Poisson encoder.
        encoded : ndarray, shape (steps, B, *input_shape), optional
            The input of each step, fed instead of the encoder's (e.g. a trace's recorded
            Poisson spikes).

        Returns
        -------
        rasters : dict of str to bool ndarray, shape (steps, B, *node_shape)
            Spikes of every ``if`` node.
        readout : ndarray, shape (B, *output_shape)
            Mean over the steps of the output node's values.
        """
        graph = self.net.graph
        x = np.asarray(x, dtype=graph.dtype)
        encoder = ENCODERS[self.net.encoding](x, seed, np.arange(x.shape[0]), self.net.schedule)
        for n in self.neurons.values():
            n.reset()
        rasters = {name: [] for name in self.neurons}
        total = 0
        for t in range(1, steps + 1):
            values = {INPUT: _t(encoder.step(t).copy() if encoded is None
                                else np.asarray(encoded[t - 1], dtype=graph.dtype))}
            for node in graph.nodes:
                values[node.name] = self.fns[node.name](*(values[i] for i in node.inputs))
            for name, n in self.neurons.items():
                rasters[name].append(n.last_spike.numpy() != 0)
            total = total + values[graph.output]
        return ({k: np.stack(v) for k, v in rasters.items()}, (total / steps).numpy())
