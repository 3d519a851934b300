"""Residual error as noise (NQ, ``--method noise``): the ``qcfs`` op, the QCFS equivalence and
the residual error as Hypothesis properties, the one gap measurement, conversion, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refsnn import ann
from refsnn.cli.main import main
from refsnn.conversion.noise import convert_noise, measure_gap, network_levels, qcfs_limit
from refsnn.data import load_data
from refsnn.diagnose import Probe, diagnose
from refsnn.errors import ConversionError, ModelFormatError
from refsnn.model import load_refsnn_h5, make_graph, save_model
from refsnn.neurons.if_ import if_step_numba, if_step_numpy
from refsnn.sim.network import load_snn, save_snn
from refsnn.sim.simulator import Simulator
from refsnn.theory.noise import qcfs_count, residual_bounds

from conftest import DATA, MODELS, needs_jit

LEVELS = st.sampled_from([1, 2, 3, 4, 8])
CLIPS = st.sampled_from([0.5, 1.0, 2.0, 8.0])  # powers of two: dyadic inputs stay exact


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def textbook_qcfs(x, lam, levels):
    """Bu et al.'s form: λ/L · clip(floor(x·L/λ + 1/2), 0, L)."""
    return lam / levels * np.clip(np.floor(x * levels / lam + 0.5), 0, levels)


def qcfs_layer(n: int, lam: float, levels: int, weight=None, bias=None):
    """input (n,) -> [linear] -> qcfs ``q`` (the output, or followed by a linear ``fc``)."""
    nodes, src = [], "input"
    if weight is not None:
        nodes.append(dict(name="lin", op="linear", inputs=["input"],
                          params=dict(weight=weight, bias=bias)))
        src = "lin"
    nodes.append(dict(name="q", op="qcfs", inputs=[src], attrs=dict(levels=levels),
                      params=dict(clip=np.array([lam]))))
    return make_graph((n,), nodes, "q")


# --- the operator ---------------------------------------------------------------------------

@given(a=st.lists(st.integers(-64, 160), min_size=1, max_size=40), lam=CLIPS, levels=LEVELS)
def test_qcfs_equals_the_textbook_form(a, lam, levels):
    """The clamp-first form refsnn uses equals λ/L·clip(floor(xL/λ + 1/2), 0, L); inputs are
    multiples of λ/32, so exact ties x·L/λ + 1/2 ∈ Z occur (there both round up). Dropping
    the + 1/2 (plain floor, the ReLU-quantiser) would fail here."""
    x = np.array(a, dtype=np.float64) * lam / 32
    got = ann.qcfs(x, np.array([lam]), levels)
    assert np.array_equal(got, textbook_qcfs(x, lam, levels))
    assert np.all((got >= 0) & (got <= lam))


@pytest.mark.parametrize("field,attrs,clip", [("levels", {"levels": 0}, [1.0]),
                                              ("clip", {"levels": 4}, [0.0]),
                                              ("clip", {"levels": 4}, [-2.0])])
def test_qcfs_refuses_bad_levels_and_clip(field, attrs, clip):
    nodes = [dict(name="q", op="qcfs", inputs=["input"], attrs=attrs,
                  params=dict(clip=np.array(clip)))]
    with pytest.raises(ModelFormatError) as e:
        make_graph((3,), nodes, "q")
    assert e.value.field == field and "/nodes/q" in str(e.value)


def test_qcfs_round_trip(tmp_path):
    g = qcfs_layer(3, 2.0, 4)
    save_model(g, tmp_path / "q.h5")
    back = load_refsnn_h5(tmp_path / "q.h5")
    x = np.linspace(-1, 3, 12).reshape(4, 3)
    assert back.node("q").attrs["levels"] == 4
    assert np.array_equal(ann.forward(back, x), ann.forward(g, x))


