"""``refsnn diagnose``: the registry, the tables, and the SIN diagnostic against evaluate."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import DATA, MODELS, small_cnn
from refsnn.cli.main import main
from refsnn.conversion import convert_if, convert_signgd
from refsnn.diagnose import DIAGNOSTICS, Probe, Table, applicable
from refsnn.diagnose.sin import sin_counts, sin_table
from refsnn.evaluation import evaluate
from refsnn import ann
from refsnn.sim.network import NEURON_FORWARD, represented_output


def test_table_formats_and_serialises():
    t = Table("title", ("layer", "n", "x"), [{"layer": "a", "n": 3, "x": None},
                                             {"layer": "bb", "n": 10, "x": 0.123456}], ("note",))
    assert t.format().splitlines() == ["title", "  layer   n       x", "  a       3       -",
                                       "  bb     10  0.1235", "  note"]
    assert json.loads(json.dumps(t.to_json()))["rows"][1]["x"] == 0.123456


def test_sin_table_agrees_with_evaluate_and_with_the_definition():
    graph = small_cnn(2, residual=True)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (6, 2, 6, 6))
    net = convert_if(graph, rng.uniform(0, 1, (20, 2, 6, 6)))
    probe = Probe(net, x, 24)
    table = sin_table(probe)
    ev = evaluate(net, x, np.zeros(6, int), [24])
    by_layer = {row["layer"]: row for row in table.rows}
    assert {k: v["sin_spikes"] for k, v in by_layer.items()} == ev.sin
    # the definition, spelled out: spikes of neurons whose clipped ReLU is exactly 0
    _, acts = ann.forward(net.graph, x, all_nodes=True, forward_ops=NEURON_FORWARD)
    for name, row in by_layer.items():
        inactive = acts[name] == 0
        assert row["inactive"] == int(inactive.sum())
        assert row["sin_spikes"] == int(probe.run.counts[name][inactive].sum())
        out = represented_output(net, name, probe.run.counts[name], 24)
        assert row["inactive_output"] == pytest.approx(float(np.abs(out[inactive]).mean()))
    assert sin_counts(net, probe.limit, probe.run.counts) == ev.sin


def test_signgd_reports_estimates_not_spike_counts():
    graph = small_cnn(1)
    rng = np.random.default_rng(1)
    net = convert_signgd(graph, rng.uniform(0, 1, (20, 2, 6, 6)))
    table = sin_table(Probe(net, rng.uniform(0, 1, (3, 2, 6, 6)), 12))
    assert all(row["sin_spikes"] is None for row in table.rows)
    assert all(row["inactive_output"] >= 0 for row in table.rows)
    assert "sin" in applicable(net) and set(applicable(net)) <= set(DIAGNOSTICS)
    with pytest.raises(ValueError, match="SIN counts are defined for"):
        sin_counts(net, {}, {})


def test_cli_diagnose(capsys):
    base = ["diagnose", str(MODELS / "cnn.h5"), "--data", str(DATA), "--limit", "4",
            "--steps", "8"]
    assert main(base) == 0
    text = capsys.readouterr().out
    assert "spikes of inactivated neurons (method if)" in text and "relu2" in text
    assert main(base + ["--json", "--only", "sin"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["steps"] == 8 and out["samples"] == 4
    assert [r["layer"] for r in out["diagnostics"]["sin"]["rows"]] == ["relu1", "relu2"]
    assert main(base + ["--only", "nonsense"]) == 2
    assert "unknown diagnostic 'nonsense'" in capsys.readouterr().err
    assert main(base + ["--seed", "3"]) == 2
    assert "--seed applies to --encoding poisson only" in capsys.readouterr().err
