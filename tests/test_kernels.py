"""Every Numba kernel gives exactly (bit for bit) what its NumPy twin gives, on 1 and 2 threads,
and the NumPy twins agree with the plain ANN operators to within rounding."""

from __future__ import annotations

import os
import subprocess
import sys

import llvmlite.binding as llvm
import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refsnn.neurons.if_ import if_block_numba, if_block_numpy, if_step_numba, if_step_numpy
from refsnn.sim.counting import (count_block_numba, count_block_numpy, count_spikes_numba,
                                 count_spikes_numpy)
from refsnn.synapses import conv as conv_module
from refsnn.synapses.conv import (CHANNEL_BLOCK, WIDE_BLOCK, avgpool_numba, avgpool_numpy,
                                  channel_block, conv_numba, conv_numpy, out_size)
from refsnn.synapses.events import (count_events_numba, count_events_numpy, events_numba,
                                    events_numpy)
from refsnn.synapses.linear import _BLOCK, linear_numba, linear_numpy
from refsnn.synapses.maxpool import maxpool_spikes_numba, maxpool_spikes_numpy
from refsnn.synapses.weights import Weights

THREADS = sorted({1, min(2, numba.config.NUMBA_NUM_THREADS)})
DTYPES = [np.float64, np.float32]


@pytest.fixture(autouse=True)
def _restore_threads():
    before = numba.get_num_threads()
    yield
    numba.set_num_threads(before)


def sparse(rng, shape, density, dtype, values="normal"):
    """Random events: ``density`` of the entries non-zero."""
    mask = rng.random(shape) < density
    vals = rng.normal(size=shape) if values == "normal" else np.full(shape, values)
    return np.where(mask, vals, 0.0).astype(dtype)


