"""refsnn compare: traces of simulators with injected bugs are caught and named."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from refsnn.conversion import convert_if
from refsnn.model import make_graph
from refsnn.neurons.if_ import IFNeurons, if_step_numpy, replay
from refsnn.oracle.compare import compare
from refsnn.oracle.trace import read_trace, record_trace, write_trace
from refsnn.sim.simulator import Simulator


def _net(reset="subtract"):
    """Two IF layers whose currents are chosen to hit the threshold exactly (dyadic 0.25,
    0.5) and through rounding (0.1 summed ten times is 0.9999999999999999 in float64 and
    1.0000001 in float32), so each injected bug shows within 40 steps."""
    eye = np.eye(4)
    g = make_graph((4,), [
        dict(name="fc0", op="linear", inputs=["input"], params=dict(weight=eye, bias=np.zeros(4))),
        dict(name="relu0", op="relu", inputs=["fc0"]),
        dict(name="fc1", op="linear", inputs=["relu0"],
             params=dict(weight=np.full((2, 4), 0.25), bias=np.zeros(2))),
        dict(name="relu1", op="relu", inputs=["fc1"]),
    ], "relu1")
    net = convert_if(g, np.ones((3, 4)), reset=reset)
    # calibration on ones: every activation is 1, so every threshold is exactly 1
    assert all(np.all(n.params["threshold"] == 1) for n in net.graph.nodes
               if "threshold" in n.params)
    return net


X = np.array([[0.1, 0.25, 0.3, 0.7], [0.5, 0.1, 0.75, 0.2]])


def _bug_gt(u, c, theta, rz):
    u += c
    fired = u > theta
    u -= np.where(fired, theta, 0.0)
    return np.where(fired, theta, 0.0)


def _bug_reset(u, c, theta, rz):
    return if_step_numpy(u, c, theta, True)


def _bug_f32(u, c, theta, rz):
    v = u.astype(np.float32) + c.astype(np.float32)
    fired = v >= theta.astype(np.float32)
    v -= np.where(fired, theta, 0.0).astype(np.float32)
    u[:] = v
    return np.where(fired, theta, 0.0)


def _bug_threshold(u, c, theta, rz):
    return if_step_numpy(u, c, 1.25 * theta, rz)


def _bug_channel(u, c, theta, rz):
    # one channel of the first layer (4 neurons) at half its threshold
    f = np.ones(theta.shape)
    if theta.size == 4:
        f[2] = 0.5
    return if_step_numpy(u, c, theta * f, rz)


def _bug_delay():
    last = {}

    def step(u, c, theta, rz):
        out = if_step_numpy(u, c, theta, rz)
        prev = last.get(id(theta), np.zeros_like(out))
        last[id(theta)] = out
        return prev
    return step


BUGS = {"comparison": _bug_gt, "reset": _bug_reset, "rounding": _bug_f32,
        "threshold": _bug_threshold, "delay": _bug_delay(), "channel threshold": _bug_channel}


def _trace(bug=None, steps=40):
    sim = Simulator(_net(), "numpy")
    if bug is not None:  # only the IF step is replaced: everything else is refsnn's own
        for op in sim.ops:
            if isinstance(op, IFNeurons):
                op.kernels = {**op.kernels, "step": bug}
    return record_trace(sim, X, steps)


@pytest.mark.parametrize("name", list(BUGS))
def test_injected_bug_is_named(name, tmp_path):
    write_trace(tmp_path / "ref.h5", _trace())
    write_trace(tmp_path / "bug.h5", _trace(BUGS[name]))
    c = compare(read_trace(tmp_path / "ref.h5"), read_trace(tmp_path / "bug.h5"))
    first = c.first_divergence
    assert first is not None and first.name == "relu0"
    assert first.kind == name, first
    assert c.real == (name != "rounding")
    assert [r.kind for r in c.layers][1] in ("downstream", "same")
    if name == "channel threshold":  # channel 2 only, and its factors include the injected one
        m = re.search(r"\(2: x ([^ )]+)\)", first.detail)
        assert first.detail.startswith("1 channel(s)") and m, first
        lo, hi = (float(v) for v in (m[1] + ".." + m[1]).split("..")[:2])
        assert lo <= 0.5 <= hi and hi / lo < 1.5, first


def test_identical_traces_do_not_diverge():
    c = compare(_trace(), _trace())
    assert c.first_divergence is None and not c.real
    assert all(r.agreement == 1.0 and r.rate_error == 0.0 for r in c.layers)


def test_replay_reproduces_the_simulator():
    # replay's own rule must be refsnn's (if it used ">" or reset to zero, this would fail
    # on the exact ties of _net), else every classification above would be meaningless
    tr = _trace()
    for layer in tr.layers.values():
        spikes, _ = replay(layer.current, layer.threshold, layer.v_init)
        assert np.array_equal(spikes, layer.spikes)


def test_unexplained_divergence(tmp_path):
    tr = _trace()
    other = _trace()
    other.layers["relu0"].spikes = other.layers["relu0"].spikes.copy()
    other.layers["relu0"].spikes[5:, 0, 3] = ~other.layers["relu0"].spikes[5:, 0, 3]
    c = compare(tr, other)
    assert c.first_divergence.kind == "unexplained" and c.real
    assert c.first_divergence.first == (6, 0, 3)


def test_cli_trace_and_compare(tmp_path, capsys):
    from conftest import DATA, MODELS

    from refsnn.cli.main import main

    ref, other, bad = tmp_path / "ref.h5", tmp_path / "numpy.h5", tmp_path / "late.h5"
    common = [str(MODELS / "mlp.h5"), "--data", str(DATA), "--limit", "4", "--steps", "20"]
    assert main(["trace", *common, "-o", str(ref)]) == 0
    assert main(["trace", *common, "--backend", "numpy", "-o", str(other)]) == 0
    capsys.readouterr()
    # the two backends are bit-identical: no divergence, exit 0
    assert main(["compare", str(ref), str(other)]) == 0
    assert "no divergence" in capsys.readouterr().out
    tr = read_trace(other)
    first = next(iter(tr.layers))
    late = np.zeros_like(tr.layers[first].spikes)
    late[1:] = tr.layers[first].spikes[:-1]
    tr.layers[first].spikes = late
    write_trace(bad, tr)
    assert main(["compare", str(ref), str(bad)]) == 1
    out = capsys.readouterr().out
    assert f"first divergence: layer {first}, step" in out and ": delay" in out
    assert main(["compare", str(ref), str(bad), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["real_divergence"] and report["first"]["layer"] == first
    assert report["first"]["class"] == "delay" and report["first"]["step"] >= 2
    # a file that is not a trace is a one-line error, not a traceback
    assert main(["compare", str(ref), str(DATA)]) == 1
    assert "format" in capsys.readouterr().err
