"""signGD: kernel twins, whole-network bit identity, the neuron theory, and conversion."""

from __future__ import annotations

import numba
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from refsnn import ann
from refsnn.conversion import convert_signgd
from refsnn.errors import OptionError
from refsnn.model import make_graph
from refsnn.neurons.signgd import (TARGETS, reach, signgd_fire_numba, signgd_fire_numpy,
                                   step_size, target_value)
from refsnn.sim.network import load_snn, save_snn
from refsnn.sim.simulator import Simulator

from conftest import THREADS, small_cnn, small_mlp

pytestmark = pytest.mark.usefixtures("restore_threads")


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), b=st.integers(1, 4), n=st.integers(1, 60),
       steps=st.integers(1, 15), inclusive=st.booleans(),
       dtype=st.sampled_from([np.float64, np.float32]), threads=st.sampled_from(THREADS))
def test_fire_kernel_equals_numpy(seed, b, n, steps, inclusive, dtype, threads):
    numba.set_num_threads(threads)
    rng = np.random.default_rng(seed)
    scale = rng.uniform(0.1, 3, n).astype(dtype)
    v_ref = np.zeros((b, n), dtype)
    v_jit = v_ref.copy()
    for t in range(1, steps + 1):
        target = rng.uniform(-1, 1, (b, n)).astype(dtype)
        target[:, ::4] = v_ref[:, ::4]  # exact ties
        eta = step_size(0.15, 0.95, t)
        ref = signgd_fire_numpy(v_ref, target, eta, inclusive, scale)
        out = signgd_fire_numba(v_jit, target, eta, inclusive, scale)
        assert out.dtype == ref.dtype and np.array_equal(out, ref)
        assert np.array_equal(v_jit, v_ref)


def test_tie_rule():
    v = np.zeros((1, 2))
    out = signgd_fire_numba(v, np.zeros((1, 2)), 0.5, True, np.ones(2))
    assert out.tolist() == [[-0.5, -0.5]], "inclusive: v == target spikes and moves down"
    v = np.zeros((1, 2))
    out = signgd_fire_numba(v, np.zeros((1, 2)), 0.5, False, np.ones(2))
    assert out.tolist() == [[0.5, 0.5]], "strict: v == target does not spike"


def _single_neuron(target: float, eta0: float, gamma: float, steps: int, inclusive=True):
    """Errors v_t - target for t = 0..steps, run through the kernel."""
    v = np.zeros((1, 1))
    errors = [v[0, 0] - target]
    for t in range(1, steps + 1):
        signgd_fire_numba(v, np.array([[target]]), step_size(eta0, gamma, t), inclusive,
                          np.ones(1))
        errors.append(v[0, 0] - target)
    return np.array(errors)


ONE_INPUT = sorted(fn for fn, t in TARGETS.items() if t.n_inputs == 1)
ATTRS = {"slope": 0.07, "min_value": -0.5, "max_value": 1.5, "eps": 1e-12}  # as sgd nodes have


@settings(max_examples=60, deadline=None)
@given(fn=st.sampled_from(ONE_INPUT), x=st.floats(-2, 2), scale=st.floats(0.5, 4),
       gamma=st.floats(0.5, 0.99), eta0=st.floats(0.01, 0.5), inclusive=st.booleans())
def test_error_bound_once_reached(fn, x, scale, gamma, eta0, inclusive):
    """For any target f(x)/scale within reach: |v_t| never exceeds the steps taken so far,
    the target is reached, and from the first t0 with |v_t0 - target| <= eta_t0 on,
    |v_t - target| <= eta_t at every step (gamma >= 1/2)."""
    target = float(target_value(fn, ATTRS, [np.array(x)])) / scale
    r = reach(eta0, gamma)
    assume(abs(target) <= 0.9 * r)
    steps = int(np.ceil(np.log(1e-4) / np.log(gamma))) + 10  # the reach is (almost) used up
    err = _single_neuron(target, eta0, gamma, steps, inclusive)
    etas = np.array([np.inf] + [step_size(eta0, gamma, t) for t in range(1, steps + 1)])
    walked = np.concatenate([[0.0], np.cumsum(etas[1:])])
    slack = 8 * np.finfo(float).eps * (r + abs(target))
    assert np.all(np.abs(err + target) <= walked + slack), "v moved further than the steps"
    inside = 1 + np.flatnonzero(np.abs(err[1:]) <= etas[1:] + slack)  # from t = 1 on
    assert inside.size, "a reachable target was never reached"
    t0 = inside[0]
    assert np.all(np.abs(err[t0:]) <= etas[t0:] + slack)


def test_bound_fails_for_an_unreachable_target():
    """The reach condition matters: a target beyond eta0 / (1 - gamma) is never reached."""
    err = _single_neuron(3.5, 0.15, 0.95, 400)
    assert np.all(np.abs(err[1:]) > 0.4)


