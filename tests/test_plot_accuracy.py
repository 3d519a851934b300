"""``refsnn plot``: accuracy against T from ``evaluate --json`` files; refusals."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import DATA, MODELS
from refsnn.cli.main import main
from refsnn.diagnose.plot_accuracy import label

PNG = b"\x89PNG\r\n\x1a\n"


def _evaluate(tmp_path, capsys, name, *extra):
    assert main(["evaluate", str(MODELS / "cnn.h5"), "--data", str(DATA), "--limit", "8",
                 "--steps", "1,4,16", "--json", *extra]) == 0
    path = tmp_path / f"{name}.json"
    path.write_text(capsys.readouterr().out)
    return path


def test_plot_from_evaluate_json(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    a = _evaluate(tmp_path, capsys, "a")
    b = _evaluate(tmp_path, capsys, "b", "--per-channel")
    assert label(json.loads(b.read_text())) == "cnn: if --per-channel"
    out = tmp_path / "acc.png"
    assert main(["plot", str(a), str(b), "-o", str(out)]) == 0
    assert out.read_bytes()[:8] == PNG and out.stat().st_size > 10_000
    assert "2 curve(s)" in capsys.readouterr().out
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no leftovers


@pytest.mark.parametrize("text, fragment", [
    ("not json", "not a JSON file written by 'refsnn evaluate --json'"),
    ("[1, 2]", "expected one JSON object"),
    ('{"ann_accuracy": 1, "model": "m", "method": "if"}', "key 'results': expected it"),
    ('{"ann_accuracy": 1, "model": "m", "method": "if", "results": [{"steps": 1}]}',
     "key 'results': expected a list of {steps, accuracy}"),
])
def test_bad_run_files(tmp_path, capsys, text, fragment):
    pytest.importorskip("matplotlib")
    bad = tmp_path / "bad.json"
    bad.write_text(text)
    assert main(["plot", str(bad), "-o", str(tmp_path / "p.png")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"refsnn: error: {bad}: ") and fragment in err
    assert not (tmp_path / "p.png").exists()


def test_missing_matplotlib(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    run = tmp_path / "r.json"
    run.write_text("{}")
    assert main(["plot", str(run), "-o", str(tmp_path / "p.png")]) == 2
    assert "refsnn[plot]" in capsys.readouterr().err


def test_cli_does_not_import_matplotlib_or_pillow():
    code = ("import sys, refsnn.cli.main, refsnn.cli.data, refsnn.importers, "
            "refsnn.diagnose.plot_accuracy; refsnn.cli.main.build_parser(); "
            "sys.exit('matplotlib' in sys.modules or 'PIL' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
