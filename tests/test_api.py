"""The flat API (``import refsnn``) and the option validation it shares with the command line."""

from __future__ import annotations

import doctest
import importlib
import inspect
import subprocess
import sys

import numpy as np
import pytest

import refsnn
from refsnn.cli.main import main
from refsnn.errors import OptionError
from refsnn.conversion import defaults
from refsnn.options import ALL, BY_KEY, OPTIONS, resolve

from conftest import DATA, MODELS, ROOT


@pytest.fixture(scope="module")
def mlp():
    graph = refsnn.load_model(MODELS / "mlp.h5")
    xc, _ = refsnn.load_data(DATA, "train", graph.input_shape, limit=100)
    x, y = refsnn.load_data(DATA, "test", graph.input_shape, limit=16)
    return graph, xc, x, y


def test_import_refsnn_is_cheap():
    # the flat names load on first use: importing the package pulls in neither numba nor h5py
    code = "import sys, refsnn; print('numba' in sys.modules, 'h5py' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["False", "False"]


def test_flat_names_are_the_module_level_ones():
    from refsnn.data import load_data
    from refsnn.files import load_model
    from refsnn.sim.simulator import Simulator

    assert refsnn.load_model is load_model
    assert refsnn.load_data is load_data
    assert refsnn.Simulator is Simulator
    assert set(refsnn.__all__) <= set(dir(refsnn))
    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        refsnn.nonsense


def test_flat_names_are_functions_of_their_own_name():
    # convert and evaluate are plain functions; their modules stay modules
    import refsnn.conversion as convert_module
    import refsnn.evaluation as evaluate_module

    assert refsnn.convert is convert_module.convert and callable(refsnn.convert)
    assert refsnn.evaluate is evaluate_module.evaluate and callable(refsnn.evaluate)
    assert "method" in inspect.signature(refsnn.convert).parameters
    assert "ann_graph" in inspect.signature(refsnn.evaluate).parameters
    for name in set(refsnn.__all__) - {"__version__", "METHODS"}:
        value = getattr(refsnn, name)  # defined under its own name in its own module
        assert value.__name__ == name
        assert getattr(importlib.import_module(value.__module__), name) is value
    assert refsnn.METHODS is convert_module.METHODS
    assert not hasattr(importlib.import_module("refsnn.model"), "load_model")


def test_convert_equals_the_method_converter(mlp):
    from refsnn.conversion import convert_if
    from refsnn.sim.network import ann_limit

    graph, xc, x, _ = mlp
    a = refsnn.convert(graph, method="if", calibration=xc, percentile=99.0, per_channel=True)
    b = convert_if(graph, xc, percentile=99.0, per_channel=True)
    assert a.options == b.options
    ra = refsnn.Simulator(a).run(x, steps=32).readout[32]
    rb = refsnn.Simulator(b).run(x, steps=32).readout[32]
    assert np.array_equal(ra, rb)
    assert np.array_equal(ann_limit(a, x)[0], ann_limit(b, x)[0])


def test_evaluate_in_under_ten_lines(mlp):
    graph, xc, x, y = mlp
    net = refsnn.convert(graph, calibration=xc)
    result = refsnn.evaluate(net, x, y, steps=[8, 64], ann_graph=graph)
    assert sorted(result.accuracy) == [8, 64]
    assert result.ann_accuracy == np.mean(np.argmax(refsnn.forward(graph, x), 1) == y)


@pytest.mark.parametrize("method, given, message", [
    ("signgd", {"percentile": 99.0}, "option 'percentile' does not apply to method 'signgd'"),
    ("if", {"eta0": 0.1}, "option 'eta0' does not apply to method 'if'"),
    ("noise", {"per_channel": True}, "option 'per_channel' does not apply to method 'noise'"),
    ("if", {"percentil": 99.0}, "unknown conversion option 'percentil'"),
    ("spiking", {}, "method: expected one of if, signgd, bsnn, noise, found 'spiking'"),
    ("if", {"dtype": "float16"}, "dtype: expected float64 or float32, found float16"),
    ("if", {"dtype": "nonsense"}, "dtype: expected float64 or float32, found 'nonsense'"),
])
def test_convert_refuses_what_does_not_apply(mlp, method, given, message):
    graph, xc, _, _ = mlp
    with pytest.raises(OptionError, match=message):
        refsnn.convert(graph, method=method, calibration=xc, **given)


def test_convert_calibration_rules(mlp):
    graph, xc, _, _ = mlp
    with pytest.raises(OptionError, match="calibration is required for method 'if'"):
        refsnn.convert(graph, method="if")
    qcfs = refsnn.load_model(MODELS / "cnn_qcfs.h5")
    with pytest.raises(OptionError, match="calibration does not apply to method 'noise'"):
        refsnn.convert(qcfs, method="noise", calibration=xc)
    assert refsnn.convert(qcfs, method="noise").method == "noise"


def test_convert_passes_values_to_the_converters_checks(mlp):
    graph, xc, _, _ = mlp
    with pytest.raises(OptionError, match="--reset"):
        refsnn.convert(graph, method="if", calibration=xc, reset="sometimes")


def test_option_table_matches_the_converters():
    # every option is a keyword of exactly the converters that list it, and every converter
    # keyword (but graph and calibration) is in the table: no option can be silently ignored
    from refsnn.conversion import METHODS

    for method, converter in METHODS.items():
        # progress is a callback, not an option: it changes no result
        params = set(inspect.signature(converter).parameters) - {"graph", "calibration",
                                                                 "progress"}
        assert params == {o.key for o in OPTIONS if method in o.methods}, method
        assert set(defaults(method)) == params
    assert set(ALL) == set(METHODS)


def test_cli_and_api_share_the_validation(capsys, tmp_path):
    # the same mistake gives the same refusal, spelled as flags on the command line
    code = main(["convert", str(MODELS / "mlp.h5"), "--calibration", str(DATA),
                 "--method", "signgd", "--percentile", "99", "-o", str(tmp_path / "n.h5")])
    err = capsys.readouterr().err
    assert code == 2
    assert "--percentile does not apply to --method signgd (it applies to if, bsnn)" in err
    with pytest.raises(OptionError) as api:
        resolve("signgd", {"percentile": 99.0})
    assert str(api.value).split(" does not apply")[1] == \
        err.strip().split(" does not apply")[1].replace("--method signgd", "method 'signgd'")
    assert not (tmp_path / "n.h5").exists()


def test_every_option_has_its_flag():
    for option in OPTIONS:
        assert option.flag.startswith("--")
        assert BY_KEY[option.key] is option


@pytest.mark.parametrize("name", ["refsnn.conversion", "refsnn.evaluation",
                                  "refsnn.files"])
def test_doctests(name, monkeypatch):
    monkeypatch.chdir(ROOT)  # the examples read the shipped files by relative path
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
