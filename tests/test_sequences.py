"""Time-varying input: sequence data files, event streams binned as tonic's ToFrame bins them,
the simulator and the commands on sequences, the selectable readouts, and a NIR graph's dtype.
"""

from __future__ import annotations

import dataclasses
import json
import re

import h5py
import numpy as np
import pytest

from conftest import DATA, MODELS, ROOT
from refsnn.cli.main import main
from refsnn.conversion import convert
from refsnn.data import describe, load_data, load_sequences, save
from refsnn.errors import DataFormatError, ModelFormatError, OptionError
from refsnn.events import bin_edges, to_frames
from refsnn.files import load, load_model
from refsnn.sim.decoders import with_readout
from refsnn.sim.record import read_run
from refsnn.sim.simulator import Simulator

EVENTS = ROOT / "data" / "taxel_events.npz"
TAXELS_NIR = ROOT / "data" / "taxels.nir"


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str) -> None:
    assert err.startswith("refsnn: error: ") and err.count("\n") == 1, err


@pytest.fixture(scope="module")
def mlp_net():
    graph = load_model(MODELS / "mlp.h5")
    xc, _ = load_data(DATA, "train", graph.input_shape, limit=100)
    return convert(graph, "if", xc)


# --- sequence data files ---------------------------------------------------------------------

def _sequences(n=5, t=7, shape=(3,), seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, t) + shape), rng.integers(0, 3, n)


def test_sequence_file_round_trip_and_version(tmp_path):
    x, y = _sequences()
    save(tmp_path / "s.h5", {"test": (x, y), "train": (x[:2, :4], y[:2])}, 3, dt=0.25)
    xs, ys, dt = load_sequences(tmp_path / "s.h5", "test", (3,))
    assert np.array_equal(xs, x) and np.array_equal(ys, y) and dt == 0.25
    assert load_sequences(tmp_path / "s.h5", "train")[0].shape == (2, 4, 3)  # T per split
    info = describe(tmp_path / "s.h5")
    assert info["dt"] == 0.25 and info["splits"]["test"]["shape"] == (5, 7, 3)
    with h5py.File(tmp_path / "s.h5") as f:
        assert int(f.attrs["format_version"]) == 3
    # a plain file is written as before sequences existed: version 2, no dt
    save(tmp_path / "p.h5", {"test": (x[:, 0], y)}, 3)
    with h5py.File(tmp_path / "p.h5") as f:
        assert int(f.attrs["format_version"]) == 2 and "dt" not in f.attrs
    assert describe(tmp_path / "p.h5")["dt"] is None


def test_each_reader_refuses_the_other_kind(tmp_path):
    x, y = _sequences()
    save(tmp_path / "s.h5", {"test": (x, y)}, 3, dt=1.0)
    with pytest.raises(ModelFormatError, match="sequence file .dt = 1.: read it with "
                                                "load_sequences"):
        load_data(tmp_path / "s.h5", "test")
    with pytest.raises(ModelFormatError, match="/: dt: expected a sequence file"):
        load_sequences(DATA, "test")
    with pytest.raises(ModelFormatError, match=r"expected \(N, T, 4\) to match"):
        load_sequences(tmp_path / "s.h5", "test", (4,))


@pytest.mark.parametrize("edit, words", [
    (lambda f: f.attrs.__setitem__("dt", -1.0), "dt: expected one finite float > 0"),
    (lambda f: f.attrs.__setitem__("dt", np.nan), "dt: expected one finite float > 0"),
    (lambda f: f.attrs.__setitem__("dt", np.array([1.0, 2.0])), "dt: expected one finite"),
    (lambda f: f.attrs.__delitem__("dt"), "format_version: expected 3 with a root dt"),
    (lambda f: (f["test"].__delitem__("x"), f["test"].create_dataset("x", data=np.ones((5, 3)))),
     r"/test/x: shape: expected \(N, T, \*step_shape\), rank >= 3"),
    (lambda f: f["test"]["x"].__setitem__((1, 2, 0), np.inf), "values: expected finite numbers"),
    (lambda f: f["test"]["x"].__setitem__((0, 0, 1), np.nan), "values: expected finite numbers"),
])
def test_damaged_sequence_files_get_one_line(tmp_path, edit, words):
    x, y = _sequences()
    save(tmp_path / "s.h5", {"test": (x, y)}, 3, dt=1.0)
    with h5py.File(tmp_path / "s.h5", "r+") as f:
        edit(f)
    with pytest.raises(ModelFormatError, match=words) as e:
        load_sequences(tmp_path / "s.h5", "test")
    assert "\n" not in str(e.value) and str(tmp_path / "s.h5") in str(e.value)


