"""Data set files (``refsnn-data``, version 1): write and load splits with validation.

Layout (``docs/format.md`` is the reference)::

    /            attrs: format = "refsnn-data", format_version = 2 (1: without checksums,
                        still read), classes = int,
                        class_names (str array, optional), source (str, optional),
                        provenance (JSON str, optional)
    /<split>/x   float32/float64 array (N, *sample_shape), the values themselves; or
                 uint8 array (N, C, ...) with attrs scale (float > 0) and optionally mean and
                 std (float (C,), std > 0): the values are (x · scale − mean_c) / std_c,
                 computed in float64 in that order
    /<split>/y   integer labels (N,), in [0, classes)

A **sequence file** (format_version 3, so that older readers refuse it instead of taking the
time axis for a sample axis) also has the root attribute ``dt`` (float > 0, the time between
two of its steps) and holds sequences: ``/<split>/x`` is (N, T, *step_shape), the value the
network's input takes at steps 1..T (float, or uint8 with ``scale`` only: a per-channel
``mean``/``std`` would read the time axis as channels). Labels are required as in any data
file (one per sequence). :func:`load_sequences` reads them; :func:`load_data` refuses them.

Pixels stored as uint8 keep image sets small (MNIST: one byte per pixel, gzip); the decoding is
exact and written once here, so every reader gets the same float64 values.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import h5py
import numpy as np

from refsnn.checksum import check_storage
from refsnn.errors import DataFormatError, ModelFormatError
from refsnn.io import atomic_h5, attr_str, check_header, open_h5, read_h5

FORMAT = "refsnn-data"
FORMAT_VERSION = 2  # 2: with checksums (refsnn.checksum); version 1 files still load
#: The version of sequence files (a root ``dt``): 3 marks them only, so that older readers
#: refuse them and plain files stay version 2, the same bytes as before sequences existed.
SEQUENCE_VERSION = 3
#: Attributes of a uint8 ``x`` (``scale`` required, ``mean``/``std`` optional, both or neither).
ENCODING_ATTRS = ("scale", "mean", "std")
#: Stored samples per HDF5 chunk (gzip works per chunk; a prefix reads few chunks).
CHUNK_SAMPLES = 256


def _classes(f, file: str) -> int:
    classes = np.asarray(f.attrs.get("classes", -1))
    if classes.ndim != 0 or classes.dtype.kind not in "iu" or int(classes) < 1:
        raise ModelFormatError(file, "/", "classes", "a positive integer",
                               repr(f.attrs.get("classes")))
    return int(classes)


def _encoding(dx, file: str, where: str) -> dict:
    """Validate the attributes that say how ``x`` decodes; ``{}`` for a float ``x``."""
    attrs = {k: dx.attrs[k] for k in ENCODING_ATTRS if k in dx.attrs}
    if dx.dtype.kind == "f":
        if attrs:
            raise ModelFormatError(file, where, ", ".join(attrs),
                                   "no scale/mean/std on float values (they are stored as is)",
                                   "present")
        return {}
    if dx.dtype != np.uint8:
        raise ModelFormatError(file, where, "dtype", "float32, float64 or uint8", str(dx.dtype))
    if "scale" not in attrs:
        raise ModelFormatError(file, where, "scale", "a positive float attribute (uint8 values "
                               "are x · scale)", "nothing (missing)")
    scale = np.asarray(attrs["scale"])
    if scale.shape != () or scale.dtype.kind != "f" or not (np.isfinite(scale) and scale > 0):
        raise ModelFormatError(file, where, "scale", "one finite float > 0", repr(attrs["scale"]))
    out = {"scale": float(scale)}
    if ("mean" in attrs) != ("std" in attrs):
        missing = "std" if "mean" in attrs else "mean"
        raise ModelFormatError(file, where, missing, "mean and std together", "only one of them")
    if "mean" in attrs:
        channels = dx.shape[1] if dx.ndim > 1 else 0
        for key in ("mean", "std"):
            v = np.asarray(attrs[key])
            if v.dtype.kind != "f" or v.shape != (channels,) or not np.all(np.isfinite(v)):
                raise ModelFormatError(file, where, key, f"{channels} finite floats (one per "
                                       f"channel, axis 1)", f"{v.dtype} {v.shape}: {v!r}")
            if key == "std" and np.any(v <= 0):
                raise ModelFormatError(file, where, key, "values > 0", repr(v))
            out[key] = v.astype(np.float64)
    return out


def decode(raw: np.ndarray, encoding: dict) -> np.ndarray:
    """The float64 values of stored samples: ``(raw · scale − mean_c) / std_c``.

    Parameters
    ----------
    raw : ndarray, shape (N, C, ...)
        Stored values (uint8 with an encoding, or float).
    encoding : dict
        ``{}`` (values as stored), or ``scale`` and optionally ``mean``/``std`` of shape (C,).

    Returns
    -------
    float64 ndarray, shape (N, C, ...)
    """
    x = np.asarray(raw, dtype=np.float64)
    if "scale" in encoding:
        x = x * encoding["scale"]
    if "mean" in encoding:
        per_channel = (1, -1) + (1,) * (x.ndim - 2)
        x = (x - encoding["mean"].reshape(per_channel)) / encoding["std"].reshape(per_channel)
    return x


def load_data(path, split: str, sample_shape=None, limit: int | None = None):
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
        Decoded values (``decode``) for uint8 storage.
    y : int64 ndarray, shape (N,)

    Raises
    ------
    ModelFormatError
        Naming the file, path and field of any problem (missing split, shapes, dtypes, an
        inconsistent uint8 encoding, non-finite values, labels out of range).
    """
    return read_h5(path, "data file",
                   lambda f, file: _read_split(f, file, split, sample_shape, limit,
                                               False)[:2])


