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


# ---- NIR's published graphs (benchmarks/nir_cases.py, published_cases) --------------------

@pytest.fixture(scope="module")
def published():
    from nir_cases import published_cases
    return {c.name: c for c in published_cases()}


@pytest.fixture(scope="module")
def runs():
    """Framework runs by (framework, case name), made once per module."""
    return {}


def _published(published, name):
    from nir_cases import PUBLISHED
    if name not in published:
        stem = name.split(" without ")[0]
        pytest.skip(f"{PUBLISHED[stem]} is not under data/nir/ (nor $REFSNN_NIR_FILES)")
    return published[name]


def _run(runs, framework, case):
    from nir_cases import run

    pytest.importorskip(framework)
    if (framework, case.name) not in runs:
        runs[framework, case.name] = run(framework, case)
    return runs[framework, case.name]


def test_published_cnn_refsnn_and_norse_raster_for_raster(published, runs):
    """Sinabs' N-MNIST CNN (paper/02_cnn): refsnn and Norse give the same raster on all five
    IF layers, on a sequence of events; Sinabs itself departs (several spikes per step, a
    lower bound on the potential); snnTorch's IF breaks the next layer."""
    import numpy as np

    from nir_cases import cell, reference
    from refsnn.oracle.compare import compare
    from refsnn.nir.frameworks import framework_trace

    case = _published(published, "CNN (Sinabs)")
    ref = reference(case)
    assert not isinstance(ref, str), ref
    trace = ref[0]
    assert list(trace.layers) == ["1", "3", "6", "10", "12"]
    norse = _run(runs, "norse", case)
    for name, layer in trace.layers.items():
        assert layer.spikes.any() and not layer.spikes.all()
        np.testing.assert_array_equal(norse.spikes[name], layer.spikes, err_msg=name)
    assert compare(trace, framework_trace(case.graph, norse, "norse", case.x)).first_divergence \
        is None
    pytest.importorskip("sinabs")
    c = cell("sinabs", case, ref)
    assert c.status == "diverges" and "reset=multi + bound=-theta" in c.text
    pytest.importorskip("snntorch")
    c = cell("snntorch", case, ref)
    assert c.status == "fails" and "got (tuple" in c.text


def test_published_lif_norse(published, runs):
    """paper/01_lif/lif_norse.nir on a spike sequence: Norse and snnTorch (at the dt = 10⁻⁴
    its reader hard-codes) agree with refsnn spike for spike; Sinabs reads τ in steps."""
    from nir_cases import cell, reference

    case = _published(published, "LIF (Norse)")
    ref = reference(case)
    assert not isinstance(ref, str), ref
    assert ref[0].layers["1"].spikes.sum() > 10
    for fw in ("norse", "snntorch"):
        pytest.importorskip(fw)
        assert cell(fw, case, ref).text.startswith("agrees spike for spike"), fw
    pytest.importorskip("sinabs")
    c = cell("sinabs", case, ref)
    assert c.status == "diverges" and "leak=exp-dt1" in c.text


@pytest.mark.parametrize("variant, hidden", [("bias_zero", 38), ("noBias_subtract", 40)])
def test_published_braille_in_the_frameworks(published, runs, variant, hidden):
    """The paper's recurrent Braille graphs (CubaLIF with a recurrent w_rec edge) on 12-taxel
    spike sequences: Norse runs them, and its recurrent edge carries the previous step's
    spikes (nothing at step 1: lif1.lif's input is fc1's output alone); snnTorch's reader
    fails on the recurrent edge, and without it agrees with Norse spike for spike; Sinabs
    has no CubaLIF reader."""
    import numpy as np

    from nir_cases import cell

    case = _published(published, f"Braille: {variant}")
    norse = _run(runs, "norse", case)
    steps, batch = case.encoded.shape[:2]
    assert norse.spikes["lif1.lif"].shape == (steps, batch, hidden)
    assert norse.spikes["lif1.lif"].any() and norse.spikes["lif2"].any()
    assert max(norse.max_value.values()) == 1
    g = case.graph.nodes
    bias = lambda node: getattr(node, "bias", None) if getattr(node, "bias", None) is not None \
        else 0.0
    fc1 = case.encoded @ g["fc1"].weight.T + bias(g["fc1"])
    z = norse.spikes["lif1.lif"].astype(np.float64)
    rec = np.zeros_like(fc1)
    rec[1:] = z[:-1] @ g["lif1.w_rec"].weight.T + bias(g["lif1.w_rec"])
    np.testing.assert_allclose(norse.inputs["lif1.lif"], fc1 + rec, rtol=1e-5, atol=1e-5)
    for fw in ("snntorch", "sinabs"):
        pytest.importorskip(fw)
        assert cell(fw, case, "refused").status == "fails", fw
    assert "'GraphModule' object has no attribute 'items'" in cell("snntorch", case,
                                                                   "refused").text
    assert "KeyError" in cell("sinabs", case, "refused").text
    ff = _published(published, f"Braille: {variant} without w_rec")
    a, b = _run(runs, "norse", ff), _run(runs, "snntorch", ff)
    for layer in ("lif1.lif", "lif2"):
        assert a.spikes[layer].any()
        np.testing.assert_array_equal(a.spikes[layer], b.spikes[layer], err_msg=layer)
    c = cell("snntorch", ff, "refused", ("Norse", a), b)
    assert c.status == "unchecked" and c.text.endswith("spike for spike as Norse")


