"""Read users' data into arrays for :func:`refsnn.data.save`: NumPy files, CSV, image folders.

Each reader returns ``(x, y)`` (samples first) or ``(x, y, class_names)`` and raises
:class:`~refsnn.errors.DataFormatError` with one line naming the file and the row, item or
array at fault. Integer pixel values 0..255 come back as uint8 (stored compactly, with
``--scale`` as the decoding attribute); anything else as float64. Images need Pillow (the
``images`` extra), imported only by :func:`read_image_folder`.
"""

from __future__ import annotations

import csv
import math
import zipfile
from pathlib import Path

import numpy as np

from refsnn.errors import DataFormatError, OptionError


def compact(x: np.ndarray) -> np.ndarray:
    """``x`` as uint8 if every value is an integer in 0..255, else as float64.

    Parameters
    ----------
    x : ndarray, any shape, real
    """
    if x.dtype == np.uint8:
        return x
    if x.size and x.dtype.kind in "iub" and x.min() >= 0 and x.max() <= 255:
        return x.astype(np.uint8)
    if x.dtype.kind == "f" and x.size and np.all(np.isfinite(x)) and x.min() >= 0 \
            and x.max() <= 255 and np.all(x == np.floor(x)):
        return x.astype(np.uint8)
    return x.astype(np.float64)


def reshape_samples(x: np.ndarray, shape, what: str) -> np.ndarray:
    """Samples of ``x`` (N, ...) reshaped to ``(N, *shape)`` (C order), or an error naming
    ``what``; ``shape`` None keeps them."""
    if shape is None:
        return x
    shape = tuple(shape)
    if int(np.prod(x.shape[1:])) != int(np.prod(shape)):
        raise DataFormatError(f"{what}: --shape {','.join(map(str, shape))} needs "
                              f"{int(np.prod(shape))} values per sample, found "
                              f"{int(np.prod(x.shape[1:]))} (sample shape {x.shape[1:]})")
    return x.reshape((x.shape[0],) + shape)


# ---------------------------------------------------------------------------------------------
# NumPy files


def _load_array(path: Path, member: str | None = None) -> np.ndarray:
    try:
        if member is None:
            return np.load(path, allow_pickle=False)
        with np.load(path, allow_pickle=False) as z:
            if member not in z.files:
                raise DataFormatError(f"{path}: expected an array {member!r} in the .npz, found "
                                      f"{sorted(z.files)}")
            return z[member]
    except FileNotFoundError:
        raise DataFormatError(f"{path}: no such file") from None
    except (ValueError, OSError, zipfile.BadZipFile) as e:
        raise DataFormatError(f"{path}: not a readable .npy/.npz file "
                              f"({str(e).splitlines()[0]})") from None


def read_arrays(x_path, y_path=None):
    """``(x, y)`` from ``X.npy`` and ``Y.npy``, or from one ``.npz`` holding ``x`` and ``y``.

    Returns
    -------
    x : ndarray, shape (N, ...)
    y : int64 ndarray, shape (N,)
    """
    x_path = Path(x_path)
    if y_path is None:
        x, y, where = _load_array(x_path, "x"), _load_array(x_path, "y"), f"{x_path}"
        xs, ys = f"{x_path}: x", f"{x_path}: y"
    else:
        x, y = _load_array(x_path), _load_array(Path(y_path))
        xs, ys = str(x_path), str(y_path)
    if x.dtype.kind not in "fiub" or x.ndim < 2:
        raise DataFormatError(f"{xs}: expected a numeric array (N, ...) of samples, found "
                              f"{x.dtype} {x.shape}")
    if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(x))[0])
        raise DataFormatError(f"{xs}: item {bad[0]}: expected finite values, found {x[bad]} "
                              f"at index {bad}")
    if y.ndim != 1 or y.shape[0] != x.shape[0]:
        raise DataFormatError(f"{ys}: expected {x.shape[0]} labels, one per sample of {xs}, "
                              f"found shape {y.shape}")
    return compact(x), _labels(y, ys)


def _labels(y: np.ndarray, where: str) -> np.ndarray:
    if y.dtype.kind == "f":
        bad = ~np.isfinite(y) | (y != np.floor(y))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataFormatError(f"{where}: item {i}: expected an integer label, found {y[i]}")
    elif y.dtype.kind not in "iub":
        raise DataFormatError(f"{where}: expected integer labels, found dtype {y.dtype}")
    y = y.astype(np.int64)
    if y.size and y.min() < 0:
        i = int(np.flatnonzero(y < 0)[0])
        raise DataFormatError(f"{where}: item {i}: expected a label >= 0, found {y[i]}")
    return y


# ---------------------------------------------------------------------------------------------
# CSV


