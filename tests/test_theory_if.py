"""The IF kernels against the closed forms of :mod:`refsnn.theory` (proofs/if_subgradient.ipynb).

Two regimes:

* **dyadic inputs** (every value a multiple of ``2**-8`` and small): the float64 kernel's
  arithmetic is then exact, so counts, ties and the recursion must match the exact-arithmetic
  results *exactly*;
* **arbitrary float64 inputs**: the kernel rounds, so each check carries a slack derived from
  the rounding of the kernel (a multiple of ``EPS`` times the magnitudes involved) and the
  recursion is compared up to the first step whose exact margin is within rounding distance
  of a tie.

Float error bound used throughout (reset by subtraction, ``0 <= I <= theta``): the potential
stays in ``[0, theta]``, the subtraction ``u - theta`` of a fired potential ``u in [theta,
2 theta]`` is exact (Sterbenz), so each step adds one rounding ``<= EPS / 2 * |u + I| <= EPS *
theta``; after ``T`` steps the float potential differs from ``u0 + T I - theta N_T`` by at most
``T * EPS * theta``.
"""

from __future__ import annotations

from fractions import Fraction

import numba
import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from refsnn import ann
from refsnn.conversion import convert_if
from refsnn.model import make_graph
from refsnn.neurons.if_ import if_step_numba, if_step_numpy
from refsnn.sim.network import NEURON_FORWARD
from refsnn.sim.simulator import Simulator
from refsnn.theory import (constant_input_count, rate_error_bound, rate_loss,
                           rate_loss_subgradient, subgradient_iterates)

EPS = np.finfo(np.float64).eps
T_MAX = 200
DYADIC = 2.0 ** -8
KERNELS = {"numba": if_step_numba, "numpy": if_step_numpy}
PROPS = settings(deadline=None, max_examples=150,
                 suppress_health_check=[HealthCheck.too_slow])


# --------------------------------------------------------------------------- helpers


@pytest.fixture(autouse=True, scope="module")
def _one_numba_thread():
    """The arrays here are tiny: a parallel region per call costs more than the work, and on
    a busy machine waiting for a second thread costs milliseconds. One thread runs the same
    kernel (results are bit-identical)."""
    old = numba.get_num_threads()
    numba.set_num_threads(1)
    yield
    numba.set_num_threads(old)


def simulate(step, currents, theta, u0, reset_zero=False):
    """Run ``step`` for ``T`` steps.

    ``currents`` (T, B, N), ``theta`` (N,), ``u0`` (B, N). Returns the spikes (T, B, N) bool
    and ``pre`` (T, B, N): the float potential ``u(t-1) + I(t)`` each step compared with
    theta, for error bounds.
    """
    currents = np.asarray(currents, dtype=np.float64)
    u = np.array(u0, dtype=np.float64, copy=True)
    theta = np.ascontiguousarray(theta, dtype=np.float64)
    spikes = np.zeros(currents.shape, bool)
    pre = np.zeros(currents.shape)
    for t in range(currents.shape[0]):
        pre[t] = u + currents[t]
        out = step(u, np.ascontiguousarray(currents[t]), theta, reset_zero)
        spikes[t] = out > 0
        assert np.all((out == 0) | (out == theta)), "events carry theta or nothing"
    return spikes, pre


def strict_if_step(u, current, theta, reset_zero):
    """A WRONG neuron (fires at ``u > theta``), to show the checks below discriminate."""
    u += current
    fired = u > theta
    if reset_zero:
        u[fired] = 0.0
    else:
        u -= np.where(fired, theta, 0.0)
    return np.where(fired, theta, 0.0)


def constant_counts(step, currents, theta, steps=T_MAX, reset_zero=False):
    """Running counts (T, 2, N) of neurons with constant ``currents`` (N,); row 0 starts at
    ``u0 = 0``, row 1 at ``u0 = theta / 2``."""
    currents = np.asarray(currents, dtype=np.float64)
    n = currents.shape[0]
    theta_v = np.full(n, theta)
    u0 = np.stack([np.zeros(n), theta_v / 2])
    drive = np.broadcast_to(currents, (steps, 2, n))
    spikes, _ = simulate(step, drive, theta_v, u0, reset_zero)
    return np.cumsum(spikes, axis=0)


