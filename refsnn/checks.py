"""Checks on user-supplied arrays: shapes, dtypes, finiteness."""

from __future__ import annotations

import numpy as np

from refsnn.errors import DataFormatError, OptionError


def check_choice(option: str, value, choices) -> None:
    """Raise :class:`OptionError` naming ``option`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise OptionError(f"{option}: expected one of {', '.join(choices)}, found {value!r}")


def channels_last_hint(found, want) -> str:
    """A note for image data in channels-last order ``(H, W, C)`` where ``(C, H, W)`` is
    expected; empty otherwise."""
    found, want = tuple(found), tuple(want)
    if len(want) == 3 and found == (want[1], want[2], want[0]):
        return ("; the data is channels-last (H, W, C), refsnn takes channels-first "
                "(C, H, W): transpose it with x.transpose(0, 3, 1, 2)")
    return ""


def check_batch(x, sample_shape, dtype=np.float64, what: str = "input batch") -> np.ndarray:
    """Return ``x`` as a C-contiguous ``dtype`` array of shape ``(B, *sample_shape)``.

    Raises
    ------
    DataFormatError
        If the shape does not match, the values are not real numbers, or any is NaN or inf.
    """
    arr = np.asarray(x)
    if arr.dtype.kind not in "fiu" or arr.dtype == bool:
        raise DataFormatError(f"{what}: expected real numbers, found dtype {arr.dtype}")
    want = tuple(sample_shape)
    if arr.ndim != len(want) + 1 or tuple(arr.shape[1:]) != want:
        raise DataFormatError(f"{what}: expected shape (B, {', '.join(map(str, want))}), "
                              f"found {arr.shape}{channels_last_hint(arr.shape[1:], want)}")
    if arr.shape[0] == 0:
        raise DataFormatError(f"{what}: expected at least one sample, found none")
    if not np.all(np.isfinite(arr)):
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
        raise DataFormatError(f"{what}: expected finite values, found {arr[bad]} at index {bad}")
    return np.ascontiguousarray(arr, dtype=dtype)