def read_csv(path, label: str = "first", header: bool = False):
    """``(x (N, F), y (N,))`` from a CSV file with one sample per row.

    Parameters
    ----------
    path : str or Path
    label : {"first", "last"}
        Which column holds the label; the others are the sample's values.
    header : bool
        Skip the first line (column names).

    Raises
    ------
    DataFormatError
        ``FILE: row R: ...`` (R counts lines from 1, the header included) for a ragged row,
        a non-numeric or empty cell, NaN or infinity, or a label that is not an integer >= 0.
    """
    path = Path(path)
    if label not in ("first", "last"):
        raise DataFormatError(f"label: expected 'first' or 'last', found {label!r}")
    if not path.is_file():
        raise DataFormatError(f"{path}: no such file")
    rows, labels, width = [], [], None
    with open(path, newline="", encoding="utf-8", errors="replace") as fh:
        for r, row in enumerate(csv.reader(fh), start=1):
            if header and r == 1:
                continue
            if not row or all(not c.strip() for c in row):
                continue  # blank lines (e.g. a final newline) carry no sample
            if width is None:
                width = len(row)
                if width < 2:
                    raise DataFormatError(f"{path}: row {r}: expected a label and at least one "
                                          f"value, found {width} column")
            elif len(row) != width:
                raise DataFormatError(f"{path}: row {r}: expected {width} columns like the first "
                                      f"row, found {len(row)} (ragged rows)")
            values = []
            for c, cell in enumerate(row, start=1):
                text = cell.strip()
                try:
                    v = float(text)
                except ValueError:
                    what = "empty cell" if not text else f"non-numeric cell {text[:20]!r}"
                    hint = " (a header line? use --header)" if r == 1 and not header else ""
                    raise DataFormatError(f"{path}: row {r}, column {c}: {what}{hint}") from None
                if not math.isfinite(v):
                    raise DataFormatError(f"{path}: row {r}, column {c}: expected a finite "
                                          f"number, found {text!r}")
                values.append(v)
            lab = values.pop(0 if label == "first" else -1)
            if lab != int(lab) or lab < 0:
                col = 1 if label == "first" else width
                raise DataFormatError(f"{path}: row {r}, column {col}: expected an integer "
                                      f"label >= 0, found {lab:g}")
            rows.append(values)
            labels.append(int(lab))
    if not rows:
        raise DataFormatError(f"{path}: expected at least one data row, found none")
    return compact(np.array(rows, dtype=np.float64)), np.array(labels, dtype=np.int64)


# ---------------------------------------------------------------------------------------------
# Image folders

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff")
#: Pillow modes accepted and their channel counts (other modes are refused, not converted).
MODES = {"L": 1, "RGB": 3}


def read_image_folder(folder):
    """``(x uint8 (N, C, H, W), y (N,), class names)`` from ``FOLDER/<class>/<image>``.

    Classes are the subfolders in sorted order (label ``i`` is the ``i``-th name); images are
    read in sorted order. Every image must have the first image's size and mode (``L``, grey,
    or ``RGB``); nothing is resized or converted.

    Raises
    ------
    DataFormatError
        Naming the folder or file: no class folders, an empty class folder, an unreadable
        file, another size or mode.
    OptionError
        If Pillow is not installed.
    """
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        raise OptionError("from-images needs Pillow: pip install 'refsnn[images]'") from None
    folder = Path(folder)
    if not folder.is_dir():
        raise DataFormatError(f"{folder}: expected a folder with one subfolder per class")
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
    if not classes:
        raise DataFormatError(f"{folder}: expected one subfolder per class, found none")
    images, labels, first = [], [], None
    for k, name in enumerate(classes):
        files = sorted(p for p in (folder / name).iterdir()
                       if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DataFormatError(f"{folder / name}: empty class folder (no "
                                  f"{'/'.join(IMAGE_SUFFIXES)} files)")
        for file in files:
            try:
                with Image.open(file) as im:
                    im.load()
                    mode, size = im.mode, im.size
                    arr = np.asarray(im)
            except (UnidentifiedImageError, OSError) as e:
                raise DataFormatError(f"{file}: not a readable image "
                                      f"({str(e).splitlines()[0]})") from None
            if mode not in MODES:
                raise DataFormatError(f"{file}: mode {mode}: expected one of "
                                      f"{', '.join(MODES)} (convert the images first)")
            if first is None:
                first = (mode, size, file)
            elif (mode, size) != first[:2]:
                raise DataFormatError(f"{file}: {mode} {size[0]}x{size[1]}: expected "
                                      f"{first[0]} {first[1][0]}x{first[1][1]} like {first[2]}")
            arr = arr.reshape(size[1], size[0], MODES[mode])
            images.append(np.ascontiguousarray(arr.transpose(2, 0, 1), dtype=np.uint8))
            labels.append(k)
    return np.stack(images), np.array(labels, dtype=np.int64), classes


# ---------------------------------------------------------------------------------------------
# Event streams


def read_event_streams(path):
    """The event streams and labels of one ``.npz`` file: arrays ``events_0`` ..
    ``events_<N-1>`` (structured, fields ``t``, ``x``, ``p`` and optionally ``y``, as
    :func:`refsnn.events.to_frames` takes them) and ``labels`` (N,).

    Returns
    -------
    streams : list of structured ndarray
    y : int64 ndarray, shape (N,)
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            files = set(z.files)
            n = sum(1 for k in files if k.startswith("events_"))
            names = [f"events_{i}" for i in range(n)]
            if n == 0 or set(names) | {"labels"} != files:
                raise DataFormatError(f"{path}: expected arrays events_0 .. events_<N-1> and "
                                      f"labels, found {sorted(files)}")
            streams, y = [z[k] for k in names], z["labels"]
    except FileNotFoundError:
        raise DataFormatError(f"{path}: no such file") from None
    except (ValueError, OSError, zipfile.BadZipFile) as e:
        raise DataFormatError(f"{path}: not a readable .npz file "
                              f"({str(e).splitlines()[0]})") from None
    if y.ndim != 1 or y.shape[0] != n:
        raise DataFormatError(f"{path}: labels: expected {n} labels, one per stream, found "
                              f"shape {y.shape}")
    return streams, _labels(y, f"{path}: labels")