def same(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape
    assert np.array_equal(a, b), f"max difference {np.max(np.abs(a - b))}"


seeds = st.integers(0, 2**32 - 1)
densities = st.sampled_from([0.0, 0.05, 0.3, 1.0])


@settings(max_examples=30, deadline=None)
@given(seed=seeds, density=densities, b=st.integers(1, 4), n_in=st.integers(1, 70),
       n_out=st.integers(1, 150), dtype=st.sampled_from(DTYPES), threads=st.sampled_from(THREADS))
def test_linear(seed, density, b, n_in, n_out, dtype, threads):
    numba.set_num_threads(threads)
    rng = np.random.default_rng(seed)
    x = sparse(rng, (b, n_in), density, dtype)
    w_t = rng.normal(size=(n_in, n_out)).astype(dtype)
    bias = rng.normal(size=n_out).astype(dtype)
    ref = linear_numpy(x, w_t, bias)
    same(linear_numba(x, w_t, bias), ref)
    tol = 8 * np.finfo(dtype).eps * (np.abs(x) @ np.abs(w_t) + np.abs(bias))
    assert np.all(np.abs(ref - (x.astype(np.float64) @ w_t + bias)) <= tol)


@settings(max_examples=10, deadline=None)
@given(seed=seeds, density=densities, b=st.integers(1, 5), n_in=st.integers(1, 40),
       n_out=st.sampled_from([_BLOCK - 1, _BLOCK, _BLOCK + 1, 2 * _BLOCK + 3]),
       dtype=st.sampled_from(DTYPES))
def test_linear_blocks(seed, density, b, n_in, n_out, dtype):
    """Widths on both sides of the output block (one job per sample and block): the twin's
    bits on 1 and 2 threads. A last block that dropped or repeated an output, or a bias added
    to the wrong block, would fail."""
    rng = np.random.default_rng(seed)
    x = sparse(rng, (b, n_in), density, dtype)
    w_t = rng.normal(size=(n_in, n_out)).astype(dtype)
    bias = rng.normal(size=n_out).astype(dtype)
    ref = linear_numpy(x, w_t, bias)
    for threads in THREADS:
        numba.set_num_threads(threads)
        same(linear_numba(x, w_t, bias), ref)


@st.composite
def conv_cases(draw):
    groups = draw(st.sampled_from([1, 2, 3]))
    cg, og = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    ph, pw = draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    h = draw(st.integers(max(1, kh - 2 * ph), 9))
    w = draw(st.integers(max(1, kw - 2 * pw), 9))
    return groups, cg, og, (kh, kw), (sh, sw), (ph, pw), h, w


def naive_conv(x, w, bias, stride, padding, groups):
    """Conv by its definition, one output at a time (float64)."""
    B, C, H, W = x.shape
    O, cg, kh, kw = w.shape
    ho, wo = out_size(H, kh, stride[0], padding[0]), out_size(W, kw, stride[1], padding[1])
    out = np.zeros((B, O, ho, wo))
    for o in range(O):
        g = o // (O // groups)
        for y in range(ho):
            for x_ in range(wo):
                for c in range(cg):
                    for ky in range(kh):
                        for kx in range(kw):
                            iy = y * stride[0] + ky - padding[0]
                            ix = x_ * stride[1] + kx - padding[1]
                            if 0 <= iy < H and 0 <= ix < W:
                                out[:, o, y, x_] += (x[:, g * cg + c, iy, ix]
                                                     * w[o, c, ky, kx])
                out[:, o, y, x_] += bias[o]
    return out


def conv_arrays(case, seed, density, b, dtype):
    """Input, weight and bias of a ``conv_cases`` case, with ``b`` samples."""
    groups, cg, og, kernel, _, _, h, w = case
    rng = np.random.default_rng(seed)
    x = sparse(rng, (b, groups * cg, h, w), density, dtype)
    wt = rng.normal(size=(groups * og, cg) + kernel).astype(dtype)
    bias = rng.normal(size=groups * og).astype(dtype)
    return x, wt, bias


@settings(max_examples=30, deadline=None)
@given(case=conv_cases(), seed=seeds, density=densities, b=st.integers(1, 3),
       dtype=st.sampled_from(DTYPES), threads=st.sampled_from(THREADS))
def test_conv(case, seed, density, b, dtype, threads):
    numba.set_num_threads(threads)
    groups, _, _, _, stride, padding, _, _ = case
    x, wt, bias = conv_arrays(case, seed, density, b, dtype)
    ref = conv_numpy(x, wt, bias, stride, padding, groups)
    same(conv_numba(x, wt, bias, stride, padding, groups), ref)
    exact = naive_conv(x.astype(np.float64), wt, bias, stride, padding, groups)
    scale = naive_conv(np.abs(x).astype(np.float64), np.abs(wt), np.abs(bias), stride, padding,
                       groups)
    assert np.all(np.abs(ref - exact) <= 16 * np.finfo(dtype).eps * scale)


@settings(max_examples=8, deadline=None)
@given(groups=st.sampled_from([1, 2]), og=st.integers(CHANNEL_BLOCK - 1, 2 * CHANNEL_BLOCK + 3),
       cg=st.integers(1, 3), stride=st.sampled_from([(1, 1), (2, 1), (2, 2)]), seed=seeds,
       density=densities, b=st.integers(1, 2), dtype=st.sampled_from(DTYPES))
def test_conv_channel_blocks(groups, og, cg, stride, seed, density, b, dtype):
    """Many output channels per group, so the kernel's channel blocks split a group, end at
    a group's edge and leave a partial last block: still the twin's bits, on 1 and 2 threads.
    A block bound that crossed into the next group, or a block that skipped its first event
    or added the bias before the events, would change the result."""
    rng = np.random.default_rng(seed)
    x = sparse(rng, (b, groups * cg, 7, 6), density, dtype)
    wt = rng.normal(size=(groups * og, cg, 3, 3)).astype(dtype)
    bias = rng.normal(size=groups * og).astype(dtype)
    ref = conv_numpy(x, wt, bias, stride, (1, 1), groups)
    for threads in THREADS:
        numba.set_num_threads(threads)
        same(conv_numba(x, wt, bias, stride, (1, 1), groups), ref)


@settings(max_examples=10, deadline=None)
@given(groups=st.sampled_from([1, 2]),
       og=st.sampled_from([CHANNEL_BLOCK + 1, WIDE_BLOCK - 1, WIDE_BLOCK, WIDE_BLOCK + 3,
                           2 * WIDE_BLOCK + CHANNEL_BLOCK]),
       cg=st.integers(1, 3), stride=st.sampled_from([(1, 1), (2, 1), (2, 2)]), seed=seeds,
       density=densities, b=st.integers(1, 2), dtype=st.sampled_from(DTYPES),
       vector_bytes=st.sampled_from([32, 64]))
def test_conv_wide_channel_blocks(groups, og, cg, stride, seed, density, b, dtype,
                                  vector_bytes):
    """The event-driven kernel's channel blocks as chosen for either vector width (WIDE_BLOCK
    for float32 groups of more than CHANNEL_BLOCK channels at 512 bits; the kernel runs on
    any CPU): blocks of both sizes, a partial last one, ending at a group's edge: still the
    twin's bits, on 1 and 2 threads."""
    rng = np.random.default_rng(seed)
    x = sparse(rng, (b, groups * cg, 7, 6), density, dtype)
    wt = rng.normal(size=(groups * og, cg, 3, 3)).astype(dtype)
    bias = rng.normal(size=groups * og).astype(dtype)
    ref = conv_numpy(x, wt, bias, stride, (1, 1), groups)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(conv_module, "VECTOR_BYTES", vector_bytes)
        for threads in THREADS:
            numba.set_num_threads(threads)
            same(conv_numba(x, _event_driven(wt), bias, stride, (1, 1), groups), ref)


def test_channel_block_choice(monkeypatch):
    """WIDE_BLOCK only for float32 groups wider than CHANNEL_BLOCK on 512-bit vectors; AVX2
    builds and float64 keep the block they were measured with."""
    monkeypatch.setattr(conv_module, "VECTOR_BYTES", 64)
    assert channel_block(CHANNEL_BLOCK + 1, np.float32) == WIDE_BLOCK
    assert channel_block(CHANNEL_BLOCK, np.float32) == CHANNEL_BLOCK
    assert channel_block(4 * CHANNEL_BLOCK, np.float64) == CHANNEL_BLOCK
    monkeypatch.setattr(conv_module, "VECTOR_BYTES", 32)
    assert channel_block(4 * CHANNEL_BLOCK, np.float32) == CHANNEL_BLOCK


@settings(max_examples=30, deadline=None)
@given(case=conv_cases(), seed=seeds, density=densities, b=st.integers(1, 3),
       strip_bytes=st.sampled_from([1, 40, 200]), dtype=st.sampled_from(DTYPES))
def test_conv_strips(case, seed, density, b, strip_bytes, dtype):
    """Jobs own strips of output rows (``STRIP_BYTES``); with strips of one or a few rows, any
    stride, padding and kernel height, each output still gets every event that reaches it,
    once, in order: the twin's bits, on 1 and 2 threads. A strip that missed an input row at
    its edge, or took one twice, would fail."""
    groups, _, _, _, stride, padding, _, _ = case
    x, wt, bias = conv_arrays(case, seed, density, b, dtype)
    ref = conv_numpy(x, wt, bias, stride, padding, groups)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(conv_module, "STRIP_BYTES", strip_bytes)
        for threads in THREADS:
            numba.set_num_threads(threads)
            same(conv_numba(x, _event_driven(wt), bias, stride, padding, groups), ref)


def _event_driven(w):
    """Prepared weights the density choice never runs densely (so dense input still tests
    the event-driven kernel)."""
    weights = Weights(w)
    weights.finite = False
    return weights


@settings(max_examples=25, deadline=None)
@given(case=conv_cases(), seed=seeds, density=densities, dtype=st.sampled_from(DTYPES),
       threads=st.sampled_from(THREADS))
def test_avgpool(case, seed, density, dtype, threads):
    numba.set_num_threads(threads)
    _, _, _, kernel, stride, padding, h, w = case
    rng = np.random.default_rng(seed)
    x = sparse(rng, (2, 3, h, w), density, dtype)
    ref = avgpool_numpy(x, kernel, stride, padding)
    same(avgpool_numba(x, kernel, stride, padding), ref)
    ones = np.ones((3, 1) + kernel)
    exact = naive_conv(x.astype(np.float64), ones, np.zeros(3), stride, padding, 3) / np.prod(kernel)
    scale = naive_conv(np.abs(x).astype(np.float64), ones, np.zeros(3), stride, padding, 3)
    assert np.all(np.abs(ref - exact) <= 16 * np.finfo(dtype).eps * scale)


@pytest.mark.parametrize("kernel, stride, shape", [
    ((2, 2), (2, 2), (3, 4, 8, 8)), ((2, 2), (2, 2), (2, 3, 7, 5)), ((3, 3), (1, 1), (2, 3, 6, 7)),
    ((3, 2), (2, 3), (2, 2, 9, 8)), ((1, 1), (1, 1), (1, 2, 3, 3))])
@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_avgpool_unpadded_rows(kernel, stride, shape, threads, dtype):
    """Pooling without padding takes the row kernel (2x2 at stride 2: the unrolled one); the
    twin's bits, on 1 and 2 threads, odd sizes (windows that leave inputs over) included, and
    from a non-contiguous input."""
    numba.set_num_threads(threads)
    rng = np.random.default_rng(sum(shape) + threads)
    x = sparse(rng, shape, 0.5, dtype) * rng.uniform(0.5, 2, shape).astype(dtype)
    same(avgpool_numba(x, kernel, stride, (0, 0)), avgpool_numpy(x, kernel, stride, (0, 0)))
    xt = np.ascontiguousarray(np.swapaxes(x, 2, 3)).swapaxes(2, 3)  # same values, strided
    same(avgpool_numba(xt, kernel, stride, (0, 0)), avgpool_numpy(x, kernel, stride, (0, 0)))


@settings(max_examples=25, deadline=None)
@given(case=conv_cases(), seed=seeds, steps=st.integers(1, 12), dtype=st.sampled_from(DTYPES),
       threads=st.sampled_from(THREADS))
def test_maxpool_spikes(case, seed, steps, dtype, threads):
    """Kernel equals twin, and after every step the output has emitted exactly the running
    max of its window's input counts."""
    numba.set_num_threads(threads)
    _, _, _, kernel, stride, padding, h, w = case
    rng = np.random.default_rng(seed)
    theta = rng.uniform(0.5, 2, 3).astype(dtype)
    shape = (2, 3, h, w)
    ho, wo = out_size(h, kernel[0], stride[0], padding[0]), out_size(w, kernel[1], stride[1],
                                                                       padding[1])
    states = [[np.zeros(shape, np.int64), np.zeros((2, 3, ho, wo), np.int64)] for _ in range(2)]
    emitted = np.zeros((2, 3, ho, wo))
    for _ in range(steps):
        spikes = np.where(rng.random(shape) < 0.4, theta[None, :, None, None], 0).astype(dtype)
        ref = maxpool_spikes_numpy(spikes, *states[0], theta, kernel, stride, padding)
        same(maxpool_spikes_numba(spikes, *states[1], theta, kernel, stride, padding), ref)
        same(states[0][0], states[1][0])
        emitted += ref / theta[None, :, None, None]
        padded = np.pad(states[0][0], ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2),
                        constant_values=-1)
        for y in range(ho):
            for x in range(wo):
                window = padded[:, :, y * stride[0]:y * stride[0] + kernel[0],
                                x * stride[1]:x * stride[1] + kernel[1]]
                assert np.array_equal(emitted[:, :, y, x], window.max(axis=(2, 3)))


