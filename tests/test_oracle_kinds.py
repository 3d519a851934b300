"""refsnn compare on bistable (BSNN) and signGD layers: injected bugs are caught and named.

Each bug is injected into a copy of refsnn's own neuron step (a kernel of its kind replaced, or
the op's ``step`` wrapped); everything else is refsnn's. The reference is refsnn's own trace,
which carries what compare replays (bistable: input current, period, stage; signGD: target,
eta0, gamma, tie rule).
"""

from __future__ import annotations

import numpy as np
import pytest

from refsnn.conversion import convert_bsnn, convert_signgd
from refsnn.model import make_graph
from refsnn.neurons.bistable import cycle_state, fire_numpy, replay_bistable
from refsnn.neurons.signgd import replay_signgd, signgd_fire_numpy
from refsnn.oracle.compare import compare
from refsnn.oracle.trace import read_trace, record_trace, write_trace
from refsnn.sim.simulator import Simulator

X = np.array([[0.1, 0.25, 0.3, 0.7], [0.5, 0.1, 0.75, 0.2]])
PERIOD, GAMMA = 4, 0.5


def _graph():
    """Two ReLU layers; calibration on ones makes every threshold / scale exactly 1."""
    return make_graph((4,), [
        dict(name="fc0", op="linear", inputs=["input"],
             params=dict(weight=np.eye(4), bias=np.zeros(4))),
        dict(name="relu0", op="relu", inputs=["fc0"]),
        dict(name="fc1", op="linear", inputs=["relu0"],
             params=dict(weight=np.full((2, 4), 0.25), bias=np.zeros(2))),
        dict(name="relu1", op="relu", inputs=["fc1"]),
    ], "relu1")


def _bsnn():
    # v_init zero and inputs that are multiples of 0.25 give exact ties u = theta; 0.1 and
    # 0.3 accumulate rounding, so a float32 integrate flips a near-tie within 64 steps
    return convert_bsnn(_graph(), np.ones((3, 4)), percentile=100, period=PERIOD,
                        v_init="zero")


def _signgd():
    # dyadic step sizes (eta0 = gamma = 1/2): v takes dyadic values, so it hits the dyadic
    # targets 0.25, 0.5, 0.75 exactly (ties), and binary-searches the others (0.1, 0.3, 0.7)
    # down to float32 resolution, where a float32 update breaks a near-tie
    return convert_signgd(_graph(), np.ones((3, 4)), eta0=0.5, gamma=GAMMA)


# ------------------------------------------------------------------ the injected bugs

def _delayed_step(op):
    """The op's step, emitting each step's value one step late."""
    step, last = op.step, {}

    def wrapped(state, *xs):
        out = step(state, *xs)
        prev = last.get("out", np.zeros_like(out))
        last["out"] = out
        return prev
    return wrapped


def _bistable_early(op):
    """A copy of BistableNeurons.step that counts cycles from t instead of t - 1."""
    def wrapped(state, x):
        state["t"] += 1
        out = op.actions[cycle_state(state["t"] + 1, op.period, op.stage)](state["u"], x)
        return out.reshape(x.shape)
    return wrapped


def _fire_gt(u, theta):
    fired = u > theta
    u -= np.where(fired, theta, 0.0)
    return np.where(fired, theta, 0.0)


def _fire_reset_zero(u, theta):
    fired = u >= theta
    u[fired] = 0.0
    return np.where(fired, theta, 0.0)


def _integrate_f32(u, c):
    u[:] = u.astype(np.float32) + c.astype(np.float32)
    return np.zeros_like(u)


def _sgd_tie(v, target, eta, inclusive, scale):
    return signgd_fire_numpy(v, target, eta, not inclusive, scale)


def _sgd_f32(v, target, eta, inclusive, scale):
    v32, t32 = v.astype(np.float32), target.astype(np.float32)
    fired = v32 >= t32 if inclusive else v32 > t32
    delta = np.where(fired, -eta, eta).astype(np.float32)
    v[:] = v32 + delta
    return delta * scale


def _sgd_schedule(v, target, eta, inclusive, scale):
    # eta0 * gamma**t instead of eta0 * gamma**(t - 1): the step sizes indexed from 0
    return signgd_fire_numpy(v, target, eta * GAMMA, inclusive, scale)


#: class -> (kernel replacements, op.step wrapper); the class compare must report.
BSNN_BUGS = {
    "delay": ({}, _delayed_step),
    "phase": ({}, _bistable_early),
    "comparison": ({"fire": _fire_gt}, None),
    "reset": ({"fire": _fire_reset_zero}, None),
    "rounding": ({"integrate": _integrate_f32}, None),
    "threshold": ({"fire": lambda u, theta: fire_numpy(u, 1.25 * theta)}, None),
}
SIGNGD_BUGS = {
    "delay": ({}, _delayed_step),
    "comparison": ({"fire": _sgd_tie}, None),
    "rounding": ({"fire": _sgd_f32}, None),
    "schedule": ({"fire": _sgd_schedule}, None),
}
NETS = {"bsnn": (_bsnn, BSNN_BUGS, 64), "signgd": (_signgd, SIGNGD_BUGS, 40)}


