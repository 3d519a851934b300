"""The conformance tests (collected with ``pytest --pyargs refsnn.conformance.suite``)."""

from __future__ import annotations

import numpy as np
import pytest

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
    rasters = adapter.run(net, ref.inputs, ref.steps)
    other = Trace(ref.steps, {k: Layer(np.asarray(v, bool)) for k, v in rasters.items()})
    c = compare(ref, other, rtol=adapter.rtol)
    if c.real:
        case = golden_case.rsplit("/", 1)[-1]
        pytest.fail(f"{format_table(c)}\nreproduce: python -m pytest --pyargs "
                    f"refsnn.conformance.suite --refsnn-conformance={spec} -k {case}",
                    pytrace=False)