@st.composite
def currents_for(draw, theta, max_size=8):
    """Constant currents in all three regimes, with the tie-prone values over-represented."""
    ratio = st.one_of(
        st.floats(-3.0, 3.0, allow_nan=False),
        st.sampled_from([0.0, 0.5, 1.0, 1 / 3, 2 / 3, 0.1, 0.25, 0.75, -0.5, 1.5, 2.0, 0.999]),
        st.builds(lambda p, q: p / q, st.integers(-12, 12), st.integers(1, 12)),
    )
    values = draw(st.lists(ratio, min_size=1, max_size=max_size))
    out = []
    for r in values:
        v = r * theta
        nudge = draw(st.sampled_from([0, 0, 0, 1, -1]))
        if nudge:
            v = np.nextafter(v, np.inf * nudge)
        out.append(float(v))
    return out


thetas = st.one_of(st.floats(1e-3, 1e3, allow_nan=False),
                   st.sampled_from([1.0, 0.5, 0.3, 0.7, 2.0, 0.1]))


# ------------------------------------------------------------- constant input: bounds


@pytest.mark.parametrize("kernel", sorted(KERNELS))
@PROPS
@given(data=st.data(), theta=thetas)
def test_constant_input_rate_bound(kernel, data, theta):
    """|N_T theta / T - clip(I, 0, theta)| <= theta / T (u0 = 0), theta / (2T) (u0 = theta/2)
    for every T <= 200, up to the kernel's rounding."""
    currents = np.array(data.draw(currents_for(theta)))
    counts = constant_counts(KERNELS[kernel], currents, theta)
    t1 = np.arange(1, T_MAX + 1)
    target = np.clip(currents, 0.0, theta)
    rate = counts * theta / t1[:, None, None]
    bound = np.stack([rate_error_bound(theta, t1, "zero"),
                      rate_error_bound(theta, t1, "half")], axis=1)[..., None]  # (T, 2, 1)
    assert np.array_equal(bound[:, 0, 0], theta / t1)
    assert np.array_equal(bound[:, 1, 0], theta / (2 * t1))
    # Kernel: |E_T| / T <= EPS * theta (module docstring); the test's own arithmetic (N*theta,
    # /T, the subtraction, the bound) adds about 3 roundings of size EPS/2 * (theta + |target|).
    slack = 4 * EPS * (theta + np.abs(target))
    err = np.abs(rate - target)
    worst = np.unravel_index(np.argmax(err - bound - slack), err.shape)
    assert np.all(err <= bound + slack), (worst, err[worst], bound[worst[:2]])
    # With u0 = 0 the rate never overshoots the clipped current.
    assert np.all(rate[:, 0] <= target + slack[None, :])


@PROPS
@given(theta_m=st.integers(1, 1024), cur_m=st.lists(st.integers(-3072, 3072), min_size=1,
                                                    max_size=8))
def test_constant_input_bound_is_exact_on_dyadic_grid(theta_m, cur_m):
    """On the dyadic grid the kernel is exact, so the bounds hold with no slack at all."""
    theta = theta_m * DYADIC
    currents = np.array(cur_m, dtype=np.float64) * DYADIC
    counts = constant_counts(if_step_numba, currents, theta)
    steps = np.arange(1, T_MAX + 1)[:, None]
    # N theta - T clip(I) is a small multiple of 2**-8: computed exactly in float64.
    dev = counts * theta - steps[:, :, None] * np.clip(currents, 0.0, theta)
    assert np.all(np.abs(dev[:, 0]) <= theta)      # |rate - clip| <= theta / T
    assert np.all(2 * np.abs(dev[:, 1]) <= theta)  # |rate - clip| <= theta / (2T)
    assert np.all(dev[:, 0] <= 0)                  # u0 = 0 never overshoots


# ---------------------------------------------------------- constant input: exact count


@pytest.mark.parametrize("kernel", sorted(KERNELS))
@PROPS
@given(theta_m=st.integers(1, 1024),
       cur_m=st.lists(st.one_of(st.integers(-3072, 3072), st.sampled_from([0, 1, 2, 3])),
                      min_size=1, max_size=8),
       theta_mult=st.booleans(), reset=st.sampled_from(["subtract", "zero"]))
