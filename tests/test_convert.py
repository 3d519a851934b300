"""IF conversion: BN folding, threshold balancing, what converts and what is refused."""

from __future__ import annotations

import numpy as np
import pytest

from refsnn import ann
from refsnn.conversion import convert_if
from refsnn.conversion.bnfold import fold_batchnorm
from refsnn.conversion.threshold import balance
from refsnn.errors import ConversionError, DataFormatError, ModelFormatError, OptionError
from refsnn.model import make_graph
from refsnn.sim.network import load_snn, save_snn
from refsnn.sim.simulator import Simulator

from conftest import graph_to_dicts


def test_fold_batchnorm_keeps_the_function(cnn, inputs):
    folded = fold_batchnorm(cnn)
    assert [n.op for n in folded.nodes] == ["conv2d", "relu", "avgpool2d", "flatten", "linear"]
    a, b = ann.forward(cnn, inputs), ann.forward(folded, inputs)
    np.testing.assert_allclose(a, b, rtol=0, atol=64 * np.finfo(float).eps * np.abs(a).max())


def test_batchnorm_that_cannot_fold_stays_affine(inputs):
    rng = np.random.default_rng(0)
    g = make_graph((2, 6, 6), [
        dict(name="bn0", op="batchnorm", inputs=["input"],
             params=dict(gamma=np.array([1.5, 0.5]), beta=np.array([0.1, -0.1]),
                         mean=np.array([0.2, 0.4]), var=np.array([1.0, 2.0]))),
        dict(name="flat", op="flatten", inputs=["bn0"]),
        dict(name="fc", op="linear", inputs=["flat"],
             params=dict(weight=rng.normal(size=(5, 72)), bias=np.zeros(5))),
        dict(name="relu", op="relu", inputs=["fc"]),
        dict(name="out", op="linear", inputs=["relu"],
             params=dict(weight=rng.normal(size=(3, 5)), bias=np.zeros(3))),
    ], "out")
    net = convert_if(g, inputs, percentile=100.0)
    assert [n.op for n in net.graph.nodes][0] == "batchnorm"
    for backend in ("numpy", "numba"):
        run = Simulator(net, backend).run(inputs, [2000])
        np.testing.assert_allclose(run.readout[2000], ann.forward(g, inputs), atol=0.05)


def test_percentile_thresholds():
    acts = np.random.default_rng(0).exponential(1.0, (50, 3, 4, 4))
    acts[:, 2] = 0.0  # a channel that never fires
    layer = balance(acts, 99.0, per_channel=False)
    assert np.all(layer == np.percentile(acts, 99.0))
    per = balance(acts, 100.0, per_channel=True)
    assert per[0] == acts[:, 0].max() and per[1] == acts[:, 1].max()
    assert per[2] == acts.max(), "a silent channel takes the layer's value"
    assert np.all(balance(np.zeros((4, 2)), 99.9, False) == 1.0), "a silent layer gets 1"
    with pytest.raises(OptionError, match=r"--percentile: expected a number in \(0, 100\]"):
        balance(acts, 0.0, False)


def test_thresholds_come_from_calibration(cnn, inputs):
    net = convert_if(cnn, inputs, percentile=100.0, per_channel=True)
    relu = ann.forward(fold_batchnorm(cnn), inputs, all_nodes=True)[1]["relu"]
    expect = relu.max(axis=(0, 2, 3))
    theta = net.graph.node("relu").params["threshold"]
    assert np.array_equal(theta[expect > 0], expect[expect > 0])


def test_count_readout_adds_output_neurons(cnn, inputs):
    net = convert_if(cnn, inputs, readout="count")
    assert net.graph.output == "readout_neurons"
    assert net.graph.node("readout_neurons").op == "if"
    run = Simulator(net).run(inputs, [10])
    theta = net.graph.node("readout_neurons").params["threshold"]
    # the readout sums theta once per spike, so it equals count * theta / T up to 10 roundings
    np.testing.assert_allclose(run.readout[10], run.counts["readout_neurons"] * theta / 10,
                               rtol=10 * np.finfo(float).eps, atol=0)


def test_maxpool_must_read_neurons(inputs):
    g = make_graph((2, 6, 6), [
        dict(name="pool", op="maxpool2d", inputs=["input"], attrs=dict(kernel=(2, 2),
                                                                       stride=(2, 2))),
        dict(name="relu", op="relu", inputs=["pool"]),
        dict(name="flat", op="flatten", inputs=["relu"]),
        dict(name="fc", op="linear", inputs=["flat"],
             params=dict(weight=np.ones((2, 18)), bias=np.zeros(2))),
    ], "fc")
    with pytest.raises(ConversionError, match="node 'pool': maxpool2d must read a relu node.*"
                                              "it reads 'input'"):
        convert_if(g, inputs)


