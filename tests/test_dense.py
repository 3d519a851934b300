"""The dense exact kernels give the event-driven references' bits, and the numba kernels pick
them by event density only where that cannot change a result (``refsnn.synapses.dense``)."""

from __future__ import annotations

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refsnn.synapses import conv as conv_module
from refsnn.synapses import dense as dense_module
from refsnn.synapses import linear as linear_module
from refsnn.synapses.conv import conv_numba, conv_numpy
from refsnn.synapses.dense import (DENSE_FROM, LINEAR_ROWS, NARROW_OUT, NARROW_TILE, TILE,
                                   WIDE_TILE, WIDE_WEIGHT_BYTES, conv_dense_numba,
                                   conv_dense_numpy, conv_tile, linear_dense_numba,
                                   linear_dense_numpy, pack_conv_weight, use_dense, zero_padded)
from refsnn.synapses.linear import linear_numba, linear_numpy
from refsnn.synapses.weights import Weights

THREADS = sorted({1, min(2, numba.config.NUMBA_NUM_THREADS)})
DTYPES = [np.float64, np.float32]
seeds = st.integers(0, 2**32 - 1)
densities = st.sampled_from([0.0, 0.05, 0.3, 1.0])


@pytest.fixture(autouse=True)
def _restore_threads():
    before = numba.get_num_threads()
    yield
    numba.set_num_threads(before)


def events(rng, shape, density, dtype):
    """``density`` of the entries non-zero (normal values); a third of the zeros are -0.0,
    whose products with negative weights are -0.0 too."""
    mask = rng.random(shape) < density
    zeros = np.where(rng.random(shape) < 1 / 3, -0.0, 0.0)
    return np.where(mask, rng.normal(size=shape), zeros).astype(dtype)


def same_bits(a, b):
    """Equal values and equal signs of zero (the dense kernels add the non-events' zeros)."""
    assert a.dtype == b.dtype and a.shape == b.shape
    assert np.array_equal(a, b), f"max difference {np.max(np.abs(a - b))}"
    assert np.array_equal(np.signbit(a), np.signbit(b))


@settings(max_examples=50, deadline=None)
@given(seed=seeds, density=densities, rows=st.integers(1, 2 * LINEAR_ROWS + 1),
       n_in=st.integers(1, 40), n_out=st.sampled_from([1, 10, NARROW_OUT, NARROW_OUT + 1,
                                                       TILE - 1, TILE, TILE + 1, 2 * TILE + 3]),
       dtype=st.sampled_from(DTYPES))
def test_linear_dense(seed, density, rows, n_in, n_out, dtype):
    """Row blocks and output tiles cut at both sides (a partial last row block reads a
    clamped row, a partial last tile runs in memory), and the narrow kernel (at most
    NARROW_OUT outputs): the event-driven reference's bits."""
    rng = np.random.default_rng(seed)
    x = events(rng, (rows, n_in), density, dtype)
    w_t = rng.normal(size=(n_in, n_out)).astype(dtype)
    bias = rng.normal(size=n_out).astype(dtype)
    ref = linear_numpy(x, w_t, bias)
    same_bits(linear_dense_numpy(x, w_t, bias), ref)
    for threads in THREADS:
        numba.set_num_threads(threads)
        same_bits(linear_dense_numba(x, w_t, bias), ref)


@st.composite
def dense_conv_cases(draw):
    c = draw(st.integers(1, 4))
    # every tile: the narrow one (up to NARROW_TILE channels), TILE, and WIDE_TILE (float32
    # beyond TILE channels at 512 bits), each cut at its end
    o = draw(st.sampled_from([1, 3, NARROW_TILE - 1, NARROW_TILE, NARROW_TILE + 1, TILE - 1,
                              TILE + 2, WIDE_TILE + 3]))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    ph, pw = draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    h = draw(st.integers(max(1, kh - 2 * ph), 9))
    w = draw(st.integers(max(1, kw - 2 * pw), 9))
    return c, o, (kh, kw), (sh, sw), (ph, pw), h, w


@settings(max_examples=60, deadline=None)
@given(case=dense_conv_cases(), seed=seeds, density=densities, b=st.integers(1, 3),
       dtype=st.sampled_from(DTYPES), vector_bytes=st.sampled_from([32, 64]))
def test_conv_dense(case, seed, density, b, dtype, vector_bytes):
    """Kernels, strides, padding, odd row lengths (the last group of positions reads a
    clamped input) and channel counts around each tile, its choice made as for either vector
    width (every tile's kernel runs on any CPU): the event-driven reference's bits."""
    c, o, kernel, stride, padding, h, w = case
    rng = np.random.default_rng(seed)
    x = events(rng, (b, c, h, w), density, dtype)
    wt = rng.normal(size=(o, c) + kernel).astype(dtype)
    bias = rng.normal(size=o).astype(dtype)
    ref = conv_numpy(x, wt, bias, stride, padding, 1)
    same_bits(conv_dense_numpy(x, wt, bias, stride, padding), ref)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(dense_module, "VECTOR_BYTES", vector_bytes)
        for threads in THREADS:
            numba.set_num_threads(threads)
            same_bits(conv_dense_numba(x, wt, bias, stride, padding), ref)


