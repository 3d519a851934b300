"""The conformance plugin: refsnn passes its own golden cases, a buggy backend fails with a
named class and a reproduce command that selects exactly its case, without the option the
plugin does nothing; the golden cases cover every op, target, encoding, decoder and method."""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
import subprocess
import sys

import pytest

from conftest import ROOT

from refsnn.conformance.adapters import RefsnnAdapter
from refsnn.neurons.if_ import if_step_numpy

GOLDEN = ROOT / "data" / "golden"
CASES = sorted(p.name[:-len(".net.h5")] for p in GOLDEN.glob("*.net.h5"))
N_CASES = len(CASES)


def _if_subtract_cases():
    """The cases with an IF layer that resets by subtraction: the ones a reset bug hits."""
    from refsnn.sim.network import load_snn

    return sorted(c for c in CASES if any(
        n.op == "if" and n.attrs["reset"] == "subtract"
        for n in load_snn(GOLDEN / f"{c}.net.h5").graph.nodes))


class ResetZeroAdapter(RefsnnAdapter):
    """refsnn (NumPy reference) with its IF reset replaced by reset to zero (the bug the suite
    must catch), for recorded (Poisson) inputs too."""

    backend = "numpy"

    def simulator(self, net):
        sim = super().simulator(net)
        bug = lambda u, c, theta, rz: if_step_numpy(u, c, theta, True)
        for op in sim.ops:
            op.backend = dataclasses.replace(op.backend, if_step=bug)
        return sim


def _suite(*args):
    # autoload off and -p on: the test must not depend on refsnn being (re)installed with the
    # pytest11 entry point, and must not load it twice when it is
    env = dict(os.environ, PYTEST_DISABLE_PLUGIN_AUTOLOAD="1",
               PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "tests")]))
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "refsnn.conformance.plugin",
                           "-p", "no:cacheprovider", "--pyargs", "refsnn.conformance.suite",
                           "-q", "-rfs", "-p", "no:randomly", *args], env=env,
                          capture_output=True, text=True, cwd=ROOT)


def _failed(stdout: str) -> list[str]:
    return sorted(re.findall(r"^FAILED \S+::test_golden_case\[(\w+)\]", stdout, re.M))


def test_refsnn_passes_its_golden_cases():
    r = _suite("--refsnn-conformance=refsnn", "-k", "golden")
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"{N_CASES} passed" in r.stdout


@pytest.fixture(scope="module")
def reset_bug_run():
    return _suite("--refsnn-conformance=test_conformance:ResetZeroAdapter", "-k", "golden")


def test_buggy_backend_fails_with_class_and_reproduce_line(reset_bug_run):
    r = reset_bug_run
    assert r.returncode == 1, r.stdout + r.stderr
    # exactly the cases with a subtracting IF layer fail (zero_half already resets to zero;
    # BSNN and signGD neurons have no IF reset), the Poisson one included: the adapter gets
    # the recorded input spikes through run_encoded
    expected = _if_subtract_cases()
    assert "mlp_if_poisson" in expected and "mlp_noise" in expected
    assert _failed(r.stdout) == expected, r.stdout
    assert ": reset" in r.stdout
    for case in expected:
        assert ("reproduce: python -m pytest --pyargs refsnn.conformance.suite "
                "--refsnn-conformance=test_conformance:ResetZeroAdapter "
                f"--refsnn-case={case}\n") in r.stdout


def test_reproduce_line_selects_exactly_its_case(reset_bug_run):
    """Run the printed command of mlp_if: one failure, mlp_if's (``-k mlp_if`` would also run
    mlp_if_zero_half and mlp_if_poisson)."""
    line = re.search(r"reproduce: (.*--refsnn-case=mlp_if)$", reset_bug_run.stdout, re.M)
    assert line, reset_bug_run.stdout
    argv = shlex.split(line.group(1))
    assert argv[:5] == ["python", "-m", "pytest", "--pyargs", "refsnn.conformance.suite"]
    r = _suite(*argv[5:])
    assert r.returncode == 1, r.stdout + r.stderr
    assert _failed(r.stdout) == ["mlp_if"] and re.search(r"\b1 failed\b", r.stdout), r.stdout
    assert "passed" not in r.stdout.splitlines()[-1], r.stdout


def test_unknown_case_is_a_usage_error():
    r = _suite("--refsnn-conformance=refsnn", "--refsnn-case=mlp_i")
    assert r.returncode == 4, r.stdout + r.stderr
    assert "--refsnn-case: no golden case mlp_i in" in r.stderr and "mlp_if" in r.stderr


def test_inert_without_the_option():
    r = _suite("-k", "golden")
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"{N_CASES} skipped" in r.stdout and "--refsnn-conformance" in r.stdout


