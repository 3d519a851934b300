"""What snnTorch, Norse, Sinabs and Rockpool do with NIR graphs (benchmarks/nir_cases.py),
pinned: each test states one finding of the README's NIR table, measured against refsnn's
simulation of the same graph. A framework release that changes its behaviour fails here, and
the table (benchmarks/nir_frameworks.py) must be made again. Skipped without torch, nir or
the framework (CI installs the versions the table names)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("nir")
pytest.importorskip("torch")

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from nir_cases import cases, cell  # noqa: E402


@pytest.fixture(scope="module")
def by_name():
    return {c.name: c for c in cases()}


def _cell(framework, case):
    pytest.importorskip(framework)
    return cell(framework, case)


def test_norse(by_name):
    assert _cell("norse", by_name["IF: MLP"]).text.startswith("agrees spike for spike")
    assert _cell("norse", by_name["LIF"]).text.startswith("agrees spike for spike")
    # no mapping for NIR's Scale: the graph's edges through it break its executor
    assert "KeyError: 'relu1_theta'" in _cell("norse", by_name["IF: CNN"]).text
    # r and v_reset of an IF are not read: the input is not scaled, the reset goes to 0
    c = _cell("norse", by_name["IF: r=2, v_reset=-0.1"])
    assert c.status == "diverges" and "reset=zero + gain=1" in c.text
    # the LI node is silently replaced: the output is its input
    c = _cell("norse", by_name["LI"])
    assert c.status == "diverges" and "the LI node was dropped" in c.text


def test_snntorch(by_name):
    # IF becomes snn.Leaky(init_hidden=False), whose (spk, mem) tuple breaks the next layer
    c = _cell("snntorch", by_name["IF: MLP"])
    assert c.status == "fails" and "must be Tensor, not tuple" in c.text
    assert "Scale" in _cell("snntorch", by_name["IF: CNN"]).text
    assert "r != 1 not supported" in _cell("snntorch", by_name["IF: r=2, v_reset=-0.1"]).text
    assert _cell("snntorch", by_name["LIF"]).text.startswith("agrees spike for spike")
    assert "LI" in _cell("snntorch", by_name["LI"]).text


def test_sinabs(by_name):
    # reset by subtraction (and several spikes per step) instead of NIR's reset to v_reset
    c = _cell("sinabs", by_name["IF: MLP"])
    assert c.status == "diverges" and "reset=subtract" in c.text and "multi-spike" in c.text
    # tau read in steps with an exponential leak, the input not scaled by dt/tau
    c = _cell("sinabs", by_name["LIF"])
    assert c.status == "diverges" and "leak=exp-dt1" in c.text


def test_rockpool(by_name):
    assert "Cannot convert" in _cell("rockpool", by_name["IF: MLP"]).text
    assert "no attribute 'tau_mem'" in _cell("rockpool", by_name["LIF"]).text


def test_framework_traces_go_through_refsnn_compare(by_name, tmp_path, capsys):
    from refsnn.cli.main import main
    from nir_cases import write_traces

    pytest.importorskip("norse")
    pytest.importorskip("sinabs")
    ref, other = write_traces("norse", by_name["IF: MLP"], tmp_path)
    assert main(["compare", str(ref), str(other)]) == 0
    assert "no divergence" in capsys.readouterr().out
    ref, other = write_traces("sinabs", by_name["IF: MLP"], tmp_path)
    assert main(["compare", str(ref), str(other)]) == 1
    assert "reset=subtract" in capsys.readouterr().out


@pytest.mark.parametrize("spec, outcome", [
    ("nir-refsnn", "same"), ("nir-norse", "same"), ("nir-sinabs", "reset"),
    ("nir-snntorch", "must be Tensor, not tuple"), ("nir-rockpool", "Cannot convert IF"),
])
def test_conformance_adapters_on_the_nir_golden_case(spec, outcome):
    """Each NIR adapter on the golden case NIR can express, as the conformance suite runs it:
    what CI's suite runs (nir-refsnn, nir-norse) passes; the others fail as the table says."""
    import numpy as np

    from refsnn.conformance import load_adapter
    from refsnn.nir.adapters import NirAdapter
    from refsnn.nir.frameworks import FRAMEWORKS, FrameworkError
    from refsnn.oracle.compare import compare
    from refsnn.oracle.trace import Layer, Trace, read_trace
    from refsnn.sim.network import load_snn

    from conftest import ROOT

    adapter = load_adapter(spec)
    assert isinstance(adapter, NirAdapter)
    if adapter.framework:
        pytest.importorskip(FRAMEWORKS[adapter.framework].package)
    case = ROOT / "data" / "golden" / "mlp_if_reset_zero"
    net = load_snn(f"{case}.net.h5")
    assert adapter.unsupported(net) is None
    assert "reset by subtraction" in adapter.unsupported(load_snn(ROOT / "data" / "golden" /
                                                                  "mlp_if.net.h5"))
    ref = read_trace(f"{case}.trace.h5")
    try:
        rasters = adapter.run(net, ref.inputs, ref.steps)
    except FrameworkError as e:
        assert outcome in str(e)
        return
    c = compare(ref, Trace(ref.steps, {k: Layer(np.asarray(v, bool))
                                       for k, v in rasters.items()}), rtol=adapter.rtol)
    first = c.first_divergence
    assert (first.kind if first else "same") == outcome
