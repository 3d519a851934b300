"""``compare`` on a recurrent NIR layer (refsnn/oracle/rediscretise.py): a trace of another
discretisation departs in a CubaLIF whose input holds its own spikes (a recurrent Affine), so
no replay of that layer explains it; given the reference's network, compare re-simulates it
under each other discretisation and names the one that reproduces every layer
(``discretisation=euler-same-step``), from Python and the command line. An unrelated departure
stays unexplained; without the network, nothing changes. Skipped without the nir extra."""

from __future__ import annotations

import numpy as np
import pytest

from refsnn.errors import OptionError
from refsnn.oracle.compare import compare
from refsnn.oracle.trace import record_trace, write_trace
from refsnn.sim.simulator import Simulator

nir = pytest.importorskip("nir")
from refsnn.nir.reader import from_nir  # noqa: E402

DT, STEPS = 1e-3, 40


def _graph(seed=5, n_in=4, n=10, n_out=3):
    """Input -> fc -> lif1 (CubaLIF), lif1 -> w_rec (Affine) -> lif1, lif1 -> fc2 -> lif2."""
    rng = np.random.default_rng(seed)

    def cell(k, thr):
        return nir.CubaLIF(tau_syn=rng.uniform(2e-3, 6e-3, k), tau_mem=rng.uniform(4e-3, 1e-2, k),
                           r=np.ones(k), v_leak=np.zeros(k), v_threshold=np.full(k, thr),
                           v_reset=np.zeros(k), w_in=np.ones(k))
    nodes = {"in": nir.Input(input_type={"input": np.array([n_in])}),
             "fc": nir.Affine(weight=rng.normal(1.5, 1.0, (n, n_in)), bias=np.zeros(n)),
             "lif1": cell(n, 0.05),
             "w_rec": nir.Affine(weight=rng.normal(0, 0.8, (n, n)), bias=np.zeros(n)),
             "fc2": nir.Linear(weight=rng.normal(1.0, 1.0, (n_out, n))),
             "lif2": cell(n_out, 0.05),
             "out": nir.Output(output_type={"output": np.array([n_out])})}
    edges = [("in", "fc"), ("fc", "lif1"), ("lif1", "w_rec"), ("w_rec", "lif1"),
             ("lif1", "fc2"), ("fc2", "lif2"), ("lif2", "out")]
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={"dt": DT}, type_check=False)


def _seq(batch=3, n_in=4):
    """Bernoulli(0.3) spikes, (B, T, n_in)."""
    return (np.random.default_rng(6).random((batch, STEPS, n_in)) < 0.3).astype(np.float64)


def _trace(graph, how=None, x=None):
    net = from_nir(graph, dt=DT, discretisation=how)
    return net, record_trace(Simulator(net, "numpy"), _seq() if x is None else x, STEPS,
                             sequence=True)


@pytest.fixture(scope="module")
def traces():
    graph = _graph()
    net, ref = _trace(graph)
    _, same = _trace(graph, "euler-same-step")
    return graph, net, ref, same


def test_a_recurrent_discretisation_departure_is_named(traces):
    _, net, ref, same = traces
    first = compare(ref, same).first_divergence
    # the premise: it departs, and no replay of the recurrent layer explains it
    assert first is not None and first.name == "lif1" and first.kind == "unexplained"
    assert ref.layers["lif1"].spikes.sum() > 20 and ref.layers["lif2"].spikes.any()
    c = compare(ref, same, network=net)
    first = c.first_divergence
    assert (first.name, first.kind) == ("lif1", "discretisation") and c.real
    assert first.detail.startswith("discretisation=euler-same-step:")
    assert [r.kind for r in c.layers] == ["discretisation", "downstream"]


@pytest.mark.parametrize("how", [None, "euler-same-step"])
def test_an_unrelated_departure_stays_unexplained(traces, how):
    """Another network (w_rec negated), in either discretisation: no replay and no
    discretisation of the reference's network explains it."""
    _, net, ref, _ = traces
    graph = _graph()
    graph.nodes["w_rec"].weight[:] *= -1
    _, other = _trace(graph, how)
    assert compare(ref, other).first_divergence.kind == "unexplained"
    first = compare(ref, other, network=net).first_divergence
    assert (first.name, first.kind) == ("lif1", "unexplained")


def test_the_network_must_be_the_references(traces):
    graph, _, ref, same = traces
    wrong = from_nir(graph, dt=DT / 2)
    with pytest.raises(OptionError, match="does not reproduce the reference trace"):
        compare(ref, same, network=wrong)


def test_the_command_line_names_it(traces, tmp_path, capsys):
    import json

    from refsnn.cli.main import main

    graph, _, ref, same = traces
    model = tmp_path / "rnn.nir"
    nir.write(model, graph)
    write_trace(tmp_path / "ref.h5", ref)
    write_trace(tmp_path / "same.h5", same)
    args = ["compare", str(tmp_path / "ref.h5"), str(tmp_path / "same.h5")]
    # dt and discretisation: what the reference's layers recorded
    assert main(args + ["--json", "--model", str(model)]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["first"] == {"layer": "lif1", "step": out["first"]["step"],
                            "class": "discretisation"}
    assert out["layers"][0]["detail"].startswith("discretisation=euler-same-step:")
    assert main(args + ["--model", str(model), "--dt", str(DT / 2)]) == 2
    assert "does not reproduce the reference trace (layer lif1" in capsys.readouterr().err
    assert main(args + ["--dt", str(DT)]) == 2
    assert "--dt applies with --model only" in capsys.readouterr().err


def test_feed_forward_unchanged_with_the_network():
    """Without the recurrent edge, the layer's replay names the class (``current``) as
    before; the network, given, changes nothing."""
    graph = _graph()
    del graph.nodes["w_rec"]
    graph.edges = [e for e in graph.edges if "w_rec" not in e]
    net, ref = _trace(graph)
    _, same = _trace(graph, "euler-same-step")
    a, b = compare(ref, same), compare(ref, same, network=net)
    assert a.first_divergence.kind == "current"
    assert [vars(r) for r in a.layers] == [vars(r) for r in b.layers]
