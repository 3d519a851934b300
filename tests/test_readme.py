"""The README is a front door that tells the truth: its commands run, its code runs, its links
lead somewhere, and it stays short (the manual in docs/ holds the rest)."""

from __future__ import annotations

import re
import shlex

import pytest

from conftest import ROOT

README = (ROOT / "README.md").read_text()


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def test_readme_is_a_front_door():
    assert len(README.splitlines()) <= 250


def test_every_shell_command_is_run_by_ci():
    # CI runs .ci/run; each command the README shows must be in it, exactly as written
    ci = (ROOT / ".ci" / "run").read_text()
    commands = [line for block in _blocks("sh") for line in block.splitlines() if line.strip()]
    assert len(commands) >= 3  # set up + main job, the tests, the manual
    for command in commands:
        assert command in ci, f"README command not run by .ci/run: {command}"


@pytest.mark.parametrize("block", _blocks("python"))
def test_python_blocks_run(block, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)  # the examples read the shipped files by relative path
    exec(compile(block, "README.md", "exec"), {})
    printed = capsys.readouterr().out.split()
    assert printed and all(0.0 <= float(v) <= 1.0 for v in printed)


def test_relative_links_lead_to_files():
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", README)
    local = [link for link in links if not link.startswith(("http://", "https://"))]
    assert local
    missing = [link for link in local if not (ROOT / link).exists()]
    assert not missing, f"README links to missing files: {missing}"


def test_sequence_commands_run(tmp_path, capsys, monkeypatch):
    # the manual's NIR graph on event streams, as written, in a scratch folder beside data/
    pytest.importorskip("nir")
    from refsnn.cli.main import main

    block = next(b for b in _blocks("sh") if "from-events" in b)
    (tmp_path / "data").symlink_to(ROOT / "data")
    monkeypatch.chdir(tmp_path)
    lines = [shlex.split(line) for line in block.splitlines() if line.strip()]
    assert [argv[:2] for argv in lines] == [[".venv/bin/refsnn", "data"],
                                            [".venv/bin/refsnn", "evaluate"]]
    for argv in lines:
        assert main(argv[1:]) == 0
    out = capsys.readouterr().out
    assert "24 sequences of 49 steps" in out and "readout count" in out and "SNN T=49" in out
