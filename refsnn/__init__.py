"""refsnn: a reference implementation of ANN-to-SNN conversion.

The path of one evaluation: :func:`refsnn.model.load_model` -> a converter from
:data:`refsnn.convert.METHODS` -> :class:`refsnn.sim.simulator.Simulator` -> a
:class:`refsnn.sim.simulator.Run`. The core depends on NumPy, Numba, SciPy and h5py only.
"""

__version__ = "0.1.0"
