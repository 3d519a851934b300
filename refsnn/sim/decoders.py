"""Decoders: how the output node's step values become the readout after ``T`` steps.

Each decoder is fed every step's output value in order (``add``) and read at the requested
step counts (``read``); ``docs/semantics.md`` defines them.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from refsnn.errors import OptionError
from refsnn.neurons.bistable import cycle_state, packets_completed


class MeanDecoder:
    """Rate coding: the mean of the output's values over steps ``1..T``."""

    def __init__(self, net, shape, dtype):
        self.total = np.zeros(shape, dtype)

    def add(self, t: int, value: np.ndarray) -> None:
        self.total += value

    def read(self, t: int) -> np.ndarray:
        return self.total / t


class CountDecoder(MeanDecoder):
    """Readout ``count``: the sum of the output's values over steps ``1..T`` (for a spiking
    output, its spike count)."""

    def read(self, t: int) -> np.ndarray:
        return self.total.copy()


class LastDecoder:
    """Readout ``last``: the output's value at step ``T`` (e.g. a leaky integrator's
    potential at the end of a sequence)."""

    def __init__(self, net, shape, dtype):
        self.value = np.zeros(shape, dtype)

    def add(self, t: int, value: np.ndarray) -> None:
        self.value[...] = value

    def read(self, t: int) -> np.ndarray:
        return self.value.copy()


class EstimateDecoder(MeanDecoder):
    """signGD: the output's values are increments; the readout is ``readout_init`` plus their sum."""

    def __init__(self, net, shape, dtype):
        super().__init__(net, shape, dtype)
        self.init = net.readout_init

    def read(self, t: int) -> np.ndarray:
        return self.init + self.total


class PacketDecoder:
    """BSNN: the mean packet of the output over its complete receive cycles.

    The output node (stage ``s``, ``schedule["readout_stage"]``) receives packet ``k`` in cycle
    ``s + 2k`` of ``P = schedule["period"]`` steps. The readout after ``T`` steps is the sum of
    its values over the receive cycles completed by ``T``, divided by ``P`` times their number
    (0 before the first packet is complete): the output layer integrates like any other
    bistable layer and reads out its mean packet per step.
    """

    def __init__(self, net, shape, dtype):
        self.total = np.zeros(shape, dtype)
        self.partial = np.zeros(shape, dtype)  # the receive cycle in progress
        self.period = int(net.schedule["period"])
        self.stage = int(net.schedule["readout_stage"])

    def add(self, t: int, value: np.ndarray) -> None:
        # the output receives when a neuron of its stage + 1 would integrate
        if cycle_state(t, self.period, self.stage + 1) == "integrate":
            self.partial += value
            if t % self.period == 0:  # the cycle is complete
                self.total += self.partial
                self.partial[...] = 0

    def read(self, t: int) -> np.ndarray:
        packets = packets_completed(t, self.period, self.stage)
        if packets == 0:
            return np.zeros_like(self.total)
        return self.total / (self.period * packets)


DECODERS = {"mean": MeanDecoder, "estimate": EstimateDecoder, "packet": PacketDecoder,
            "count": CountDecoder, "last": LastDecoder}
#: The readouts a rate-coded network (decoder ``mean``) may be read with instead
#: (:func:`with_readout`; ``--decode``): ``docs/semantics.md``, "Readout".
READOUTS = ("mean", "count", "last")


def with_readout(net, readout: str | None):
    """``net`` read out with ``readout`` (one of :data:`READOUTS`; None: as it is).

    Only a network whose decoder is ``mean`` may change it: signGD's ``estimate`` and BSNN's
    ``packet`` decoders are part of their method's definition.

    Returns
    -------
    SpikingNetwork
    """
    if readout is None or readout == net.decoder:
        return net
    if readout not in READOUTS:
        raise OptionError(f"readout: expected one of {', '.join(READOUTS)}, found {readout!r}")
    if net.decoder != "mean":
        raise OptionError(f"readout {readout!r}: method {net.method} reads its output with "
                          f"its own decoder ({net.decoder}); --decode applies to networks "
                          f"read out by the mean (IF, L4, noise, NIR)")
    return dataclasses.replace(net, decoder=readout)
