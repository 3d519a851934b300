"""NIR neuron models (refsnn/neurons/{nir_if,lif,li,integrator,threshold}.py): each Numba
kernel equals its NumPy twin bit for bit on 1 and 2 threads, and both follow the update
written in docs/semantics.md ("NIR graphs"), checked against a per-element Python loop."""

from __future__ import annotations

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import THREADS
from refsnn.neurons.integrator import integrator_step_numba, integrator_step_numpy
from refsnn.neurons.li import li_step_numba, li_step_numpy
from refsnn.neurons.lif import lif_step_numba, lif_step_numpy
from refsnn.neurons.nir_if import nir_if_step_numba, nir_if_step_numpy
from refsnn.neurons.threshold import threshold_step_numba, threshold_step_numpy

pytestmark = pytest.mark.usefixtures("restore_threads")


def _arrays(seed, b, n, dtype):
    rng = np.random.default_rng(seed)
    v = rng.normal(0, 1, (b, n)).astype(dtype)
    current = rng.normal(0, 1, (b, n)).astype(dtype)
    params = dict(gain=rng.uniform(0.1, 2, n), decay=rng.uniform(0.01, 1, n),
                  r=rng.uniform(0.1, 3, n), v_leak=rng.normal(0, 0.5, n),
                  threshold=rng.uniform(0.1, 1.5, n), v_reset=rng.normal(0, 0.2, n))
    return v, current, {k: p.astype(dtype) for k, p in params.items()}


def _loop(kind, v, current, p):
    """The documented update, one neuron at a time, each operation rounded in v's dtype."""
    v = v.copy()
    out = np.zeros_like(v)
    for b in range(v.shape[0]):
        for i in range(v.shape[1]):
            x, c = v[b, i], current[b, i]
            if kind in ("nir_if", "integrator"):
                x = x + p["gain"][i] * c
            elif kind in ("lif", "li"):
                x = x + p["decay"][i] * ((p["v_leak"][i] - x) + p["r"][i] * c)
            if kind in ("nir_if", "lif"):
                fired = x > p["threshold"][i]
                out[b, i] = 1.0 if fired else 0.0
                x = p["v_reset"][i] if fired else x
            elif kind == "threshold":
                out[b, i] = 1.0 if c > p["threshold"][i] else 0.0
            else:
                out[b, i] = x
            v[b, i] = x
    return v, out


CASES = {
    "nir_if": (nir_if_step_numpy, nir_if_step_numba, ("gain", "threshold", "v_reset")),
    "lif": (lif_step_numpy, lif_step_numba, ("decay", "r", "v_leak", "threshold", "v_reset")),
    "li": (li_step_numpy, li_step_numba, ("decay", "r", "v_leak")),
    "integrator": (integrator_step_numpy, integrator_step_numba, ("gain",)),
}


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), b=st.integers(1, 4), n=st.integers(1, 50),
       dtype=st.sampled_from([np.float64, np.float32]), threads=st.sampled_from(THREADS),
       kind=st.sampled_from(sorted(CASES)), ties=st.booleans())
def test_kernels_equal_their_twins_and_the_written_update(seed, b, n, dtype, threads, kind,
                                                          ties):
    numba.set_num_threads(threads)
    v, current, p = _arrays(seed, b, n, dtype)
    if ties and kind == "nir_if":
        # potentials landing exactly on the threshold must not fire (strict rule)
        p["gain"][:] = 1
        v[:, ::2] = 0
        current[:, ::2] = p["threshold"][::2]
    numpy_fn, numba_fn, names = CASES[kind]
    args = [p[k] for k in names]
    v1, v2 = v.copy(), v.copy()
    e1, e2 = numpy_fn(v1, current, *args), numba_fn(v2, current, *args)
    v3, e3 = _loop(kind, v, current, p)
    assert e1.dtype == e2.dtype == dtype
    assert np.array_equal(e1, e2) and np.array_equal(v1, v2)
    assert np.array_equal(e1, e3) and np.array_equal(v1, v3)
    if ties and kind == "nir_if":
        assert not e1[:, ::2].any()


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), b=st.integers(1, 4), n=st.integers(1, 50),
       dtype=st.sampled_from([np.float64, np.float32]), threads=st.sampled_from(THREADS))
def test_threshold_kernel_equals_its_twin(seed, b, n, dtype, threads):
    numba.set_num_threads(threads)
    _, current, p = _arrays(seed, b, n, dtype)
    current[:, ::3] = p["threshold"][::3]  # exactly at threshold: no spike (strict)
    e1 = threshold_step_numpy(current, p["threshold"])
    e2 = threshold_step_numba(current, p["threshold"])
    assert np.array_equal(e1, e2) and e1.dtype == dtype
    assert np.array_equal(e1, _loop("threshold", current, current, p)[1])
    assert not e1[:, ::3].any()
