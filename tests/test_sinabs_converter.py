"""Sinabs' ANN-to-SNN converter (``sinabs.from_model``) against refsnn's IF: the findings of
``benchmarks/sinabs_converter.py`` (``docs/peers.md``, "Sinabs' converter, side by side"),
kept as tests so that a change on either side fails here.

- The replay (:mod:`refsnn.interop.sinabs`) names each departure on a current built to show
  it, and only it: several spikes per step, the membrane floor at ``-θ``, both.
- Sinabs' own ``IAFSqueeze`` with ``from_model``'s defaults gives the counts of the replay with
  both departures on a current where both matter (so the replay is Sinabs' rule).
- On the shipped MLP with refsnn's thresholds: ``from_model``'s defaults (threshold 1,
  ``MultiSpike``, ``min_v_mem=-1``) depart by several spikes per step, named at the first layer
  whose counts differ; ``SingleSpike`` without the floor gives refsnn's counts exactly.
- ``normalize_weights``: the first layer's factor is refsnn's percentile threshold; later
  factors are not, because it divides a layer's bias with its weights (with the biases zeroed,
  they are).
- Accuracy points of the table in ``docs/peers.md`` (mlp, 450 test images).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from refsnn.interop.sinabs import DEPARTURES, departures, replay_iaf
from refsnn.oracle.trace import Layer

ROOT = Path(__file__).resolve().parents[1]
MULTI, FLOOR = DEPARTURES


def _layer(current, theta=1.0):
    current = np.asarray(current, np.float64).reshape(len(current), 1, 1)
    return Layer(np.zeros(current.shape, bool), current=current,
                 threshold=np.array([theta]), v_init="zero")


def test_replay_names_several_spikes_per_step():
    layer = _layer([2.5] * 6, theta=1.0)
    single, _ = replay_iaf(layer.current, layer.threshold)
    multi, _ = replay_iaf(layer.current, layer.threshold, multi=True)
    assert single.ravel().tolist() == [1] * 6
    assert multi.ravel().tolist() == [2, 3, 2, 3, 2, 3]
    assert departures(layer, multi)[0] == (MULTI,)
    assert departures(layer, single)[0] == ()


def test_replay_names_the_floor():
    # θ = 2. No floor: u = -10, -7, -4, -1, 2 (fires), 0. Floor: -10 -> -2, then 1, 4 (fires,
    # 2), 5 (fires, 3), 6 (fires, 4), 4 (fires, 2)
    layer = _layer([-10.0, 3.0, 3.0, 3.0, 3.0, 0.0], theta=2.0)
    plain, _ = replay_iaf(layer.current, layer.threshold)
    floored, _ = replay_iaf(layer.current, layer.threshold, floor=True)
    assert plain.ravel().tolist() == [0, 0, 0, 0, 1, 0]
    assert floored.ravel().tolist() == [0, 0, 1, 1, 1, 1]
    assert departures(layer, floored)[0] == (FLOOR,)
    # both: -10 -> -2, then 5 (2 spikes, 1), 4 (2 spikes, 0); the floor alone gives 1, 1
    layer = _layer([-10.0, 7.0, 3.0], theta=2.0)
    both, _ = replay_iaf(layer.current, layer.threshold, multi=True, floor=True)
    assert both.ravel().tolist() == [0, 2, 2]
    assert departures(layer, both)[0] == (MULTI, FLOOR)


def test_replay_says_when_nothing_reproduces():
    layer = _layer([0.5] * 4)
    found, detail = departures(layer, np.full((4, 1, 1), 7))
    assert found is None and "no replay reproduces" in detail


def test_replay_tie_is_named_as_such():
    # a potential within rounding of θ: Sinabs' float32 sums can break the tie the other way
    layer = _layer([1.0 - 1e-9, 0.0])
    refsnn, _ = replay_iaf(layer.current, layer.threshold)
    other = refsnn.copy()
    other[0] = 1
    assert departures(layer, refsnn)[0] == ()
    found, detail = departures(layer, other)
    assert found == () and "rounding ties" in detail
    assert departures(layer, other, rtol=1e-12)[0] is None


# ------------------------------------------------------------------------------- Sinabs

@pytest.fixture(scope="module")
def bench():
    pytest.importorskip("torch")
    pytest.importorskip("sinabs")
    pytest.importorskip("spikingjelly")  # the torch rebuild is the SpikingJelly example's
    path = ROOT / "benchmarks" / "sinabs_converter.py"
    spec = importlib.util.spec_from_file_location("sinabs_converter", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def mlp(bench):
    from refsnn.conversion.bnfold import fold_batchnorm
    from refsnn.data import load_data
    from refsnn.model import load_refsnn_h5

    graph = fold_batchnorm(load_refsnn_h5(ROOT / "data" / "models" / "mlp.h5"))
    xc, _ = load_data(ROOT / "data" / "digits.h5", "train", limit=192)
    xt, _ = load_data(ROOT / "data" / "digits.h5", "test", limit=16)
    return graph, xc, xt


def test_sinabs_iaf_is_the_replay_with_both_departures():
    """Sinabs' own layer, with ``from_model``'s defaults (threshold 1, ``MultiSpike``,
    ``MembraneSubtract``, ``min_v_mem=-1``), on a current where the floor and several spikes
    per step both change the counts: only the replay with both gives its counts."""
    torch = pytest.importorskip("torch")
    sinabs = pytest.importorskip("sinabs")
    current = np.random.default_rng(7).normal(0.2, 1.5, size=(64, 1, 1, 50))
    layer = sinabs.layers.IAFSqueeze(batch_size=1, min_v_mem=-1.0)
    with torch.no_grad():
        out = [layer(torch.from_numpy(c[:, 0])).double().numpy() for c in current]
    counts = np.rint(np.stack(out)).astype(np.int64).reshape(current.shape)
    ref = Layer(np.zeros(current.shape, bool), current=current, threshold=np.array([1.0]),
                v_init="zero")
    assert counts.max() >= 2
    for multi, floor in ((False, False), (True, False), (False, True)):
        replay, _ = replay_iaf(current, [1.0], multi=multi, floor=floor)
        assert not np.array_equal(replay, counts), (multi, floor)
    assert departures(ref, counts)[0] == (MULTI, FLOOR)


def test_from_model_defaults(bench, mlp):
    graph, xc, xt = mlp
    import sinabs

    conv, net = bench.convert_setting(graph, xc, len(xt), "refsnn's θ (max), from_model defaults")
    iafs = [m for m in conv.network.spiking_model.modules()
            if isinstance(m, sinabs.layers.IAFSqueeze)]
    assert len(iafs) == 2
    for m in iafs:
        assert float(m.spike_threshold) == 1.0 and m.min_v_mem == -1.0
        assert m.spike_fn is sinabs.activation.MultiSpike
    c, layer, found, text = bench.verdict(net, conv, xt, 32)
    assert layer == "relu2" and found == (MULTI,), text
    _, counts = bench.sinabs_run(conv, xt, 32)
    assert counts["relu2"].max() >= 2


def test_single_spike_without_floor_is_refsnn(bench, mlp):
    graph, xc, xt = mlp
    conv, net = bench.convert_setting(graph, xc, len(xt),
                                      "refsnn's θ (max), SingleSpike, min_v_mem=None")
    c, layer, found, text = bench.verdict(net, conv, xt, 32)
    assert c.first_divergence is None and layer is None and found == (), text


def test_normalize_weights_scales_biases_with_weights(bench, mlp):
    from refsnn.conversion import convert_if

    graph, xc, _ = mlp
    theta = {n.name: float(n.params["threshold"][0])
             for n in convert_if(graph, xc, percentile=100.0).graph.nodes if n.op == "if"}
    conv = bench.sinabs_convert(graph, xc, 1, percentile=100.0)
    assert conv.factors["relu1"] == pytest.approx(theta["relu1"], rel=1e-6)
    assert abs(conv.factors["relu2"] / theta["relu2"] - 1) > 1e-3  # 0.37 % here
    edit = graph.edit()
    for n in graph.nodes:
        if n.op == "linear":
            edit.set_params(n.name, bias=np.zeros_like(n.params["bias"]))
    unbiased = edit.commit()
    theta0 = {n.name: float(n.params["threshold"][0])
              for n in convert_if(unbiased, xc, percentile=100.0).graph.nodes if n.op == "if"}
    conv0 = bench.sinabs_convert(unbiased, xc, 1, percentile=100.0)
    for name in theta0:
        assert conv0.factors[name] == pytest.approx(theta0[name], rel=1e-5), name


def test_accuracy_points_of_the_table(bench):
    """docs/peers.md, mlp: Sinabs at T = 32 on the 450 test images."""
    from refsnn.conversion.bnfold import fold_batchnorm
    from refsnn.data import load_data
    from refsnn.model import load_refsnn_h5

    graph = fold_batchnorm(load_refsnn_h5(ROOT / "data" / "models" / "mlp.h5"))
    xc, _ = load_data(ROOT / "data" / "digits.h5", "train")
    xt, yt = load_data(ROOT / "data" / "digits.h5", "test")
    expected = {"normalize_weights 99 (Sinabs' default)": 97.11,
                "refsnn's θ (max), from_model defaults": 97.11}
    for setting, acc in expected.items():
        conv, _ = bench.convert_setting(graph, xc, len(xt), setting)
        readout, _ = bench.sinabs_run(conv, xt, 32)
        assert 100 * bench.accuracy(readout, yt)[32] == pytest.approx(acc, abs=0.005), setting


def test_normalize_weights_changes_the_cnn(bench):
    """The shipped CNN (BatchNorms folded: every conv has a bias) after ``normalize_weights``
    (percentile 100, the 1,347 training images) is another ANN: 9.56 % instead of 99.56 % on
    the 450 test images, before any spike (``docs/peers.md``)."""
    import torch
    from sinabs.utils import normalize_weights

    from refsnn.conversion.bnfold import fold_batchnorm
    from refsnn.data import load_data
    from refsnn.model import load_refsnn_h5

    graph = fold_batchnorm(load_refsnn_h5(ROOT / "data" / "models" / "cnn.h5"))
    xc, _ = load_data(ROOT / "data" / "digits.h5", "train")
    xt, yt = load_data(ROOT / "data" / "digits.h5", "test")
    ann = bench.FlatANN(graph).float().eval()
    x = torch.from_numpy(xt.astype(np.float32))
    relus = [n.name for n in graph.nodes if n.op == "relu"]
    with torch.no_grad():
        before = float(np.mean(ann(x).argmax(1).numpy() == yt))
        normalize_weights(ann, torch.from_numpy(xc.astype(np.float32)), relus,
                          [graph.node(r).inputs[0] for r in relus], percentile=100)
        after = float(np.mean(ann(x).argmax(1).numpy() == yt))
    assert 100 * before == pytest.approx(99.56, abs=0.005)
    assert 100 * after == pytest.approx(9.56, abs=0.005)
