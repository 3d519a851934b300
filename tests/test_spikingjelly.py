"""refsnn's IF networks against SpikingJelly's IFNode, spike for spike.

Skipped without torch or SpikingJelly. CI runs this file twice: with SpikingJelly 2.0.0 (the
main environment) and with 0.0.0.0.14 (put first on PYTHONPATH by ``.ci/run``); the tests that
depend on the release check :func:`refsnn.interop.spikingjelly.release`. The networks use dyadic weights,
biases and inputs (small integers over a power of two), and thresholds from percentile 100
(the calibration maximum, itself a sum of dyadic products), so every sum is exact in float64
in any order: torch's summation order and refsnn's cannot differ, and any mismatch is a
difference of semantics (firing rule, reset, threshold, delay, pooling divisor, spike value).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("torch")
pytest.importorskip("spikingjelly")

from refsnn.conversion import convert_if  # noqa: E402
from refsnn.errors import ConversionError  # noqa: E402
from refsnn.interop.spikingjelly import RELEASES, SpikingJellyNetwork, release  # noqa: E402
from refsnn.model import make_graph  # noqa: E402
from refsnn.sim.simulator import Simulator  # noqa: E402

STEPS = 24


def dyadic(rng, shape, bits=3, scale=1.0):
    """Integers over 2**bits in [-scale, scale]: exact in float64 under any summation order."""
    k = int(scale * 2 ** bits)
    return rng.integers(-k, k + 1, shape) / 2.0 ** bits


def dyadic_cnn(seed: int, residual: bool, pool: str = "avgpool2d"):
    """conv-ReLU-(conv-add-ReLU)-pool-flatten-linear on (2, 6, 6), dyadic parameters."""
    rng = np.random.default_rng(seed)
    nodes = [dict(name="conv", op="conv2d", inputs=["input"], attrs=dict(padding=(1, 1)),
                  params=dict(weight=dyadic(rng, (4, 2, 3, 3), scale=0.5),
                              bias=dyadic(rng, 4, scale=0.25))),
             dict(name="relu", op="relu", inputs=["conv"])]
    last = "relu"
    if residual:
        nodes += [dict(name="conv2", op="conv2d", inputs=["relu"], attrs=dict(padding=(1, 1)),
                       params=dict(weight=dyadic(rng, (4, 4, 3, 3), scale=0.5),
                                   bias=dyadic(rng, 4, scale=0.25))),
                  dict(name="add", op="add", inputs=["conv2", "relu"]),
                  dict(name="relu2", op="relu", inputs=["add"])]
        last = "relu2"
    nodes += [dict(name="pool", op=pool, inputs=[last], attrs=dict(kernel=(2, 2), stride=(2, 2))),
              dict(name="flat", op="flatten", inputs=["pool"]),
              dict(name="fc1", op="linear", inputs=["flat"],
                   params=dict(weight=dyadic(rng, (8, 36), scale=0.5), bias=dyadic(rng, 8))),
              dict(name="relu3", op="relu", inputs=["fc1"]),
              dict(name="fc2", op="linear", inputs=["relu3"],
                   params=dict(weight=dyadic(rng, (3, 8)), bias=dyadic(rng, 3)))]
    return make_graph((2, 6, 6), nodes, "fc2")


def dyadic_inputs(seed: int, n: int = 4):
    return np.random.default_rng(seed + 100).integers(0, 17, (n, 2, 6, 6)) / 16.0


def both(net, x, steps=STEPS, seed=0, backend="numpy"):
    """refsnn's run (rasters of every neuron node) and SpikingJelly's rasters and readout."""
    neurons = [n.name for n in net.graph.nodes if n.op == "if"]
    run = Simulator(net, backend).run(x, steps, seed=seed, rasters=neurons,
                                      potentials=neurons)
    sj_rasters, sj_readout = SpikingJellyNetwork(net).run(x, steps, seed=seed)
    return run, sj_rasters, sj_readout


def assert_identical(run, sj_rasters, sj_readout, steps=STEPS):
    assert set(sj_rasters) == set(run.rasters) and run.rasters
    for name, raster in run.rasters.items():
        np.testing.assert_array_equal(sj_rasters[name], raster, err_msg=name)
        # per layer and per step: the same counts as refsnn's own step_counts
        np.testing.assert_array_equal(sj_rasters[name].reshape(steps, -1).sum(1),
                                      run.step_counts[name], err_msg=name)
    np.testing.assert_array_equal(sj_readout, run.readout[steps])


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_spikingjelly_identical_with_ties(backend):
    """Spike rasters equal SpikingJelly's exactly, in a run where neurons hit θ exactly.

    With subtraction reset, a neuron that fired and sits at exactly 0 afterwards had u == θ:
    such ties happen here, so a firing rule ``u > θ`` on either side would change the rasters
    and fail this test (as would spikes of value 1 instead of θ, or a one-step delay).
    """
    graph = dyadic_cnn(0, residual=True)
    x = dyadic_inputs(0)
    net = convert_if(graph, x, percentile=100.0)
    run, sj_rasters, sj_readout = both(net, x, backend=backend)
    assert_identical(run, sj_rasters, sj_readout)
    ties = sum(int(np.sum(run.rasters[n] & (run.potentials[n] == 0))) for n in run.rasters)
    assert ties > 0, "the example should exercise the u == θ tie"
    assert sum(int(r.sum()) for r in run.rasters.values()) > 100  # the network is active


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 10_000), residual=st.booleans(),
       reset=st.sampled_from(["subtract", "zero"]), v_init=st.sampled_from(["zero", "half"]),
       encoding=st.sampled_from(["analog", "poisson"]), run_seed=st.integers(0, 3))
def test_spikingjelly_identical(seed, residual, reset, v_init, encoding, run_seed):
    """Every setting refsnn and SpikingJelly share gives identical spikes per neuron per step."""
    graph = dyadic_cnn(seed, residual)
    x = dyadic_inputs(seed)
    net = convert_if(graph, x, percentile=100.0, reset=reset, v_init=v_init, encoding=encoding)
    run_seed = run_seed if encoding == "poisson" else 0
    assert_identical(*both(net, x, seed=run_seed))


@settings(max_examples=4, deadline=None)
@given(seed=st.integers(0, 10_000), reset=st.sampled_from(["subtract", "zero"]),
       v_init=st.sampled_from(["zero", "half"]))
def test_spikingjelly_per_channel(seed, reset, v_init):
    """Per-channel thresholds: identical on SpikingJelly 2.0 (ActivationAwareIFNode), refused
    with the node's name and the release on 0.0.0.0.14 (IFNode has one threshold)."""
    graph = dyadic_cnn(seed, residual=True)
    x = dyadic_inputs(seed)
    net = convert_if(graph, x, percentile=100.0, per_channel=True, reset=reset, v_init=v_init)
    assert any(np.unique(n.params["threshold"]).size > 1 for n in net.graph.nodes
               if n.op == "if"), "the example should have distinct channel thresholds"
    if release().per_channel is None:
        with pytest.raises(ConversionError, match=r"node 'relu': per-channel .* 0\.0\.0\.0\.14"):
            SpikingJellyNetwork(net)
    else:
        assert_identical(*both(net, x))


def test_spikingjelly_release_lines():
    """The installed release is one of the two known lines; any other is refused by name."""
    assert release().name in {r.name for r in RELEASES.values()}
    assert release("2.0.0") is RELEASES["2"] and release("0.0.0.0.14") is RELEASES["0"]
    with pytest.raises(ConversionError, match="SpikingJelly 1.3.0 is not supported"):
        release("1.3.0")


def test_spikingjelly_refuses_what_it_cannot_express():
    x = dyadic_inputs(1)
    pooled = dyadic_cnn(1, residual=False, pool="maxpool2d")
    with pytest.raises(ConversionError, match="node 'pool': op 'maxpool2d'"):
        SpikingJellyNetwork(convert_if(pooled, x, percentile=100.0))
