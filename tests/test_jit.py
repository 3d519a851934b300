"""The one jit policy: its OpenMP spin default, set before any kernel runs."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

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
