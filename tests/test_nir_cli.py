"""The command line with NIR files: export-nir, and inspect/evaluate/trace on a .nir graph.
Skipped without the nir extra."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import DATA, MODELS
from refsnn.cli.main import main
from refsnn.oracle.trace import read_trace

pytest.importorskip("nir")


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    d = tmp_path_factory.mktemp("nir")
    assert main(["convert", str(MODELS / "cnn.h5"), "--calibration", str(DATA),
                 "--calibration-limit", "200", "--reset", "zero", "-o", str(d / "net.h5")]) == 0
    return d


def test_export_then_evaluate_gives_the_same_accuracy(capsys, converted):
    nir_file = converted / "net.nir"
    code, out, _ = run_cli(capsys, "export-nir", converted / "net.h5", "-o", nir_file)
    assert code == 0 and "wrote" in out
    results = []
    for f in (converted / "net.h5", nir_file):
        code, out, _ = run_cli(capsys, "evaluate", f, "--data", DATA, "--limit", "60",
                               "--steps", "8,32", "--json")
        assert code == 0
        results.append([(r["steps"], r["accuracy"]) for r in json.loads(out)["results"]])
    assert results[0] == results[1]
    code, out, _ = run_cli(capsys, "inspect", nir_file)
    assert code == 0 and "nir_if" in out and "method nir" in out


def test_trace_of_the_nir_graph_equals_the_trace_of_the_network(capsys, converted):
    nir_file = converted / "t.nir"
    assert run_cli(capsys, "export-nir", converted / "net.h5", "-o", nir_file)[0] == 0
    for f, out in ((converted / "net.h5", "a.h5"), (nir_file, "b.h5")):
        code, _, _ = run_cli(capsys, "trace", f, "--data", DATA, "--limit", "4", "--steps",
                             "12", "-o", converted / out)
        assert code == 0
    a, b = read_trace(converted / "a.h5"), read_trace(converted / "b.h5")
    assert list(a.layers) == list(b.layers)
    for name in a.layers:
        assert np.array_equal(a.layers[name].spikes, b.layers[name].spikes)
    code, out, _ = run_cli(capsys, "compare", converted / "a.h5", converted / "b.h5")
    assert code == 0 and "no divergence" in out


@pytest.mark.parametrize("argv, words", [
    (["export-nir", MODELS / "cnn.h5", "-o", "x.nir"], "is not a converted network"),
    (["inspect", MODELS / "cnn.h5", "--dt", "0.5"], "--dt applies to NIR graphs only"),
    (["inspect", MODELS / "cnn.h5", "--discretisation", "exact"],
     "--discretisation applies to NIR graphs only"),
    (["diagnose", "net.nir", "--data", DATA], "a NIR graph has none"),
])
def test_mistakes_end_in_one_line(capsys, tmp_path, converted, argv, words):
    if "net.nir" in argv:
        assert main(["export-nir", str(converted / "net.h5"), "-o",
                     str(tmp_path / "net.nir")]) == 0
    code, _, err = run_cli(capsys, *[tmp_path / a if str(a).endswith(".nir") else a
                                     for a in argv])
    assert code != 0 and words in err and len(err.strip().splitlines()) == 1


def test_subtract_reset_is_refused_by_node(capsys, tmp_path):
    assert main(["convert", str(MODELS / "mlp.h5"), "--calibration", str(DATA),
                 "--calibration-limit", "50", "-o", str(tmp_path / "s.h5")]) == 0
    code, _, err = run_cli(capsys, "export-nir", tmp_path / "s.h5", "-o", tmp_path / "s.nir")
    assert code != 0 and "node 'relu1'" in err and "--reset zero" in err
    assert not (tmp_path / "s.nir").exists()


def test_streamed_trace_of_a_nir_graph_has_the_same_datasets(capsys, converted):
    import h5py

    nir_file = converted / "s.nir"
    assert run_cli(capsys, "export-nir", converted / "net.h5", "-o", nir_file)[0] == 0
    for out, extra in (("p.h5", []), ("q.h5", ["--stream"])):
        code, _, _ = run_cli(capsys, "trace", nir_file, "--data", DATA, "--limit", "3",
                             "--steps", "6", "-o", converted / out, *extra)
        assert code == 0
    with h5py.File(converted / "p.h5") as a, h5py.File(converted / "q.h5") as b:
        names = []
        a.visit(names.append)
        assert "layers/relu1/param_v_threshold" in names
        for n in names:
            if isinstance(a[n], h5py.Dataset):
                assert np.array_equal(a[n][()], b[n][()]), n


def test_discretisation_reaches_the_leaky_nodes(capsys, tmp_path):
    """``--discretisation`` picks the LIF nodes' step on the command line as ``refsnn.load``
    does in Python: the exact leak gives other scores than forward Euler on the shipped taxel
    graph, and each command-line accuracy is the one of the API's scores."""
    from refsnn import load
    from refsnn.data import load_sequences
    from refsnn.evaluation import accuracy
    from refsnn.sim.simulator import Simulator

    seq = tmp_path / "taxels.h5"
    assert main(["data", "from-events", str(DATA.parent / "taxel_events.npz"), "--sensor-size",
                 "12,1,1", "--time-window", "1000", "--dt", "0.001", "--shape", "12", "-o",
                 str(seq)]) == 0
    capsys.readouterr()
    graph = DATA.parent / "taxels.nir"
    x, y, _ = load_sequences(seq, "test", limit=8)
    scores = {}
    for how in ("euler", "exact"):
        net = load(graph, discretisation=how)
        assert {n.attrs["discretisation"] for n in net.graph.nodes if n.op == "lif"} == {how}
        scores[how] = Simulator(net, "numpy").run(x, 40, sequence=True).readout[40]
        code, out, _ = run_cli(capsys, "evaluate", graph, "--data", seq, "--limit", "8",
                               "--steps", "40", "--discretisation", how, "--json")
        assert code == 0
        assert json.loads(out)["results"][0]["accuracy"] == accuracy(scores[how], y)
    assert not np.array_equal(scores["euler"], scores["exact"])
