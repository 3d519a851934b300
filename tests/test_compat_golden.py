"""``--compat`` reproduces the reference signGD code's outputs (data/golden/compat).

The reference outputs were recorded by running the authors' code (snuhcs/snn_signgd) on the
CPU in float64 (``data/golden/compat/make_compat.py``, README there); this test needs neither
torch nor the reference code: it converts the shipped models with ``--compat`` and compares the
readouts at every recorded T.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refsnn import ann
from refsnn.conversion import convert_signgd
from refsnn.errors import ConversionError
from refsnn.model import load_refsnn_h5, make_graph
from refsnn.sim.network import ann_limit
from refsnn.sim.simulator import Simulator

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "golden" / "compat"
TOL = 1e-10

with h5py.File(GOLDEN / "reference.h5", "r") as _f:
    CASES = sorted(k for k in _f if isinstance(_f[k], h5py.Group))


def _case(name):
    with h5py.File(GOLDEN / "reference.h5", "r") as f:
        g = f[name]
        return ({k: g[k][()] for k in ("calibration", "inputs", "ann", "snn")},
                [int(t) for t in f["steps"][()]])


def test_every_case_is_tested():
    assert len(CASES) >= 10 and {p.stem for p in GOLDEN.glob("*.h5")} == {*CASES, "reference"}


@pytest.mark.parametrize("name", CASES)
def test_compat_matches_reference_code(name):
    data, steps = _case(name)
    graph = load_refsnn_h5(GOLDEN / f"{name}.h5")
    # the shipped model is the network the reference code ran
    assert np.allclose(ann.forward(graph, data["inputs"]), data["ann"], rtol=0, atol=1e-12)
    net = convert_signgd(graph, data["calibration"], compat=True)
    run = Simulator(net, "numpy").run(data["inputs"], steps)
    for i, t in enumerate(steps):
        err = np.abs(run.readout[t] - data["snn"][i]).max()
        assert err <= TOL, f"{name}: T={t}: max |refsnn --compat - reference| = {err:.3g}"


def test_compat_numba_backend_matches_too():
    data, steps = _case("max3_s2_p1")
    net = convert_signgd(load_refsnn_h5(GOLDEN / "max3_s2_p1.h5"), data["calibration"], compat=True)
    run = Simulator(net, "numba").run(data["inputs"], steps)
    for i, t in enumerate(steps):
        assert np.abs(run.readout[t] - data["snn"][i]).max() <= TOL


def test_compat_max_pooling_is_the_reference_structure():
    """3x3/2 pad 1 on 7x7: rows first over all 9 padded columns, then columns."""
    data, _ = _case("max3_s2_p1")
    net = convert_signgd(load_refsnn_h5(GOLDEN / "max3_s2_p1.h5"), data["calibration"], compat=True)
    g = net.graph
    assert [n.name for n in g.nodes if n.name.startswith("pool.")] == [
        "pool.rows0", "pool.rows1", "pool.rows2", "pool.row1", "pool.row2",
        "pool.cols0", "pool.cols1", "pool.cols2", "pool.col1"]
    assert g.node("pool.row2").inputs == ("pool.row1", "pool.rows2")
    assert g.shapes["pool.row2"] == (3, 4, 9) and g.shapes["pool"] == (3, 4, 4)
    row = g.node("pool.row1")
    assert row.attrs["tie"] == "strict" and np.all(row.params["scale"] == 1)
    # padding (-200) lives in x_init: the padded columns of the row stage, and nowhere else
    # (x_init: its two inputs stacked; row window 0 starts on the top padding row)
    x_init = row.params["x_init"]
    assert np.all(x_init[:, :, :, [0, 8]] == -200.0) and np.all(x_init[0, :, 0, :] == -200.0)
    assert not np.any(x_init[0, :, 1:, 1:8] == -200) and not np.any(x_init[1, :, :, 1:8] == -200)
    assert all(g.node(f"pool.rows{r}").attrs["pad_value"] == 0 for r in range(3))


def test_compat_scale_floor_defaults_to_none():
    data, _ = _case("mlp_relu")
    graph = load_refsnn_h5(GOLDEN / "mlp_relu.h5")
    assert convert_signgd(graph, data["calibration"], compat=True).options["scale_floor"] == 0
    assert convert_signgd(graph, data["calibration"]).options["scale_floor"] == 0.1
    net = convert_signgd(graph, data["calibration"], compat=True, scale_floor=0.5)
    assert net.options["scale_floor"] == 0.5


@pytest.mark.parametrize("op", ["silu", "sigmoid", "tanh"])
def test_compat_refuses_what_the_reference_cannot_convert(op):
    graph = make_graph((4,), [
        dict(name="fc", op="linear", inputs=["input"],
             params=dict(weight=np.eye(3, 4), bias=np.zeros(3))),
        dict(name="act", op=op, inputs=["fc"])], "act")
    with pytest.raises(ConversionError, match=f"node 'act': op '{op}' cannot be converted "
                                              f"with --compat"):
        convert_signgd(graph, np.ones((2, 4)), compat=True)
    convert_signgd(graph, np.ones((2, 4)))  # refsnn's own conversion takes it


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), c=st.integers(1, 2), kh=st.integers(1, 3),
       kw=st.integers(1, 3), sh=st.integers(1, 3), sw=st.integers(1, 3), data=st.data())
def test_compat_max_pooling_computes_max_pooling(seed, c, kh, kw, sh, sw, data):
    """Any kernel, stride and padding: the rows-then-columns chains, read as the ANN they
    approximate (each neuron = max of its input estimates, padding -200 in x_init), are max
    pooling; so the structure alone can never be why --compat differs from the ANN."""
    ph, pw = data.draw(st.integers(0, kh // 2)), data.draw(st.integers(0, kw // 2))
    h, w = data.draw(st.integers(kh, 7)), data.draw(st.integers(kw, 7))
    graph = make_graph((c, h, w), [dict(name="pool", op="maxpool2d", inputs=["input"],
                                        attrs=dict(kernel=(kh, kw), stride=(sh, sw),
                                                   padding=(ph, pw)))], "pool")
    x = np.random.default_rng(seed).uniform(-1, 1, (3, c, h, w))
    net = convert_signgd(graph, x, compat=True)
    assert np.array_equal(ann_limit(net, x), ann.forward(graph, x))
    assert sum(n.op == "sgd" for n in net.graph.nodes) == (kh > 1) + (kw > 1) + max(
        kh - 2, 0) + max(kw - 2, 0)


def test_compat_refuses_another_encoding():
    """--compat is the reference code's gd encoder: an explicit exact encoding is refused, not
    switched silently; no encoding gives gd."""
    from refsnn.errors import OptionError
    from refsnn.model import load_refsnn_h5

    graph = load_refsnn_h5(GOLDEN / "mlp_relu.h5")
    x = np.random.default_rng(0).random((4,) + graph.input_shape)
    with pytest.raises(OptionError, match="--encoding exact does not apply with --compat"):
        convert_signgd(graph, x, compat=True, encoding="exact")
    assert convert_signgd(graph, x, compat=True).encoding == "gd"
    assert convert_signgd(graph, x).encoding == "exact"