def test_nonlinearities_other_than_relu_point_to_signgd(inputs):
    g = make_graph((2, 6, 6), [
        dict(name="flat", op="flatten", inputs=["input"]),
        dict(name="fc", op="linear", inputs=["flat"],
             params=dict(weight=np.ones((4, 72)), bias=np.zeros(4))),
        dict(name="act", op="gelu", inputs=["fc"]),
    ], "act")
    with pytest.raises(ConversionError, match="node 'act': op 'gelu' cannot be converted with "
                                              "--method if .*use --method signgd"):
        convert_if(g, inputs)


def test_affine_structure_ops_convert_with_if():
    """transpose, reshape, mean, layer scale, affine and linear over the last axis are linear
    maps of rates: the IF network still converges to the ANN."""
    rng = np.random.default_rng(5)
    g = make_graph((2, 3, 4), [
        dict(name="r", op="reshape", inputs=["input"], attrs=dict(shape="2,12")),
        dict(name="t", op="transpose", inputs=["r"], attrs=dict(perm="1,0")),
        dict(name="fc", op="linear", inputs=["t"],
             params=dict(weight=rng.normal(size=(5, 2)), bias=rng.normal(size=5) * 0.1)),
        dict(name="relu", op="relu", inputs=["fc"]),
        dict(name="aff", op="affine", inputs=["relu"], attrs=dict(axis="last"),
             params=dict(weight=rng.uniform(0.5, 1, 5), bias=rng.normal(size=5) * 0.1)),
        dict(name="sc", op="scale", inputs=["aff"], attrs=dict(axis="last"),
             params=dict(weight=rng.uniform(0.5, 1, 5))),
        dict(name="m", op="mean", inputs=["sc"], attrs=dict(axis="channel")),
    ], "m")
    x = rng.uniform(0, 1, (6, 2, 3, 4))
    net = convert_if(g, x, percentile=100.0)
    runs = [Simulator(net, b).run(x, [50, 3000]) for b in ("numpy", "numba")]
    assert np.array_equal(runs[0].readout[3000], runs[1].readout[3000])
    err = [np.abs(runs[1].readout[t] - ann.forward(g, x)).max() for t in (50, 3000)]
    assert err[1] < err[0] / 20 and err[1] < 2e-3, err


@pytest.mark.parametrize("option, value, flag", [
    ("reset", "soft", "--reset"), ("v_init", "random", "--v-init"),
    ("encoding", "latency", "--encoding"), ("readout", "max", "--readout"),
    ("dtype", np.float16, "--dtype"),
])
def test_bad_options(cnn, inputs, option, value, flag):
    with pytest.raises(OptionError, match=f"{flag}: expected one of"):
        convert_if(cnn, inputs, **{option: value})


def test_bad_calibration(cnn):
    with pytest.raises(DataFormatError, match=r"calibration data: expected shape \(B, 2, 6, 6\)"):
        convert_if(cnn, np.zeros((3, 6, 6)))


def test_snn_file_round_trip(tmp_path, cnn, inputs):
    net = convert_if(cnn, inputs, per_channel=True, reset="zero", v_init="half",
                     readout="count", encoding="poisson")
    save_snn(net, tmp_path / "net.h5")
    again = load_snn(tmp_path / "net.h5")
    assert (again.method, again.encoding, dict(again.options)) == \
        (net.method, net.encoding, dict(net.options))
    a = Simulator(net).run(inputs, [12], seed=3)
    b = Simulator(again).run(inputs, [12], seed=3)
    assert np.array_equal(a.readout[12], b.readout[12])


def test_snn_file_errors(tmp_path, cnn, inputs):
    import h5py
    path = tmp_path / "net.h5"
    save_snn(convert_if(cnn, inputs), path)
    with h5py.File(path, "r+") as f:
        f["nodes/relu/threshold"][0] = -1.0
    with pytest.raises(ModelFormatError, match="/nodes/relu: threshold: expected positive"):
        load_snn(path)
    with h5py.File(path, "r+") as f:
        f.attrs["encoding"] = "morse"
    with pytest.raises(ModelFormatError, match=r"/: encoding: expected one of \['analog', "
                                               r"'poisson', 'exact', 'gd'\], found 'morse'"):
        load_snn(path)
    dicts = graph_to_dicts(cnn)
    assert dicts[0]["op"] == "conv2d"
