"""Neuron kinds, one module each, registered in :mod:`refsnn.neurons.base` on import.

Importing this package registers every built-in kind, in this order (the order trace files
list the kinds in): refsnn's ``if``, ``bistable``, ``sgd``; NIR's ``nir_if``, ``lif``,
``threshold``, ``li``, ``integrator``, ``cuba_lif``, ``cuba_li``, ``delay``. A new kind is
one module here plus its import below.
"""

from refsnn.neurons import if_, bistable, signgd  # noqa: F401  (registration)
from refsnn.neurons import nir_if, lif, threshold, li, integrator  # noqa: F401
from refsnn.neurons import cuba_lif, cuba_li, delay  # noqa: F401