# --- what the golden cases cover ---------------------------------------------------------

#: Names no golden case is required to contain, each with the reason. Empty: every op, signGD
#: target, encoding, decoder and method is covered today. An entry here must name something
#: that exists and is really not covered (checked below), so the list cannot go stale.
NOT_COVERED: dict[str, str] = {}


def _golden_features():
    from refsnn.sim.network import load_snn

    seen = set()
    for case in CASES:
        net = load_snn(GOLDEN / f"{case}.net.h5")
        seen |= {f"method:{net.method}", f"encoding:{net.encoding}", f"decoder:{net.decoder}"}
        for node in net.graph.nodes:
            seen.add(f"op:{node.op}")
            if node.op == "sgd":
                seen.add(f"sgd:{node.attrs['fn']}")
    return seen


def _emittable_features():
    """Everything a converted network can contain: the step ops the simulator knows (every
    op a conversion can emit needs one), the signGD target functions an ``sgd`` node can
    name, the encoders, decoders and conversion methods."""
    from refsnn.convert import METHODS
    from refsnn.neurons.signgd import TARGETS
    from refsnn.sim.decoders import DECODERS
    from refsnn.sim.encoders import ENCODERS
    from refsnn.sim.steps import STEP_OPS

    return ({f"op:{k}" for k in STEP_OPS} | {f"sgd:{k}" for k in TARGETS}
            | {f"encoding:{k}" for k in ENCODERS} | {f"decoder:{k}" for k in DECODERS}
            | {f"method:{k}" for k in METHODS})


def test_golden_cases_cover_every_op():
    """Fails when an op (or target, encoding, decoder, method) is added to refsnn without a
    golden case that contains it, e.g. a new entry of STEP_OPS."""
    emittable, seen = _emittable_features(), _golden_features()
    missing = emittable - seen - set(NOT_COVERED)
    assert not missing, f"in no golden case (add one to data/golden/make_golden.py): {missing}"
    stale = {k for k in NOT_COVERED if k not in emittable or k in seen}
    assert not stale, f"NOT_COVERED entries that are unknown or covered: {stale}"
    # the features are read from the files: a sanity check that the reading works at all
    assert {"op:if", "op:bistable", "op:sgd", "sgd:max", "encoding:poisson"} <= seen


def test_golden_data_stays_small():
    total = sum(p.stat().st_size for p in GOLDEN.iterdir())
    assert total < 1_000_000, f"data/golden holds {total} bytes"


# --- recorded input (Poisson) ---------------------------------------------------------------

def test_recorded_input_replays_the_encoder():
    """/encoded is the stream the simulator drew: replaying it gives the same spikes, and a
    different stream (another seed) gives different ones."""
    import numpy as np

    from refsnn.errors import OptionError
    from refsnn.oracle.trace import encoded_input, read_trace
    from refsnn.sim.network import load_snn
    from refsnn.sim.simulator import Simulator

    net = load_snn(GOLDEN / "mlp_if_poisson.net.h5")
    ref = read_trace(GOLDEN / "mlp_if_poisson.trace.h5")
    assert ref.encoded.shape == (16,) + ref.inputs.shape
    assert set(np.unique(ref.encoded)) <= {-1.0, 0.0, 1.0}
    sim = Simulator(net, "numpy")
    names = list(ref.layers)
    own = sim.run(ref.inputs, [16], seed=0, rasters=names).rasters
    replay = sim.run(np.zeros_like(ref.inputs), [16], rasters=names, encoded=ref.encoded).rasters
    other = sim.run(np.zeros_like(ref.inputs), [16], rasters=names,
                    encoded=encoded_input(net, ref.inputs, 16, seed=1)).rasters
    for n in names:
        assert np.array_equal(own[n], ref.layers[n].spikes)
        assert np.array_equal(replay[n], ref.layers[n].spikes)
    assert any(not np.array_equal(other[n], own[n]) for n in names)
    with pytest.raises(OptionError, match="expected shape"):
        sim.run(ref.inputs, [8], encoded=ref.encoded)
    analog = load_snn(GOLDEN / "mlp_if.net.h5")
    with pytest.raises(OptionError, match="analog encoding feeds x"):
        Simulator(analog, "numpy").run(ref.inputs, [16], encoded=ref.encoded)


def test_encoded_round_trips(tmp_path):
    import numpy as np

    from refsnn.oracle.trace import read_trace, write_trace

    ref = read_trace(GOLDEN / "mlp_if_poisson.trace.h5")
    write_trace(tmp_path / "t.h5", ref)
    back = read_trace(tmp_path / "t.h5")
    assert np.array_equal(back.encoded, ref.encoded)
    assert read_trace(GOLDEN / "mlp_if.trace.h5").encoded is None  # analog: nothing stored
