"""The conformance plugin: refsnn passes its own golden cases, a buggy backend fails with a
named class and a reproduce command, and without the option the plugin does nothing."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

from conftest import ROOT

#: Every golden case; the three IF cases with reset by subtraction are the ones a reset bug hits.
N_CASES = len(list((ROOT / "data" / "golden").glob("*.net.h5")))

from refsnn.conformance.adapters import RefsnnAdapter
from refsnn.neurons.if_ import if_step_numpy


class ResetZeroAdapter(RefsnnAdapter):
    """refsnn with its IF reset replaced by reset to zero (the bug the suite must catch)."""

    def run(self, net, x, steps):
        from refsnn.sim.simulator import Simulator

        sim = Simulator(net, "numpy")
        bug = lambda u, c, theta, rz: if_step_numpy(u, c, theta, True)
        for op in sim.ops:
            op.backend = dataclasses.replace(op.backend, if_step=bug)
        names = [op.node.name for op in sim.ops if op.is_neuron]
        return sim.run(x, [steps], rasters=names).rasters


def _suite(*args):
    # autoload off and -p on: the test must not depend on refsnn being (re)installed with the
    # pytest11 entry point, and must not load it twice when it is
    env = dict(os.environ, PYTEST_DISABLE_PLUGIN_AUTOLOAD="1",
               PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "tests")]))
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "refsnn.conformance.plugin",
                           "-p", "no:cacheprovider", "--pyargs", "refsnn.conformance.suite",
                           "-q", "-rs", *args], env=env, capture_output=True, text=True,
                          cwd=ROOT)


def test_refsnn_passes_its_golden_cases():
    r = _suite("--refsnn-conformance=refsnn")
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"{N_CASES} passed" in r.stdout


def test_buggy_backend_fails_with_class_and_reproduce_line():
    r = _suite("--refsnn-conformance=test_conformance:ResetZeroAdapter")
    assert r.returncode == 1, r.stdout + r.stderr
    # the zero_half case is already reset to zero, and BSNN and signGD neurons have no IF
    # reset: the bug changes nothing there
    assert f"3 failed, {N_CASES - 3} passed" in r.stdout, r.stdout
    assert ": reset" in r.stdout
    assert ("reproduce: python -m pytest --pyargs refsnn.conformance.suite "
            "--refsnn-conformance=test_conformance:ResetZeroAdapter -k mlp_if") in r.stdout


def test_inert_without_the_option():
    r = _suite()
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"{N_CASES} skipped" in r.stdout and "--refsnn-conformance" in r.stdout