@settings(max_examples=40, deadline=None)
@given(seed=seeds, b=st.integers(1, 4), n=st.integers(1, 50), steps=st.integers(1, 20),
       reset_zero=st.booleans(), dtype=st.sampled_from(DTYPES), threads=st.sampled_from(THREADS))
def test_if_step(seed, b, n, steps, reset_zero, dtype, threads):
    numba.set_num_threads(threads)
    rng = np.random.default_rng(seed)
    theta = rng.uniform(0.1, 2, n).astype(dtype)
    u_ref = rng.uniform(0, 1, (b, n)).astype(dtype) * theta
    u_jit = u_ref.copy()
    for _ in range(steps):
        current = rng.normal(0, 1, (b, n)).astype(dtype)
        # exact ties: some potentials land exactly on the threshold, which must fire
        current[:, ::3] = (theta - u_ref)[:, ::3]
        ref = if_step_numpy(u_ref, current, theta, reset_zero)
        same(if_step_numba(u_jit, current, theta, reset_zero), ref)
        same(u_jit, u_ref)
        assert np.all((ref == 0) | (ref == theta))


@settings(max_examples=30, deadline=None)
@given(seed=seeds, b=st.integers(1, 4), n=st.integers(1, 50), k=st.integers(1, 9),
       reset_zero=st.booleans(), dtype=st.sampled_from(DTYPES), threads=st.sampled_from(THREADS))
