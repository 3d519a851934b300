"""benchmarks/run.py imports without running, and a tiny configuration runs end to end."""

from __future__ import annotations

import importlib
import re

import pytest

from conftest import ROOT


@pytest.fixture
def bench(monkeypatch):
    import numba

    threads = numba.get_num_threads()
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    yield importlib.import_module("run")
    numba.set_num_threads(threads)  # the run sets its own: the next tests get the default


def test_import_parses_nothing(bench):
    assert bench.ARGS is None and callable(bench.main)
    assert bench.parse_args(["--quick"]).quick


def _table(text: str, heading: str) -> list[list[str]]:
    """The body rows of the first Markdown table after ``heading``, split into cells."""
    block = text.split(heading, 1)[1].split("\n\n|", 1)[1].split("\n\n", 1)[0]
    return [[c.strip() for c in line.strip("|").split("|")] for line in
            ("|" + block).splitlines()[2:]]


def test_tiny_configuration_end_to_end(bench, monkeypatch, tmp_path, capsys):
    # the machine limits (GEMM 2048x2048, 256 MiB arrays) take seconds and memory: fixed here
    monkeypatch.setattr(bench, "machine_limits", lambda repeats: {
        "float64": 100.0, "float32": 200.0, "copy": 10.0, "triad": 10.0, "llc": 1 << 30})
    # each contender's pass takes its own known time (the real run still computes the
    # outputs compared): the report must print every row with its own time (issue 29 saw two
    # rows with the same time)
    real, fake = bench.one_pass, {}

    def one_pass(run, batches, steps):
        _, others, results = real(run, batches, steps)
        key = (run, len(batches))  # one contender on one row group
        return fake.setdefault(key, 1.6 * (len(fake) + 1)), others, results

    monkeypatch.setattr(bench, "one_pass", one_pass)
    out = tmp_path / "report.md"
    assert bench.main(["--workloads", "digits-mlp", "--methods", "if", "--steps", "4",
                       "--batches", "1,32", "--repeats", "1", "--threads", "1",
                       "--no-torch", "--no-memory", "--out", str(out)]) == 0
    text = out.read_text()
    assert capsys.readouterr().out == text
    for heading in ("# refsnn simulator benchmark", "## Summary", "## digits-mlp, IF",
                    "## Activity", "## First run"):
        assert f"\n{heading}\n" in f"\n{text}", heading
    assert "torch peers (dense torch, SpikingJelly, ANN) skipped (--no-torch)" in text

    rows = _table(text, "## digits-mlp, IF")
    names = {"refsnn numba 1t 64", "refsnn numba 1t 32", "refsnn numpy (oracle) 64 *",
             "numpy dense 64", "numpy dense 32"}
    assert {r[2] for r in rows} == names
    assert {(r[0], r[1].split(" ")[0]) for r in rows} == {("4", "1"), ("4", "32")}
    ms = {}  # (batch, contender) -> ms per call
    for r in rows:
        calls = int(r[1][4:-1]) if r[1].startswith("1 (x") else 1
        ms[r[1].split(" ")[0], r[2]] = float(r[3])
        assert any(abs(float(r[3]) * calls / 1e3 - v) < 1e-6 for v in fake.values()), r
    timed = [v for (b, n), v in ms.items()]
    assert len(set(timed)) == len(timed) == len(fake) == 9  # the oracle runs at batch 1 only

    summary = _table(text, "## Summary")
    assert [r[:4] for r in summary] == [["digits-mlp", "IF", "4", "1"],
                                        ["digits-mlp", "IF", "4", "32"]]
    for r in summary:
        batch = r[3]
        assert float(r[4]) == ms[batch, "refsnn numba 1t 64"]
        assert float(r[5]) == ms[batch, "refsnn numba 1t 32"]
        best = min(("numpy dense 64", "numpy dense 32"), key=lambda n: ms[batch, n])
        assert r[7] == best and float(r[8]) == ms[batch, best]
    activity = _table(text, "## Activity")
    assert len(activity) == 1 and activity[0][:3] == ["digits-mlp", "IF", "4"]
    assert re.fullmatch(r"(\w+ \d\.\d{3}, )*\w+ \d\.\d{3}", activity[0][3])