def test_torch_qcfs_module_matches_refsnn():
    """The training module (optional extra) computes refsnn's op, and adds N(0, σ²) noise in
    training mode only."""
    torch = pytest.importorskip("torch")
    from refsnn.extras.torch_qcfs import QCFS

    m = QCFS(levels=4, clip=1.5).to(torch.float64)
    x = np.random.default_rng(0).uniform(-1, 3, (64, 5))
    m.eval()
    with torch.no_grad():
        got = m(torch.from_numpy(x)).numpy()
    assert np.array_equal(got, ann.qcfs(x, np.array([1.5]), 4))
    m.train()
    m.sigma.fill_(0.25)
    big = np.random.default_rng(1).uniform(-1, 3, (200, 500))
    with torch.no_grad():
        noisy = m(torch.from_numpy(big)).numpy()
    noise = noisy - ann.qcfs(big, np.array([1.5]), 4)
    assert abs(noise.std() - 0.25) < 0.01 and abs(noise.mean()) < 0.01
    # the straight-through floor: dh/dx = 1 inside (0, λ), 0 outside
    xg = torch.tensor([-0.5, 0.2, 1.0, 2.0], dtype=torch.float64, requires_grad=True)
    m.eval()
    m(xg).sum().backward()
    assert xg.grad.tolist() == [0.0, 1.0, 1.0, 0.0]


# --- QCFS equivalence and residual error (Hypothesis) -----------------------------------------

@given(a=st.lists(st.integers(-32, 96), min_size=1, max_size=30), lam=CLIPS, levels=LEVELS)
@settings(max_examples=60, deadline=None)
def test_constant_input_for_L_steps_emits_L_h_over_lambda_spikes(a, lam, levels):
    """One IF neuron per input, θ = λ, u₀ = θ/2, reset by subtraction, constant input z for
    T = L steps (refsnn's simulator, analog input): exactly L·h(z)/λ spikes, for z in [0, λ]
    and beyond (clipping). With u₀ = 0 (``--v-init zero``) the count would be floor(zL/λ), and
    with a strict ``u > θ`` the ties z·L/λ + 1/2 ∈ Z (present: z is a multiple of λ/32) would
    lose a spike; either fails this test."""
    z = np.array([a], dtype=np.float64) * lam / 32
    net = convert_noise(qcfs_layer(len(a), lam, levels))
    run = Simulator(net).run(z, levels)
    expected = levels * ann.qcfs(z, np.array([lam]), levels) / lam
    assert np.array_equal(run.counts["q"], expected.astype(np.int64))
    assert np.array_equal(run.counts["q"], qcfs_count(levels * z, lam, levels))


def run_neuron(z, theta, kernel):
    """Drive one IF neuron (u₀ = θ/2, subtract) with z_1..z_T; return (spikes, u_T)."""
    u = np.full((1, 1), theta / 2)
    th = np.array([theta])
    n = 0
    for zt in z:
        n += int(kernel(u, np.array([[zt]]), th, False)[0, 0] > 0)
    return n, float(u[0, 0])


@given(a=st.lists(st.integers(-24, 24), min_size=1, max_size=10),
       theta=st.sampled_from([0.5, 1.0, 2.0]), kernel=st.sampled_from([if_step_numba,
                                                                        if_step_numpy]))
@settings(max_examples=150, deadline=None)
def test_uneven_input_changes_the_count_by_the_residual(a, theta, kernel):
    """The same total input spread unevenly over T steps: n − n_q = (u^q − u_T)/θ exactly
    (u_T the final potential, u^q = θ/2 + S − n_q·θ), with m ≤ u_T < M and hence
    −M/θ < n − n_q < 1 − m/θ (``refsnn.theory.noise``). Inputs are multiples of θ/8 in
    [−3θ, 3θ], so every sum is exact. A claim of "at most one spike off" fails (see
    ``test_late_negative_input_leaves_two_extra_spikes``); so would u_T ≥ 0 (m = 0)."""
    z = np.array(a, dtype=np.float64) * theta / 8
    t, total = len(z), float(z.sum())
    n, u_t = run_neuron(z, theta, kernel)
    n_q = int(qcfs_count(total, theta, t))
    u_q = theta / 2 + total - n_q * theta
    assert u_t == theta / 2 + total - n * theta  # eq. (1), exact in dyadic arithmetic
    m, big_m = residual_bounds(z, theta)
    assert m <= u_t < big_m
    if -theta / 2 <= total < (t + 0.5) * theta:  # u^q in [0, θ): the QCFS count is unclipped
        assert 0 <= u_q < theta
        assert n - n_q == (u_q - u_t) / theta
        assert -big_m / theta < n - n_q < 1 - m / theta
    if np.all((z >= 0) & (z <= theta)):  # inputs within [0, θ]: no residual error at all
        assert n == n_q