def test_published_braille_rockpool_departs_from_norse(published, runs):
    """Rockpool runs the recurrent graph but emits several spikes per step and departs from
    Norse at the first steps, its input equal until then, and from refsnn in a way neither a
    replay nor another discretisation of refsnn reproduces."""
    from nir_cases import cell, reference

    case = _published(published, "Braille: noBias_subtract")
    pytest.importorskip("rockpool")
    c = cell("rockpool", case, "refused", ("Norse", _run(runs, "norse", case)),
             _run(runs, "rockpool", case))
    assert c.status == "unchecked" and "multi-spike" in c.text
    assert "differs from Norse from layer lif1.lif, step 2 (its input equal" in c.text
    c = cell("rockpool", case, reference(case), fw_run=_run(runs, "rockpool", case))
    assert c.status == "diverges" and "unexplained" in c.text
    assert "discretisation=" not in c.text


@pytest.mark.parametrize("variant", ["bias_zero", "noBias_subtract"])
def test_published_braille_cubalif_through_refsnn(published, runs, variant):
    """The Braille graphs without ``w_rec`` (feed-forward CubaLIF) in refsnn: Norse and
    snnTorch depart at the first steps, and ``compare`` names the class: their membrane reads
    the synaptic current of the same step (``current=same``, replayed by refsnn's
    ``euler-same-step``)."""
    from nir_cases import cell, reference

    case = _published(published, f"Braille: {variant} without w_rec")
    ref = reference(case)
    assert not isinstance(ref, str), ref
    assert [layer.kind for layer in ref[0].layers.values()] == ["cuba_lif", "cuba_lif"]
    for fw in ("norse", "snntorch"):
        pytest.importorskip(fw)
        c = cell(fw, case, ref, fw_run=_run(runs, fw, case))
        assert c.status == "diverges" and "layer lif1.lif" in c.text, (fw, c.text)
        assert "current — replay with current=same reproduces it" in c.text, (fw, c.text)


@pytest.mark.parametrize("variant", ["bias_zero", "noBias_subtract"])
def test_published_braille_through_refsnn_and_norse(published, runs, variant):
    """The recurrent Braille graphs in refsnn and Norse: Norse departs from NIR's forward Euler
    in ``lif1.lif`` at the first steps; no replay of that layer alone explains it (its input
    holds its own spikes through ``w_rec``), but refsnn with ``euler-same-step`` (the membrane
    reads the current of the same step) gives Norse's spikes on both layers: ``compare``,
    given refsnn's network, names it (class ``discretisation``)."""
    from nir_cases import cell, reference

    case = _published(published, f"Braille: {variant}")
    ref = reference(case)
    assert not isinstance(ref, str), ref
    assert [layer.kind for layer in ref[0].layers.values()] == ["cuba_lif", "cuba_lif"]
    c = cell("norse", case, ref, fw_run=_run(runs, "norse", case))
    assert c.status == "diverges" and c.text.startswith("layer lif1.lif, step "), c.text
    assert c.text.endswith(": discretisation — discretisation=euler-same-step: the whole "
                           "network re-simulated with it reproduces every layer spike for "
                           "spike"), c.text


def test_a_constant_sequence_is_the_analog_input(by_name):
    """``encoded`` holding the same input at every step gives what the analog input gives,
    in refsnn's trace (spikes, potentials, input currents) and in a framework's run; an
    ``encoded`` of the wrong shape is refused."""
    import numpy as np

    from nir_cases import STEPS
    from refsnn.nir.frameworks import reference_trace, run_framework

    case = by_name["LIF"]
    enc = np.repeat(case.x[None], STEPS, axis=0)
    analog, out_a = reference_trace(case.graph, case.x, STEPS, case.dt)
    fed, out_s = reference_trace(case.graph, case.x, STEPS, case.dt, encoded=enc)
    np.testing.assert_array_equal(out_a, out_s)
    assert fed.encoded is not None and np.array_equal(fed.encoded, enc)
    for name, layer in analog.layers.items():
        assert layer.spikes.any()
        for field_ in ("spikes", "potentials", "current"):
            np.testing.assert_array_equal(getattr(fed.layers[name], field_),
                                          getattr(layer, field_), err_msg=f"{name} {field_}")
    pytest.importorskip("norse")
    a = run_framework("norse", case.graph, case.x, STEPS, case.dt)
    s = run_framework("norse", case.graph, case.x, STEPS, case.dt, encoded=enc)
    for name in a.spikes:
        np.testing.assert_array_equal(a.spikes[name], s.spikes[name])
        np.testing.assert_array_equal(a.inputs[name], s.inputs[name])
    from refsnn.errors import OptionError

    with pytest.raises(OptionError, match="encoded: expected shape"):
        run_framework("norse", case.graph, case.x, STEPS, case.dt, encoded=enc[1:])


def test_published_traces_go_through_refsnn_compare(published, tmp_path, capsys):
    """A sequence case's traces, written to files, compared by the command line."""
    from refsnn.cli.main import main
    from nir_cases import write_traces

    case = _published(published, "LIF (Norse)")
    pytest.importorskip("sinabs")
    ref, other = write_traces("sinabs", case, tmp_path)
    assert main(["compare", str(ref), str(other)]) == 1
    assert "leak=exp-dt1" in capsys.readouterr().out
