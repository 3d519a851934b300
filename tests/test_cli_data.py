"""``refsnn data from-arrays|from-csv|from-images``: good input round-trips, bad input gets one
line naming the file and row/item, and no output file."""

from __future__ import annotations

import numpy as np
import pytest

from refsnn.cli.main import main
from refsnn.data import describe, load_data


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _fail(capsys, tmp_path, *argv):
    """Run a command that must fail: one error line, exit 1 or 2, no output file."""
    code, _, err = run(capsys, *argv, "-o", tmp_path / "out.h5")
    assert code in (1, 2), err
    assert err.startswith("refsnn: error: ") and err.count("\n") == 1, err
    assert not (tmp_path / "out.h5").exists()
    return err


# --- from-arrays ------------------------------------------------------------------------------

def test_from_arrays_two_splits_with_shape_scale_mean_std(tmp_path, capsys):
    rng = np.random.default_rng(0)
    xa, ya = rng.integers(0, 256, (6, 12)).astype(np.uint8), np.array([0, 1, 2, 0, 1, 2])
    xb, yb = rng.integers(0, 256, (3, 12)).astype(np.uint8), np.array([2, 2, 1])
    np.save(tmp_path / "xa.npy", xa)
    np.save(tmp_path / "ya.npy", ya)
    np.savez(tmp_path / "b.npz", x=xb, y=yb)
    code, out, err = run(capsys, "data", "from-arrays", tmp_path / "xa.npy", tmp_path / "ya.npy",
                         tmp_path / "b.npz", "--split", "train", "--split", "test",
                         "--shape", "3,2,2", "--scale", 0.5, "--mean", "1,2,3",
                         "--std", "2,4,8", "-o", tmp_path / "d.h5")
    assert code == 0, err
    x, y = load_data(tmp_path / "d.h5", "train", (3, 2, 2))
    want = (xa.reshape(6, 3, 2, 2) * 0.5 - np.array([1, 2, 3.0]).reshape(1, 3, 1, 1)) \
        / np.array([2, 4, 8.0]).reshape(1, 3, 1, 1)
    assert np.array_equal(x, want) and np.array_equal(y, ya)
    info = describe(tmp_path / "d.h5")
    assert info["classes"] == 3 and info["splits"]["test"]["counts"] == [0, 1, 2]
    assert info["provenance"]["shape"] == [3, 2, 2] and info["provenance"]["std"] == [2, 4, 8]
    code, out, _ = run(capsys, "inspect", tmp_path / "d.h5")  # provenance shown
    assert code == 0 and "shape: [3, 2, 2]" in out and "per class: [2, 2, 2]" in out


@pytest.mark.parametrize("x, y, fragment", [
    (np.array([[0.0, np.nan], [1.0, 2.0]]), np.array([0, 1]), "x.npy: item 0: expected finite"),
    (np.zeros((2, 3)), np.array([0, 1, 1]), "y.npy: expected 2 labels"),
    (np.zeros((2, 3)), np.array([0.0, 0.5]), "y.npy: item 1: expected an integer label"),
    (np.zeros((2, 3)), np.array([0, -3]), "y.npy: item 1: expected a label >= 0, found -3"),
    (np.zeros(3), np.array([0, 1, 1]), "x.npy: expected a numeric array (N, ...)"),
])
def test_from_arrays_bad_input(tmp_path, capsys, x, y, fragment):
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    err = _fail(capsys, tmp_path, "data", "from-arrays", tmp_path / "x.npy", tmp_path / "y.npy")
    assert fragment in err


def test_from_arrays_label_beyond_classes_and_bad_shape(tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.zeros((2, 4)))
    np.save(tmp_path / "y.npy", np.array([0, 3]))
    err = _fail(capsys, tmp_path, "data", "from-arrays", tmp_path / "x.npy", tmp_path / "y.npy",
                "--classes", "2")
    assert "labels in [0, 2), found 3 at sample 1" in err
    err = _fail(capsys, tmp_path, "data", "from-arrays", tmp_path / "x.npy", tmp_path / "y.npy",
                "--shape", "1,3,3")
    assert "x.npy: --shape 1,3,3 needs 9 values per sample, found 4" in err
    err = _fail(capsys, tmp_path, "data", "from-arrays", tmp_path / "x.npy", tmp_path / "y.npy",
                "--split", "a", "--split", "b")
    assert "one name per input" in err
    np.savez(tmp_path / "d.npz", x=np.zeros((2, 4)))
    err = _fail(capsys, tmp_path, "data", "from-arrays", tmp_path / "d.npz")
    assert "d.npz: expected an array 'y' in the .npz" in err