def test_constant_input_count_exact_on_dyadic_grid(kernel, theta_m, cur_m, theta_mult, reset):
    """The kernel's count equals constant_input_count at every T (ties included)."""
    theta = theta_m * DYADIC
    # theta_mult: currents are simple fractions of theta (I = theta/2, theta/3*... -> ties).
    scale = theta / 4 if theta_mult else DYADIC
    currents = np.array(cur_m, dtype=np.float64) * scale
    counts = constant_counts(KERNELS[kernel], currents, theta, reset_zero=reset == "zero")
    steps = np.arange(1, T_MAX + 1)[:, None]
    for row, v_init in enumerate(("zero", "half")):
        want = constant_input_count(currents[None, :], theta, steps, v_init=v_init, reset=reset)
        assert np.array_equal(counts[:, row], want), (v_init, reset)


@PROPS
@given(data=st.data(), theta=thetas)
def test_constant_input_count_float_off_only_at_near_ties(data, theta):
    """Arbitrary floats: the kernel count equals the exact count unless (u0 + T I) / theta is
    within the kernel's rounding (T * EPS, module docstring) of an integer; then off by one."""
    currents = np.array(data.draw(currents_for(theta, max_size=4)))
    counts = constant_counts(if_step_numba, currents, theta)
    th = Fraction(theta)
    for row, v_init in enumerate(("zero", "half")):
        u0 = th / 2 if v_init == "half" else Fraction(0)
        for j, cur in enumerate(currents):
            exact = constant_input_count(cur, theta, np.arange(1, T_MAX + 1), v_init=v_init)
            off = np.flatnonzero(counts[:, row, j] != exact)
            event("float count off by one at a near-tie" if off.size else "float count exact")
            for t in off:
                steps = t + 1
                z = (u0 + steps * Fraction(cur)) / th
                assert abs(counts[t, row, j] - exact[t]) == 1
                assert abs(z - round(z)) <= 2 * steps * EPS, (cur, theta, steps, v_init)


def test_float_kernel_differs_from_exact_count_at_a_near_tie():
    """The documented example: ten float additions of 0.1 stay below 1.0."""
    counts = constant_counts(if_step_numba, [0.1], 1.0, steps=10)
    assert counts[-1, 0, 0] == 0
    assert constant_input_count(0.1, 1.0, 10) == 1  # 10 * 0.1000000000000000055... >= 1
    # ... and the rate bound holds only thanks to the EPS slack: exactly, the excess is > 0.
    assert Fraction(0.1) - Fraction(1.0) / 10 > 0


@pytest.mark.parametrize("kernel", sorted(KERNELS))
@settings(deadline=None, max_examples=40)
@given(theta=thetas, steps=st.integers(1, 2000))
def test_zero_input_never_fires(kernel, theta, steps):
    counts = constant_counts(KERNELS[kernel], [0.0, -0.0], theta, steps=steps)
    assert not counts.any()
    assert constant_input_count(0.0, theta, steps) == 0
    assert constant_input_count(0.0, theta, steps, v_init="half") == 0


@pytest.mark.parametrize("v_init", ["zero", "half"])
def test_zero_input_network_never_fires(v_init):
    graph = _mlp(np.random.default_rng(3), zero_bias=True)
    x = np.random.default_rng(4).uniform(0, 1, (8, 6))
    net = convert_if(graph, x, percentile=100, v_init=v_init)
    run = Simulator(net).run(np.zeros_like(x), steps=[300])
    assert all(not c.any() for c in run.counts.values())
    assert np.array_equal(run.readout[300], np.zeros_like(run.readout[300]))


@PROPS
@given(theta_m=st.integers(1, 1024), cur_m=st.lists(st.integers(-3072, 3072), min_size=2,
                                                    max_size=10))
def test_counts_monotone_in_current_dyadic(theta_m, cur_m):
    theta = theta_m * DYADIC
    currents = np.sort(np.array(cur_m, dtype=np.float64) * DYADIC)
    counts = constant_counts(if_step_numba, currents, theta)
    assert np.all(np.diff(counts, axis=2) >= 0)


@PROPS
@given(data=st.data(), theta=thetas)
def test_counts_monotone_in_current_float(data, theta):
    """Arbitrary floats: N(I1) <= N(I2) whenever I2 - I1 > 2 EPS theta (the two kernels'
    potentials can be off by T EPS theta each), and N(I1) <= N(I2) + 1 always."""
    currents = np.sort(np.array(data.draw(currents_for(theta, max_size=10))))
    counts = constant_counts(if_step_numba, currents, theta)
    gap = currents[None, :] - currents[:, None]  # gap[i, j] = I_j - I_i
    for t in range(T_MAX):
        for row in range(2):
            n = counts[t, row]
            diff = n[:, None] - n[None, :]  # N_i - N_j
            assert np.all(diff[gap > 2 * EPS * theta] <= 0)
            assert np.all(diff[np.triu(np.ones_like(gap, bool))] <= 1)