def test_late_negative_input_leaves_two_extra_spikes():
    """z = θ, θ, θ, −2θ: three spikes are sent before the −2θ arrives; QCFS of the total θ says
    one. The residual u_T = −1.5θ is the two spikes too many, inside the bound 1 − m/θ = 3."""
    n, u_t = run_neuron([1.0, 1.0, 1.0, -2.0], 1.0, if_step_numba)
    assert (n, int(qcfs_count(1.0, 1.0, 4)), u_t) == (3, 1, -1.5)
    assert residual_bounds(np.array([1.0, 1.0, 1.0, -2.0]), 1.0) == (-2.0, 1.0)


# --- the gap measurement --------------------------------------------------------------------

@given(data=st.data(), lam=CLIPS, levels=LEVELS)
@settings(max_examples=40, deadline=None)
def test_gap_is_zero_when_inputs_arrive_evenly(data, lam, levels):
    """A linear + QCFS layer driven by analog input receives the same current every step, so at
    T_n = L its rate is exactly h(x): mean and spread of the gap are 0 (weights, biases and
    inputs are multiples of 1/8, so nothing rounds). Without the u₀ = θ/2 of the conversion
    (or with h lacking its + 1/2) the gap of about half the inputs would be −λ/L."""
    n_in, n_out = data.draw(st.integers(1, 5)), data.draw(st.integers(1, 6))
    eighths = st.integers(-8, 8)
    w = np.array(data.draw(st.lists(eighths, min_size=n_in * n_out, max_size=n_in * n_out)),
                 dtype=np.float64).reshape(n_out, n_in) / 8
    b = np.array(data.draw(st.lists(eighths, min_size=n_out, max_size=n_out))) / 8
    x = np.array(data.draw(st.lists(st.integers(0, 8), min_size=3 * n_in, max_size=3 * n_in)),
                 dtype=np.float64).reshape(3, n_in) / 8
    net = convert_noise(qcfs_layer(n_in, lam, levels, w, b))
    gaps, _ = measure_gap(net, x, levels)
    assert gaps["q"].mean == 0.0 and gaps["q"].sigma == 0.0
    assert not np.any(gaps["q"].values)


def _noise_net(name):
    return convert_noise(load_refsnn_h5(MODELS / f"{name}.h5"))


@needs_jit
@pytest.mark.parametrize("name", ["cnn_qcfs", "cnn_nq", "resnet_qcfs", "resnet_nq"])
def test_shipped_sigma_is_the_training_measurement(name):
    """One definition: refsnn's measure_gap on the validation images reproduces, to the bit,
    the σ_l that data/train_noise.py measured (and, for _nq, trained the next epoch with) at
    the epoch it kept. The first layer sees analog input evenly: its σ is 0; deeper layers
    read spikes and have σ > 0."""
    history = json.loads((MODELS / "noise_history.json").read_text())
    entry = history[name]
    kept = [h for h in entry["history"] if h["epoch"] == entry["kept_epoch"]][0]
    x_train, _ = load_data(DATA, "train", (1, 8, 8))
    x_val = x_train[np.array(history["validation_indices"])]
    gaps, _ = measure_gap(_noise_net(name), x_val, entry["t_noise"])
    assert {k: g.sigma for k, g in gaps.items()} == kept["sigma_measured"]
    assert {k: g.mean for k, g in gaps.items()} == kept["gap_mean"]
    first, *deeper = gaps.values()
    assert first.sigma == 0.0 and all(g.sigma > 0 for g in deeper)


# --- conversion -----------------------------------------------------------------------------

def test_conversion_thresholds_and_levels(tmp_path):
    g = load_refsnn_h5(MODELS / "cnn_nq.h5")
    net = convert_noise(g)
    assert net.method == "noise" and net.encoding == "analog"
    assert [n.op for n in net.graph.nodes].count("if") == 2
    assert "bn1" not in [n.name for n in net.graph.nodes]  # folded into conv1
    for name in ("qcfs1", "qcfs2"):
        node = net.graph.node(name)
        assert node.attrs == {"reset": "subtract", "v_init": "half"}
        assert np.all(node.params["threshold"] == g.node(name).params["clip"][0])
    save_snn(net, tmp_path / "n.h5")
    back = load_snn(tmp_path / "n.h5")
    assert network_levels(back) == {"qcfs1": 4, "qcfs2": 4}
    x, _ = load_data(DATA, "test", g.input_shape, 20)
    # the QCFS ANN is recovered from the converted file alone (BN folding changes rounding)
    assert np.allclose(qcfs_limit(back, x)[0], ann.forward(g, x), atol=1e-9)