def load_sequences(path, split: str, step_shape=None, limit: int | None = None):
    """Load the sequences ``x``, labels ``y`` and time step ``dt`` of one split of a sequence
    file (see the module docstring).

    Parameters
    ----------
    path : str or Path
    split : str
    step_shape : tuple of int, optional
        If given, ``x`` must have shape ``(N, T, *step_shape)`` (the network's input shape).
    limit : int, optional
        Keep only the first ``limit`` sequences.

    Returns
    -------
    x : float64 ndarray, shape (N, T, *step_shape)
    y : int64 ndarray, shape (N,)
    dt : float

    Raises
    ------
    ModelFormatError
        As :func:`load_data`, and for a file without ``dt`` (not a sequence file), a ``dt``
        that is not one finite number > 0, or ``x`` of rank < 3.
    """
    return read_h5(path, "data file",
                   lambda f, file: _read_split(f, file, split, step_shape, limit, True))


def load_split(path, split: str, shape=None, limit: int | None = None):
    """``x, y, dt`` of one split of a plain data file (``dt`` None; :func:`load_data`) or of
    a sequence file (:func:`load_sequences`), whichever ``path`` is."""
    return read_h5(path, "data file",
                   lambda f, file: _read_split(f, file, split, shape, limit, None))


def sequence_dt(f, file: str) -> float | None:
    """The root attribute ``dt`` of the open data file ``f``, checked; None for a plain file."""
    if "dt" not in f.attrs:
        return None
    dt = np.asarray(f.attrs["dt"])
    if dt.shape != () or dt.dtype.kind != "f" or not (np.isfinite(dt) and dt > 0):
        raise ModelFormatError(file, "/", "dt", "one finite float > 0 (the time step of the "
                               "sequences)", repr(f.attrs["dt"]))
    return float(dt)