def test_if_block(seed, b, n, k, reset_zero, dtype, threads):
    """K steps in one call equal K calls of the reference step, events and potentials."""
    numba.set_num_threads(threads)
    rng = np.random.default_rng(seed)
    theta = rng.uniform(0.1, 2, n).astype(dtype)
    u_ref = rng.uniform(0, 1, (b, n)).astype(dtype) * theta
    u_jit = u_ref.copy()
    currents = rng.normal(0, 1, (k, b, n)).astype(dtype)
    currents[0, :, ::3] = (theta - u_ref)[:, ::3]  # exact ties at the first step
    ref = if_block_numpy(u_ref, currents, theta, reset_zero)
    same(if_block_numba(u_jit, currents, theta, reset_zero), ref)
    same(u_jit, u_ref)


def test_tie_fires():
    """A potential exactly at the threshold fires (the inclusive rule), and one just below not."""
    theta = np.array([1.0, 1.0])
    u = np.zeros((1, 2))
    out = if_step_numba(u, np.array([[1.0, np.nextafter(1.0, 0)]]), theta, False)
    assert out.tolist() == [[1.0, 0.0]]
    assert u.tolist() == [[0.0, np.nextafter(1.0, 0)]]


@settings(max_examples=30, deadline=None)
@given(seed=seeds, b=st.integers(1, 4), n=st.integers(1, 40), density=densities)
def test_events(seed, b, n, density):
    x = sparse(np.random.default_rng(seed), (b, n), density, np.float64)
    idx = np.empty((b, n), np.int64)
    count = np.empty(b, np.int64)
    events_numba(x, idx, count)
    for row, ref in enumerate(events_numpy(x)):
        assert np.array_equal(idx[row, :count[row]], ref)