def _trace(method, bug=None):
    make, bugs, steps = NETS[method]
    sim = Simulator(make(), "numpy")
    if bug is not None:
        kernels, wrap = bugs[bug]
        for op in sim.ops:
            if op.is_neuron:
                op.kernels = {**op.kernels, **kernels}
            if wrap is not None and op.is_neuron:
                op.step = wrap(op)
    return record_trace(sim, X, steps)


@pytest.mark.parametrize("method,bug", [(m, b) for m, (_, bugs, _) in NETS.items()
                                        for b in bugs])
def test_injected_bug_is_named(method, bug, tmp_path):
    write_trace(tmp_path / "ref.h5", _trace(method))
    write_trace(tmp_path / "bug.h5", _trace(method, bug))
    c = compare(read_trace(tmp_path / "ref.h5"), read_trace(tmp_path / "bug.h5"))
    first = c.first_divergence
    assert first is not None and first.name == "relu0", c.layers
    assert first.kind == bug, first
    assert c.real == (bug != "rounding")
    assert c.layers[1].kind in ("downstream", "same")


@pytest.mark.parametrize("method", list(NETS))
def test_replay_reproduces_the_simulator_with_ties(method):
    # the replays must follow refsnn's rule (with ">" or a reset to zero they would fail on
    # the exact ties counted below), else every classification above means nothing
    tr = _trace(method)
    ties = 0
    for name, layer in tr.layers.items():
        if method == "bsnn":
            p = layer.params
            spikes, pre = replay_bistable(layer.current, layer.threshold, layer.v_init,
                                          p["period"], p["stage"])
            ties += int(np.sum(pre == 1.0))  # every threshold is 1
        else:
            p = layer.params
            spikes, v = replay_signgd(layer.target, p["eta0"], p["gamma"], p["tie"])
            ties += int(np.sum(v == layer.target))
        assert np.array_equal(spikes, layer.spikes), name
    assert ties > 0


def test_identical_traces_and_roundtrip(tmp_path):
    for method in NETS:
        tr = _trace(method)
        write_trace(tmp_path / f"{method}.h5", tr)
        back = read_trace(tmp_path / f"{method}.h5")
        for name, layer in tr.layers.items():
            got = back.layers[name]
            assert got.kind == layer.kind and got.params == layer.params, name
            for key in ("current", "target", "threshold"):
                a, b = getattr(layer, key), getattr(got, key)
                assert (a is None) == (b is None) and (a is None or np.array_equal(a, b)), key
        c = compare(back, tr)
        assert c.first_divergence is None and not c.real
    assert back.layers["relu0"].params == {"eta0": 0.5, "gamma": 0.5, "tie": "inclusive"}


def test_layer_without_replay_data_is_unexplained_not_guessed():
    # the other trace carries spikes only, and a reference without current/target (as
    # another tool might write) can only be told apart as a delay
    for method in NETS:
        ref, bug = _trace(method), _trace(method, "comparison")
        for layer in ref.layers.values():
            layer.current = layer.target = None
        c = compare(ref, bug)
        assert c.first_divergence.kind == "unexplained" and c.real


def test_bsnn_stage_off_by_one_is_a_phase():
    ref = _trace("bsnn")
    sim = Simulator(_bsnn(), "numpy")
    op = next(op for op in sim.ops if op.node.name == "relu0")
    op.stage += 1  # the layer waits one more cycle
    c = compare(ref, record_trace(sim, X, 64))
    first = c.first_divergence
    assert first.name == "relu0" and first.kind == "phase", first
    assert "stage off by +1" in first.detail


@pytest.mark.parametrize("method", ["bsnn", "signgd"])
def test_cli_trace_carries_replay_data(method, tmp_path, capsys):
    from conftest import DATA, MODELS

    from refsnn.cli.main import main

    ref = tmp_path / "ref.h5"
    assert main(["trace", str(MODELS / "mlp.h5"), "--data", str(DATA), "--limit", "2",
                 "--steps", "16", "--method", method, "--backend", "numpy",
                 "-o", str(ref)]) == 0
    tr = read_trace(ref)
    field = "current" if method == "bsnn" else "target"
    for layer in tr.layers.values():
        assert layer.kind == {"bsnn": "bistable", "signgd": "sgd"}[method]
        assert getattr(layer, field).shape == layer.spikes.shape
    # compare of the file against a copy with the first layer one step late names the delay
    first = next(iter(tr.layers))
    tr.layers[first].spikes = np.concatenate([np.zeros_like(tr.layers[first].spikes[:1]),
                                              tr.layers[first].spikes[:-1]])
    write_trace(tmp_path / "late.h5", tr)
    capsys.readouterr()
    assert main(["compare", str(ref), str(ref)]) == 0
    assert main(["compare", str(ref), str(tmp_path / "late.h5")]) == 1
    out = capsys.readouterr().out
    assert f"first divergence: layer {first}, step" in out and ": delay" in out
