"""The conformance plugin: refsnn passes its own golden cases, a buggy backend fails with a
named class and a reproduce command that selects exactly its case, without the option the
plugin does nothing; the golden cases cover every op, target, encoding, decoder and method."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys

import numpy as np
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


def _strict_if_step(u, current, theta, reset_zero):
    """refsnn's IF step firing on ``u > theta`` instead of ``u >= theta``."""
    u += current
    fired = u > theta
    u[:] = np.where(fired, 0.0 if reset_zero else u - theta, u)
    return np.where(fired, theta, 0.0).astype(u.dtype)


def _eager_bistable_integrate(u, current):
    """A bistable integrate step that also fires (IF-like) when the partial sum reaches 1."""
    u += current
    fired = u >= 1.0
    u -= np.where(fired, 1.0, 0.0)
    return np.where(fired, 1.0, 0.0).astype(u.dtype)


class BuggyAdapter(RefsnnAdapter):
    """refsnn's NumPy reference with some kernels replaced (:attr:`bugs`: op -> kernels)."""

    backend = "numpy"
    bugs: dict = {}

    def simulator(self, net):
        sim = super().simulator(net)
        for op in sim.ops:
            op.kernels = {**op.kernels, **self.bugs.get(op.node.op, {})}
        return sim


class ResetZeroAdapter(BuggyAdapter):
    """IF reset to zero instead of by subtraction (the bug the golden cases must catch), for
    recorded (Poisson) inputs too: run and run_encoded both use :meth:`simulator`."""

    bugs = {"if": {"step": lambda u, c, theta, rz: if_step_numpy(u, c, theta, True)}}


class StrictAdapter(BuggyAdapter):
    bugs = {"if": {"step": _strict_if_step}}


class EagerBistableAdapter(BuggyAdapter):
    bugs = {"bistable": {"integrate": _eager_bistable_integrate}}


def _suite(*args):
    # autoload off and -p on: the test must not depend on refsnn being (re)installed with the
    # pytest11 entry point, and must not load it twice when it is
    # one Numba thread: the suite's networks are tiny and a second thread only spins on a
    # loaded machine (thread-count invariance is tested in test_simulator and test_kernels)
    env = dict(os.environ, PYTEST_DISABLE_PLUGIN_AUTOLOAD="1", NUMBA_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "tests")]))
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "refsnn.conformance.plugin",
                           "-p", "no:cacheprovider", "--pyargs", "refsnn.conformance.suite",
                           "-q", "-rfs", "-p", "no:randomly", *args], env=env,
                          capture_output=True, text=True, cwd=ROOT)


def _failed(stdout: str) -> list[str]:
    return sorted(re.findall(r"^FAILED \S+::test_golden_case\[(\w+)\]", stdout, re.M))


#: The theory properties of the suite (refsnn/conformance/properties.py).
N_PROPERTIES = 4


def test_refsnn_passes_its_golden_cases_and_the_theory_properties():
    r = _suite("--refsnn-conformance=refsnn")
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"{N_CASES + N_PROPERTIES} passed" in r.stdout


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
    assert "--refsnn-case: no golden case or property mlp_i" in r.stderr
    assert "mlp_if" in r.stderr and "test_if_constant_current_counts" in r.stderr


def _failed_properties(stdout: str) -> list[str]:
    return sorted(re.findall(r"^FAILED \S+::(test_\w+)", stdout, re.M))


@pytest.mark.parametrize("adapter, failing", [
    # the count theorem and the agreement with refsnn catch both IF bugs; the nonpositive
    # current property cannot (neither bug fires without positive current)
    ("StrictAdapter", ["test_if_constant_current_counts",
                       "test_random_if_networks_match_refsnn_and_are_deterministic"]),
    ("ResetZeroAdapter", ["test_if_constant_current_counts",
                          "test_random_if_networks_match_refsnn_and_are_deterministic"]),
    ("EagerBistableAdapter", ["test_bsnn_packet_is_the_cycle_sum"]),
])
def test_broken_adapters_fail_the_theory_properties(adapter, failing):
    r = _suite(f"--refsnn-conformance=test_conformance:{adapter}", "-k", "not golden")
    assert r.returncode == 1, r.stdout + r.stderr
    assert _failed_properties(r.stdout) == failing, r.stdout
    # the failing example is shown (Hypothesis < 6.16x: "Falsifying example", later:
    # "Failing test case")
    assert re.search(r"Falsifying example|Failing test case", r.stdout), r.stdout
    for name in failing:  # each failure's one-line command selects exactly that property
        assert (f"python -m pytest --pyargs refsnn.conformance.suite --refsnn-conformance="
                f"test_conformance:{adapter} --refsnn-case={name}\n") in r.stdout


