"""Recorders: where the simulator puts the rasters and potentials it records, step by step.

The simulator calls a recorder at each step (:meth:`Simulator.run`, ``recorder=``):

- ``start(steps, batch, rasters, potentials, dtype)`` once, with the run length, the batch
  size and the per-sample shape of each node to record;
- ``spikes(t, name, fired)`` and ``potential(t, name, u)`` at step ``t`` (1-based) for each
  recorded node, with arrays of shape (B, *node_shape) that the simulator may reuse after the
  call (a recorder copies what it keeps);
- ``finish()`` once at the end, returning the ``(rasters, potentials)`` dicts that go into the
  :class:`~refsnn.sim.simulator.Run`.

:class:`MemoryRecorder` (the default) keeps everything in arrays of shape (T, B, *shape).
:class:`H5Recorder` writes each step into HDF5 datasets as it comes, so a long run of large
layers needs memory for one step, not for T; its run holds no rasters (they are in the file).
What is recorded cannot change what is simulated: recorders only read the arrays.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from refsnn.errors import OptionError


class MemoryRecorder:
    """Rasters and potentials kept in memory: bool / ``dtype`` arrays (T, B, *shape)."""

    def start(self, steps: int, batch: int, rasters: Mapping[str, tuple],
              potentials: Mapping[str, tuple], dtype) -> None:
        self.rasters = {n: np.zeros((steps, batch) + s, bool) for n, s in rasters.items()}
        self.potentials = {n: np.zeros((steps, batch) + s, dtype) for n, s in potentials.items()}

    def spikes(self, t: int, name: str, fired: np.ndarray) -> None:
        self.rasters[name][t - 1] = fired

    def potential(self, t: int, name: str, u: np.ndarray) -> None:
        self.potentials[name][t - 1] = u

    def finish(self) -> tuple[dict, dict]:
        return self.rasters, self.potentials


class H5Recorder:
    """Rasters and potentials written to HDF5 datasets step by step.

    Parameters
    ----------
    rasters, potentials : dict of str to h5py.Dataset
        For each recorded node, a dataset of shape (T_total, N, *node_shape) (bool for
        rasters, the simulation dtype for potentials), e.g. made by :func:`create_steps`;
        ``T_total`` at least the run's length.
    samples : slice
        Where this batch's samples go along axis 1 (default: all of it), so the batches of an
        evaluation fill one dataset.
    """

    def __init__(self, rasters: Mapping, potentials: Mapping, samples: slice = slice(None)):
        self.targets = {"rasters": dict(rasters), "potentials": dict(potentials)}
        self.samples = samples

    def start(self, steps: int, batch: int, rasters: Mapping[str, tuple],
              potentials: Mapping[str, tuple], dtype) -> None:
        for kind, asked, want_dtype in (("rasters", rasters, np.dtype(bool)),
                                        ("potentials", potentials, np.dtype(dtype))):
            have = self.targets[kind]
            if set(asked) != set(have):
                raise OptionError(f"recorder: {kind} for {sorted(asked)} asked, datasets for "
                                  f"{sorted(have)} given")
            for name, shape in asked.items():
                ds = have[name]
                n = len(range(*self.samples.indices(ds.shape[1])))
                if ds.shape[0] < steps or n != batch or ds.shape[2:] != shape \
                        or ds.dtype != want_dtype:
                    raise OptionError(f"recorder: {kind} dataset of '{name}' is {ds.dtype} "
                                      f"{ds.shape} (batch slice of {n}); needed {want_dtype} "
                                      f"({steps}, {batch}, {', '.join(map(str, shape))})")

    def spikes(self, t: int, name: str, fired: np.ndarray) -> None:
        self.targets["rasters"][name][t - 1, self.samples] = fired

    def potential(self, t: int, name: str, u: np.ndarray) -> None:
        self.targets["potentials"][name][t - 1, self.samples] = u

    def finish(self) -> tuple[dict, dict]:
        return {}, {}


def create_steps(group, name: str, steps: int, shape: tuple, dtype):
    """A dataset of ``steps`` rows of ``shape`` in ``group``, stored one chunk per step.

    One chunk per step is what a step-by-step writer fills: each write is one whole chunk, so
    HDF5 never reads back a partial chunk, and the chunk cache holds at most one step. No
    compression and no fill time stamps, so the same values give the same data.
    """
    shape = tuple(int(s) for s in shape)
    chunks = (1,) + shape if all(shape) else None  # a zero-sized axis cannot be chunked
    return group.create_dataset(name, shape=(int(steps),) + shape, dtype=dtype, chunks=chunks)
