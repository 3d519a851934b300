"""The one jit policy: its OpenMP wait default, set before any kernel runs."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

SCRIPT = ("import os, numpy as np; from refsnn.synapses.linear import linear_numba; "
          "linear_numba(np.ones((2, 3)), np.ones((3, 4)), np.zeros(4)); "
          "print(os.environ['OMP_WAIT_POLICY'])")


@pytest.mark.parametrize("given, expected", [(None, "PASSIVE"), ("active", "active")])
def test_omp_wait_policy_defaults_to_passive_and_respects_the_user(given, expected):
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if given is not None:
        env["OMP_WAIT_POLICY"] = given
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == expected
