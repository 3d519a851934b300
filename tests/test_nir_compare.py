"""refsnn compare on NIR layers (refsnn/neurons/nir_base.py): bugs injected into the
simulation of a NIR graph are named by what they change. Skipped without the nir extra."""

from __future__ import annotations

import numpy as np
import pytest

from refsnn.oracle.compare import compare
from refsnn.oracle.trace import Trace, read_trace, record_trace, write_trace
from refsnn.neurons import nir_if
from refsnn.sim.simulator import Simulator

nir = pytest.importorskip("nir")
from refsnn.nir.reader import from_nir  # noqa: E402

STEPS = 40


def _graph(neuron="IF", dyadic=False):
    """Input (6,) -> Affine -> neuron (12) -> Affine -> neuron (5); with ``dyadic``, weights
    and biases are multiples of 1/8 so that potentials land exactly on the threshold."""
    rng = np.random.default_rng(7)
    q = (lambda a: np.round(a * 8) / 8) if dyadic else (lambda a: a)
    n_in, n1, n2 = 6, 12, 5
    def cell(n):
        if neuron == "IF":
            return nir.IF(r=np.ones(n), v_threshold=np.full(n, 0.5 if dyadic else 0.8))
        return nir.LIF(tau=np.full(n, 4.0), r=np.ones(n), v_leak=np.zeros(n),
                       v_threshold=np.full(n, 0.3))
    return nir.NIRGraph(nodes={
        "in": nir.Input(input_type={"input": np.array([n_in])}),
        "fc1": nir.Affine(weight=q(rng.normal(0, 0.6, (n1, n_in))),
                          bias=q(rng.normal(0, .1, n1))),
        "n1": cell(n1),
        "fc2": nir.Affine(weight=q(rng.normal(0, 0.6, (n2, n1))),
                          bias=q(rng.normal(0, .1, n2))),
        "n2": cell(n2),
        "out": nir.Output(output_type={"output": np.array([n2])})},
        edges=[("in", "fc1"), ("fc1", "n1"), ("n1", "fc2"), ("fc2", "n2"), ("n2", "out")],
        type_check=False)


def _x():
    return np.round(np.random.default_rng(1).uniform(0, 1, (4, 6)) * 4) / 4


def _trace(graph, dt=1.0):
    return record_trace(Simulator(from_nir(graph, dt=dt), "numpy"), _x(), STEPS)


def _buggy_if(leak=1.0, reset="value", bound=False, inclusive=False):
    """An IF step with one bug, written here independently of the replay."""
    def step(v, current, gain, threshold, v_reset):
        v *= leak
        v += gain * current
        if bound:
            np.maximum(v, -threshold, out=v)
        fired = v >= threshold if inclusive else v > threshold
        if reset == "subtract":
            v -= np.where(fired, threshold, 0.0)
        else:
            np.copyto(v, np.broadcast_to(v_reset, v.shape), where=fired)
        return fired.astype(v.dtype)
    return step


def _first(ref, other):
    c = compare(ref, other)
    f = c.first_divergence
    assert f is not None and f.name in ("n1", "n2")
    return f


@pytest.mark.parametrize("bug, dyadic, kind, words", [
    (dict(leak=0.9), False, "leak", "leak=0.9"),
    (dict(reset="subtract"), False, "reset", "reset=subtract"),
    (dict(inclusive=True), True, "comparison", "comparison=>="),
])
def test_injected_if_bugs_are_named(monkeypatch, bug, dyadic, kind, words):
    graph = _graph("IF", dyadic=dyadic)
    ref = _trace(graph)
    assert ref.layers["n1"].spikes.any()
    monkeypatch.setitem(nir_if.KERNELS["numpy"], "step", _buggy_if(**bug))
    other = _trace(graph)
    f = _first(ref, other)
    assert f.kind == kind and words in f.detail
    assert compare(ref, other).real


def _drifting(graph):
    """n1 driven by positive currents only; n2 by spikes against a negative bias, so that its
    potential falls below -v_threshold between spikes (a bound on it changes its spikes)."""
    graph.nodes["fc1"].weight = np.abs(graph.nodes["fc1"].weight) * 0.25
    graph.nodes["fc1"].bias = np.full(12, 0.05)
    graph.nodes["fc2"].weight = np.abs(graph.nodes["fc2"].weight)
    graph.nodes["fc2"].bias = np.full(5, -1.0)
    return graph