@settings(max_examples=30, deadline=None)
@given(seed=seeds, density=densities, shape=st.sampled_from([(1, 1), (3, 40), (2, 3, 4, 5)]),
       dtype=st.sampled_from(DTYPES))
def test_count_events(seed, density, shape, dtype):
    """The numba synapses' event count, with the zeros and non-finite values that
    ``np.count_nonzero`` (the twin) counts its own way: -0.0 is zero, NaN and inf are not."""
    rng = np.random.default_rng(seed)
    x = sparse(rng, shape, density, dtype)
    special = rng.random(shape) < 0.1
    x[special] = rng.choice(np.array([-0.0, np.nan, np.inf, -np.inf], dtype), special.sum())
    assert count_events_numba(x) == count_events_numpy(x)
    assert count_events_numba(np.swapaxes(x, 0, -1)) == count_events_numpy(x)  # not contiguous


@settings(max_examples=25, deadline=None)
@given(seed=seeds, density=densities, b=st.integers(1, 5),
       shape=st.sampled_from([(7,), (3, 4, 5)]), sign=st.sampled_from([1, -1]), dtype=st.sampled_from(DTYPES),
       threads=st.sampled_from(THREADS))
def test_count_spikes(seed, density, b, shape, sign, dtype, threads):
    """The per-step spike count of the simulator: the twin's counts and total, and the
    definition (a spike where the value has the node's sign; zeros of either sign and the
    opposite sign are not spikes)."""
    numba.set_num_threads(threads)
    rng = np.random.default_rng(seed)
    value = sparse(rng, (b,) + shape, density, dtype)
    value[rng.random(value.shape) < 0.2] = -0.0
    before = rng.integers(0, 9, size=value.shape)
    counts_ref, counts = before.copy(), before.copy()
    total_ref = count_spikes_numpy(value, sign, counts_ref)
    assert count_spikes_numba(value, sign, counts) == total_ref
    same(counts, counts_ref)
    spiked = value * sign > 0
    same(counts_ref, before + spiked)
    assert total_ref == int(spiked.sum())


