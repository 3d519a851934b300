"""The shipped Fashion-MNIST models: their ANN test accuracy, the table's ANN column, and one
SNN point per method of docs/mnist.md's Fashion-MNIST table, repeated exactly.

The expected numbers are read from the files the scripts wrote, never typed here:
``data/models/fashion_accuracy.json`` (``data/train_mnist.py --dataset fashion``: each model's
accuracy on the full 10,000-image test split) and ``benchmarks/fashion_results.json``
(``benchmarks/mnist_table.py --dataset fashion``: the table's rows on the full test split, and
``checks``, one per method: the row's model and options run to a small T on the first few
hundred test images, which is what is repeated here, so that it stays short). refsnn's
results are bit-identical on every run, so the counts must agree exactly.
"""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest

from conftest import ROOT, needs_jit
from refsnn.ann import forward
from refsnn.cli.main import main
from refsnn.data import load_data
from refsnn.model import load_refsnn_h5

FASHION = ROOT / "data" / "fashion.h5"
MODELS = ROOT / "data" / "models"
ACCURACY = json.loads((MODELS / "fashion_accuracy.json").read_text())
RESULTS = json.loads((ROOT / "benchmarks" / "fashion_results.json").read_text())


@pytest.fixture(scope="module")
def test_split():
    return load_data(FASHION, "test", (1, 28, 28))


@pytest.mark.parametrize("name", sorted(ACCURACY))
def test_ann_accuracy_on_the_full_test_split(name, test_split):
    x, y = test_split
    graph = load_refsnn_h5(MODELS / f"{name}.h5")
    correct = np.concatenate([forward(graph, x[i:i + 1000]).argmax(1) == y[i:i + 1000]
                              for i in range(0, len(x), 1000)])
    assert int(correct.sum()) == round(ACCURACY[name]["test_accuracy"] * len(y))
    rows = [r for r in RESULTS["rows"] if r["model"] == name]
    assert rows, f"{name} has no row in the table"
    for row in rows:  # the table's ANN column: every row is on the full split
        assert row["samples"] == len(y)
        assert int(correct.sum()) == round(row["ann_accuracy"] * len(y))


def test_every_method_has_a_check():
    methods = {c["options"][c["options"].index("--method") + 1] for c in RESULTS["checks"]}
    assert methods == {"if", "bsnn", "signgd", "noise"}
    assert any("l4" in c["options"] for c in RESULTS["checks"])  # Poisson + L4
    # each check is a configuration of a row of the table, at one of its T values
    rows = {(r["model"], r["label"]): r for r in RESULTS["rows"]}
    for c in RESULTS["checks"]:
        assert str(c["steps"]) in rows[(c["model"], c["label"])]["accuracy"]


@needs_jit
@pytest.mark.parametrize("check", RESULTS["checks"], ids=lambda c: f"{c['model']}-{c['label']}")
def test_snn_point(check):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["evaluate", str(MODELS / f"{check['model']}.h5"),
                     "--data", str(FASHION), "--limit", str(check["samples"]),
                     "--steps", str(check["steps"]), "--json", *check["options"]])
    assert code == 0
    got = json.loads(out.getvalue())
    n = check["samples"]
    assert got["samples"] == n
    assert round(got["ann_accuracy"] * n) == round(check["ann_accuracy"] * n)
    assert round(got["results"][0]["accuracy"] * n) == round(check["accuracy"] * n)