def test_conversion_refusals():
    relu = load_refsnn_h5(MODELS / "cnn.h5")
    with pytest.raises(ConversionError, match="relu.*no clip value"):
        convert_noise(relu)
    pool_first = make_graph((1, 4, 4), [
        dict(name="p", op="maxpool2d", inputs=["input"], attrs=dict(kernel=(2, 2),
                                                                    stride=(2, 2))),
        dict(name="q", op="qcfs", inputs=["p"], attrs=dict(levels=2),
             params=dict(clip=np.array([1.0])))], "q")
    with pytest.raises(ConversionError, match="maxpool2d must read a qcfs node"):
        convert_noise(pool_first)


# --- command line ---------------------------------------------------------------------------

@needs_jit
def test_cli_evaluate_noise(capsys):
    code, out, _ = run_cli(capsys, "evaluate", MODELS / "cnn_nq.h5", "--data", DATA,
                           "--method", "noise", "--limit", "64", "--steps", "1,4,16", "--json")
    assert code == 0
    result = json.loads(out)
    assert result["method"] == "noise" and result["encoding"] == "analog"
    g = load_refsnn_h5(MODELS / "cnn_nq.h5")
    x, y = load_data(DATA, "test", g.input_shape, 64)
    assert result["ann_accuracy"] == float(np.mean(ann.forward(g, x).argmax(1) == y))
    assert [r["steps"] for r in result["results"]] == [1, 4, 16]
    assert result["results"][-1]["accuracy"] >= result["ann_accuracy"] - 0.05


@pytest.mark.parametrize("argv,code,message", [
    (["--method", "noise", "--percentile", "99"], 2, "--percentile does not apply"),
    (["--method", "noise", "--v-init", "zero"], 2, "--v-init does not apply"),
    (["--method", "noise", "--encoding", "exact"], 2, "--encoding"),
    (["--method", "if"], 1, "op 'qcfs' cannot be converted with --method if"),
])
def test_cli_noise_refusals(capsys, argv, code, message):
    got, _, err = run_cli(capsys, "evaluate", MODELS / "cnn_nq.h5", "--data", DATA,
                          "--limit", "4", "--steps", "2", *argv)
    assert got == code and message in err and err.count("\n") == 1


@pytest.mark.parametrize("method", ["if", "bsnn"])
def test_cli_qcfs_refusal_names_method_noise(capsys, method):
    """IF and BSNN refuse a QCFS model pointing to --method noise, the method made for it
    (issue 30: the advice was --method signgd)."""
    got, _, err = run_cli(capsys, "evaluate", MODELS / "cnn_nq.h5", "--data", DATA,
                          "--limit", "4", "--steps", "2", "--method", method)
    assert got == 1 and err.count("\n") == 1
    assert f"op 'qcfs' cannot be converted with --method {method}" in err
    assert "use --method noise, made for QCFS networks" in err and "signgd" not in err


def test_cli_noise_refuses_relu_model(capsys):
    got, _, err = run_cli(capsys, "evaluate", MODELS / "cnn.h5", "--data", DATA, "--limit",
                          "4", "--method", "noise")
    assert got == 1 and "no clip value" in err