@pytest.mark.parametrize("bug, kind, words", [
    (dict(bound=True), "bound", "bound=-theta"),
    (dict(bound=True, reset="subtract"), "combined", "reset=subtract + bound=-theta"),
])
def test_bound_alone_and_combined_are_named(monkeypatch, bug, kind, words):
    graph = _drifting(_graph("IF"))
    ref = _trace(graph)
    assert ref.layers["n2"].spikes.any() and ref.layers["n2"].potentials.min() < -0.8
    buggy, right = _buggy_if(**bug), nir_if.KERNELS["numpy"]["step"]
    # the bug in the second layer (5 neurons) only, whose input current changes sign
    monkeypatch.setitem(nir_if.KERNELS["numpy"], "step",
                        lambda v, *a: (buggy if v.shape[1] == 5 else right)(v, *a))
    f = _first(ref, _trace(graph))
    assert f.name == "n2" and f.kind == kind and words in f.detail, f


def test_delay_and_scaled_threshold_are_named():
    graph = _graph("IF")
    ref = _trace(graph)
    late = Trace(ref.steps, {n: type(l)(np.concatenate([np.zeros_like(l.spikes[:1]),
                                                         l.spikes[:-1]]))
                             for n, l in ref.layers.items()})
    assert _first(ref, late).kind == "delay"
    scaled = _graph("IF")
    for n in ("n1", "n2"):
        scaled.nodes[n].v_threshold = scaled.nodes[n].v_threshold * 1.5
    f = _first(ref, _trace(scaled))
    assert f.kind == "threshold", f


def test_lif_with_exponential_decay_is_named_and_identical_is_same(tmp_path):
    graph = _graph("LIF")
    ref = _trace(graph, dt=1.0)
    assert ref.layers["n1"].spikes.any()
    assert compare(ref, _trace(graph, dt=1.0)).first_divergence is None
    exact = _graph("LIF")
    for n in ("n1", "n2"):  # forward Euler with dt/tau' = 1 - exp(-dt/tau): exponential decay
        exact.nodes[n].tau = np.full(exact.nodes[n].tau.shape, 1.0 / (1 - np.exp(-1.0 / 4.0)))
    other = _trace(exact, dt=1.0)
    f = _first(ref, other)
    assert f.kind in ("leak", "rounding"), f
    # the trace keeps what the replay needs through a file
    write_trace(tmp_path / "r.h5", ref)
    back = read_trace(tmp_path / "r.h5")
    assert back.layers["n1"].kind == "lif"
    assert np.array_equal(back.layers["n1"].params["decay"], ref.layers["n1"].params["decay"])
    assert _first(back, other).kind == f.kind


@pytest.mark.parametrize("bug, kind", [(dict(strict=True), "comparison"),
                                       (dict(reset="subtract"), "reset")])
def test_if_layers_that_reset_to_zero_are_replayed_with_their_own_reset(bug, kind):
    """refsnn IF layers with --reset zero (the NIR-exportable ones): the comparison and
    threshold replays keep the layer's reset, the reset hypothesis tries the other one."""
    from refsnn.conversion import convert_if
    from refsnn.neurons.if_ import replay

    rng = np.random.default_rng(3)
    from conftest import small_mlp
    graph = small_mlp(seed=3)
    x = np.round(rng.uniform(-1, 1, (8, 12)) * 8) / 8
    net = convert_if(graph, x, reset="zero", percentile=100)
    ref = record_trace(Simulator(net, "numpy"), x[:4], STEPS)
    layer = ref.layers["relu0"]
    # the bug in the first layer only, written with compare's replay of that layer
    other_spikes, _ = replay(layer.current, layer.threshold, layer.v_init,
                             **{"reset": "zero", **bug})
    assert not np.array_equal(other_spikes, layer.spikes)
    other = Trace(ref.steps, {"relu0": type(layer)(other_spikes)})
    f = compare(ref, other).first_divergence
    assert f.name == "relu0" and f.kind == kind, f