@pytest.mark.parametrize("kwargs, x, words", [
    ({"dt": 0.0}, None, "dt: expected a finite number > 0"),
    ({"dt": float("nan")}, None, "dt: expected a finite number > 0"),
    ({"dt": True}, None, "dt: expected a finite number > 0"),
    ({"dt": 1.0, "mean": [0.0], "std": [1.0]}, None, "mean and std: not in a sequence file"),
    ({"dt": 1.0}, np.ones((4, 3)), r"x: expected a numeric array \(N, T, \*step_shape\)"),
    ({"dt": 1.0}, np.ones((4, 0, 3)), "at least one sample of at least one step"),
])
def test_bad_sequences_are_refused_on_save(tmp_path, kwargs, x, words):
    x = _sequences()[0][:4] if x is None else x
    with pytest.raises(DataFormatError, match=words):
        save(tmp_path / "s.h5", {"test": (x, np.zeros(len(x), int))}, 3, **kwargs)
    assert not (tmp_path / "s.h5").exists()


# --- the simulator on sequences --------------------------------------------------------------

@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_a_constant_sequence_is_the_analog_run_bit_for_bit(mlp_net, backend):
    x, _ = load_data(DATA, "test", mlp_net.graph.input_shape, limit=6)
    sim = Simulator(mlp_net, backend)
    plain = sim.run(x, [5, 20], rasters=["relu1"])
    seq = sim.run(np.repeat(x[:, None], 24, axis=1), [5, 20], rasters=["relu1"], sequence=True)
    for t in (5, 20):
        assert np.array_equal(plain.readout[t], seq.readout[t])
    for name in plain.counts:
        assert np.array_equal(plain.counts[name], seq.counts[name])
        assert np.array_equal(plain.step_counts[name], seq.step_counts[name])
    assert np.array_equal(plain.rasters["relu1"], seq.rasters["relu1"])


def test_a_sequence_is_what_the_input_node_takes_at_each_step(mlp_net):
    # replaying the same per-step values through a Poisson network's `encoded` gives the same
    poisson = dataclasses.replace(mlp_net, encoding="poisson")
    rng = np.random.default_rng(1)
    seq = rng.choice([-1.0, 0.0, 1.0], size=(3, 9) + mlp_net.graph.input_shape)
    sim = Simulator(poisson, "numpy")
    a = sim.run(seq, [9], sequence=True)
    b = sim.run(seq[:, 0], [9], encoded=np.swapaxes(seq, 0, 1))
    assert np.array_equal(a.readout[9], b.readout[9])
    # and the steps of the sequence matter: reversing it changes the spikes
    c = Simulator(mlp_net, "numpy").run(seq[:, ::-1], [9], sequence=True)
    assert not all(np.array_equal(a.counts[n], c.counts[n]) for n in a.counts)


def test_sequence_refusals(mlp_net):
    sim = Simulator(mlp_net, "numpy")
    seq = np.zeros((2, 4) + mlp_net.graph.input_shape)
    with pytest.raises(OptionError, match="the sequences have 4 steps; T = 5 would run past"):
        sim.run(seq, [5], sequence=True)
    with pytest.raises(OptionError, match="give no seed"):
        Simulator(dataclasses.replace(mlp_net, encoding="poisson"), "numpy").run(
            seq, [2], seed=3, sequence=True)
    with pytest.raises(OptionError, match="exact encoding .method signgd. defines its own"):
        Simulator(dataclasses.replace(mlp_net, encoding="exact", method="signgd"),
                  "numpy").run(seq, [2], sequence=True)
    with pytest.raises(DataFormatError, match=r"input sequences \(B, T, \*input_shape\)"):
        sim.run(seq[:, :, 0], [2], sequence=True)


