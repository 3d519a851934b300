"""Write ``data/digits.h5``: scikit-learn's copy of the UCI handwritten digits, split and scaled.

Usage::

    python data/make_digits.py [--out data/digits.h5]

The data come from :func:`sklearn.datasets.load_digits` (1,797 images of 8x8 pixels, values
0..16, shipped inside the scikit-learn package, so nothing is downloaded). The split is fixed:
``train_test_split(x, y, test_size=450, random_state=0, stratify=y)``, giving 1,347 training
and 450 test images. Pixels are divided by 16 so they lie in [0, 1].

Layout::

    /           attrs: format = "refsnn-data", format_version = 2, source = str, classes = 10
    /train/x    float64 (1347, 1, 8, 8), pixels / 16
    /train/y    int64 (1347,), labels 0..9
    /test/x     float64 (450, 1, 8, 8)
    /test/y     int64 (450,)

The file is written to a temporary file in the same folder and renamed into place, so an
interrupted run leaves no partial ``digits.h5``. Running the script twice gives the same arrays.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from pathlib import Path

import h5py
import numpy as np
import sklearn
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from refsnn.checksum import sign

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "digits.h5"

FORMAT = "refsnn-data"
FORMAT_VERSION = 2  # with checksums (refsnn.checksum)
CLASSES = 10
TEST_SIZE = 450
SPLIT_SEED = 0


def build_arrays():
    """Return ``{"train": (x, y), "test": (x, y)}`` as float64 (N, 1, 8, 8) and int64 (N,)."""
    digits = load_digits()
    images = np.asarray(digits.images, dtype=np.float64)  # (1797, 8, 8), values 0..16
    labels = np.asarray(digits.target, dtype=np.int64)
    if images.shape != (1797, 8, 8) or images.min() < 0 or images.max() > 16:
        raise RuntimeError(f"unexpected digits data: shape {images.shape}, "
                           f"range [{images.min()}, {images.max()}]")
    x = (images / 16.0).reshape(-1, 1, 8, 8)
    x_train, x_test, y_train, y_test = train_test_split(
        x, labels, test_size=TEST_SIZE, random_state=SPLIT_SEED, stratify=labels)
    return {
        "train": (np.ascontiguousarray(x_train, dtype=np.float64),
                  np.ascontiguousarray(y_train, dtype=np.int64)),
        "test": (np.ascontiguousarray(x_test, dtype=np.float64),
                 np.ascontiguousarray(y_test, dtype=np.int64)),
    }


def write(path: Path, splits) -> None:
    """Write ``splits`` to ``path`` atomically (temporary file in the same folder, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    os.close(fd)
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = FORMAT
            f.attrs["format_version"] = np.int64(FORMAT_VERSION)
            f.attrs["source"] = (
                "UCI Optical Recognition of Handwritten Digits (CC BY 4.0), via "
                f"sklearn.datasets.load_digits (scikit-learn {sklearn.__version__}); "
                f"train_test_split(test_size={TEST_SIZE}, random_state={SPLIT_SEED}, "
                "stratify=y); pixels / 16")
            f.attrs["classes"] = np.int64(CLASSES)
            for name, (x, y) in splits.items():
                g = f.create_group(name)
                g.create_dataset("x", data=x)
                g.create_dataset("y", data=y)
            sign(f)  # the checksums every refsnn file carries (docs/format.md)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes the file private (0600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output file")
    args = parser.parse_args(argv)
    splits = build_arrays()
    write(args.out, splits)
    for name, (x, y) in splits.items():
        counts = np.bincount(y, minlength=CLASSES)
        print(f"{name:5s}: x {x.shape} {x.dtype} in [{x.min():.3f}, {x.max():.3f}], "
              f"y {y.shape} {y.dtype}, per class {counts.tolist()}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
