"""Input encoders: the value the graph's input takes at each step."""

from __future__ import annotations

import numpy as np

from refsnn.errors import DataFormatError


class AnalogEncoder:
    """The input is the analog sample itself, every step (a constant current)."""

    def __init__(self, x: np.ndarray, seed: int, sample_ids: np.ndarray):
        self.x = x

    def step(self, t: int) -> np.ndarray:
        return self.x


class PoissonEncoder:
    """Bernoulli spikes per step: ``sign(x)`` with probability ``|x|``, else 0.

    The discrete-time form of Poisson rate coding: the expected input per step is ``x``.
    Sample ``i`` draws from its own generator, ``PCG64(SeedSequence([seed, sample_ids[i]]))``,
    one ``random()`` per input element per step in C order, so a sample's spike trains depend
    only on the seed and its id: not on the batch it is in, the batch size or the threads.
    """

    def __init__(self, x: np.ndarray, seed: int, sample_ids: np.ndarray):
        peak = float(np.max(np.abs(x)))
        if peak > 1.0:
            raise DataFormatError(
                f"poisson encoding: expected inputs in [-1, 1] (a spike probability), "
                f"found |x| up to {peak:g}; rescale the data or use --encoding analog")
        self.x = x
        self.magnitude = np.abs(x)
        self.sign = np.sign(x).astype(x.dtype)
        self.rngs = [np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, int(i)])))
                     for i in sample_ids]

    def step(self, t: int) -> np.ndarray:
        draws = np.stack([rng.random(self.x.shape[1:]) for rng in self.rngs])
        return np.where(draws < self.magnitude, self.sign, 0.0).astype(self.x.dtype)


ENCODERS = {"analog": AnalogEncoder, "poisson": PoissonEncoder}