def _read_split(f, file: str, split: str, sample_shape, limit, sequences: bool | None):
    """:func:`load_data` (``sequences`` False), :func:`load_sequences` (True) or
    :func:`load_split` (None: either) on the open file ``f`` (validated inside the ``with``
    block, so that the checksums are verified after it): ``x, y, dt`` (dt None for a plain
    file)."""
    version = check_header(f, file, FORMAT, SEQUENCE_VERSION)
    classes = _classes(f, file)
    dt = sequence_dt(f, file)
    if (dt is not None) != (version == SEQUENCE_VERSION):
        raise ModelFormatError(file, "/", "format_version", "3 with a root dt (a sequence "
                               "file), 1 or 2 without", f"{version} with"
                               f"{'out' if dt is None else ''} dt")
    if sequences is None:
        pass
    elif sequences and dt is None:
        raise ModelFormatError(file, "/", "dt", "a sequence file (root attribute dt; make one "
                               "with 'refsnn data from-arrays --dt' or 'from-events')",
                               "nothing (a file of plain samples)")
    elif not sequences and dt is not None:
        raise ModelFormatError(file, "/", "dt", "a file of plain samples", f"a sequence file "
                               f"(dt = {dt:g}): read it with load_sequences")
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
    encoding = _encoding(dx, file, f"/{split}/x")
    if dt is not None:
        if dx.ndim < 3:
            raise ModelFormatError(file, f"/{split}/x", "shape", "(N, T, *step_shape), rank "
                                   ">= 3", str(dx.shape))
        if "mean" in encoding:
            raise ModelFormatError(file, f"/{split}/x", "mean, std", "no per-channel "
                                   "normalisation in a sequence file (axis 1 is time)",
                                   "present")
    if dy.dtype.kind not in "iu" or dy.shape != (dx.shape[0],):
        raise ModelFormatError(file, f"/{split}/y", "dtype/shape",
                               f"integer labels of shape ({dx.shape[0]},)",
                               f"{dy.dtype} {dy.shape}")
    n = dx.shape[0] if limit is None else min(limit, dx.shape[0])
    x, y = dx[:n], dy[:n]
    lead = 1 if dt is None else 2  # (N,) or (N, T) before the network's input shape
    if sample_shape is not None and tuple(x.shape[lead:]) != tuple(sample_shape):
        raise ModelFormatError(file, f"/{split}/x", "shape",
                               f"({'N' if dt is None else 'N, T'}, "
                               f"{', '.join(map(str, sample_shape))}) to match the model",
                               str(x.shape))
    x = decode(x, encoding)
    if not np.all(np.isfinite(x)):
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(x))[0])
        raise ModelFormatError(file, f"/{split}/x", "values", "finite numbers",
                               f"{x[bad]} at index {bad}")
    if y.size and (y.min() < 0 or y.max() >= classes):
        raise ModelFormatError(file, f"/{split}/y", "values", f"labels in [0, {classes})",
                               f"range [{y.min()}, {y.max()}]")
    return x, np.asarray(y, dtype=np.int64), dt


# ---------------------------------------------------------------------------------------------
# Writing


def _check_arrays(name: str, x, y, classes: int, sample_shape, lead: int = 1):
    """One split's arrays as they will be stored; DataFormatError naming split and item.
    ``lead``: the axes before the sample shape (1: samples; 2: sequences and their steps)."""
    if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
        raise DataFormatError(f"split name: expected a non-empty name without '/', found "
                              f"{name!r}")
    x, y = np.asarray(x), np.asarray(y)
    what = "(N, *sample_shape)" if lead == 1 else "(N, T, *step_shape) (a sequence file)"
    if x.dtype.kind not in "fiub" or x.ndim < lead + 1:
        raise DataFormatError(f"split {name!r}: x: expected a numeric array {what} "
                              f"with a sample shape, found {x.dtype} {x.shape}")
    if 0 in x.shape[:lead]:
        raise DataFormatError(f"split {name!r}: x: expected at least one sample"
                              f"{'' if lead == 1 else ' of at least one step'}, found none")
    if sample_shape is not None and x.shape[lead:] != sample_shape:
        raise DataFormatError(f"split {name!r}: x: expected samples of shape {sample_shape} "
                              f"like the other splits, found {x.shape[lead:]}")
    if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(x))[0])
        raise DataFormatError(f"split {name!r}: x: expected finite values, found {x[bad]} at "
                              f"sample {bad[0]} (index {bad})")
    if y.shape != (x.shape[0],):
        raise DataFormatError(f"split {name!r}: y: expected {x.shape[0]} labels (one per "
                              f"sample), found shape {y.shape}")
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)) or np.any(y != np.round(y)):
            i = int(np.argwhere(~np.isfinite(y) | (y != np.round(y)))[0, 0])
            raise DataFormatError(f"split {name!r}: y: expected integer labels, found {y[i]} "
                                  f"at sample {i}")
    elif y.dtype.kind not in "iub":
        raise DataFormatError(f"split {name!r}: y: expected integer labels, found {y.dtype}")
    y = y.astype(np.int64)
    bad = np.flatnonzero((y < 0) | (y >= classes))
    if bad.size:
        raise DataFormatError(f"split {name!r}: y: expected labels in [0, {classes}), found "
                              f"{y[bad[0]]} at sample {int(bad[0])}")
    return x, y