def test_conv_tile_choice(monkeypatch):
    """WIDE_TILE only for float32 layers of more than TILE channels on 512-bit vectors whose
    tile weights fit WIDE_WEIGHT_BYTES; AVX2 builds keep the tiles they were measured with."""
    taps = WIDE_WEIGHT_BYTES // (4 * WIDE_TILE)  # C x kh x kw of the largest wide float32 tile
    wide, too_big = (256, taps, 1, 1), (256, taps + 1, 1, 1)
    monkeypatch.setattr(dense_module, "VECTOR_BYTES", 64)
    assert conv_tile(wide, np.float32) == WIDE_TILE
    assert conv_tile(too_big, np.float32) == TILE
    assert conv_tile(wide, np.float64) == TILE
    assert conv_tile((TILE, 64, 3, 3), np.float32) == TILE
    assert conv_tile((NARROW_TILE, 64, 3, 3), np.float32) == NARROW_TILE
    assert pack_conv_weight(np.zeros((TILE + 1, 2, 3, 3), np.float32)).shape == (1, 2, 3, 3,
                                                                                WIDE_TILE)
    monkeypatch.setattr(dense_module, "VECTOR_BYTES", 32)
    assert conv_tile(wide, np.float32) == TILE
    assert pack_conv_weight(np.zeros((TILE + 1, 2, 3, 3), np.float32)).shape == (2, 2, 3, 3,
                                                                                TILE)


def _count_calls(monkeypatch, module, name):
    calls = []
    inner = getattr(module, name)

    def counted(*args):
        calls.append(1)
        return inner(*args)
    monkeypatch.setattr(module, name, counted)
    return calls


@pytest.mark.parametrize("dtype", DTYPES)
def test_density_picks_the_kernel(monkeypatch, dtype):
    """Dense input runs the dense kernels and sparse input the event-driven ones (the choice
    is live), with the reference's bits either way."""
    rng = np.random.default_rng(0)
    lin = _count_calls(monkeypatch, linear_module, "linear_dense_numba")
    conv = _count_calls(monkeypatch, conv_module, "conv_dense_numba")
    w_t, bias = rng.normal(size=(30, 70)).astype(dtype), rng.normal(size=70).astype(dtype)
    w, cbias = rng.normal(size=(5, 3, 3, 3)).astype(dtype), rng.normal(size=5).astype(dtype)
    start = max(DENSE_FROM["linear"][np.dtype(dtype)], DENSE_FROM["conv"][np.dtype(dtype)])
    for density, dense_calls in ((1.0, 1), (start / 4, 1), (1.0, 2)):
        x = events(rng, (6, 30), density, dtype)
        same_bits(linear_numba(x, Weights(w_t), bias), linear_numpy(x, w_t, bias))
        xc = events(rng, (2, 3, 8, 8), density, dtype)
        same_bits(conv_numba(xc, Weights(w), cbias, (1, 1), (1, 1), 1),
                  conv_numpy(xc, w, cbias, (1, 1), (1, 1), 1))
        assert (len(lin), len(conv)) == (dense_calls, dense_calls)


def test_infinite_weight_stays_event_driven():
    """With an infinite weight a dense kernel would add ``0 * inf = NaN`` for a non-event;
    the choice refuses such weights, so dense input still gives the reference's finite bits."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 20))
    x[:, 7] = 0.0  # input 7 never fires ...
    w_t = rng.normal(size=(20, 9))
    w_t[7, 3] = np.inf  # ... so its infinite weight is never used
    ref = linear_numpy(x, w_t, np.zeros(9))
    assert np.all(np.isfinite(ref))
    same_bits(linear_numba(x, w_t, np.zeros(9)), ref)
    assert not np.all(np.isfinite(linear_dense_numba(x, w_t, np.zeros(9))))


@pytest.mark.parametrize("dtype", DTYPES)
def test_use_dense_threshold(dtype):
    weights = Weights(np.ones((3, 3), dtype))
    start = DENSE_FROM["linear"][np.dtype(dtype)]
    assert use_dense("linear", int(np.ceil(start * 1000)), 1000, weights)
    assert not use_dense("linear", int(start * 1000) - 1, 1000, weights)
    assert not use_dense("linear", 5, 0, weights)
    assert not use_dense("linear", 1000, 1000, Weights(np.ones((3, 3), np.float16)))


@pytest.mark.parametrize("py, px", [(0, 0), (1, 1), (2, 0), (0, 3)])
def test_zero_padded_is_np_pad(py, px):
    x = np.random.default_rng(py + 7 * px).standard_normal((2, 3, 4, 5)).astype(np.float32)
    x[0, 0, 0, 0] = -0.0
    got = zero_padded(x, py, px)
    want = np.pad(x, ((0, 0), (0, 0), (py, py), (px, px)))
    assert got.dtype == want.dtype and got.flags.c_contiguous
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))  # -0.0 kept, bit for bit