def test_bound_needs_gamma_at_least_half():
    """With gamma < 1/2 the error can leave the eta_t band after reaching it: the bound's
    condition is real (a counter-example, found deterministically)."""
    err = _single_neuron(0.05, 1.0, 0.3, 6)
    etas = np.array([step_size(1.0, 0.3, t) for t in range(1, 7)])
    assert np.any(np.abs(err[1:]) > etas)


NETS = {
    "mlp": lambda: small_mlp(),
    "cnn-max": lambda: small_cnn(pool="maxpool2d"),
    "resnet": lambda: small_cnn(residual=True, pool="avgpool2d"),
}


def _data(graph, n, seed):
    return np.random.default_rng(seed).uniform(0, 1, (n,) + graph.input_shape)


@pytest.mark.parametrize("name", NETS)
@pytest.mark.parametrize("options", [dict(), dict(compat=True, scale="layer"),
                                     dict(dtype=np.float32, scale="channel")])
def test_numba_equals_numpy_reference(name, options):
    graph = NETS[name]()
    net = convert_signgd(graph, _data(graph, 16, 9), **options)
    x = _data(graph, 3, 4)
    neurons = net.neuron_nodes()
    runs = [Simulator(net, b).run(x, [5, 30], rasters=neurons[:1], potentials=neurons[-1:])
            for b in ("numpy", "numba")]
    for key in ("readout", "counts", "step_counts", "rasters", "potentials", "saturated"):
        a, b = getattr(runs[0], key), getattr(runs[1], key)
        assert a.keys() == b.keys()
        for k in a:
            assert np.array_equal(a[k], b[k]), (key, k)


@pytest.mark.parametrize("name", NETS)
def test_error_shrinks_geometrically(name):
    graph = NETS[name]()
    x = _data(graph, 6, 2)
    net = convert_signgd(graph, x)
    run = Simulator(net).run(x, [32, 64, 128, 256])
    ref = ann.forward(graph, x)
    err = {t: np.abs(run.readout[t] - ref).max() for t in run.steps}
    # gamma**32 = 0.19: each doubling of T must cut the error by well more than half, until
    # rounding is reached
    floor = 1e-9
    for a, b in ((32, 64), (64, 128), (128, 256)):
        assert err[b] <= max(0.5 * err[a], floor), err
    assert err[256] < 1e-3, err
    assert not any(s.any() for s in run.saturated.values())


def test_decoder_is_the_affine_image_of_the_estimates():
    """The readout is W (scale * v_T) + b exactly up to rounding: x_hat = A(v) + c holds."""
    graph = small_mlp(sizes=(12, 10, 3))
    x = _data(graph, 4, 1)
    net = convert_signgd(graph, x)
    run = Simulator(net).run(x, [7, 40], potentials=["relu0"])
    w, b = graph.node("fc1").params["weight"], graph.node("fc1").params["bias"]
    for t in (7, 40):
        estimate = run.potentials["relu0"][t - 1]
        expect = estimate @ w.T + b
        tol = 64 * np.finfo(float).eps * (np.abs(estimate) @ np.abs(w.T) + np.abs(b))
        assert np.all(np.abs(run.readout[t] - expect) <= tol)


def test_exact_encoder_sees_x_and_gd_encoder_sees_its_gain():
    """One linear layer: exact delivers W x + b from step 1; gd delivers W (g_T x) + b with
    g_T = 1 - prod(1 - eta_k), e.g. 0.661 at 8 steps."""
    graph = small_mlp(sizes=(5, 2))
    x = _data(graph, 2, 0)
    w, b = graph.nodes[0].params["weight"], graph.nodes[0].params["bias"]
    exact = Simulator(convert_signgd(graph, x)).run(x, [1, 8])
    np.testing.assert_allclose(exact.readout[1], x @ w.T + b, rtol=0, atol=1e-13)
    gd = Simulator(convert_signgd(graph, x, encoding="gd")).run(x, [8])
    gain = 1 - np.prod([1 - step_size(0.15, 0.95, t) for t in range(1, 9)])
    assert abs(gain - 0.661) < 1e-3
    np.testing.assert_allclose(gd.readout[8], gain * x @ w.T + b, rtol=0, atol=1e-13)


def test_stalled_neuron_is_reported_and_the_scale_floor_prevents_it():
    """Without a scale floor a barely active neuron of this residual net cannot follow the
    wobble of the layer below: its error stalls and the run says so. The default floor fixes
    it (see proofs/signgd.ipynb, section 3)."""
    graph = NETS["resnet"]()
    x = _data(graph, 6, 2)
    ref = ann.forward(graph, x)
    bare = Simulator(convert_signgd(graph, x, scale_floor=0.0)).run(x, [256, 512])
    assert bare.saturated["relu2"].any()
    assert np.abs(bare.readout[512] - ref).max() > 0.5 * np.abs(bare.readout[256] - ref).max()
    floored = Simulator(convert_signgd(graph, x)).run(x, [512])
    assert not any(s.any() for s in floored.saturated.values())
    assert np.abs(floored.readout[512] - ref).max() < 1e-9


def test_saturation_is_reported():
    graph = small_mlp()
    calm = _data(graph, 8, 0)
    net = convert_signgd(graph, calm)
    run = Simulator(net).run(10 * calm[:2], [50])
    assert any(s.any() for s in run.saturated.values())