@needs_jit
def test_cli_diagnose_gap(capsys):
    """``refsnn diagnose --only gap`` reports the same σ_l as measure_gap (one definition), a
    zero gap for the evenly driven first layer, and residual potentials u_T/θ."""
    code, out, _ = run_cli(capsys, "diagnose", MODELS / "resnet_nq.h5", "--data", DATA,
                           "--method", "noise", "--steps", "4", "--limit", "32", "--only", "gap",
                           "--json")
    assert code == 0
    table = json.loads(out)["diagnostics"]["gap"]
    rows = {r["layer"]: r for r in table["rows"]}
    assert list(rows) == ["qcfs1", "block_qcfs1", "block_qcfs2"]
    net = _noise_net("resnet_nq")
    x, _ = load_data(DATA, "test", net.graph.input_shape, 32)
    gaps, _ = measure_gap(net, x, 4)
    for name, gap in gaps.items():
        assert rows[name]["gap_sigma"] == gap.sigma and rows[name]["gap_mean"] == gap.mean
    assert rows["qcfs1"]["gap_sigma"] == 0.0
    # Residuals. The first layer's input z is constant, so u_T = θ/2 + T·z − N·θ leaves
    # [0, θ) exactly where h clips too: z < −θ/(2T) (below) or z ≥ θ + θ/(2T) (above).
    probe = Probe(net, x, 4)
    _, ann_values = qcfs_limit(net, x)
    for name, src in (("qcfs1", "conv1"), ("block_qcfs2", "block_add")):
        u = probe.trace(name).potentials[name][-1]
        theta = net.graph.node(name).params["threshold"][0]
        assert rows[name]["u_T_below"] == float(np.mean(u < 0))
        assert rows[name]["u_T_above"] == float(np.mean(u >= theta))
        if name == "qcfs1":
            z = ann_values[src]
            assert np.array_equal(u < 0, z < -theta / 8)
            assert np.array_equal(u >= theta, z >= theta + theta / 8)
    # a deeper layer reads spikes that arrive unevenly: some of its residuals leave [0, θ)
    assert rows["block_qcfs1"]["u_T_below"] + rows["block_qcfs1"]["u_T_above"] > 0
    code, _, err = run_cli(capsys, "diagnose", MODELS / "cnn.h5", "--data", DATA, "--only",
                           "gap", "--limit", "4")
    assert code == 2 and "does not apply to --method if" in err


@needs_jit
def test_gap_diagnostic_equals_gap_from_probe():
    net = _noise_net("cnn_qcfs")
    x, _ = load_data(DATA, "test", net.graph.input_shape, 8)
    table = diagnose(Probe(net, x, 2), ["gap"])["gap"]
    gaps, _ = measure_gap(net, x, 2)
    assert [r["gap_sigma"] for r in table.rows] == [g.sigma for g in gaps.values()]


@needs_jit
def test_noise_network_backends_and_dtypes_agree():
    """A noise network is an IF network: the Numba simulator equals the NumPy reference bit
    for bit, in float64 and float32, and Poisson input runs too."""
    g = load_refsnn_h5(MODELS / "resnet_nq.h5")
    x, _ = load_data(DATA, "test", g.input_shape, 6)
    for dtype in (np.float64, np.float32):
        net = convert_noise(g, dtype=dtype)
        assert net.graph.node("qcfs1").params["threshold"].dtype == dtype
        a, b = Simulator(net, "numba").run(x, [1, 4]), Simulator(net, "numpy").run(x, [1, 4])
        for t in (1, 4):
            assert np.array_equal(a.readout[t], b.readout[t])
        for name in net.neuron_nodes():
            assert np.array_equal(a.counts[name], b.counts[name])
    poisson = convert_noise(g, encoding="poisson")
    run = Simulator(poisson).run(x, 4, seed=3)
    assert poisson.encoding == "poisson" and run.readout[4].shape == (6, 10)


def test_calibration_flags_are_refused_for_noise_and_required_for_the_others(capsys, tmp_path):
    cli = main
    out = str(tmp_path / "net.h5")
    qcfs = str(MODELS / "cnn_qcfs.h5")
    data = str(DATA)
    assert cli(["convert", qcfs, "--method", "noise", "-o", out]) == 0
    capsys.readouterr()
    for flags in (["--calibration", data], ["--calibration-limit", "5"],
                  ["--calibration-split", "test"]):
        assert cli(["convert", qcfs, "--method", "noise", "-o", out, *flags]) == 2
        assert f"{flags[0]} does not apply to --method noise" in capsys.readouterr().err
    assert cli(["evaluate", qcfs, "--data", data, "--method", "noise", "--limit", "5",
                "--steps", "4", "--calibration-limit", "5"]) == 2
    assert "--calibration-limit does not apply" in capsys.readouterr().err
    relu = str(MODELS / "cnn.h5")
    assert cli(["convert", relu, "--method", "if", "-o", out]) == 2
    assert "--calibration is required for --method if" in capsys.readouterr().err
