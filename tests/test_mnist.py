"""The shipped MNIST models: their ANN test accuracy, and one SNN point per method of the
README's MNIST table.

The expected numbers are read from the files the scripts wrote, never typed here:
``data/models/mnist_accuracy.json`` (``data/train_mnist.py``: each model's accuracy on the full
10,000-image test split) and ``benchmarks/mnist_results.json`` (``benchmarks/mnist_table.py``:
the table's rows, and ``checks``, one point of the table per method at a small T, with the
row's samples and options, which is what is repeated here: a run to that T only, so it stays
short). Agreement is required within one image.
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

MNIST = ROOT / "data" / "mnist.h5"
ACCURACY = json.loads((ROOT / "data" / "models" / "mnist_accuracy.json").read_text())
RESULTS = json.loads((ROOT / "benchmarks" / "mnist_results.json").read_text())


@pytest.fixture(scope="module")
def test_split():
    return load_data(MNIST, "test", (1, 28, 28))


@pytest.mark.parametrize("name", sorted(ACCURACY))
def test_ann_accuracy_on_the_full_test_split(name, test_split):
    x, y = test_split
    graph = load_refsnn_h5(ROOT / "data" / "models" / f"{name}.h5")
    correct = np.concatenate([forward(graph, x[i:i + 1000]).argmax(1) == y[i:i + 1000]
                              for i in range(0, len(x), 1000)])
    assert abs(int(correct.sum()) - round(ACCURACY[name]["test_accuracy"] * len(y))) <= 1
    # the table's ANN column: the same model on the table's prefix
    for row in RESULTS["rows"]:
        if row["model"] == name and "ann_accuracy" in row:
            n = row["samples"]
            assert abs(int(correct[:n].sum()) - round(row["ann_accuracy"] * n)) <= 1


def test_every_method_has_a_check():
    methods = {c["options"][c["options"].index("--method") + 1] for c in RESULTS["checks"]}
    assert methods == {"if", "bsnn", "signgd", "noise"}
    assert any("l4" in c["options"] for c in RESULTS["checks"])  # Poisson + L4


@needs_jit
@pytest.mark.parametrize("check", RESULTS["checks"], ids=lambda c: f"{c['model']}-{c['label']}")
def test_snn_point(check):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["evaluate", str(ROOT / "data" / "models" / f"{check['model']}.h5"),
                     "--data", str(MNIST), "--limit", str(check["samples"]),
                     "--steps", str(check["steps"]), "--json", *check["options"]])
    assert code == 0
    got = json.loads(out.getvalue())
    n = check["samples"]
    assert abs(round(got["ann_accuracy"] * n) - round(check["ann_accuracy"] * n)) <= 1
    assert abs(round(got["results"][0]["accuracy"] * n) - round(check["accuracy"] * n)) <= 1