# ----------------------------------------------------------------- the recursion


def _assert_recursion_exact(spikes, pre_u, currents, theta, v_init):
    """Neuron vs recursion in exact arithmetic; ``spikes`` (T, N) from the kernel."""
    it = subgradient_iterates(currents, theta, v_init=v_init, exact=True)
    assert np.array_equal(it.spikes.astype(bool), spikes)
    steps = currents.shape[0]
    th = Fraction(theta)
    u0 = th / 2 if v_init == "half" else Fraction(0)
    n_run = np.concatenate([np.zeros((1, spikes.shape[1]), np.int64),
                            np.cumsum(spikes, axis=0)])
    for j in range(spikes.shape[1]):
        s_sum = Fraction(0)
        assert it.f_tilde[0, j] == 1 - u0 / th
        for t in range(steps):  # step t + 1
            s_sum += Fraction(currents[t, j])
            # potential before the comparison = u0 + S(t+1) - theta N(t) (exact here)
            assert Fraction(pre_u[t, j]) == u0 + s_sum - th * int(n_run[t, j])
            assert it.x_hat[t, j] == s_sum / (th * (t + 1))
            # f_tilde from the neuron's counts, by its definition
            assert it.f_tilde[t + 1, j] == (int(n_run[t + 1, j]) + 1 - u0 / th) / (t + 2)
            # s(t+1) = H(x_hat(t+1) - f_tilde(t)), with the tie (margin 0) firing
            margin = it.x_hat[t, j] - it.f_tilde[t, j]
            assert spikes[t, j] == (margin >= 0)
            # subgradient step with alpha_t = 1/(t+2)
            grad = it.f_tilde[t, j] - (1 if it.x_hat[t, j] - it.f_tilde[t, j] >= 0 else 0)
            assert it.f_tilde[t + 1, j] == it.f_tilde[t, j] - grad / (t + 2)


@pytest.mark.parametrize("kernel", sorted(KERNELS))
@PROPS
@given(theta_m=st.integers(1, 256), v_init=st.sampled_from(["zero", "half"]),
       seq=st.lists(st.lists(st.integers(-512, 512), min_size=3, max_size=3), min_size=1,
                    max_size=60),
       tie_scale=st.booleans())
def test_recursion_identity_exact(kernel, theta_m, v_init, seq, tie_scale):
    """Random dyadic input sequences (3 neurons): kernel spikes == recursion, step by step."""
    theta = theta_m * DYADIC
    scale = theta / 8 if tie_scale else DYADIC  # multiples of theta/8 make many exact ties
    currents = np.array(seq, dtype=np.float64) * scale
    u0 = np.full((1, 3), theta / 2 if v_init == "half" else 0.0)
    spikes, pre = simulate(KERNELS[kernel], currents[:, None, :], np.full(3, theta), u0)
    _assert_recursion_exact(spikes[:, 0], pre[:, 0], currents, theta, v_init)


def test_recursion_tie_fires():
    """I = theta/2 from u0 = 0: at step 2 the margin is exactly 0 and the neuron fires."""
    theta = 0.75
    currents = np.full((4, 1), theta / 2)
    spikes, pre = simulate(if_step_numba, currents[:, None, :], np.array([theta]),
                           np.zeros((1, 1)))
    it = subgradient_iterates(currents, theta, exact=True)
    assert it.x_hat[1, 0] - it.f_tilde[1, 0] == 0
    assert spikes[:, 0, 0].tolist() == [False, True, False, True]
    _assert_recursion_exact(spikes[:, 0], pre[:, 0], currents, theta, "zero")


@PROPS
@given(theta=thetas, v_init=st.sampled_from(["zero", "half"]),
       seq=st.lists(st.lists(st.floats(-2.0, 2.0, allow_nan=False), min_size=4, max_size=4),
                    min_size=1, max_size=80))
