"""Data files: refsnn.data.save, the uint8 encoding, and the shipped MNIST and Fashion files."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from refsnn.data import decode, describe, load_data, save
from refsnn.errors import DataFormatError, ModelFormatError

from conftest import ROOT

MNIST = ROOT / "data" / "mnist.h5"
FASHION = ROOT / "data" / "fashion.h5"


def _u8(n=5, c=2, h=3, w=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, c, h, w)).astype(np.uint8), rng.integers(0, 3, n)


def test_roundtrip_float_and_several_splits(tmp_path):
    rng = np.random.default_rng(1)
    splits = {"train": (rng.normal(size=(7, 3)), np.arange(7) % 2),
              "test": (rng.normal(size=(4, 3)).astype(np.float32), np.array([1, 0, 1, 1]))}
    save(tmp_path / "d.h5", splits, classes=["a", "b"], source="made here")
    for name, (x, y) in splits.items():
        xr, yr = load_data(tmp_path / "d.h5", name, (3,))
        assert np.array_equal(xr, x.astype(np.float64)) and np.array_equal(yr, y)
    info = describe(tmp_path / "d.h5")
    assert info["class_names"] == ["a", "b"] and info["source"] == "made here"
    assert info["splits"]["train"]["counts"] == [4, 3]
    assert info["splits"]["test"]["dtype"] == "float32"


def test_uint8_with_scale_mean_std_decodes_exactly(tmp_path):
    x, y = _u8()
    mean, std = [0.1, 0.5], [0.3, 2.0]
    save(tmp_path / "d.h5", {"test": (x, y)}, 3, scale=1 / 255, mean=mean, std=std)
    with h5py.File(tmp_path / "d.h5") as f:
        assert f["test/x"].dtype == np.uint8  # stored compact
    xr, _ = load_data(tmp_path / "d.h5", "test")
    # the documented order: (x * scale - mean_c) / std_c in float64
    want = np.empty(x.shape)
    for c in range(2):
        want[:, c] = (x[:, c].astype(np.float64) * (1 / 255) - mean[c]) / std[c]
    assert np.array_equal(xr, want)
    assert describe(tmp_path / "d.h5")["provenance"]["mean"] == mean


@settings(max_examples=30, deadline=None)
@given(st.floats(1e-6, 10.0), st.lists(st.integers(0, 255), min_size=1, max_size=20))
def test_decode_is_pixel_times_scale(scale, pixels):
    raw = np.array(pixels, dtype=np.uint8).reshape(-1, 1)
    assert np.array_equal(decode(raw, {"scale": scale}), raw.astype(np.float64) * scale)


def test_float_input_with_scale_is_stored_scaled(tmp_path):
    x = np.arange(12, dtype=np.int64).reshape(3, 1, 2, 2) * 100  # not uint8: stored as float
    save(tmp_path / "d.h5", {"s": (x, [0, 1, 0])}, 2, scale=0.5)
    xr, _ = load_data(tmp_path / "d.h5", "s")
    assert np.array_equal(xr, x * 0.5)


@pytest.mark.parametrize("splits, kwargs, fragment", [
    ({"test": (np.array([[0.0, np.nan]]), [0])}, {}, "found nan at sample 0"),
    ({"test": (np.zeros((2, 3)), [0, 5])}, {}, "labels in [0, 3), found 5 at sample 1"),
    ({"test": (np.zeros((2, 3)), [0, -1])}, {}, "found -1 at sample 1"),
    ({"test": (np.zeros((2, 3)), [0])}, {}, "expected 2 labels"),
    ({"test": (np.zeros((2, 3)), [0.0, 1.5])}, {}, "integer labels, found 1.5 at sample 1"),
    ({"a": (np.zeros((2, 3)), [0, 1]), "b": (np.zeros((2, 4)), [0, 1])}, {},
     "split 'b': x: expected samples of shape (3,)"),
    ({"test": (np.zeros((0, 3)), [])}, {}, "at least one sample"),
    ({"a/b": (np.zeros((1, 3)), [0])}, {}, "split name"),
    ({"test": (np.zeros((2, 2, 3), np.uint8), [0, 1])}, {"mean": [0.0]}, "both or neither"),
    ({"test": (np.zeros((2, 2, 3), np.uint8), [0, 1])}, {"mean": [0.0], "std": [1.0]},
     "mean: expected 2 finite value(s)"),
    ({"test": (np.zeros((2, 2, 3), np.uint8), [0, 1])},
     {"mean": [0.0, 0.0], "std": [1.0, 0.0]}, "std: expected values > 0"),
    ({"test": (np.zeros((2, 3)), [0, 1])}, {"scale": -1.0}, "scale: expected a finite number"),
])
def test_save_refuses_bad_arrays(tmp_path, splits, kwargs, fragment):
    with pytest.raises(DataFormatError) as info:
        save(tmp_path / "d.h5", splits, 3, **kwargs)
    assert fragment in str(info.value)
    assert list(tmp_path.iterdir()) == []  # nothing written


def _encoded(tmp_path, edit):
    x, y = _u8()
    path = tmp_path / "d.h5"
    save(path, {"test": (x, y)}, 3, scale=0.5, mean=[0.0, 1.0], std=[1.0, 2.0])
    with h5py.File(path, "r+") as f:
        edit(f["test/x"])
    return path


@pytest.mark.parametrize("edit, fragment", [
    (lambda d: d.attrs.__delitem__("scale"), "/test/x: scale: expected a positive float"),
    (lambda d: d.attrs.__setitem__("scale", 0.0), "/test/x: scale: expected one finite float"),
    (lambda d: d.attrs.__setitem__("scale", np.inf), "/test/x: scale: expected one finite"),
    (lambda d: d.attrs.__delitem__("std"), "/test/x: std: expected mean and std together"),
    (lambda d: d.attrs.__setitem__("mean", [0.0, 1.0, 2.0]), "/test/x: mean: expected 2 finite"),
    (lambda d: d.attrs.__setitem__("std", [1.0, -2.0]), "/test/x: std: expected values > 0"),
])
def test_inconsistent_encodings_are_refused(tmp_path, edit, fragment):
    path = _encoded(tmp_path, edit)
    with pytest.raises(ModelFormatError) as info:
        load_data(path, "test")
    assert str(info.value).startswith(f"{path}: {fragment}")


def test_encoding_attrs_on_float_values_are_refused(tmp_path):
    save(tmp_path / "d.h5", {"test": (np.zeros((2, 3)), [0, 1])}, 2)
    with h5py.File(tmp_path / "d.h5", "r+") as f:
        f["test/x"].attrs["scale"] = 2.0
    with pytest.raises(ModelFormatError, match=r"/test/x: scale: expected no scale/mean/std on "
                                               r"float values"):
        load_data(tmp_path / "d.h5", "test")


def test_other_integer_storage_is_refused(tmp_path):
    save(tmp_path / "d.h5", {"test": (np.zeros((2, 3)), [0, 1])}, 2)
    with h5py.File(tmp_path / "d.h5", "r+") as f:
        del f["test/x"]
        f["test"].create_dataset("x", data=np.zeros((2, 3), np.int16))
    with pytest.raises(ModelFormatError, match=r"dtype: expected float32, float64 or uint8, "
                                               r"found int16"):
        load_data(tmp_path / "d.h5", "test")


def test_shipped_mnist():
    info = describe(MNIST)
    # the official split: 60,000 + 10,000, test label counts as published for MNIST
    assert info["splits"]["train"]["shape"] == (60000, 1, 28, 28)
    assert info["splits"]["test"]["counts"] == [980, 1135, 1032, 1010, 982, 892, 958, 1028,
                                                974, 1009]
    assert info["splits"]["test"]["encoding"] == {"scale": 1 / 255}
    x, y = load_data(MNIST, "test", (1, 28, 28), limit=200)
    with h5py.File(MNIST) as f:
        raw = f["test/x"][:200]
    assert np.array_equal(x, raw.astype(np.float64) * (1 / 255))
    assert x.min() == 0.0 and x.max() == 1.0 and y.shape == (200,)


def test_shipped_fashion():
    info = describe(FASHION)
    assert info["class_names"][0] == "T-shirt/top" and len(info["class_names"]) == 10
    assert info["splits"]["test"]["counts"] == [1000] * 10  # the complete test split
    assert info["splits"]["train"]["counts"] == [1000] * 10  # the stratified subset
