"""The one jit policy: its OpenMP spin default, set before any kernel runs."""

from __future__ import annotations

import os
import subprocess
import sys

import numba
import numpy as np
import pytest

import refsnn.jit
from refsnn.jit import parallel, prange

from conftest import JIT_DISABLED, THREADS

SCRIPT = ("import os, numpy as np; from refsnn.synapses.linear import linear_numba; "
          "linear_numba(np.ones((2, 3)), np.ones((3, 4)), np.zeros(4)); "
          "print(os.environ.get('OMP_WAIT_POLICY'), os.environ.get('GOMP_SPINCOUNT'))")


@pytest.mark.parametrize("given, expected", [
    ({}, "None 1000"),                              # refsnn's default: a short spin
    ({"OMP_WAIT_POLICY": "active"}, "active None"),  # the user's policy, nothing added
    ({"GOMP_SPINCOUNT": "50"}, "None 50"),           # the user's spin count kept
])
def test_openmp_spin_default_respects_the_user(given, expected):
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update(given)
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == expected


def _toy(x, out):
    for b in prange(x.shape[0]):
        acc = 0.0
        for i in range(x.shape[1]):
            acc += x[b, i] * 0.1
        out[b] = acc


@pytest.mark.skipif(JIT_DISABLED, reason="no compilation under NUMBA_DISABLE_JIT=1")
def test_split_kernel_picks_by_work(monkeypatch, restore_threads):
    kernel = parallel(work=lambda x, out: x.size)(_toy)
    x = np.random.default_rng(0).standard_normal((16, 50))
    out_serial, out_parallel = np.empty(16), np.empty(16)
    numba.set_num_threads(THREADS[-1])
    monkeypatch.setattr(refsnn.jit, "SERIAL_BELOW", x.size + 1)
    kernel(x, out_serial)
    assert kernel.serial.signatures and not kernel.parallel.signatures
    monkeypatch.setattr(refsnn.jit, "SERIAL_BELOW", x.size)
    kernel(x, out_parallel)
    assert kernel.parallel.signatures
    assert np.array_equal(out_serial, out_parallel)
    # one thread: serial whatever the work
    fresh = parallel(work=lambda x, out: x.size)(_toy)
    monkeypatch.setattr(refsnn.jit, "SERIAL_BELOW", 0)
    numba.set_num_threads(1)
    fresh(x, out_serial)
    assert fresh.serial.signatures and not fresh.parallel.signatures
    assert np.array_equal(out_serial, out_parallel)


def test_split_kernels_have_separate_cache_names():
    # Numba names cache files after the function; a shared name would let one compilation's
    # cache entry stand in for the other's
    kernel = parallel(work=lambda x, out: x.size)(_toy)
    assert kernel.serial.py_func.__qualname__ != kernel.parallel.py_func.__qualname__
    assert kernel.serial.py_func.__code__ is kernel.parallel.py_func.__code__


@pytest.mark.parametrize("below", [0, 1 << 62])
def test_kernels_equal_twins_on_either_path(monkeypatch, restore_threads, below):
    # the default policy on 2 threads: small calls serial, large ones parallel; same bits
    from refsnn.neurons.if_ import if_step_numba, if_step_numpy
    from refsnn.synapses.linear import linear_numba, linear_numpy

    monkeypatch.setattr(refsnn.jit, "SERIAL_BELOW", below)
    numba.set_num_threads(THREADS[-1])
    rng = np.random.default_rng(1)
    x = np.where(rng.random((8, 40)) < 0.3, 0.5, 0.0)
    w, bias = rng.standard_normal((40, 30)), rng.standard_normal(30)
    assert np.array_equal(linear_numba(x, w, bias), linear_numpy(x, w, bias))
    u1, u2, cur = rng.random((8, 30)), None, rng.random((8, 30))
    u2 = u1.copy()
    theta = np.full(30, 0.7)
    assert np.array_equal(if_step_numba(u1, cur, theta, False), if_step_numpy(u2, cur, theta, False))
    assert np.array_equal(u1, u2)
