"""Streaming recordings to HDF5: same contents as in memory, bounded memory, no partial file."""

from __future__ import annotations

import tracemalloc

import h5py
import numpy as np
import pytest

from refsnn.cli.main import main
from refsnn.conversion import convert_bsnn, convert_if, convert_signgd
from refsnn.errors import OptionError
from refsnn.cli.oracle import recorded_bytes
from refsnn.oracle.trace import read_trace, record_trace, stream_trace, write_trace
from refsnn.sim.recorders import H5Recorder, MemoryRecorder, create_steps
from refsnn.sim.simulator import Simulator

from conftest import DATA, MODELS, assert_same_h5, small_cnn, small_mlp


def _nets():
    cnn, mlp = small_cnn(residual=True), small_mlp()
    xc = np.random.default_rng(2).uniform(0, 1, (16, 2, 6, 6))
    xm = np.random.default_rng(3).uniform(0, 1, (16, 12))
    return {
        "if-poisson": (convert_if(cnn, xc, encoding="poisson", v_init="half"), xc[:5], 7),
        "if-f32": (convert_if(mlp, xm, dtype=np.float32), xm[:4], 0),
        "signgd": (convert_signgd(mlp, xm), xm[:3], 0),
        "bsnn": (convert_bsnn(cnn, xc), xc[:3], 0),
    }


@pytest.mark.parametrize("name", list(_nets()))
@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_streamed_trace_equals_the_in_memory_trace(name, backend, tmp_path):
    """Every dataset, value and attribute the same; only the storage differs (one chunk per
    step). Fails if a step were written to the wrong row, a current taken after the step, a
    potential stored before reset, or an attribute left out."""
    net, x, seed = _nets()[name]
    sim = Simulator(net, backend)
    attrs = {"producer": "test", "method": net.method}
    write_trace(tmp_path / "mem.h5", record_trace(sim, x, 23, seed=seed, attrs=attrs))
    names = stream_trace(tmp_path / "stream.h5", sim, x, 23, seed=seed, attrs=attrs)
    assert names == net.neuron_nodes()
    assert_same_h5(tmp_path / "mem.h5", tmp_path / "stream.h5")
    with h5py.File(tmp_path / "stream.h5") as f:
        for layer in names:
            ds = f[f"layers/{layer}/spikes"]
            assert ds.chunks == (1,) + ds.shape[1:]  # really written step by step
    # the simulator is left as it was: a second in-memory trace is the same
    again = record_trace(sim, x, 23, seed=seed, attrs=attrs)
    ref = read_trace(tmp_path / "stream.h5")
    for layer in names:
        assert np.array_equal(again.layers[layer].spikes, ref.layers[layer].spikes)


def test_h5_recorder_fills_one_dataset_from_two_batches(tmp_path):
    """Two batches written into sample slices of one dataset equal one whole-batch run (the
    second batch's ids continue the first's, so Poisson streams match)."""
    net, x, _ = _nets()["if-poisson"]
    sim = Simulator(net, "numpy")
    names = net.neuron_nodes()
    whole = sim.run(x, [9], seed=4, rasters=names, potentials=names[:1])
    with h5py.File(tmp_path / "r.h5", "w") as f:
        shapes = net.graph.shapes
        r = {n: create_steps(f, "r_" + n, 9, (5,) + shapes[n], bool) for n in names}
        u = {n: create_steps(f, "u_" + n, 9, (5,) + shapes[n], net.graph.dtype)
             for n in names[:1]}
        for a, b in ((0, 2), (2, 5)):
            part = sim.run(x[a:b], [9], seed=4, sample_ids=np.arange(a, b), rasters=names,
                           potentials=names[:1], recorder=H5Recorder(r, u, slice(a, b)))
            assert part.rasters == {} and part.potentials == {}  # they are in the file
        for n in names:
            assert np.array_equal(r[n][()], whole.rasters[n])
        assert np.array_equal(u[names[0]][()], whole.potentials[names[0]])
        with pytest.raises(OptionError, match="needed bool"):  # wrong batch slice
            sim.run(x, [9], rasters=names, recorder=H5Recorder(r, {}, slice(0, 2)))
        with pytest.raises(OptionError, match="asked"):  # a node without a dataset
            sim.run(x, [9], rasters=names, recorder=H5Recorder({}, {}))