# --- readouts --------------------------------------------------------------------------------

def test_readouts_mean_count_last(mlp_net):
    x, _ = load_data(DATA, "test", mlp_net.graph.input_shape, limit=4)
    rng = np.random.default_rng(2)
    seq = x[:, None] * rng.integers(0, 2, (4, 12) + (1,) * x[0].ndim)  # input switched on/off
    runs = {r: Simulator(with_readout(mlp_net, r), "numpy").run(seq, [11, 12], sequence=True)
            for r in ("mean", "count", "last")}
    for t in (11, 12):
        assert np.allclose(runs["count"].readout[t], t * runs["mean"].readout[t], rtol=1e-12)
    # the value at step 12 is the sum's last increment
    assert np.allclose(runs["last"].readout[12],
                       runs["count"].readout[12] - runs["count"].readout[11], atol=1e-12)
    assert not np.array_equal(runs["last"].readout[12], runs["last"].readout[11])
    assert with_readout(mlp_net, None) is mlp_net
    with pytest.raises(OptionError, match="method signgd reads its output with its own"):
        with_readout(dataclasses.replace(mlp_net, method="signgd", decoder="estimate"), "count")


# --- event streams ---------------------------------------------------------------------------

EVENT_DTYPE = np.dtype([("x", np.int16), ("y", np.int16), ("t", np.int64), ("p", bool)])


def _stream(rng, n, with_y=True):
    dtype = EVENT_DTYPE if with_y else np.dtype([("x", np.int16), ("t", np.int64),
                                                 ("p", bool)])
    ev = np.zeros(n, dtype)
    ev["t"] = np.sort(rng.integers(0, int(rng.integers(1, 5000)), n))
    ev["x"] = rng.integers(0, 12, n)
    if with_y:
        ev["y"] = rng.integers(0, 3, n)
    ev["p"] = rng.integers(0, 2, n)
    return ev


def test_bin_edges_and_the_edge_rule():
    t = np.array([0, 10, 20])
    starts, ends = bin_edges(t, time_window=10)
    assert starts.tolist() == [0, 10] and ends.tolist() == [10, 20]
    ev = np.zeros(3, EVENT_DTYPE)
    ev["t"], ev["x"] = t, [0, 1, 2]
    frames = to_frames(ev, (3, 1, 2), time_window=10)
    # an event on an edge belongs to the bin starting there; the one at t1 = 20 to none
    assert frames[:, 0, 0].tolist() == [[1, 0, 0], [0, 1, 0]]
    # n_time_bins: the window is (t1 - t0) // n
    assert bin_edges(np.array([3, 40]), n_time_bins=4)[0].tolist() == [3, 12, 21, 30]