def _store_x(name: str, x: np.ndarray, scale, mean, std):
    """``(stored array, encoding attrs)``: uint8 with its encoding, or float64 values."""
    enc = {"scale": np.float64(1.0 if scale is None else scale)}
    if mean is not None:
        enc["mean"], enc["std"] = (np.asarray(mean, np.float64), np.asarray(std, np.float64))
    if x.dtype == np.uint8:
        return x, enc
    if scale is not None or mean is not None:
        # float (or wide integer) input: apply the transform now and store the values
        v = decode(x, enc)
        if not np.all(np.isfinite(v)):
            i = int(np.argwhere(~np.isfinite(v))[0, 0])
            raise DataFormatError(f"split {name!r}: x: not finite after scale/mean/std at "
                                  f"sample {i}")
        return v, {}
    return (x if x.dtype.kind == "f" else x.astype(np.float64)), {}


def _check_transform(scale, mean, std, channels: int):
    if scale is not None and not (np.isfinite(scale) and scale > 0):
        raise DataFormatError(f"scale: expected a finite number > 0, found {scale!r}")
    if (mean is None) != (std is None):
        raise DataFormatError("mean and std: expected both or neither")
    if mean is not None:
        for key, v in (("mean", mean), ("std", std)):
            v = np.asarray(v, dtype=np.float64)
            if v.shape != (channels,) or not np.all(np.isfinite(v)):
                raise DataFormatError(f"{key}: expected {channels} finite value(s), one per "
                                      f"channel, found {v.tolist()}")
            if key == "std" and np.any(v <= 0):
                raise DataFormatError(f"std: expected values > 0, found {v.tolist()}")


def save(path, splits: dict, classes, *, scale=None, mean=None, std=None,
         source: str | None = None, provenance: dict | None = None, dt=None) -> None:
    """Write a data file (atomically: the file appears only when complete).

    Parameters
    ----------
    path : str or Path
    splits : dict of str to (x, y)
        ``x`` of shape (N, *sample_shape), the same sample shape in every split (channels
        first, e.g. (C, H, W)); ``y`` integer labels of shape (N,).  uint8 ``x`` is stored as
        uint8 with ``scale`` (default 1) and ``mean``/``std`` as decoding attributes; any other
        ``x`` is stored as float (float32 kept, otherwise float64), with ``scale``, ``mean``
        and ``std`` applied first.
    classes : int or sequence of str
        The number of classes, or their names (label ``i`` is ``classes[i]``).
    scale : float, optional
        Multiplies the values (e.g. 1/255 for 8-bit pixels).
    mean, std : sequence of float, shape (C,), optional
        Per-channel normalisation after ``scale``: ``(x·scale − mean_c) / std_c``.
    source : str, optional
        Where the data come from (kept as the root attribute ``source``).
    provenance : dict, optional
        How the file was made (stored as JSON in the root attribute ``provenance``;
        ``scale``, ``mean`` and ``std`` are added to it).
    dt : float, optional
        Makes a sequence file: every ``x`` is (N, T, *step_shape), ``T`` steps ``dt`` apart
        (the same step shape in every split; ``T`` may differ); no ``mean``/``std``.

    Raises
    ------
    DataFormatError
        Naming the split, the array and the sample of any problem.
    """
    if isinstance(classes, (int, np.integer)):
        names, n_classes = None, int(classes)
    else:
        names = [str(c) for c in classes]
        n_classes = len(names)
    if n_classes < 1:
        raise DataFormatError(f"classes: expected at least one class, found {classes!r}")
    if not splits:
        raise DataFormatError("splits: expected at least one split, found none")
    if dt is not None:
        if isinstance(dt, bool) or not isinstance(dt, (int, float, np.integer, np.floating)) \
                or not (np.isfinite(dt) and dt > 0):
            raise DataFormatError(f"dt: expected a finite number > 0 (the time step of the "
                                  f"sequences), found {dt!r}")
        if mean is not None or std is not None:
            raise DataFormatError("mean and std: not in a sequence file (axis 1 is time, not "
                                  "channels); normalise the values before")
    lead = 1 if dt is None else 2
    checked, sample_shape = {}, None
    for name, pair in splits.items():
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise DataFormatError(f"split {name!r}: expected a pair (x, y)")
        x, y = _check_arrays(name, pair[0], pair[1], n_classes, sample_shape, lead)
        sample_shape = x.shape[lead:]
        checked[name] = (x, y)
    _check_transform(scale, mean, std, (sample_shape or (0,))[0])
    stored = {name: (*_store_x(name, x, scale, mean, std), y)
              for name, (x, y) in checked.items()}
    record = dict(provenance or {})
    record.update({"scale": scale, "mean": None if mean is None else list(map(float, mean)),
                   "std": None if std is None else list(map(float, std))})
    with atomic_h5(path) as f:
        f.attrs["format"] = FORMAT
        f.attrs["format_version"] = np.int64(FORMAT_VERSION if dt is None else SEQUENCE_VERSION)
        if dt is not None:
            f.attrs["dt"] = np.float64(dt)
        f.attrs["classes"] = np.int64(n_classes)
        if names is not None:
            f.attrs["class_names"] = names
        if source is not None:
            f.attrs["source"] = source
        f.attrs["provenance"] = json.dumps(record, sort_keys=True)
        for name, (x, enc, y) in stored.items():
            g = f.create_group(name)
            chunks = (min(CHUNK_SAMPLES, x.shape[0]),) + x.shape[1:]
            dx = g.create_dataset("x", data=x, chunks=chunks, compression="gzip",
                                  compression_opts=9, shuffle=x.itemsize > 1)
            for key, value in enc.items():
                dx.attrs[key] = value
            g.create_dataset("y", data=y, compression="gzip", compression_opts=9)