# --- from-csv ---------------------------------------------------------------------------------

def test_from_csv_label_first_and_last(tmp_path, capsys):
    (tmp_path / "a.csv").write_text("label,p1,p2,p3,p4\n1,0,255,7,8\n0,1,2,3,4\n")
    (tmp_path / "b.csv").write_text("0.5,0.25,0,1\n-1,2,3,1\n")
    code, _, err = run(capsys, "data", "from-csv", tmp_path / "a.csv", "--header",
                       "--shape", "1,2,2", "--scale", 0.25, "-o", tmp_path / "a.h5")
    assert code == 0, err
    x, y = load_data(tmp_path / "a.h5", "test", (1, 2, 2))
    assert np.array_equal(y, [1, 0])
    assert np.array_equal(x.reshape(2, 4), np.array([[0, 255, 7, 8], [1, 2, 3, 4]]) * 0.25)
    code, _, err = run(capsys, "data", "from-csv", tmp_path / "b.csv", "--label", "last",
                       "-o", tmp_path / "b.h5")
    assert code == 0, err
    x, y = load_data(tmp_path / "b.h5", "test", (3,))
    assert np.array_equal(y, [1, 1]) and np.array_equal(x, [[0.5, 0.25, 0], [-1, 2, 3]])
    assert describe(tmp_path / "b.h5")["provenance"]["label"] == "last"


@pytest.mark.parametrize("text, extra, fragment", [
    ("1,2,3\n0,1\n", [], "rows.csv: row 2: expected 3 columns like the first row, found 2"),
    ("1,2,3\n0,x,1\n", [], "rows.csv: row 2, column 2: non-numeric cell 'x'"),
    ("label,a,b\n0,1,2\n", [], "rows.csv: row 1, column 1: non-numeric cell 'label' (a header"),
    ("1,2,3\n,4,5\n", [], "rows.csv: row 2, column 1: empty cell"),
    ("1,2,3\n0,nan,5\n", [], "rows.csv: row 2, column 2: expected a finite number, found 'nan'"),
    ("1,2,3\n2.5,4,5\n", [], "rows.csv: row 2, column 1: expected an integer label >= 0, "
                             "found 2.5"),
    ("1,2,3\n4,5,-1\n", ["--label", "last"], "row 2, column 3: expected an integer label >= 0"),
    ("1,2,3\n4,5,6\n", ["--classes", "3"], "labels in [0, 3), found 4 at sample 1"),
    ("a,b\n", ["--header"], "rows.csv: expected at least one data row"),
])
def test_from_csv_bad_input(tmp_path, capsys, text, extra, fragment):
    (tmp_path / "rows.csv").write_text(text)
    err = _fail(capsys, tmp_path, "data", "from-csv", tmp_path / "rows.csv", *extra)
    assert fragment in err


# --- from-images ------------------------------------------------------------------------------

def _images(root, spec):
    """spec: {class: [(mode, (w, h), fill), ...]} written as PNG files."""
    Image = pytest.importorskip("PIL.Image")
    for cls, items in spec.items():
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i, (mode, size, fill) in enumerate(items):
            Image.new(mode, size, fill).save(root / cls / f"{i}.png")


def test_from_images(tmp_path, capsys):
    _images(tmp_path / "train", {"cat": [("RGB", (3, 2), (10, 20, 30))] * 2,
                                 "dog": [("RGB", (3, 2), (255, 0, 1))]})
    _images(tmp_path / "test", {"cat": [("RGB", (3, 2), (1, 2, 3))],
                                "dog": [("RGB", (3, 2), (4, 5, 6))]})
    code, out, err = run(capsys, "data", "from-images", tmp_path / "train", tmp_path / "test",
                         "--split", "train", "--split", "test", "--scale", 1 / 255,
                         "--mean", "0.5,0.5,0.5", "--std", "0.25,0.5,1", "-o",
                         tmp_path / "d.h5")
    assert code == 0, err
    x, y = load_data(tmp_path / "d.h5", "train", (3, 2, 3))
    assert np.array_equal(y, [0, 0, 1])
    assert x[2, 0, 1, 2] == (255 * (1 / 255) - 0.5) / 0.25
    assert x[0, 2, 0, 0] == (30 * (1 / 255) - 0.5) / 1.0
    assert describe(tmp_path / "d.h5")["class_names"] == ["cat", "dog"]


