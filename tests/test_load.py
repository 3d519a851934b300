"""refsnn.load: every file kind refsnn reads, from one table; one-line errors for the rest."""

from __future__ import annotations

import os

import numpy as np
import pytest

import refsnn
from refsnn.cli.main import main
from refsnn.data import DataFile
from refsnn.errors import ModelFormatError, OptionError
from refsnn.files import READERS, file_kind
from refsnn.model.graph import Graph
from refsnn.oracle.trace import Trace
from refsnn.sim.network import SpikingNetwork
from refsnn.sim.simulator import Run

from conftest import DATA, MODELS


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """A converted network, a run file and a trace, written by the commands."""
    d = tmp_path_factory.mktemp("kinds")
    base = ["--data", str(DATA), "--limit", "4"]
    assert main(["convert", str(MODELS / "mlp.h5"), "--calibration", str(DATA),
                 "--reset", "zero", "-o", str(d / "net.h5")]) == 0
    assert main(["evaluate", str(d / "net.h5"), *base, "--steps", "4",
                 "-o", str(d / "run.h5")]) == 0
    assert main(["trace", str(d / "net.h5"), *base, "--steps", "4",
                 "-o", str(d / "trace.h5")]) == 0
    return d


def test_models(tmp_path):
    graph = refsnn.load(MODELS / "mlp.h5")
    assert isinstance(graph, Graph) and file_kind(MODELS / "mlp.h5") == "refsnn-model"
    assert refsnn.load_model(MODELS / "mlp.h5").n_params() == graph.n_params()
    assert refsnn.load(MODELS / "mlp.h5", dtype=np.float32).dtype == np.float32


@pytest.mark.parametrize("suffix, kind", [(".h5", "keras-h5"), (".keras", "keras-archive")])
def test_keras(tmp_path, monkeypatch, suffix, kind):
    monkeypatch.setenv("KERAS_BACKEND", os.environ.get("KERAS_BACKEND", "torch"))
    keras = pytest.importorskip("keras")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="relu"),
                              keras.layers.Dense(2)])
    model.save(tmp_path / f"m{suffix}")
    assert file_kind(tmp_path / f"m{suffix}") == kind
    graph = refsnn.load(tmp_path / f"m{suffix}")
    assert isinstance(graph, Graph) and graph.input_shape == (4,)


def test_onnx(tmp_path):
    pytest.importorskip("onnx")
    torch = pytest.importorskip("torch")
    module = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    torch.onnx.export(module, torch.zeros(1, 4), tmp_path / "m.onnx", dynamo=False)
    graph = refsnn.load(tmp_path / "m.onnx")
    assert isinstance(graph, Graph) and graph.input_shape == (4,)


def test_network_run_trace_and_data(written):
    net = refsnn.load(written / "net.h5")
    assert isinstance(net, SpikingNetwork) and net.method == "if"
    run, attrs = refsnn.load(written / "run.h5")
    assert isinstance(run, Run) and run.readout[4].shape == (4, 10)
    assert attrs["samples"] == 4
    trace = refsnn.load(written / "trace.h5")
    assert isinstance(trace, Trace) and trace.steps == 4
    data = refsnn.load(DATA)
    assert isinstance(data, DataFile) and data.info["classes"] == 10
    x, y = data.split("test", limit=3)
    expected = refsnn.load_data(DATA, "test", limit=3)
    assert np.array_equal(x, expected[0]) and np.array_equal(y, expected[1])


def test_nir(written, tmp_path):
    pytest.importorskip("nir")
    assert main(["export-nir", str(written / "net.h5"), "-o", str(tmp_path / "net.nir")]) == 0
    assert file_kind(tmp_path / "net.nir") == "nir"
    net = refsnn.load(tmp_path / "net.nir")
    assert isinstance(net, SpikingNetwork) and net.method == "nir"
    assert refsnn.load(tmp_path / "net.nir", dt=0.5).schedule["dt"] == 0.5
    # a model loader refuses it in one line, naming what it is
    with pytest.raises(ModelFormatError, match="expected a model, found a NIR graph") as e:
        refsnn.load_model(tmp_path / "net.nir")
    assert "\n" not in str(e.value)


def test_every_kind_is_in_the_one_table():
    assert set(READERS) == {"refsnn-model", "keras-h5", "keras-archive", "onnx", "nir",
                            "refsnn-snn", "refsnn-data", "refsnn-run", "refsnn-trace"}


def test_foreign_files_keep_the_one_line_errors(tmp_path, written):
    (tmp_path / "notes.txt").write_text("not a model\n")
    with pytest.raises(ModelFormatError) as e:
        refsnn.load(tmp_path / "notes.txt")
    assert str(e.value).startswith(str(tmp_path / "notes.txt")) and "\n" not in str(e.value)
    import h5py
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f.attrs["format"] = "csv"
    with pytest.raises(ModelFormatError, match="format: expected 'refsnn-model', found 'csv'"):
        refsnn.load(tmp_path / "other.h5")
    with pytest.raises(ModelFormatError, match="expected a model, found a run file"):
        refsnn.load_model(written / "run.h5")
    with pytest.raises(OptionError, match="--dt applies to NIR graphs only"):
        refsnn.load(MODELS / "mlp.h5", dt=0.5)


def test_commands_refuse_other_kinds_in_one_line(capsys, written):
    assert main(["evaluate", str(written / "trace.h5"), "--data", str(DATA)]) == 1
    assert capsys.readouterr().err == (
        f"refsnn: error: {written / 'trace.h5'}: /: format: expected a model, a converted "
        "network or a NIR graph, found a trace\n")
    assert main(["convert", str(written / "net.h5"), "--calibration", str(DATA),
                 "-o", str(written / "again.h5")]) == 1
    assert capsys.readouterr().err.endswith("expected a model, found a converted network\n")
