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
    check_percentile(percentile)
    c = activations.shape[1]
    layer = np.percentile(activations, percentile)
    per_c = None
    if per_channel:
        per_c = np.percentile(np.moveaxis(activations, 1, 0).reshape(c, -1), percentile, axis=1)
    return thresholds(layer, per_c, c, activations.dtype)


def check_percentile(percentile: float) -> None:
    """Refuse a percentile outside (0, 100]."""
    if not (0 < percentile <= 100):
        raise OptionError(f"--percentile: expected a number in (0, 100], found {percentile}")


def thresholds(layer, per_c, c: int, dtype) -> np.ndarray:
    """Thresholds from a node's percentiles (:func:`balance`'s rule for silent ones).

    Parameters
    ----------
    layer : float
        The layer's percentile.
    per_c : ndarray, shape (C,), or None
        The channels' percentiles (None: one threshold for the layer).
    c : int
        The number of channels C.
    dtype : numpy dtype
        The activations' dtype.

    Returns
    -------
    ndarray, shape (C,)
    """
    layer = float(layer)
    if layer <= 0:
        layer = 1.0
    if per_c is None:
        return np.full(c, layer, dtype=dtype)
    return np.where(per_c > 0, per_c, layer).astype(dtype)