def test_inert_without_the_option():
    r = _suite()
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"{N_CASES + N_PROPERTIES} skipped" in r.stdout and "--refsnn-conformance" in r.stdout


# --- what the golden cases cover ---------------------------------------------------------

#: Names no golden case is required to contain, each with the reason. Empty: every op, signGD
#: target, encoding, decoder and method is covered today. An entry here must name something
#: that exists and is really not covered (checked below), so the list cannot go stale.
NOT_COVERED: dict[str, str] = {
    # the one step registry also holds the ops of imported NIR graphs, which no conversion
    # emits; tests/test_nir.py, test_nir_neurons.py, test_nir_compare.py, test_nir_cuba.py
    # and test_nir_delay.py cover them
    f"op:{op}": "a NIR graph's op (refsnn.nir.reader)"
    for op in ("nir_if", "lif", "li", "integrator", "threshold", "hadamard", "sumpool2d",
               "cuba_lif", "cuba_li", "nir_delay")}
# a NIR graph's recurrent edge, which no conversion emits either: tests/test_nir_recurrent.py
NOT_COVERED["op:recurrent"] = "a NIR graph's recurrent edge (refsnn.nir.reader)"
# readouts chosen at run time (--decode, refsnn.sim.decoders.with_readout), which no conversion
# emits; tests/test_sequences.py checks them against the mean decoder (count = the sum, last =
# its last increment)
NOT_COVERED.update({f"decoder:{d}": "a readout chosen at run time (--decode)"
                    for d in ("count", "last")})


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
    from refsnn.conversion import METHODS
    from refsnn.neurons.signgd import TARGETS
    from refsnn.sim.decoders import DECODERS
    from refsnn.sim.encoders import ENCODERS
    from refsnn.neurons.base import STEP_OPS

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
    # the conformance plugin's cases (files at the top of data/golden): 1.4 MB since the NIR
    # case, the model-coverage cases (if_structure, signgd_mobile) and the checksums joined
    # (1.2 MB), so a new case must earn its size
    total = sum(p.stat().st_size for p in GOLDEN.iterdir() if p.is_file())
    assert total < 1_400_000, f"data/golden holds {total} bytes"


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


# --- float32 backends ---------------------------------------------------------------------


def test_refsnn_in_float32_passes_with_float32_tolerance():
    """refsnn simulating in float32 (the shipped ``refsnn-float32`` adapter, rtol 1e-4) passes
    every golden case and property: the dyadic cases are exact in float32 too."""
    r = _suite("--refsnn-conformance=refsnn-float32")
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"{N_CASES + N_PROPERTIES} passed" in r.stdout


def _late_if_step(u, current, theta, reset_zero):
    """refsnn's IF step comparing with 1.05 theta (spikes and resets still of theta): every
    neuron's first mismatch has a potential within 5% of theta, like a coarse rounding tie."""
    u += current
    fired = u >= 1.05 * theta
    u[:] = np.where(fired, 0.0 if reset_zero else u - theta, u)
    return np.where(fired, theta, 0.0).astype(u.dtype)


class LateAdapter(BuggyAdapter):
    bugs = {"if": {"step": _late_if_step}}


def test_adapter_rtol_sets_the_rounding_margin():
    """A backend's ``rtol`` is the margin ``refsnn compare`` grants: the same 5% comparison
    error is a real divergence at the default 1e-5, and a benign rounding tie for a backend
    that declares rtol = 0.1 (every first mismatch lies within 5% of theta)."""
    from refsnn.conformance.suite import test_golden_case as run_case

    case = str(GOLDEN / "mlp_if")
    with pytest.raises(pytest.fail.Exception, match=r"first divergence: layer relu0, step \d+: "
                                                     r"\w+\nreproduce"):
        run_case(case, ("late", LateAdapter()))
    loose = LateAdapter()
    loose.rtol = 0.1
    run_case(case, ("late", loose))  # no failure: the mismatches are benign
