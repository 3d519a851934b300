"""The fidelity diagnostic: checked against what an IF layer with constant input must do."""

from __future__ import annotations

import json

import numpy as np
from hypothesis import given, settings, strategies as st

from conftest import DATA, MODELS, small_mlp

from refsnn.cli.main import main
from refsnn.conversion import convert_if
from refsnn.diagnose import Probe
from refsnn.diagnose.fidelity import fidelity_table


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 1000), percentile=st.sampled_from([50.0, 90.0, 100.0]),
       steps=st.integers(4, 40))
def test_first_layer_error_and_saturation(seed, percentile, steps):
    rng = np.random.default_rng(seed)
    graph = small_mlp(seed)
    net = convert_if(graph, rng.uniform(0, 1, (20, 12)), percentile=percentile)
    probe = Probe(net, rng.uniform(0, 1, (6, 12)), steps)
    rows = {r["layer"]: r for r in fidelity_table(probe).rows}
    first = net.neuron_nodes()[0]
    theta = float(np.max(net.graph.node(first).params["threshold"]))
    row = rows[first]
    # constant input, reset by subtraction: |count*theta/T - clip(x, 0, theta)| < theta/T
    # (an error formula without theta, or dividing by T+1, breaks this bound)
    assert row["max_abs_error"] < theta / steps + 1e-12
    # with constant input a first-layer neuron fires every step exactly when x >= theta,
    # i.e. when its ANN value is at the threshold (a '>' in either count breaks this)
    assert row["saturated"] == row["always_firing"]
    assert 0 <= row["silent"] <= row["neurons"]


def test_cli_fidelity_json(capsys):
    args = [str(MODELS / "mlp.h5"), "--data", str(DATA), "--limit", "8", "--steps", "16",
            "--only", "fidelity", "--json"]
    assert main(["diagnose", *args]) == 0
    table = json.loads(capsys.readouterr().out)["diagnostics"]["fidelity"]
    rows = table["rows"]
    assert [r["layer"] for r in rows] == ["relu1", "relu2"]
    assert all(-1 <= r["correlation"] <= 1 and r["mean_abs_error"] <= r["max_abs_error"]
               for r in rows)