def test_memory_recorder_is_the_default():
    net, x, _ = _nets()["if-f32"]
    sim = Simulator(net, "numpy")
    names = net.neuron_nodes()
    a = sim.run(x, [6], rasters=names, potentials=names)
    b = sim.run(x, [6], rasters=names, potentials=names, recorder=MemoryRecorder())
    for n in names:
        assert np.array_equal(a.rasters[n], b.rasters[n])
        assert a.potentials[n].dtype == np.float32
        assert np.array_equal(a.potentials[n], b.potentials[n])


def _wide_net(width=256):
    mlp = small_mlp(seed=5, sizes=(32, width, width, 4))
    x = np.random.default_rng(6).uniform(0, 1, (16, 32))
    return convert_if(mlp, x), x


def test_streaming_memory_stays_bounded(tmp_path):
    """A trace whose recordings take ~28 MB in memory streams with a Python-heap peak below
    a twentieth of that. The same measurement of the in-memory path at a tenth of the length
    sees at least its full size, so tracemalloc does see NumPy's arrays."""
    net, x = _wide_net()
    sim = Simulator(net, "numpy")
    steps = 200
    full = recorded_bytes(sim, x.shape[0], steps)
    assert full > 25e6
    tracemalloc.start()
    try:
        record_trace(sim, x, steps // 10)
        in_memory = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        stream_trace(tmp_path / "big.h5", sim, x, steps)
        streamed = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert in_memory >= recorded_bytes(sim, x.shape[0], steps // 10)
    assert streamed < full / 20, (streamed, full)
    with h5py.File(tmp_path / "big.h5") as f:
        assert f["layers"][net.neuron_nodes()[0]]["potentials"].shape[0] == steps


@pytest.mark.parametrize("error", [KeyboardInterrupt, RuntimeError])
def test_an_interrupted_stream_leaves_no_file(tmp_path, error):
    """Interrupted at step 30 of 60 (from inside the step loop): no file at the target, no
    temporary left behind, an existing file at the target untouched."""
    net, x, _ = _nets()["if-poisson"]
    sim = Simulator(net, "numpy")
    op = next(o for o in sim.ops if o.is_neuron)
    calls = []

    def interrupting(state, *inputs, _step=op.step):
        calls.append(1)
        if len(calls) == 30:
            raise error("stop")
        return _step(state, *inputs)

    for target, before in ((tmp_path / "new.h5", None), (tmp_path / "old.h5", b"old data")):
        if before is not None:
            target.write_bytes(before)
        calls.clear()
        op.step = interrupting
        with pytest.raises(error):
            stream_trace(target, sim, x, 60, seed=1)
        assert len(calls) == 30
        assert "step" not in op.__dict__  # the simulator's ops are restored
        if before is None:
            assert not target.exists()
        else:
            assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.h5"]


def test_cli_trace_stream(tmp_path, capsys):
    """`refsnn trace --stream` writes what `refsnn trace` writes."""
    common = ["trace", str(MODELS / "cnn.h5"), "--data", str(DATA), "--limit", "3",
              "--steps", "12", "--encoding", "poisson", "--seed", "2", "--backend", "numpy"]
    assert main([*common, "-o", str(tmp_path / "a.h5")]) == 0
    assert main([*common, "--stream", "-o", str(tmp_path / "b.h5")]) == 0
    out = capsys.readouterr().out
    assert out.count("wrote") == 2 and out.rstrip().endswith(", streamed")
    assert_same_h5(tmp_path / "a.h5", tmp_path / "b.h5")


EVALUATE = ["evaluate", str(MODELS / "cnn.h5"), "--data", str(DATA), "--limit", "20",
            "--steps", "4,16", "--batch-size", "7", "--encoding", "poisson", "--seed", "3",
            "--record-rasters", "relu2,relu1", "--record-potentials", "relu2",
            "--backend", "numpy"]


def test_cli_evaluate_stream_writes_the_same_run_file(tmp_path, capsys):
    """`evaluate --stream -o`: the batches (7, 7, 6 samples) write their rasters and
    potentials into the run file step by step; the file holds the same datasets, values and
    attributes as the in-memory run's, and the printed numbers are the same."""
    assert main([*EVALUATE, "-o", str(tmp_path / "a.h5")]) == 0
    memory = capsys.readouterr().out
    assert main([*EVALUATE, "--stream", "-o", str(tmp_path / "b.h5")]) == 0
    assert capsys.readouterr().out.replace("b.h5", "a.h5") == memory
    assert_same_h5(tmp_path / "a.h5", tmp_path / "b.h5")
    assert main([*EVALUATE, "--stream", "-o", str(tmp_path / "c.h5")]) == 0
    assert (tmp_path / "b.h5").read_bytes() == (tmp_path / "c.h5").read_bytes()  # stable
    with h5py.File(tmp_path / "b.h5") as f:
        assert f["rasters/relu1"].chunks == (1, 20, 16, 8, 8)
        assert list(f["rasters"]) == ["relu2", "relu1"]  # the order asked for, as in memory


def test_cli_evaluate_stream_interrupted_leaves_no_file(tmp_path, capsys, monkeypatch):
    """Ctrl-C after the first of three batches: exit 130 and no file at -o."""
    import refsnn.cli.main as cli

    class Interrupting:
        def __init__(self, *args, **kwargs):
            pass

        def update(self, done, total):
            raise KeyboardInterrupt

        def close(self):
            pass

    monkeypatch.setattr(cli, "ProgressBar", Interrupting)
    assert main([*EVALUATE, "--stream", "-o", str(tmp_path / "b.h5")]) == 130
    assert "no output file was written" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_cli_evaluate_stream_needs_an_output(capsys):
    assert main([*EVALUATE, "--stream"]) == 2
    assert "--stream writes the recordings into the run file" in capsys.readouterr().err


def test_evaluate_streaming_memory_does_not_grow_with_t(tmp_path):
    """evaluate with stream_recorders at T = 20 and T = 80: the Python-heap peak grows by
    less than a tenth of the growth of the rasters and potentials written (the in-memory
    evaluation holds all of them, and concatenates the batches: growth at least 1x). The
    difference removes the constant part (the ANN pass, the simulator's weight copies)."""
    from refsnn.evaluation import evaluate
    from refsnn.io import atomic_h5
    from refsnn.sim.record import stream_recorders, write_run

    net, x = _wide_net(128)
    y = np.zeros(x.shape[0], np.int64)
    names = net.neuron_nodes()
    per_step = x.shape[0] * sum((1 + 8) * int(np.prod(net.graph.shapes[n])) for n in names)
    peaks = {}
    for steps in (20, 80):
        tracemalloc.start()
        try:
            with atomic_h5(tmp_path / f"run{steps}.h5") as f:
                rec = stream_recorders(f, net, x.shape[0], steps, names, names)
                result = evaluate(net, x, y, [steps], batch_size=8, backend="numpy",
                                  rasters=names, potentials=names, recorders=rec)
                write_run(f, result.run, {"note": "test"}, labels=y)
            peaks[steps] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    # measured: +75 kB for +2.2 MB written (tracemalloc, 2026-11-25)
    assert peaks[80] - peaks[20] < 60 * per_step / 10, (peaks, 60 * per_step)
    one = Simulator(net, "numpy").run(x, [80], rasters=names, potentials=names)
    with h5py.File(tmp_path / "run80.h5") as f:
        for n in names:
            assert np.array_equal(f[f"rasters/{n}"][()], one.rasters[n])
            assert np.array_equal(f[f"potentials/{n}"][()], one.potentials[n])
