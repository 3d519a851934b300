"""The signGD saturation warning names only remedies that help, and each one is checked here on
a network where it applies (README, "How signGD conversion works", has the measurements; the
LayerNorm finding was measured on the shipped mixer, too slow for a test)."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from refsnn import ann
from refsnn.cli.main import main, saturation_warning
from refsnn.conversion import convert_signgd
from refsnn.model import save_model
from refsnn.sim.simulator import Simulator

from conftest import small_cnn, small_mlp
from test_signgd import transformer_like

pytestmark = pytest.mark.usefixtures("restore_threads")


def _saturated(net, x, steps):
    run = Simulator(net).run(x, [steps])
    return sum(int(s.sum()) for s in run.saturated.values()), run.readout[steps]


def _write_data(path, x, classes=3):
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "refsnn-data"
        f.attrs["format_version"] = 1
        f.attrs["classes"] = classes
        for split in ("train", "test"):
            f[f"{split}/x"] = x
            f[f"{split}/y"] = np.arange(len(x)) % classes


def test_inputs_beyond_the_calibration_data(tmp_path, capsys):
    """Inputs 10x the calibration range: the warning says to calibrate on data like them, and
    doing so removes the saturation and the error; a larger --eta0 only reduces both."""
    graph = small_mlp()
    calm = np.random.default_rng(0).uniform(0, 1, (8,) + graph.input_shape)
    wide = 10 * calm[:2]
    save_model(graph, tmp_path / "mlp.h5")
    _write_data(tmp_path / "calm.h5", calm)
    _write_data(tmp_path / "wide.h5", wide)
    argv = ["evaluate", str(tmp_path / "mlp.h5"), "--data", str(tmp_path / "wide.h5"),
            "--method", "signgd", "--steps", "64"]
    assert main(argv + ["--calibration", str(tmp_path / "calm.h5")]) == 0
    out = capsys.readouterr().out
    assert "warning:" in out and "(saturated; reach eta0/(1-gamma) = 3)" in out
    assert "calibrate on data like them (--calibration)" in out
    assert main(argv) == 0  # calibrated on the inputs themselves (--data)
    assert "warning" not in capsys.readouterr().out

    ref = ann.forward(graph, wide)
    n0, y0 = _saturated(convert_signgd(graph, calm), wide, 64)
    n1, y1 = _saturated(convert_signgd(graph, calm, eta0=0.6), wide, 64)
    n2, y2 = _saturated(convert_signgd(graph, np.concatenate([calm, wide])), wide, 64)
    assert n0 > n1 > 0 and n2 == 0
    err = [np.abs(y - ref).max() for y in (y0, y1, y2)]
    assert err[1] < err[0] and err[1] > 0.1 and err[2] < 0.05, err


def test_a_stalled_neuron():
    """A barely active neuron that cannot follow the wobble below (no scale floor): a scale
    floor or a coarser --scale removes the saturation, a larger --eta0 does not."""
    graph = small_cnn(residual=True, pool="avgpool2d")
    x = np.random.default_rng(2).uniform(0, 1, (6,) + graph.input_shape)
    count = {str(o): _saturated(convert_signgd(graph, x, scale_floor=0.0, **o), x, 256)[0]
             for o in (dict(), dict(eta0=0.3), dict(scale="channel"), dict(scale="layer"))}
    count["floor"] = _saturated(convert_signgd(graph, x, scale_floor=0.1), x, 256)[0]
    assert count["{}"] > 0 and count["{'eta0': 0.3}"] > 0, count
    assert count["{'scale': 'channel'}"] == count["{'scale': 'layer'}"] == count["floor"] == 0
    bare = saturation_warning("relu2", 1, convert_signgd(graph, x, scale_floor=0.0))
    assert "raise --scale-floor (the default 0.1 removes such stalls)" in bare
    assert "--scale-floor" not in saturation_warning("relu2", 1, convert_signgd(graph, x))


def test_compat_warning_and_its_remedy():
    """Under --compat the LayerNorm, GELU and softmax neurons are unscaled: the warning says
    so, and a larger --eta0 (a larger reach) reduces the saturation where --scale cannot."""
    graph = transformer_like()
    x = np.random.default_rng(1).uniform(0, 1, (20, 4, 6))
    net = convert_signgd(graph, x, compat=True)
    n0 = _saturated(net, x[:4], 256)[0]
    assert n0 > 0
    assert _saturated(convert_signgd(graph, x, compat=True, eta0=0.6), x[:4], 256)[0] < n0
    assert _saturated(convert_signgd(graph, x, compat=True, scale="layer"), x[:4], 256)[0] == n0
    text = saturation_warning("ln.norm", n0, net)
    assert text.startswith(f"warning: {n0} neuron(s) of 'ln.norm' ended further from their "
                           f"target")
    assert "only ReLU neurons are scaled" in text and "a larger --eta0 extends the reach" in text
    plain = saturation_warning("ln.norm", 2, convert_signgd(graph, x, eta0=0.3))
    assert "reach eta0/(1-gamma) = 6)" in plain and "Under --compat" not in plain
    assert "LayerNorm's a/sqrt(b) neurons stall" in plain
    assert "LayerNorm" not in saturation_warning("g", 2, convert_signgd(graph, x))
