"""Theory properties run through an adapter (collected with :mod:`refsnn.conformance.suite`).

Each property builds small random networks in memory with refsnn's model and conversion APIs,
runs them through the adapter under test and checks a theorem of the method that a wrong
implementation breaks (the docstrings say which wrong rule fails which property). Values are
dyadic rationals (integers over 8), so every sum is exact in float64 and float32 and the
theorems hold exactly, ties included. A network the adapter cannot run skips the property
through ``adapter.unsupported`` (e.g. BSNN on SpikingJelly); the BSNN properties feed per-step
inputs and need :meth:`Adapter.run_encoded`.

The examples are derandomized (the same ones every run, so a backend's CI cannot flake), few
(``MAX_EXAMPLES``) and not shrunk: the properties are a check, not a search.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from refsnn.conformance import implements_run_encoded
from refsnn.conversion import convert_bsnn, convert_if
from refsnn.model import make_graph
from refsnn.neurons.bistable import cycle_state
from refsnn.oracle.compare import compare, format_table
from refsnn.oracle.trace import Layer, Trace, record_trace
from refsnn.sim.simulator import Simulator

MAX_EXAMPLES = 20
# No shrinking: a failing example is reported as found (shrinking a random network can take
# minutes); derandomized, the reproduce command replays the same examples.
SETTINGS = settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
                    phases=(Phase.explicit, Phase.generate),
                    suppress_health_check=[HealthCheck.too_slow])
EIGHTHS = 8  # every value is an integer over 8

# --- small networks ------------------------------------------------------------------------


def one_layer(n: int):
    """input (n,) -> identity linear -> ReLU "layer" -> linear "out": the layer's current is
    exactly the input of the step."""
    return make_graph((n,), [
        dict(name="w", op="linear", inputs=["input"],
             params=dict(weight=np.eye(n), bias=np.zeros(n))),
        dict(name="layer", op="relu", inputs=["w"]),
        dict(name="out", op="linear", inputs=["layer"],
             params=dict(weight=np.ones((1, n)), bias=np.zeros(1)))], "out")


def threshold_calibration(n: int, theta: float) -> np.ndarray:
    """One calibration sample whose ReLU activations are all ``theta``: percentile 100 then
    gives the layer the threshold ``theta`` exactly."""
    return np.full((1, n), theta)


def _dyadic(draw, shape, low, high):
    ints = draw(st.lists(st.integers(low, high), min_size=int(np.prod(shape)),
                         max_size=int(np.prod(shape))))
    return np.asarray(ints, np.float64).reshape(shape) / EIGHTHS


def _spikes(spec, adapter, net, x=None, steps=None, encoded=None):
    """The adapter's rasters, or a skip with the adapter's reason."""
    reason = adapter.unsupported(net)
    if reason:
        pytest.skip(f"unsupported by {spec}: {reason}")
    if encoded is not None:
        if not implements_run_encoded(adapter):
            pytest.skip(f"unsupported by {spec}: the property feeds per-step inputs and the "
                        f"adapter has no run_encoded")
        return {k: np.asarray(v, bool) for k, v in adapter.run_encoded(net, encoded).items()}
    return {k: np.asarray(v, bool) for k, v in adapter.run(net, x, steps).items()}


# --- IF --------------------------------------------------------------------------------------


@st.composite
def if_constant_current(draw):
    n = draw(st.integers(1, 6))
    theta = draw(st.integers(1, 16))  # theta = b / 8 > 0
    current = draw(st.lists(st.integers(-20, 20), min_size=n, max_size=n))
    steps = draw(st.integers(1, 24))
    return n, theta, np.asarray(current), steps


@SETTINGS
@given(case=if_constant_current())
def test_if_constant_current_counts(conformance_adapter, case):
    """IF, reset by subtraction, u0 = 0, constant current I, threshold theta: after t steps the
    neuron has fired exactly ``clip(floor(t I / theta), 0, t)`` times, for every t <= T.

    So ``|count/T - clip(I/theta, 0, 1)| <= 1/T``. With I = a/8 and theta = b/8 the count is
    ``clip((t a) // b, 0, t)`` in integers. Fails for firing on ``u > theta`` (I = theta fires
    one step late), reset to zero (the remainder is lost: I = 3 theta / 4 fires at t = 2, 4, 6
    instead of 2, 3, 4, 6...), a one-step delay, or an initial potential other than 0.
    """
    spec, adapter = conformance_adapter
    n, b, a, steps = case
    net = convert_if(one_layer(n), threshold_calibration(n, b / EIGHTHS), percentile=100)
    spikes = _spikes(spec, adapter, net, (a / EIGHTHS)[None], steps)["layer"][:, 0]
    t = np.arange(1, steps + 1)[:, None]
    expected = np.clip((t * a[None]) // b, 0, t)
    assert np.array_equal(np.cumsum(spikes, axis=0), expected), (
        f"theta={b}/8, I={a.tolist()}/8: cumulative counts {np.cumsum(spikes, 0).T.tolist()}, "
        f"expected {expected.T.tolist()}")


@SETTINGS
@given(n=st.integers(1, 6), b=st.integers(1, 16), steps=st.integers(1, 24),
       reset=st.sampled_from(["subtract", "zero"]), v_init=st.sampled_from(["zero", "half"]),
       data=st.data())
def test_if_nonpositive_current_never_fires(conformance_adapter, n, b, steps, reset, v_init,
                                            data):
    """A constant current I <= 0 never makes an IF neuron fire, whatever its reset and initial
    potential (u starts at 0 or theta/2 < theta and only falls). Fails for firing on
    ``|u| >= theta`` (negative spikes counted as spikes) or an initial potential >= theta."""
    spec, adapter = conformance_adapter
    a = data.draw(st.lists(st.integers(-20, 0), min_size=n, max_size=n))
    net = convert_if(one_layer(n), threshold_calibration(n, b / EIGHTHS), percentile=100,
                     reset=reset, v_init=v_init)
    spikes = _spikes(spec, adapter, net, (np.asarray(a) / EIGHTHS)[None], steps)["layer"]
    assert not spikes.any(), f"spikes at steps {np.nonzero(spikes)[0].tolist()} for I={a}/8"


@st.composite
def if_network(draw):
    """A random dyadic IF MLP (1-3 hidden layers of 1-6 neurons), its calibration and input."""
    sizes = [draw(st.integers(1, 6)) for _ in range(draw(st.integers(2, 4)))] + [2]
    nodes, prev = [], "input"
    for i, (m, k) in enumerate(zip(sizes[:-1], sizes[1:])):
        w = _dyadic(draw, (k, m), -6, 6)
        bias = _dyadic(draw, (k,), -2, 2)
        nodes.append(dict(name=f"fc{i}", op="linear", inputs=[prev],
                          params=dict(weight=w, bias=bias)))
        prev = f"fc{i}"
        if i < len(sizes) - 2:
            nodes.append(dict(name=f"relu{i}", op="relu", inputs=[prev]))
            prev = f"relu{i}"
    graph = make_graph((sizes[0],), nodes, prev)
    calib = _dyadic(draw, (4, sizes[0]), 0, 8)
    x = _dyadic(draw, (2, sizes[0]), 0, 8)
    options = dict(reset=draw(st.sampled_from(["subtract", "zero"])),
                   v_init=draw(st.sampled_from(["zero", "half"])))
    return graph, calib, x, options, draw(st.integers(1, 16))


@SETTINGS
@given(case=if_network())
def test_random_if_networks_match_refsnn_and_are_deterministic(conformance_adapter, case):
    """On random dyadic IF networks the adapter's spikes equal refsnn's (NumPy reference) with
    ``refsnn compare``'s rules, and two runs are identical. Fails for any rule that differs from
    refsnn's on some network (comparison, reset, delay, threshold, ...) or a backend that is not
    deterministic."""
    spec, adapter = conformance_adapter
    graph, calib, x, options, steps = case
    net = convert_if(graph, calib, percentile=100, **options)
    first = _spikes(spec, adapter, net, x, steps)
    second = _spikes(spec, adapter, net, x, steps)
    for name in first:
        assert np.array_equal(first[name], second[name]), f"layer {name}: two runs differ"
    ref = record_trace(Simulator(net, "numpy"), x, steps)
    other = Trace(steps, {k: Layer(v) for k, v in first.items()})
    c = compare(ref, other, rtol=adapter.rtol)
    assert not c.real, format_table(c)


# --- BSNN ------------------------------------------------------------------------------------


@st.composite
def bsnn_cycle(draw):
    n = draw(st.integers(1, 5))
    period = draw(st.integers(1, 6))
    theta = draw(st.integers(1, 16))
    sign = draw(st.sampled_from([-1, 1]))  # half the examples with sums <= 0
    return n, period, theta, sign, draw(st.data())


@SETTINGS
@given(case=bsnn_cycle())
def test_bsnn_packet_is_the_cycle_sum(conformance_adapter, case):
    """A bistable neuron (u0 = 0) integrates a whole cycle without firing, then in its fire
    cycle emits ``min(P, floor(S / theta))`` spikes on the cycle's first steps, ``S`` being the
    sum of the integrate cycle's inputs, in any order: a cycle summing to <= 0 never spikes.
    The inputs are arbitrary per-step values (fed with run_encoded). Fails for an IF-like
    neuron (fires within the integrate cycle on a positive partial sum), for integrating
    during the fire cycle, or for a schedule shifted by a step."""
    spec, adapter = conformance_adapter
    n, period, b, sign, data = case
    graph = one_layer(n)
    net = convert_bsnn(graph, threshold_calibration(n, b / EIGHTHS), percentile=100,
                       period=period, v_init="zero", encoding="poisson")
    node = net.graph.node("layer")
    states = [cycle_state(t, period, node.attrs["stage"]) for t in range(1, 10 * period + 1)]
    start = states.index("integrate")  # first integrate step (0-based)
    steps = start + 2 * period  # through the fire cycle that follows
    values = _dyadic(data.draw, (steps, 1, n), -8, 8)
    cycle = values[start:start + period, 0]
    total = cycle.sum(axis=0)
    # push half the examples to a sum <= 0 (shift the cycle's last input), to hit the
    # "never spikes" case often; the sum stays dyadic, so exact
    if sign < 0:
        values[start + period - 1, 0] -= np.maximum(total, 0.0)
    total = values[start:start + period, 0].sum(axis=0)
    spikes = _spikes(spec, adapter, net, encoded=values)["layer"][:, 0]
    expected = np.zeros((steps, n), bool)
    packet = np.clip(np.floor(total / (b / EIGHTHS)), 0, period).astype(int)
    for i in range(n):
        expected[start + period:start + period + packet[i], i] = True
    assert np.array_equal(spikes, expected), (
        f"P={period}, theta={b}/8, cycle sums {total.tolist()}: spikes at "
        f"{[np.nonzero(spikes[:, i])[0].tolist() for i in range(n)]}, expected "
        f"{[np.nonzero(expected[:, i])[0].tolist() for i in range(n)]}")
