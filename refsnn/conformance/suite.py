"""The conformance tests (collected with ``pytest --pyargs refsnn.conformance.suite``): the
golden cases of ``data/golden`` and the theory properties of
:mod:`refsnn.conformance.properties` (imported here so that one module collects both)."""

from __future__ import annotations

import numpy as np
import pytest

from refsnn.conformance import implements_run_encoded
from refsnn.conformance.plugin import reproduce_command
from refsnn.conformance.properties import (  # noqa: F401  (collected from this module)
    test_bsnn_packet_is_the_cycle_sum, test_if_constant_current_counts,
    test_if_nonpositive_current_never_fires,
    test_random_if_networks_match_refsnn_and_are_deterministic)
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
