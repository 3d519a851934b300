"""Decoders: how the output node's step values become the readout after ``T`` steps.

Each decoder is fed every step's output value in order (``add``) and read at the requested
step counts (``read``); ``docs/semantics.md`` defines them.
"""

from __future__ import annotations

import numpy as np

from refsnn.neurons.bistable import cycle_state, packets_completed


class MeanDecoder:
    """Rate coding: the mean of the output's values over steps ``1..T``."""

    def __init__(self, net, shape, dtype):
        self.total = np.zeros(shape, dtype)

    def add(self, t: int, value: np.ndarray) -> None:
        self.total += value

    def read(self, t: int) -> np.ndarray:
        return self.total / t


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


DECODERS = {"mean": MeanDecoder, "estimate": EstimateDecoder, "packet": PacketDecoder}