def test_binning_equals_tonic_to_frame():
    tonic = pytest.importorskip("tonic")
    rng = np.random.default_rng(3)
    for trial in range(120):
        with_y = trial % 5 != 0
        ev = _stream(rng, int(rng.integers(1, 150)), with_y)
        size = (12, 3 if with_y else 1, 2)
        if trial % 2:
            w = int(rng.integers(1, 700))
            kw = dict(time_window=w, overlap=[0, w // 3][trial % 3 == 0])
        else:
            kw = dict(n_time_bins=int(rng.integers(1, 30)), overlap=[0.0, 0.25][trial % 3 == 0])
        ours = to_frames(ev, size, **kw)
        theirs = tonic.transforms.ToFrame(sensor_size=size, **kw)(ev.copy())
        assert ours.shape == theirs.shape and np.array_equal(ours, theirs), (trial, kw)


@pytest.mark.parametrize("change, words", [
    (lambda ev: ev.__setitem__("t", ev["t"][::-1].copy()), "expected ascending times"),
    (lambda ev: ev["x"].__setitem__(0, 12), r"field x: expected values in \[0, 12\)"),
    (lambda ev: ev["x"].__setitem__(0, -1), r"field x: expected values in \[0, 12\)"),
    (lambda ev: ev["y"].__setitem__(1, 3), r"field y: expected values in \[0, 3\)"),
])
def test_bad_events_are_refused(change, words):
    ev = _stream(np.random.default_rng(4), 20)
    ev["t"] = np.arange(20) * 7
    change(ev)
    with pytest.raises(DataFormatError, match=words):
        to_frames(ev, (12, 3, 2), time_window=10)
    with pytest.raises(DataFormatError, match="expected at least one event"):
        to_frames(ev[:0], (12, 3, 2), time_window=10)
    with pytest.raises(DataFormatError, match="1 polarity, but the events have 2"):
        to_frames(_stream(np.random.default_rng(5), 40), (12, 3, 1), n_time_bins=3)


# --- the command line ------------------------------------------------------------------------

def test_data_from_events_then_evaluate_and_trace_a_nir_graph(tmp_path, capsys):
    pytest.importorskip("nir")
    seq = tmp_path / "taxels.h5"
    code, out, err = run_cli(capsys, "data", "from-events", EVENTS, "-o", seq, "--sensor-size",
                             "12,1,1", "--time-window", "1000", "--dt", "0.001", "--shape", "12")
    assert code == 0, err
    x, y, dt = load_sequences(seq, "test", (12,))
    with np.load(EVENTS) as z:
        first = to_frames(z["events_0"], (12, 1, 1), time_window=1000)
    assert dt == 0.001 and np.array_equal(x[0, :len(first)], first.reshape(len(first), 12))
    assert not x[0, len(first):].any()  # padded with empty frames at the end
    results = {}
    for readout in ("mean", "count", "last"):
        code, out, err = run_cli(capsys, "evaluate", TAXELS_NIR, "--data", seq, "--steps",
                                 "10,40", "--decode", readout, "--json", "-o",
                                 tmp_path / f"{readout}.h5")
        assert code == 0, err
        got = json.loads(out)
        assert got["readout"] == readout and got["sequence"] is True and got["dt"] == 0.001
        results[readout] = [r["accuracy"] for r in got["results"]]
        settings = read_run(tmp_path / f"{readout}.h5")[1]
        assert settings["readout"] == readout and settings["dt"] == 0.001
    assert results["mean"] == results["count"]  # the same scores, scaled by T
    # trace in one batch and in batches of 3: the same spikes; compare says so
    for name, extra in (("a.h5", []), ("b.h5", ["--batch-size", "3"])):
        code, _, err = run_cli(capsys, "trace", TAXELS_NIR, "--data", seq, "--steps", "30",
                               "--decode", "count", "-o", tmp_path / name, *extra)
        assert code == 0, err
    code, out, _ = run_cli(capsys, "compare", tmp_path / "a.h5", tmp_path / "b.h5")
    assert code == 0 and "no divergence" in out
    from refsnn.oracle.trace import read_trace
    trace = read_trace(tmp_path / "a.h5")
    assert trace.attrs["readout"] == "count" and trace.inputs is None
    assert np.array_equal(trace.encoded, np.swapaxes(x[:8, :30], 0, 1))


def test_sequence_mistakes_end_in_one_line(tmp_path, capsys):
    pytest.importorskip("nir")
    seq = tmp_path / "s.h5"
    assert run_cli(capsys, "data", "from-events", EVENTS, "-o", seq, "--sensor-size", "12,1,1",
                   "--n-time-bins", "20", "--dt", "0.002", "--shape", "12")[0] == 0
    for argv, words in (
            (["evaluate", TAXELS_NIR, "--data", seq, "--steps", "5"],
             "dt = 0.002 apart, but"),
            (["evaluate", TAXELS_NIR, "--data", seq, "--steps", "21", "--dt", "0.002"],
             "the sequences have 20 steps; T = 21"),
            (["evaluate", MODELS / "mlp.h5", "--data", seq, "--calibration", DATA],
             r"expected \(N, T, 1, 8, 8\) to match the model"),
            (["trace", TAXELS_NIR, "--data", seq, "--dt", "0.002", "--stream", "-o",
              tmp_path / "t.h5"], "a trace of sequence input is recorded in memory"),
            (["diagnose", MODELS / "mlp.h5", "--data", seq, "--calibration", DATA],
             "read it with load_sequences")):
        code, _, err = run_cli(capsys, *argv)
        assert code in (1, 2), err
        one_error_line(err)
        assert re.search(words, err), err


def test_data_from_arrays_with_dt_and_event_mistakes(tmp_path, capsys):
    x, y = _sequences(n=4, t=6, shape=(2, 3))
    np.savez(tmp_path / "a.npz", x=x, y=y)
    code, out, err = run_cli(capsys, "data", "from-arrays", tmp_path / "a.npz", "--dt", "0.5",
                             "--shape", "6", "-o", tmp_path / "s.h5")
    assert code == 0 and "4 sequences of 6 steps of shape (6,)" in out, err
    xs, ys, dt = load_sequences(tmp_path / "s.h5", "test")
    assert np.array_equal(xs, x.reshape(4, 6, 6)) and dt == 0.5
    for argv, words in (
            (["from-arrays", tmp_path / "a.npz", "--dt", "0.5", "--mean", "0", "--std", "1"],
             "--mean/--std: not in a sequence file"),
            (["from-events", EVENTS, "--sensor-size", "12,1,1", "--dt", "1"],
             "give one of --time-window and --n-time-bins"),
            (["from-events", EVENTS, "--sensor-size", "11,1,1", "--time-window", "9",
              "--dt", "1"], "stream 0: field x: expected values in [0, 11)"),
            (["from-events", tmp_path / "a.npz", "--sensor-size", "12,1,1", "--time-window",
              "9", "--dt", "1"], "expected arrays events_0 .. events_<N-1> and labels")):
        code, _, err = run_cli(capsys, "data", *argv, "-o", tmp_path / "bad.h5")
        assert code in (1, 2), err
        assert words in err, err
        assert not (tmp_path / "bad.h5").exists()


def test_nir_dtype_flag_and_metadata(tmp_path, capsys):
    pytest.importorskip("nir")
    from refsnn.nir.writer import export_nir

    graph = load_model(MODELS / "mlp.h5")
    xc, _ = load_data(DATA, "train", graph.input_shape, limit=100)
    for dtype in (np.float32, np.float64):
        net = convert(graph, "if", xc, reset="zero", dtype=dtype)
        export_nir(net, tmp_path / f"{dtype.__name__}.nir")
        # the dtype export-nir wrote (refsnn_dtype) is the default; dtype= overrides it
        assert load(tmp_path / f"{dtype.__name__}.nir").graph.dtype == dtype
        other = np.float64 if dtype == np.float32 else np.float32
        assert load(tmp_path / f"{dtype.__name__}.nir", dtype=other).graph.dtype == other
    outs = []
    for extra in ([], ["--dtype", "float32"], ["--dtype", "float64"]):
        code, out, err = run_cli(capsys, "evaluate", tmp_path / "float32.nir", "--data", DATA,
                                 "--limit", "40", "--steps", "8,32", "--json", *extra)
        assert code == 0, err
        outs.append(json.loads(out)["results"])
    assert outs[0] == outs[1]  # the default is the metadata's float32
    x, y = load_data(DATA, "test", graph.input_shape, limit=40)
    net32 = load(tmp_path / "float32.nir")
    run = Simulator(net32, "numba").run(x, [8, 32])
    assert [float(np.mean(np.argmax(run.readout[t], 1) == y)) for t in (8, 32)] == \
        [r["accuracy"] for r in outs[0]]
    # a converted network file keeps refusing --dtype (its parameters are fixed)
    assert main(["convert", str(MODELS / "mlp.h5"), "--calibration", str(DATA),
                 "--calibration-limit", "100", "-o", str(tmp_path / "n.h5")]) == 0
    code, _, err = run_cli(capsys, "evaluate", tmp_path / "n.h5", "--data", DATA,
                           "--dtype", "float64")
    assert code == 2 and "already converted" in err


def test_binning_does_not_import_tonic():
    import subprocess
    import sys

    code = ("import sys, numpy as np; from refsnn.events import to_frames; "
            "from refsnn.cli.main import build_parser; build_parser(); "
            "e = np.zeros(2, [('t', 'i8'), ('x', 'i2'), ('p', 'i1')]); e['t'] = [0, 5]; "
            "to_frames(e, (1, 1, 1), n_time_bins=2); sys.exit('tonic' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0
