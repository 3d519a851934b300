"""``docs/check_options.py``, the CI check run on the built manual: it finds an option that
Sphinx's smartquotes turned into an en or em dash, and nothing else."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _check():
    path = ROOT / "docs" / "check_options.py"
    spec = importlib.util.spec_from_file_location("check_options", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_finds_dashed_options(tmp_path):
    check = _check()
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.html").write_text(
        "<td><p>if \u2013per-channel</p></td><p>x \u2014v-init half</p>", encoding="utf-8")
    (tmp_path / "b.html").write_text(
        "<td><p>if <code>--per-channel</code>, --reset zero, pages 1\u20132, "
        "T = 8 \u2013 128, a\u2013b</p>", encoding="utf-8")
    found = check.dashed_options(tmp_path)
    assert found == ["docs/a.html: '\u2013per-channel'", "docs/a.html: '\u2014v-init'"]
    assert check.main([str(tmp_path)]) == 1
    (tmp_path / "docs" / "a.html").unlink()
    assert check.main([str(tmp_path)]) == 0
    assert check.main([str(tmp_path / "missing")]) == 2


def test_smartquotes_are_off():
    text = (ROOT / "docs" / "conf.py").read_text()
    assert "\nsmartquotes = False\n" in text
