"""Conversion methods: ANN graph -> :class:`~refsnn.sim.network.SpikingNetwork`."""

from refsnn.convert.if_ import convert_if

#: Method name -> converter. Every converter takes ``(graph, calibration, **options)``.
METHODS = {"if": convert_if}

__all__ = ["METHODS", "convert_if"]
