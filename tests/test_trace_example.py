"""examples/trace_from_spikingjelly.py: a SpikingJelly network's trace passes refsnn compare.

Skipped without torch or SpikingJelly (CI installs both). The MLP is dyadic (weights, biases,
inputs, thresholds at percentile 100), so every sum is exact in any order and the two traces
must agree spike for spike, exact ties ``u = theta`` included.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("spikingjelly")

from refsnn.cli.main import main  # noqa: E402
from refsnn.conversion import convert_if  # noqa: E402
from refsnn.model import make_graph  # noqa: E402
from refsnn.oracle.trace import read_trace, record_trace, write_trace  # noqa: E402
from refsnn.sim.network import save_snn  # noqa: E402
from refsnn.sim.simulator import Simulator  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "trace_from_spikingjelly.py"
STEPS = 32


def _dyadic(rng, shape, scale):
    return rng.integers(-8 * scale, 8 * scale + 1, shape) / 8.0


def _files(tmp_path, reset="subtract"):
    rng = np.random.default_rng(7)
    g = make_graph((2, 3, 2), [
        dict(name="flat", op="flatten", inputs=["input"]),
        dict(name="fc0", op="linear", inputs=["flat"],
             params=dict(weight=_dyadic(rng, (10, 12), 1), bias=_dyadic(rng, 10, 1) / 4)),
        dict(name="relu0", op="relu", inputs=["fc0"]),
        dict(name="fc1", op="linear", inputs=["relu0"],
             params=dict(weight=_dyadic(rng, (6, 10), 1), bias=_dyadic(rng, 6, 1) / 4)),
        dict(name="relu1", op="relu", inputs=["fc1"]),
        dict(name="fc2", op="linear", inputs=["relu1"],
             params=dict(weight=_dyadic(rng, (3, 6), 1), bias=np.zeros(3))),
    ], "fc2")
    x = rng.integers(0, 9, (5, 2, 3, 2)) / 8.0
    net = convert_if(g, x, percentile=100, reset=reset)
    save_snn(net, tmp_path / "net.h5")
    trace = record_trace(Simulator(net, "numpy"), x, STEPS)
    write_trace(tmp_path / "ref.h5", trace)
    return trace


def _example():
    spec = importlib.util.spec_from_file_location("trace_from_spikingjelly", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_example_trace_passes_compare(tmp_path, capsys):
    ref = _files(tmp_path)
    # the example runs as a user runs it: a script, with refsnn importable
    done = subprocess.run([sys.executable, str(EXAMPLE), str(tmp_path / "ref.h5"),
                           str(tmp_path / "net.h5"), str(tmp_path / "mine.h5")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    mine = read_trace(tmp_path / "mine.h5")
    assert list(mine.layers) == list(ref.layers) == ["relu0", "relu1"]
    for name, layer in ref.layers.items():
        assert layer.spikes.any() and not layer.spikes.all()
        np.testing.assert_array_equal(mine.layers[name].spikes, layer.spikes, err_msg=name)
    # exact ties occur (a '>' rule in either simulator would split here)
    layer = ref.layers["relu0"]
    theta = layer.threshold.reshape(-1)[0]
    pre = layer.potentials + np.where(layer.spikes, theta, 0.0)  # before reset by subtraction
    assert np.any(layer.spikes & (pre == theta))
    assert main(["compare", str(tmp_path / "ref.h5"), str(tmp_path / "mine.h5")]) == 0
    assert "no divergence" in capsys.readouterr().out


def test_a_bug_in_the_spikingjelly_network_is_named(tmp_path, capsys):
    import torch

    _files(tmp_path)
    ex = _example()
    model, neurons = ex.mlp_from_refsnn(tmp_path / "net.h5")
    neurons["relu0"].v_reset = 0.0  # the user's network resets to zero
    ref = read_trace(tmp_path / "ref.h5")
    spikes = ex.record_spikes(model, neurons, torch.from_numpy(ref.inputs), STEPS)
    ex.write_trace(tmp_path / "bad.h5", spikes, STEPS)
    assert main(["compare", str(tmp_path / "ref.h5"), str(tmp_path / "bad.h5")]) == 1
    out = capsys.readouterr().out
    assert "first divergence: layer relu0" in out and ": reset" in out