@settings(max_examples=25, deadline=None)
@given(seed=seeds, density=densities, k=st.integers(1, 6), b=st.integers(1, 4),
       shape=st.sampled_from([(7,), (3, 4, 5)]), sign=st.sampled_from([1, -1]),
       dtype=st.sampled_from(DTYPES), threads=st.sampled_from(THREADS))
def test_count_block(seed, density, k, b, shape, sign, dtype, threads):
    """K steps of counts in one call: each step's total and the counts of the K reference steps."""
    numba.set_num_threads(threads)
    rng = np.random.default_rng(seed)
    values = sparse(rng, (k, b) + shape, density, dtype)
    before = rng.integers(0, 9, size=(b,) + shape)
    counts_ref, counts = before.copy(), before.copy()
    totals = count_block_numpy(values, sign, counts_ref)
    same(count_block_numba(values, sign, counts), totals)
    same(counts, counts_ref)
    same(totals, np.array([int((v * sign > 0).sum()) for v in values]))


_WIDTH_PROBE = ("import os, refsnn.jit as j; "
                "print(os.environ.get('NUMBA_CPU_FEATURES', '(unset)')); print(j.VECTOR_BYTES)")


def _width_probe(**env):
    clean = {k: v for k, v in os.environ.items()
             if k not in ("NUMBA_CPU_FEATURES", "NUMBA_CPU_NAME")}
    done = subprocess.run([sys.executable, "-c", _WIDTH_PROBE], env={**clean, **env},
                          capture_output=True, text=True, timeout=120, check=True)
    features, width = done.stdout.split()
    return features, int(width)


def test_vector_width_policy():
    """refsnn.jit allows 512-bit vectors exactly on AVX-512 CPUs, and leaves a user's own
    NUMBA_CPU_FEATURES alone (the kernels above then run at the width they get: the kernel
    tests check the bits on AVX-512 machines at 512 bits and on AVX2 ones at 256)."""
    host = llvm.get_host_cpu_features().flatten()
    features, width = _width_probe()
    if "+avx512f" in host.split(","):
        assert features == host + ",-prefer-256-bit" and width == 64
        # a child process inheriting the parent's choice keeps it, and knows its width
        assert _width_probe(NUMBA_CPU_FEATURES=features) == (features, 64)
    else:
        assert features == "(unset)" and width == 32
    assert _width_probe(NUMBA_CPU_FEATURES="+sse2") == ("+sse2", 32)
