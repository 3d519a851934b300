"""Threshold balancing: thresholds from the ANN's activations on calibration data."""

from __future__ import annotations

import numpy as np

from refsnn.errors import OptionError


def balance(activations: np.ndarray, percentile: float, per_channel: bool) -> np.ndarray:
    """Return per-channel thresholds from a node's ANN activations.

    Parameters
    ----------
    activations : ndarray, shape (B, C, ...)
        The node's ReLU outputs on the calibration set (zeros included).
    percentile : float
        In (0, 100]; 100 is the maximum. Computed with NumPy's default (linear) method.
    per_channel : bool
        One threshold per channel (axis 1) instead of one for the whole layer.

    Returns
    -------
    ndarray, shape (C,)
        Positive thresholds. A channel (or layer) whose percentile is 0 (it never fired on the
        calibration data) gets the layer's value, and a silent layer gets 1.0, since a zero
        threshold would make a neuron fire at rest.
    """
    if not (0 < percentile <= 100):
        raise OptionError(f"--percentile: expected a number in (0, 100], found {percentile}")
    c = activations.shape[1]
    layer = float(np.percentile(activations, percentile))
    if layer <= 0:
        layer = 1.0
    if not per_channel:
        return np.full(c, layer, dtype=activations.dtype)
    per_c = np.moveaxis(activations, 1, 0).reshape(c, -1)
    theta = np.percentile(per_c, percentile, axis=1)
    return np.where(theta > 0, theta, layer).astype(activations.dtype)
