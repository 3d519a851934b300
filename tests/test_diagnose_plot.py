"""``refsnn diagnose --plot``: the per-step fidelity it draws, the PNG, and its refusals."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from conftest import DATA, MODELS, small_mlp
from refsnn.cli.main import main
from refsnn.conversion import convert_if
from refsnn.diagnose import Probe
from refsnn.diagnose.fidelity import fidelity_table
from refsnn.diagnose.plot import fidelity_per_step

PNG = b"\x89PNG\r\n\x1a\n"


def _probe(steps=24, seed=3):
    rng = np.random.default_rng(seed)
    net = convert_if(small_mlp(seed), rng.uniform(0, 1, (20, 12)), percentile=90.0)
    return Probe(net, rng.uniform(0, 1, (6, 12)), steps, backend="numpy")


def test_per_step_error_ends_at_the_table_and_obeys_the_bound():
    probe = _probe()
    per_step = fidelity_per_step(probe)
    rows = {r["layer"]: r for r in fidelity_table(probe).rows}
    assert list(per_step) == list(rows)
    for name, errors in per_step.items():
        assert errors.shape == (probe.steps,)
        # after T steps it is the table's value (an off-by-one in the running counts or in
        # the t of count * theta / t would break this equality)
        assert errors[-1] == pytest.approx(rows[name]["relative_error"], rel=1e-12)
    # first layer, constant input, reset by subtraction: |count_t theta / t - clip(x)| < theta/t
    # at every t, so its relative error is below (theta / t) / mean|ANN|
    first = probe.net.neuron_nodes()[0]
    theta = float(np.max(probe.net.graph.node(first).params["threshold"]))
    scale = float(np.abs(probe.limit[first]).mean())
    t = np.arange(1, probe.steps + 1)
    assert np.all(per_step[first] < theta / t / scale + 1e-12)
    assert per_step[first][-1] < per_step[first][0]  # it converges


def test_core_does_not_import_matplotlib():
    code = ("import sys, refsnn.cli.main, refsnn.diagnose, refsnn.diagnose.plot; "
            "sys.exit('matplotlib' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_missing_matplotlib_is_an_option_error(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    out = tmp_path / "f.png"
    assert main(["diagnose", str(MODELS / "mlp.h5"), "--data", str(DATA), "--limit", "2",
                 "--steps", "4", "--plot", str(out)]) == 2
    err = capsys.readouterr().err
    assert "matplotlib" in err and "refsnn[plot]" in err and "Traceback" not in err
    assert not out.exists()


def test_plot_without_a_plottable_diagnostic_is_refused(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    args = [str(MODELS / "mlp.h5"), "--data", str(DATA), "--limit", "2", "--steps", "4",
            "--plot", str(tmp_path / "f.png")]
    assert main(["diagnose", *args, "--only", "sin"]) == 2
    assert "--plot draws fidelity" in capsys.readouterr().err


def test_cli_plot_writes_a_png_atomically(tmp_path, capsys, monkeypatch):
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure
    from matplotlib.image import imread

    out = tmp_path / "fidelity.png"
    args = [str(MODELS / "mlp.h5"), "--data", str(DATA), "--limit", "4", "--steps", "16",
            "--backend", "numpy", "--only", "fidelity", "--plot", str(out)]
    assert main(["diagnose", *args]) == 0
    assert f"wrote {out} (fidelity)" in capsys.readouterr().out
    assert out.read_bytes()[:8] == PNG
    img = imread(out)
    assert img.shape[0] > 100 and img.shape[1] > 300 and img.std() > 0  # something is drawn
    assert [p.name for p in tmp_path.iterdir()] == ["fidelity.png"]  # no temporary left
    # a failure while writing leaves the previous file as it was, and no partial file
    before = out.read_bytes()

    def broken(self, *a, **k):
        raise OSError("disk full")
    monkeypatch.setattr(Figure, "savefig", broken)
    assert main(["diagnose", *args]) == 1
    assert out.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["fidelity.png"]
