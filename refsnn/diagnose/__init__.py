"""Per-layer diagnostics of a converted network: what ``refsnn diagnose`` prints.

A diagnostic is a small function ``diagnostic(probe) -> Table``. The :class:`Probe` holds one
simulation of a batch (spike counts of every neuron node, the readout at ``T``) and the
network's ANN limit on the same batch (every node's value); a diagnostic that needs rasters or
membrane potentials asks the probe for them (:meth:`Probe.trace`), which simulates again with
those nodes recorded, so memory is spent only on what is asked for.

Each diagnostic lives in a module of its own and is registered in :data:`DIAGNOSTICS` with the
methods it applies to; ``refsnn diagnose`` runs every diagnostic that applies to the network's
method (or those named by ``--only``).
"""

from __future__ import annotations

from refsnn.diagnose.registry import (DIAGNOSTICS, Diagnostic, Probe, Table, applicable,
                                      diagnose, register)

# each module registers its diagnostics on import, in this order: the order they are printed
from refsnn.diagnose import sin, spread, gap, fidelity  # noqa: F401,I001

__all__ = ["DIAGNOSTICS", "Diagnostic", "Probe", "Table", "applicable", "diagnose", "register"]
