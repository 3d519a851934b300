"""Data set files (``refsnn-data``, version 1): load a split with validation.

Layout::

    /            attrs: format = "refsnn-data", format_version = 2, classes = int
    /<split>/x   float array (N, *sample_shape)
    /<split>/y   integer labels (N,), in [0, classes)
"""

from __future__ import annotations

import h5py
import numpy as np

from refsnn.checksum import check_storage
from refsnn.errors import ModelFormatError
from refsnn.io import H5_ERRORS, open_h5, unreadable
from refsnn.model.format import _check_header

FORMAT = "refsnn-data"
FORMAT_VERSION = 2  # 2: with checksums (refsnn.checksum); version 1 files still load


def load_split(path, split: str, sample_shape=None, limit: int | None = None):
    """Load ``x`` and ``y`` of one split.

    Parameters
    ----------
    path : str or Path
    split : str
        Group name, e.g. ``"train"`` or ``"test"``.
    sample_shape : tuple of int, optional
        If given, ``x`` must have shape ``(N, *sample_shape)``.
    limit : int, optional
        Keep only the first ``limit`` samples.

    Returns
    -------
    x : float64 ndarray, shape (N, *sample_shape)
    y : int64 ndarray, shape (N,)

    Raises
    ------
    ModelFormatError
        Naming the file, path and field of any problem (missing split, shapes, dtypes,
        non-finite values, labels out of range).
    """
    file = str(path)
    with open_h5(path, "data file") as f:
        try:
            return _read_split(f, file, split, sample_shape, limit)
        except H5_ERRORS as e:  # damaged file: h5py fails mid-read
            raise unreadable(file, e) from None


def _read_split(f, file: str, split: str, sample_shape, limit):
    """:func:`load_split` on the open file ``f`` (validated inside the ``with`` block, so
    that the checksums are verified after it)."""
    _check_header(f, file, FORMAT, FORMAT_VERSION)
    classes = np.asarray(f.attrs.get("classes", -1))
    if classes.ndim != 0 or classes.dtype.kind not in "iu" or int(classes) < 1:
        raise ModelFormatError(file, "/", "classes", "a positive integer",
                               repr(f.attrs.get("classes")))
    if split not in f or not isinstance(f[split], h5py.Group):
        splits = [k for k in f if isinstance(f[k], h5py.Group)]
        raise ModelFormatError(file, f"/{split}", "group", f"a split, one of {splits}",
                               "nothing (missing)" if split not in f else "a dataset")
    for key in ("x", "y"):
        if key not in f[split]:
            raise ModelFormatError(file, f"/{split}/{key}", "dataset", f"dataset '{key}'",
                                   "nothing (missing)")
        if not isinstance(f[split][key], h5py.Dataset) or not f[split][key].shape:
            raise ModelFormatError(file, f"/{split}/{key}", "dataset",
                                   "a dataset of rank >= 1", "a group or a scalar")
    dx, dy = f[split]["x"], f[split]["y"]
    check_storage(dx, file), check_storage(dy, file)
    n = dx.shape[0] if limit is None else min(limit, dx.shape[0])
    if dx.dtype.kind != "f":
        raise ModelFormatError(file, f"/{split}/x", "dtype", "float32 or float64", str(dx.dtype))
    if dy.dtype.kind not in "iu" or dy.shape != (dx.shape[0],):
        raise ModelFormatError(file, f"/{split}/y", "dtype/shape",
                               f"integer labels of shape ({dx.shape[0]},)",
                               f"{dy.dtype} {dy.shape}")
    x, y = dx[:n], dy[:n]
    if sample_shape is not None and tuple(x.shape[1:]) != tuple(sample_shape):
        raise ModelFormatError(file, f"/{split}/x", "shape",
                               f"(N, {', '.join(map(str, sample_shape))}) to match the model",
                               str(x.shape))
    if not np.all(np.isfinite(x)):
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(x))[0])
        raise ModelFormatError(file, f"/{split}/x", "values", "finite numbers",
                               f"{x[bad]} at index {bad}")
    if y.size and (y.min() < 0 or y.max() >= int(classes)):
        raise ModelFormatError(file, f"/{split}/y", "values", f"labels in [0, {int(classes)})",
                               f"range [{y.min()}, {y.max()}]")
    return np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.int64)
