"""A layer's weights, prepared once for the numba kernels.

The numba kernels read weights in layouts of their own (the convolution's channels last, the
dense convolution's tiles) and decide per call between the event-driven and the dense kernel,
which needs to know whether every weight is finite (:mod:`refsnn.synapses.dense`). A step op
makes one :class:`Weights` per layer, so that work is done once per run instead of once per
step; the kernels' public functions also accept a plain array and prepare it on the spot.
"""

from __future__ import annotations

from typing import Callable

import numpy as np


class Weights:
    """One weight array, whether all of it is finite, and its derived layouts (made on first
    use, then kept).

    Parameters
    ----------
    weight : ndarray
        The array as the NumPy kernels take it (``w_t`` for linear, ``w`` for conv); it must
        not be changed afterwards.
    """

    def __init__(self, weight: np.ndarray):
        self.weight = np.asarray(weight)
        self.finite = bool(np.isfinite(self.weight).all())
        self._layouts: dict[Callable, np.ndarray] = {}

    def layout(self, make: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """``make(weight)``, computed once per ``make``."""
        found = self._layouts.get(make)
        if found is None:
            found = self._layouts[make] = make(self.weight)
        return found


def prepared(weight) -> Weights:
    """``weight`` itself if already a :class:`Weights`, else a new one."""
    return weight if isinstance(weight, Weights) else Weights(weight)
