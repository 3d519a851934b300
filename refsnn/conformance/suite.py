"""The conformance tests (collected with ``pytest --pyargs refsnn.conformance.suite``)."""

from __future__ import annotations

import numpy as np
import pytest

from refsnn.conformance import implements_run_encoded
from refsnn.oracle.compare import compare, format_table
from refsnn.oracle.trace import Layer, Trace, read_trace
from refsnn.sim.network import load_snn


def test_golden_case(golden_case, conformance_adapter):
    """The adapter's spikes on a golden case agree with refsnn's (up to rounding ties)."""
    spec, adapter = conformance_adapter
    net = load_snn(golden_case + ".net.h5")
    reason = adapter.unsupported(net)
    if reason:
        pytest.skip(f"unsupported by {spec}: {reason}")
    ref = read_trace(golden_case + ".trace.h5")
    if ref.encoded is not None:
        # a random encoding: every backend gets the spikes refsnn's encoder drew
        if not implements_run_encoded(adapter):
            pytest.skip(f"unsupported by {spec}: the case's input is recorded per step "
                        f"(encoding {ref.attrs.get('encoding')}) and the adapter has no "
                        f"run_encoded")
        rasters = adapter.run_encoded(net, ref.encoded)
    else:
        rasters = adapter.run(net, ref.inputs, ref.steps)
    other = Trace(ref.steps, {k: Layer(np.asarray(v, bool)) for k, v in rasters.items()})
    c = compare(ref, other, rtol=adapter.rtol)
    if c.real:
        case = golden_case.rsplit("/", 1)[-1]
        pytest.fail(f"{format_table(c)}\nreproduce: {reproduce_command(spec, case)}",
                    pytrace=False)


def reproduce_command(spec: str, case: str) -> str:
    """The one-line command that runs exactly ``case`` against adapter ``spec``."""
    return (f"python -m pytest --pyargs refsnn.conformance.suite --refsnn-conformance={spec} "
            f"--refsnn-case={case}")