def test_from_images_bad_input(tmp_path, capsys):
    pytest.importorskip("PIL")
    _images(tmp_path / "a", {"x": [("L", (4, 4), 0)], "y": [("L", (4, 5), 0)]})
    err = _fail(capsys, tmp_path, "data", "from-images", tmp_path / "a")
    assert f"{tmp_path / 'a' / 'y' / '0.png'}: L 4x5: expected L 4x4" in err
    _images(tmp_path / "b", {"x": [("L", (4, 4), 0)], "y": [("RGB", (4, 4), 0)]})
    err = _fail(capsys, tmp_path, "data", "from-images", tmp_path / "b")
    assert "b/y/0.png: RGB 4x4: expected L 4x4" in err
    _images(tmp_path / "c", {"x": [("L", (4, 4), 0)]})
    (tmp_path / "c" / "empty").mkdir()
    err = _fail(capsys, tmp_path, "data", "from-images", tmp_path / "c")
    assert f"{tmp_path / 'c' / 'empty'}: empty class folder" in err
    _images(tmp_path / "d", {"x": [("RGBA", (4, 4), (0, 0, 0, 0))]})
    err = _fail(capsys, tmp_path, "data", "from-images", tmp_path / "d")
    assert "mode RGBA: expected one of L, RGB" in err
    _images(tmp_path / "e", {"x": [("L", (4, 4), 0)]})
    (tmp_path / "e" / "x" / "1.png").write_bytes(b"not an image")
    err = _fail(capsys, tmp_path, "data", "from-images", tmp_path / "e")
    assert "e/x/1.png: not a readable image" in err
    (tmp_path / "f").mkdir()
    err = _fail(capsys, tmp_path, "data", "from-images", tmp_path / "f")
    assert "expected one subfolder per class, found none" in err


# --- from-events and from-arrays --dt: sequence files -----------------------------------------

def _events(tmp_path, streams, labels, name="ev.npz"):
    np.savez(tmp_path / name, labels=np.asarray(labels),
             **{f"events_{i}": s for i, s in enumerate(streams)})
    return tmp_path / name


def test_from_events_bins_counts_and_inspect_shows_dt(tmp_path, capsys):
    from refsnn.data import load_sequences

    dtype = np.dtype([("t", np.int64), ("x", np.int16), ("y", np.int16), ("p", np.int8)])
    a = np.array([(0, 0, 0, 0), (3, 1, 1, 1), (3, 1, 1, 1), (5, 2, 0, 0), (10, 0, 1, 1),
                  (12, 2, 1, 0)], dtype)
    b = np.array([(100, 2, 1, 1), (104, 2, 1, 1)], dtype)
    ev = _events(tmp_path, [a, b], [1, 0])
    code, out, err = run(capsys, "data", "from-events", ev, "--sensor-size", "3,2,2",
                         "--time-window", "5", "--dt", "0.005", "-o", tmp_path / "s.h5")
    assert code == 0, err
    x, y, dt = load_sequences(tmp_path / "s.h5", "test", (2, 2, 3))
    assert dt == 0.005 and y.tolist() == [1, 0] and x.shape == (2, 2, 2, 2, 3)
    # a: bins [0, 5) and [5, 10); t = 10 and 12 are past the last complete window
    assert x[0, 0, 0, 0, 0] == 1 and x[0, 0, 1, 1, 1] == 2 and x[0, 1, 0, 0, 2] == 1
    assert x[0].sum() == 4
    # b: one bin [100, 105) with both events, then an empty frame (padded to a's length)
    assert x[1, 0, 1, 1, 2] == 2 and x[1].sum() == 2
    code, out, _ = run(capsys, "inspect", tmp_path / "s.h5")
    assert code == 0 and "steps dt = 0.005 apart" in out and "time_window: 5.0" in out
    assert "test: 2 sequences of 2 steps of shape (2, 2, 3), uint8" in out


@pytest.mark.parametrize("argv, words", [
    (["--time-window", "5", "--n-time-bins", "3"], "give one of --time-window and --n-time-bins"),
    (["--time-window", "5", "--overlap", "5"], "overlap: expected a number in [0, 5)"),
    (["--n-time-bins", "3", "--overlap", "1"], "overlap: expected a number in [0, 1)"),
    (["--time-window", "5", "--sensor-size", "3,2"], "--sensor-size: expected W,H,P"),
])
def test_from_events_mistakes(tmp_path, capsys, argv, words):
    dtype = np.dtype([("t", np.int64), ("x", np.int16), ("p", np.int8)])
    ev = _events(tmp_path, [np.array([(0, 1, 0), (9, 2, 1)], dtype)], [0])
    size = [] if "--sensor-size" in argv else ["--sensor-size", "3,1,2"]
    err = _fail(capsys, tmp_path, "data", "from-events", ev, *size, "--dt", "1", *argv)
    assert words in err, err