def test_maxpool_tree_and_file_round_trip(tmp_path):
    graph = small_cnn(pool="maxpool2d")
    x = _data(graph, 5, 3)
    net = convert_signgd(graph, x)
    ops = [n.op for n in net.graph.nodes]
    assert ops.count("window") == 4 and ops.count("sgd") == 1 + 3
    # no constant is left in the synapses: it lives in x_init and readout_init
    assert not any(np.any(n.params["bias"]) for n in net.graph.nodes if "bias" in n.params)
    save_snn(net, tmp_path / "net.h5")
    again = load_snn(tmp_path / "net.h5")
    assert again.decoder == "estimate" and dict(again.schedule) == dict(net.schedule)
    a = Simulator(net).run(x, [20]).readout[20]
    assert np.array_equal(a, Simulator(again).run(x, [20]).readout[20])


def test_refusals_and_options():
    graph = small_mlp()
    x = _data(graph, 4, 0)
    with pytest.raises(OptionError, match=r"--gamma: expected a number in \(0, 1\)"):
        convert_signgd(graph, x, gamma=1.0)
    with pytest.raises(OptionError, match="--eta0: expected a positive number"):
        convert_signgd(graph, x, eta0=0.0)
    with pytest.raises(OptionError, match="--encoding: expected one of exact, gd"):
        convert_signgd(graph, x, encoding="poisson")
    with pytest.raises(OptionError, match="--scale: expected one of element, channel, layer"):
        convert_signgd(graph, x, scale="tensor")
    with pytest.raises(OptionError, match=r"--scale-floor: expected a number in \[0, 1\]"):
        convert_signgd(graph, x, scale_floor=2.0)


def transformer_like(seed=0, d=6):
    """linear -> LayerNorm -> GELU -> transpose -> linear -> softmax -> mean."""
    rng = np.random.default_rng(seed)
    return make_graph((4, d), [
        dict(name="fc", op="linear", inputs=["input"],
             params=dict(weight=rng.normal(size=(d, d)) / np.sqrt(d),
                         bias=rng.normal(size=d) * 0.1)),
        dict(name="ln", op="layernorm", inputs=["fc"],
             params=dict(weight=rng.uniform(0.5, 1.5, d), bias=rng.normal(size=d) * 0.1)),
        dict(name="g", op="gelu", inputs=["ln"]),
        dict(name="t", op="transpose", inputs=["g"], attrs=dict(perm="1,0")),
        dict(name="fc2", op="linear", inputs=["t"],
             params=dict(weight=rng.normal(size=(3, 4)), bias=np.zeros(3))),
        dict(name="sm", op="softmax", inputs=["fc2"]),
        dict(name="m", op="mean", inputs=["sm"], attrs=dict(axis="channel")),
    ], "m")


def test_layernorm_gelu_softmax_network():
    graph = transformer_like()
    x = np.random.default_rng(1).uniform(0, 1, (20, 4, 6))
    net = convert_signgd(graph, x)
    ops = [n.op for n in net.graph.nodes]
    assert ops.count("sgd") == 5 and ops.count("spread") == 3
    runs = [Simulator(net, b).run(x[:4], [16, 64, 256]) for b in ("numpy", "numba")]
    for t in (16, 64, 256):
        assert np.array_equal(runs[0].readout[t], runs[1].readout[t])
    ref = ann.forward(graph, x[:4])
    err = [np.abs(runs[1].readout[t] - ref).max() for t in (16, 64, 256)]
    assert err[1] < err[0] / 4 and err[2] < 1e-5, err
    assert not any(s.any() for s in runs[1].saturated.values())


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_unfolded_batchnorm_becomes_an_affine_synapse(dtype):
    """A batchnorm on the input cannot fold; signGD turns it into an affine node whose bias
    is exactly 0 after conversion, in float32 too, and the network still converges."""
    rng = np.random.default_rng(0)
    g = make_graph((3,), [
        dict(name="bn", op="batchnorm", inputs=["input"],
             params=dict(gamma=rng.uniform(0.5, 2, 3), beta=rng.normal(size=3),
                         mean=rng.normal(size=3), var=rng.uniform(0.5, 2, 3))),
        dict(name="fc", op="linear", inputs=["bn"],
             params=dict(weight=rng.normal(size=(4, 3)), bias=rng.normal(size=4))),
        dict(name="act", op="gelu", inputs=["fc"]),
        dict(name="out", op="linear", inputs=["act"],
             params=dict(weight=rng.normal(size=(2, 4)), bias=np.zeros(2))),
    ], "out")
    x = rng.uniform(0, 1, (5, 3))
    net = convert_signgd(g, x, dtype=dtype)
    node = net.graph.node("bn")
    assert node.op == "affine" and not np.any(node.params["bias"])
    err = np.abs(Simulator(net).run(x, [300]).readout[300] - ann.forward(g, x)).max()
    assert err < (1e-6 if dtype is np.float64 else 1e-4), err  # eta_300 = 3e-8
