"""Conversion methods: ANN graph -> :class:`~refsnn.sim.network.SpikingNetwork`."""

from refsnn.convert.bsnn import convert_bsnn
from refsnn.convert.if_ import convert_if
from refsnn.convert.noise import convert_noise
from refsnn.convert.signgd import convert_signgd

#: Method name -> converter. Every converter takes ``(graph, calibration, **options)``.
METHODS = {"if": convert_if, "signgd": convert_signgd, "bsnn": convert_bsnn,
           "noise": convert_noise}

__all__ = ["METHODS", "convert_bsnn", "convert_if", "convert_noise", "convert_signgd"]