@dataclass(frozen=True)
class DataFile:
    """A data file as :func:`refsnn.load` reads it: its ``path`` and ``info``
    (:func:`describe`, which validates it); :meth:`split` loads a split."""

    path: str
    info: dict

    def split(self, name: str, sample_shape=None, limit: int | None = None):
        """``x, y`` of the split ``name`` (:func:`load_data`)."""
        return load_data(self.path, name, sample_shape, limit)


def describe(path) -> dict:
    """What ``refsnn inspect`` shows of a data file: classes, splits, encodings, provenance.

    Returns
    -------
    dict
        ``classes``, ``class_names`` (or None), ``source``, ``provenance`` (dict or None) and
        ``splits``: name -> ``shape``, ``dtype``, ``encoding`` and ``counts`` (per class);
        ``dt``: the time step of a sequence file, None for a plain one.
    """
    file = str(path)
    out = {"splits": {}}
    with open_h5(path, "data file") as f:
        check_header(f, file, FORMAT, SEQUENCE_VERSION)
        classes = _classes(f, file)
        out["dt"] = dt = sequence_dt(f, file)
        names = f.attrs.get("class_names")
        out["classes"] = classes
        out["class_names"] = None if names is None else [str(attr_str(n)) for n in names]
        src = f.attrs.get("source")
        out["source"] = None if src is None else str(src)
        prov = f.attrs.get("provenance")
        try:
            out["provenance"] = None if prov is None else json.loads(prov)
        except (TypeError, ValueError):
            raise ModelFormatError(file, "/", "provenance", "a JSON string", repr(prov)[:60])
        split_names = [k for k in f if hasattr(f[k], "keys")]
    for name in split_names:
        # labels fully checked; x's header and encoding only (x may be hundreds of MB)
        (load_data if dt is None else load_sequences)(path, name, limit=1)
        with open_h5(path, "data file") as f:
            dx, labels = f[name]["x"], f[name]["y"][()]
            enc = _encoding(dx, file, f"/{name}/x")
            if labels.dtype.kind not in "iu" or labels.shape != (dx.shape[0],) or (
                    labels.size and (labels.min() < 0 or labels.max() >= classes)):
                raise ModelFormatError(file, f"/{name}/y", "labels",
                                       f"{dx.shape[0]} integers in [0, {classes})",
                                       f"{labels.dtype} {labels.shape}")
            out["splits"][name] = {
                "shape": tuple(dx.shape), "dtype": str(dx.dtype),
                "encoding": {k: (v.tolist() if isinstance(v, np.ndarray) else v)
                             for k, v in enc.items()},
                "counts": np.bincount(labels, minlength=classes).tolist()}
    return out
