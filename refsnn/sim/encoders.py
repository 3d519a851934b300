"""Input encoders: the value the graph's input takes at each step."""

from __future__ import annotations

import numpy as np

from refsnn.errors import DataFormatError
from refsnn.neurons.signgd import step_size


class AnalogEncoder:
    """The input is the analog sample itself, every step (a constant current)."""

    #: The first step from which the encoder returns the same array every step (None: never).
    #: The simulator computes the values of nodes that depend on the input only through
    #: stateless operators once from that step on (see ``docs/semantics.md``, "One step").
    constant_from = 1

    def __init__(self, x: np.ndarray, seed: int, sample_ids: np.ndarray, schedule):
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

    constant_from = None

    def __init__(self, x: np.ndarray, seed: int, sample_ids: np.ndarray, schedule):
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


class ExactEncoder:
    """signGD input as increments: the whole sample at step 1, nothing after.

    The first layer's input estimate is then exactly ``x`` from step 1 on (the network sees
    ``x``, not a fraction of it).
    """

    constant_from = 2

    def __init__(self, x: np.ndarray, seed: int, sample_ids: np.ndarray, schedule):
        self.x = x
        self.zero = np.zeros_like(x)

    def step(self, t: int) -> np.ndarray:
        return self.x if t == 1 else self.zero


class GradientDescentEncoder:
    """The signGD reference code's encoder, as increments: ``f_t = f_{t-1} + eta_t (x - f_{t-1})``
    from ``f_0 = 0``, emitting ``f_t - f_{t-1}``.

    It delivers ``(1 - prod_k (1 - eta_k)) x`` after ``t`` steps (0.661 x at 8 steps with the
    default schedule, tending to 0.956 x), so a network fed this way computes ANN(gain * x).
    For number-for-number comparisons with that code only.
    """

    constant_from = None

    def __init__(self, x: np.ndarray, seed: int, sample_ids: np.ndarray, schedule):
        self.x = x
        self.f = np.zeros_like(x)
        self.eta0, self.gamma = schedule["eta0"], schedule["gamma"]

    def step(self, t: int) -> np.ndarray:
        delta = step_size(self.eta0, self.gamma, t) * (self.x - self.f)
        self.f = self.f + delta
        return delta


ENCODERS = {"analog": AnalogEncoder, "poisson": PoissonEncoder, "exact": ExactEncoder,
            "gd": GradientDescentEncoder}