def test_recursion_identity_float(theta, v_init, seq):
    """Arbitrary float sequences: the kernel and the float recursion agree at every step
    before the first step whose exact margin is within the rounding tolerance of a tie."""
    currents = np.array(seq) * theta
    steps, n = currents.shape
    u0 = np.full((1, n), theta / 2 if v_init == "half" else 0.0)
    spikes, pre = simulate(if_step_numba, currents[:, None, :], np.full(n, theta), u0)
    spikes, pre = spikes[:, 0], pre[:, 0]
    flt = subgradient_iterates(currents, theta, v_init=v_init)
    exact = subgradient_iterates(currents, theta, v_init=v_init, exact=True)
    t1 = np.arange(1, steps + 1)[:, None]
    # Kernel potential error before step t's comparison, in x_hat units: one rounding
    # EPS/2 |u + I| per charge and EPS/2 |u + I - theta| per reset (factor 2 margin -> EPS).
    kernel_err = EPS * np.cumsum(np.abs(pre) + spikes * np.abs(pre - theta), axis=0)
    # Float recursion: cumsum rounding EPS/2 sum|S_k|, two roundings on x_hat, and
    # <= 1.5 EPS per update of f_tilde (|f_tilde| <= 1; the update contracts old errors).
    s_abs = np.cumsum(np.abs(np.cumsum(currents, axis=0)), axis=0)
    rec_err = EPS * s_abs / (theta * t1) + 2 * EPS * np.abs(flt.x_hat) + 2 * EPS * t1
    tol = 2 * (kernel_err / (theta * t1) + rec_err)
    margin = np.array([[float(m) for m in row] for row in exact.x_hat - exact.f_tilde[:-1]])
    near = np.abs(margin) <= tol
    for j in range(n):
        first = np.flatnonzero(near[:, j])
        stop = first[0] if first.size else steps
        event("recursion compared over the whole run" if stop == steps
              else "recursion compared up to a near-tie")
        assert np.array_equal(spikes[:stop, j], flt.spikes[:stop, j].astype(bool)), j
        assert np.array_equal(spikes[:stop, j], exact.spikes[:stop, j].astype(bool)), j
        assert np.allclose(flt.f_tilde[:stop + 1, j],
                           [float(v) for v in exact.f_tilde[:stop + 1, j]],
                           rtol=0, atol=2 * EPS * (stop + 1))


def test_recursion_identity_random_normal_whole_run():
    """Deterministic, generic inputs: no near-ties, so the float recursion matches the
    kernel over the whole run for every neuron (not only up to a tie)."""
    rng = np.random.default_rng(0)
    steps, n = 400, 64
    currents = rng.normal(0.3, 1.0, (steps, n))
    theta = rng.uniform(0.2, 2.0, n)
    for v_init, u0 in (("zero", 0.0), ("half", 0.5)):
        spikes, _ = simulate(if_step_numba, currents[:, None, :], theta, (u0 * theta)[None])
        it = subgradient_iterates(currents, theta, v_init=v_init)
        assert np.array_equal(spikes[:, 0], it.spikes.astype(bool))
        n_run = np.concatenate([np.zeros((1, n)), np.cumsum(spikes[:, 0], axis=0)])
        want = (n_run + 1 - u0) / np.arange(1, steps + 2)[:, None]
        assert np.allclose(it.f_tilde, want, rtol=0, atol=8 * EPS * steps)
        assert spikes.any() and not spikes.all()


def test_rate_loss_minimiser_is_clip():
    xs = np.linspace(-1.5, 2.5, 41)
    ys = np.linspace(-1.0, 2.0, 30001)
    loss = rate_loss(ys[None, :], xs[:, None])
    assert np.allclose(ys[np.argmin(loss, axis=1)], np.clip(xs, 0, 1), atol=1e-4)
    assert rate_loss_subgradient(0.5, 0.5) == -0.5  # H(0) = 1 at the kink
    assert rate_loss_subgradient(0.5, 0.25) == 0.5


# ------------------------------------------------- the checks discriminate wrong neurons


def test_strict_threshold_violates_exact_count():
    """A neuron firing at u > theta disagrees with the count formula at a tie (I = theta/2,
    T = 2), and with the recursion (whose H(0) = 1)."""
    theta = 1.0
    right = constant_counts(if_step_numba, [theta / 2], theta, steps=4)
    wrong = constant_counts(strict_if_step, [theta / 2], theta, steps=4)
    want = constant_input_count(theta / 2, theta, np.arange(1, 5))
    assert np.array_equal(right[:, 0, 0], want)
    assert not np.array_equal(wrong[:, 0, 0], want)
    assert wrong[1, 0, 0] == 0 and want[1] == 1
    spikes, pre = simulate(strict_if_step, np.full((4, 1, 1), theta / 2), np.array([theta]),
                           np.zeros((1, 1)))
    with pytest.raises(AssertionError):
        _assert_recursion_exact(spikes[:, 0], pre[:, 0], np.full((4, 1), theta / 2), theta,
                                "zero")


