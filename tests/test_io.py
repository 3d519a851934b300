"""Output files appear whole or not at all; data files are validated."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from refsnn.data import load_data
from refsnn.errors import ModelFormatError
from refsnn.io import atomic_h5

from conftest import DATA


def test_interrupted_write_leaves_nothing(tmp_path):
    path = tmp_path / "out.h5"
    with pytest.raises(KeyboardInterrupt):
        with atomic_h5(path) as f:
            f.create_dataset("x", data=np.arange(10))
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_interrupted_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "out.h5"
    with atomic_h5(path) as f:
        f.create_dataset("x", data=np.arange(3))
    before = path.read_bytes()
    with pytest.raises(RuntimeError):
        with atomic_h5(path) as f:
            f.create_dataset("x", data=np.arange(1000))
            raise RuntimeError("disk on fire")
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["out.h5"]


def test_shipped_data():
    x, y = load_data(DATA, "test", (1, 8, 8))
    assert x.shape == (450, 1, 8, 8) and y.shape == (450,)
    assert 0 <= x.min() and x.max() <= 1 and set(np.unique(y)) == set(range(10))
    xt, _ = load_data(DATA, "train", limit=10)
    assert xt.shape == (10, 1, 8, 8)


def _copy(tmp_path, edit):
    path = tmp_path / "d.h5"
    path.write_bytes(DATA.read_bytes())
    with h5py.File(path, "r+") as f:
        edit(f)
    return path


@pytest.mark.parametrize("edit, where, fragment", [
    (lambda f: f.__delitem__("test"), "/test", "group: expected a split"),
    (lambda f: f["test"].__delitem__("y"), "/test/y", "dataset: expected dataset 'y'"),
    (lambda f: f["test/y"].__setitem__(0, 10), "/test/y", "labels in [0, 10)"),
    (lambda f: f["test/x"].__setitem__((3, 0, 1, 1), np.inf), "/test/x",
     "values: expected finite numbers, found inf at index (3, 0, 1, 1)"),
    (lambda f: f.attrs.__setitem__("format", "csv"), "/", "format: expected 'refsnn-data'"),
])
def test_bad_data_files(tmp_path, edit, where, fragment):
    path = _copy(tmp_path, edit)
    with pytest.raises(ModelFormatError) as info:
        load_data(path, "test", (1, 8, 8))
    assert str(info.value).startswith(f"{path}: {where}: ")
    assert fragment in str(info.value)


def test_data_shape_must_match_model():
    with pytest.raises(ModelFormatError, match=r"/test/x: shape: expected \(N, 3, 8, 8\) to "
                                               r"match the model, found \(450, 1, 8, 8\)"):
        load_data(DATA, "test", (3, 8, 8))
