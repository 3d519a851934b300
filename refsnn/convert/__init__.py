"""Conversion methods: ANN graph -> :class:`~refsnn.sim.network.SpikingNetwork`."""

from refsnn.convert.bsnn import convert_bsnn
from refsnn.convert.if_ import convert_if
from refsnn.convert.signgd import convert_signgd

#: Method name -> converter. Every converter takes ``(graph, calibration, **options)``.
METHODS = {"if": convert_if, "signgd": convert_signgd, "bsnn": convert_bsnn}

__all__ = ["METHODS", "convert_bsnn", "convert_if", "convert_signgd"]