def test_reset_to_zero_violates_rate_bound():
    """Reset to zero loses the remainder: I = 0.6 theta fires every 2nd step, rate 0.5 theta,
    so the theta/T bound fails from T = 11 on."""
    theta = 1.0
    counts = constant_counts(if_step_numba, [0.6], theta, reset_zero=True)
    steps = np.arange(1, T_MAX + 1)
    err = np.abs(counts[:, 0, 0] * theta / steps - 0.6)
    assert np.any(err > rate_error_bound(theta, steps) + 4 * EPS)
    assert np.array_equal(counts[:, 0, 0],
                          constant_input_count(0.6, theta, steps, reset="zero"))


def test_off_by_one_recursion_disagrees_with_neuron():
    """Comparing x_hat(t) (not x_hat(t+1)) with f_tilde(t) gives a different spike train."""
    rng = np.random.default_rng(1)
    currents = rng.uniform(-0.5, 1.5, (50, 1))
    spikes, _ = simulate(if_step_numba, currents[:, None, :], np.array([1.0]), np.zeros((1, 1)))
    it = subgradient_iterates(currents, 1.0)
    assert np.array_equal(spikes[:, 0], it.spikes.astype(bool))
    shifted = np.concatenate([[False], it.x_hat[:-1, 0] - it.f_tilde[1:-1, 0] >= 0])
    assert not np.array_equal(spikes[:, 0, 0], shifted)


# ------------------------------------------------------------ 1/T decay on a network


def _mlp(rng, n_in=6, hidden=16, n_out=4, zero_bias=False):
    w1 = rng.normal(0, 1 / np.sqrt(n_in), (hidden, n_in))
    w2 = rng.normal(0, 1 / np.sqrt(hidden), (n_out, hidden))
    b1 = np.zeros(hidden) if zero_bias else rng.normal(0, 0.1, hidden)
    b2 = np.zeros(n_out) if zero_bias else rng.normal(0, 0.1, n_out)
    nodes = [dict(name="fc1", op="linear", inputs=["input"], params=dict(weight=w1, bias=b1)),
             dict(name="relu1", op="relu", inputs=["fc1"]),
             dict(name="fc2", op="linear", inputs=["relu1"], params=dict(weight=w2, bias=b2))]
    return make_graph((n_in,), nodes, "fc2")


@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize("v_init", ["zero", "half"])
def test_network_error_decays_as_one_over_t(backend, v_init):
    """Hidden IF neurons get a constant current I_j, so |rate_j - clip(I_j)| <= b(theta, T)
    and the readout error of output i is <= sum_j |W2_ij| b: T * error <= C with
    C = max_i sum_j |W2_ij| theta (v_init zero) or half of it (v_init half)."""
    rng = np.random.default_rng(2024)
    graph = _mlp(rng)
    x = rng.uniform(0, 1, (8, 6))
    net = convert_if(graph, x, percentile=100, v_init=v_init)
    limit = ann.forward(net.graph, x, forward_ops=NEURON_FORWARD)
    assert np.allclose(limit, ann.forward(graph, x), rtol=0, atol=1e-12)  # nothing clips
    steps = [32, 128, 512]
    run = Simulator(net, backend=backend).run(x, steps=steps)
    theta = net.graph.node("relu1").params["threshold"]
    w2 = np.abs(net.graph.node("fc2").params["weight"])
    const = np.max(w2 @ theta) * (0.5 if v_init == "half" else 1.0)
    mag = np.max(w2 @ theta) + np.max(np.abs(limit))
    errors = {}
    for t in steps:
        errors[t] = np.max(np.abs(run.readout[t] - limit))
        # float slack: T readout additions and the hidden neurons' T-step rounding, each
        # <= a few EPS times the magnitudes; T * error therefore gets T * T * EPS * mag.
        assert 0 < t * errors[t] <= const + 4 * t * t * EPS * mag, (t, errors[t], const)
    assert errors[512] < errors[32] / 4
