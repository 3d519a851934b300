"""The graphs of NIR's own test suite (neuromorphs/NIR, ``tests/test_architectures.py``,
``tests/test_ir.py``, ``tests/test_readwrite.py``), each rebuilt here with refsnn's own
parameters: one case per NIR test function that builds a graph, the case id naming it.

Each graph either runs (the NumPy and Numba backends equal bit for bit on 1 and 2 threads, and,
where a hand-written loop of ``docs/semantics.md`` "NIR graphs" is short, the readout equals
it), or is refused with a one-line :class:`ModelFormatError` naming what blocks it (the reason
is given at the case). NIR tests that build no graph (``test_has_version``, ``test_eq``,
``test_node``, ``test_serialize_deserialize_data``, ``test_utils.py``) have no case;
``test_deserialize`` reads the NIR paper's files, which ``tests/test_nir_published.py`` runs.
A few graphs are also written with ``nir.write`` and read back with ``refsnn.load``.
Skipped without the nir extra."""

from __future__ import annotations

import zlib
from typing import Callable, NamedTuple

import numba
import numpy as np
import pytest

from conftest import THREADS
from refsnn.errors import ModelFormatError
from refsnn.sim.simulator import Simulator

nir = pytest.importorskip("nir")
import refsnn  # noqa: E402
from refsnn.nir.reader import from_nir  # noqa: E402

T = 7  # steps of every run
RNG = np.random.default_rng(28)


class Case(NamedTuple):
    graph: object
    x: np.ndarray  # the input batch, (B, *input shape)
    dt: float = 1.0
    expect: Callable | None = None  # x -> readout after T steps, by a hand-written loop
    refused: str | None = None  # a regex the one-line error must match


# ---- the documented one-step rules, written out in NumPy ("NIR graphs" table) ----

def _lin(x, w, b=None):
    """``W·x + b``: inputs in ascending index, then the bias."""
    acc = np.zeros(x.shape[:-1] + (w.shape[0],))
    for j in range(w.shape[1]):
        acc = acc + x[..., j:j + 1] * w[:, j]
    return acc if b is None else acc + b


def _neuron(kind, dt, p):
    """One step of a NIR neuron node as a function of its input; state starts at 0."""
    state = {"v": 0.0}

    def step(i):
        v = state["v"]
        if kind in ("IF", "I"):
            v = v + (dt * p["r"]) * i
        else:  # LIF, LI: forward Euler
            v = v + (dt / p["tau"]) * ((p["v_leak"] - v) + p["r"] * i)
        out = v
        if kind in ("IF", "LIF"):
            out = (v > p["v_threshold"]).astype(float)
            v = np.where(out > 0, p["v_reset"], v)
        state["v"] = v
        return out
    return step


def _delay(k):
    """``y[t] = x[t − k]`` per element, 0 for ``t ≤ k``."""
    hist = []

    def step(i):
        hist.append(i)
        t = len(hist)
        return np.stack([hist[t - 1 - kk][..., e] if t > kk else np.zeros(i.shape[:-1])
                         for e, kk in enumerate(k)], axis=-1)
    return step


def _mean(step_fn):
    """The readout: the Output's value summed over steps 1..T, divided by T."""
    r = 0.0
    for _ in range(T):
        r = r + step_fn()
    return r / T


# ---- node makers (refsnn's own values) ----

def _aff(n_in, n_out, scale=0.6):
    # weights leaning positive, so that the neurons behind them fire
    return nir.Affine(weight=RNG.normal(0.25, scale, (n_out, n_in)),
                      bias=RNG.normal(0, 0.2, n_out))


def _lin_node(n_in, n_out, scale=0.6):
    return nir.Linear(weight=RNG.normal(0, scale, (n_out, n_in)))


def _lif(th, tau=2.0):
    th = np.asarray(th, float)
    n = th.size
    return nir.LIF(tau=np.full(n, tau), r=np.ones(n), v_leak=np.zeros(n), v_reset=np.zeros(n),
                   v_threshold=th)


def _p(node):
    return {f: np.asarray(getattr(node, f), float) for f in
            ("tau", "r", "v_leak", "v_reset", "v_threshold") if hasattr(node, f)}


def _in(*shape):
    return nir.Input(input_type=np.array(shape))


def _out(*shape):
    return nir.Output(output_type=np.array(shape) if shape else None)


def _x(*shape, b=3):
    return RNG.uniform(0, 1.5, (b, *shape))


CASES: dict[str, Callable[[], Case]] = {}


def case(fn):
    """Register a case; each draws its numbers from its own seed, whatever runs before it."""
    name = fn.__name__[1:].replace("__", "::")

    def build():
        global RNG
        RNG = np.random.default_rng(zlib.crc32(name.encode()))
        return fn()
    CASES[name] = build
    return fn


# ---- tests/test_architectures.py ----

@case
def _architectures__test_sequential():
    a, c, d = _aff(2, 3), _lif([0.4, 0.6, 0.5], tau=0.2), _aff(3, 2)
    g = nir.NIRGraph.from_list(a, nir.Delay(np.array([0.2, 0.0, 0.1])), c, d)

    def expect(x):
        u, dl, nr = _lin(x, a.weight, a.bias), _delay([2, 0, 1]), _neuron("LIF", 0.1, _p(c))
        return _mean(lambda: _lin(nr(dl(u)), d.weight, d.bias))
    return Case(g, _x(2), 0.1, expect)


def _loop_on_first():
    a, i = _aff(2, 2, 0.3), nir.I(r=np.array([0.5, -0.25]))
    g = nir.NIRGraph(nodes={"input": _in(2), "affine": a, "integrator": i, "output": _out(2)},
                     edges=[("input", "affine"), ("affine", "integrator"),
                            ("integrator", "affine"), ("integrator", "output")])
    return g, a, i


@case
def _architectures__test_recurrent_on_first_node():
    g, a, i = _loop_on_first()

    def expect(x):
        nr, prev = _neuron("I", 1.0, _p(i)), [np.zeros((len(x), 2))]

        def step():  # the back edge integrator -> affine carries the previous step's value
            prev[0] = nr(_lin(x + prev[0], a.weight, a.bias))
            return prev[0]
        return _mean(step)
    return Case(g, _x(2), 1.0, expect)


@case
def _architectures__test_recurrent_on_second_node():
    a1, a2, a3, i = _aff(2, 2), _aff(2, 2, 0.3), _aff(2, 2), nir.I(r=np.array([0.4, 0.3]))
    g = nir.NIRGraph(nodes={"affine1": a1, "affine2": a2, "integrator": i, "affine3": a3},
                     edges=[("affine1", "affine2"), ("affine2", "integrator"),
                            ("integrator", "affine2"), ("integrator", "affine3")])

    def expect(x):
        nr, u, prev = _neuron("I", 1.0, _p(i)), _lin(x, a1.weight, a1.bias), [0.0]

        def step():
            prev[0] = nr(_lin(u + prev[0], a2.weight, a2.bias))
            return _lin(prev[0], a3.weight, a3.bias)
        return _mean(step)
    return Case(g, _x(2), 1.0, expect)


def _branch(n_in, n_out, delay=False):
    nodes = [_aff(n_in, 3), _lif([0.3, 0.5, 0.4]), _aff(3, n_out)]
    if delay:
        nodes.insert(1, nir.Delay(np.array([1.0, 0.0, 2.0])))
    return nir.NIRGraph.from_list(*nodes)


def _branch_step(b, x):
    """One step of a ``_branch`` (nested graph) on its input ``x``, dt = 1."""
    n = b.nodes
    nr, u = _neuron("LIF", 1.0, _p(n["lif"])), _lin(x, n["affine"].weight, n["affine"].bias)
    dl = _delay([int(k) for k in n["delay"].delay]) if "delay" in n else (lambda v: v)
    return lambda: _lin(nr(dl(u)), n["affine_1"].weight, n["affine_1"].bias)


# Two top-level Inputs (nir adds input_branch_1, input_branch_2 and the Outputs): the network's
# input is their concatenation in sorted name order, (2,) + (2,); its readout that of the
# Outputs (output_branch_1, output_branch_2).
@case
def _architectures__test_two_independent_branches():
    b1, b2 = _branch(2, 2, True), _branch(2, 2)
    g = nir.NIRGraph(nodes={"branch_1": b1, "branch_2": b2}, edges=[])

    def expect(x):
        s1, s2 = _branch_step(b1, x[:, :2]), _branch_step(b2, x[:, 2:])
        return _mean(lambda: np.concatenate([s1(), s2()], axis=1))
    return Case(g, _x(4), 1.0, expect)


@case
def _architectures__test_two_independent_branches_merging():
    b1, b2, j = _branch(2, 3, True), _branch(2, 3), _lif([0.5, 0.5, 0.5])
    g = nir.NIRGraph(nodes={"branch_1": b1, "branch_2": b2, "junction": j},
                     edges=[("branch_1", "junction"), ("branch_2", "junction")])

    def expect(x):
        s1, s2, nr = _branch_step(b1, x[:, :2]), _branch_step(b2, x[:, 2:]), \
            _neuron("LIF", 1.0, _p(j))
        return _mean(lambda: nr(s1() + s2()))  # branch_1's edge is listed first
    return Case(g, _x(4), 1.0, expect)


def _split_merge(n_in):
    n = [_aff(n_in, 3, 0.3), _lif([0.1, 0.2, 0.15]), _aff(3, 2, 0.3), _lif([0.05, 0.1]),
         _aff(3, 2, 0.3), _lif([0.1, 0.05]), _aff(2, 2)]
    pre, b1, b2 = (nir.NIRGraph.from_list(*n[k:k + 2]) for k in (0, 2, 4))
    g = nir.NIRGraph(nodes={"pre_split": pre, "branch_1": b1, "branch_2": b2, "junction": n[6]},
                     edges=[("pre_split", "branch_1"), ("pre_split", "branch_2"),
                            ("branch_1", "junction"), ("branch_2", "junction")])

    def expect(x):
        lifs = [_neuron("LIF", 1.0, _p(n[k])) for k in (1, 3, 5)]
        u = _lin(x, n[0].weight, n[0].bias)

        def step():
            z = lifs[0](u)
            y1, y2 = (lifs[k](_lin(z, n[2 * k].weight, n[2 * k].bias)) for k in (1, 2))
            return _lin(y1 + y2, n[6].weight, n[6].bias)  # branch_1's edge is listed first
        return _mean(step)
    return Case(g, _x(n_in), 1.0, expect)


@case
def _architectures__test_merge_and_split_single_output():
    return _split_merge(2)


@case
def _architectures__test_merge_and_split_different_output_type():
    return _split_merge(3)


@case
def _architectures__test_residual():
    a, b, c, d, e, f = (_aff(2, 2), _lif([0.3, 0.5]), _aff(2, 2), _lif([0.2, 0.4]), _aff(2, 2),
                        _lif([0.1, 0.05]))
    g = nir.NIRGraph(nodes=dict(a=a, b=b, c=c, d=d, e=e, f=f),
                     edges=[("a", "b"), ("b", "c"), ("c", "d"), ("d", "e"), ("a", "e"),
                            ("e", "f")])

    def expect(x):
        nb, nd, nf = (_neuron("LIF", 1.0, _p(n)) for n in (b, d, f))
        u = _lin(x, a.weight, a.bias)
        # e sums its inputs in the file's edge order: d first, then a
        return _mean(lambda: nf(_lin(nd(_lin(nb(u), c.weight, c.bias)) + u, e.weight, e.bias)))
    return Case(g, _x(2), 1.0, expect)


@case
def _architectures__test_complex():
    # a (1, N) bias, as NIR's test writes it
    a = nir.Affine(weight=np.array([[1.0], [0.5], [0.25]]), bias=np.array([[0.1, 0.0, -0.1]]))
    nodes = dict(a=a, b=_lif([0.5, 1.0, 1.5]), c=_lif([0.2, 0.7, 0.3]), d=_aff(3, 2),
                 e=_aff(3, 2), f=_aff(2, 2))
    g = nir.NIRGraph(nodes=nodes, edges=[("a", "b"), ("a", "c"), ("b", "d"), ("c", "d"),
                                         ("c", "e"), ("d", "f"), ("e", "f")])

    def expect(x):
        nb, nc = _neuron("LIF", 1.0, _p(nodes["b"])), _neuron("LIF", 1.0, _p(nodes["c"]))
        u = _lin(x, a.weight, a.bias[0])
        ln = {k: (lambda v, k=k: _lin(v, nodes[k].weight, nodes[k].bias)) for k in "def"}

        def step():
            zb, zc = nb(u), nc(u)
            return ln["f"](ln["d"](zb + zc) + ln["e"](zc))
        return _mean(step)
    return Case(g, _x(1), 1.0, expect)


# NIR skips this test ("Not implemented"); refsnn reads a nested graph's several Inputs and
# Outputs when the edges name them (G.<name>).
@case
def _architectures__test_subgraph_multiple_input_output():
    a, b, c, d = _aff(1, 3), _aff(3, 2), _aff(3, 2), _aff(2, 1)
    inner = nir.NIRGraph(nodes={"b": b, "c": c, "bi": _in(3), "ci": _in(3), "bo": _out(2),
                                "co": _out(2)},
                         edges=[("bi", "b"), ("b", "bo"), ("ci", "c"), ("c", "co")],
                         type_check=False)
    g = nir.NIRGraph(nodes={"in": _in(1), "a": a, "g": inner, "d": d, "out": _out(1)},
                     edges=[("in", "a"), ("a", "g.bi"), ("a", "g.ci"), ("g.bo", "d"),
                            ("g.co", "d"), ("d", "out")], type_check=False)

    def expect(x):
        u = _lin(x, a.weight, a.bias)
        return _lin(_lin(u, b.weight, b.bias) + _lin(u, c.weight, c.bias), d.weight, d.bias)
    return Case(g, _x(1), 1.0, expect)


# ---- tests/test_ir.py ----

def _chain(*nodes, **kw):
    """x through a list of Affine/Linear nodes."""
    def f(x):
        for n in nodes:
            x = _lin(x, n.weight, getattr(n, "bias", None))
        return x
    return f


@case
def _ir__test_simple():
    a, b = _aff(3, 3), _aff(3, 3)
    return Case(nir.NIRGraph(nodes={"a": a, "b": b}, edges=[("a", "b")]), _x(3),
                expect=_chain(a, b))


def _integrator_delay_loop():
    a, i = _aff(3, 3, 0.3), nir.I(r=np.array([0.5, 0.2, -0.3]))
    nested = nir.NIRGraph(nodes={"input": _in(3), "integrator": i,
                                 "delay": nir.Delay(np.array([1.0, 1.0, 1.0])),
                                 "output": _out()},
                          edges=[("input", "integrator"), ("integrator", "delay"),
                                 ("delay", "integrator"), ("integrator", "output")])
    return a, i, nested


@case
def _ir__test_nested():
    a, i, nested = _integrator_delay_loop()
    g = nir.NIRGraph(nodes={"affine": a, "inner": nested}, edges=[("affine", "inner")])

    def expect(x):
        nr, dl, prev = _neuron("I", 1.0, _p(i)), _delay([1, 1, 1]), [0.0]
        u = _lin(x, a.weight, a.bias)

        def step():  # the back edge delay -> integrator: the delay's value of step t - 1
            v = nr(u + prev[0])
            prev[0] = dl(v)
            return v
        return _mean(step)
    return Case(g, _x(3), 1.0, expect)


@case
def _ir__test_simple_with_input_output():
    a = _aff(3, 3)
    g = nir.NIRGraph(nodes={"in": _in(3), "w": a, "out": _out(3)},
                     edges=[("in", "w"), ("w", "out")])
    return Case(g, _x(3), expect=_chain(a))


def _delay_graph(delay):
    return nir.NIRGraph(nodes={"in": _in(3), "d": nir.Delay(np.array(delay)), "out": _out(3)},
                        edges=[("in", "d"), ("d", "out")])


@case
def _ir__test_delay():
    return Case(_delay_graph([0.5, 0.0, 0.25]), _x(3), 0.25,
                lambda x: x * (T - np.array([2, 0, 1])) / T)


def _conv_ref(x, w, b, stride, pad):
    """A 2-d convolution written out (correlation, zero padding)."""
    xp = np.pad(x, ((0, 0), (0, 0), (pad[0],) * 2, (pad[1],) * 2))
    kh, kw = w.shape[2:]
    ho, wo = (xp.shape[2] - kh) // stride[0] + 1, (xp.shape[3] - kw) // stride[1] + 1
    out = np.zeros((len(x), w.shape[0], ho, wo))
    for i in range(ho):
        for j in range(wo):
            win = xp[:, :, i * stride[0]:i * stride[0] + kh, j * stride[1]:j * stride[1] + kw]
            out[:, :, i, j] = np.einsum("nchw,ochw->no", win, w) + b
    return out


@case
def _ir__test_conv1d():
    w, b = RNG.normal(0, 1, (2, 1, 3)), RNG.normal(0, 1, 2)
    g = nir.NIRGraph.from_list(_in(1, 20), nir.Conv1d(input_shape=20, weight=w, stride=2,
                                                      dilation=1, groups=1, padding=1, bias=b),
                               _out(2, 10), type_check=False)
    return Case(g, _x(1, 20), expect=lambda x: _conv_ref(x[:, :, None, :], w[:, :, None, :], b,
                                                         (1, 2), (0, 1))[:, :, 0, :])


@case
def _ir__test_conv2d():
    w, b = RNG.normal(0, 1, (3, 1, 3, 3)), RNG.normal(0, 1, 3)
    # groups=(1, 1) as NIR's test writes it (refsnn reads a sequence of equal counts)
    conv = nir.Conv2d(input_shape=(10, 10), weight=w, padding=(1, 1), stride=(1, 2),
                      dilation=(1, 1), groups=(1, 1), bias=b)
    g = nir.NIRGraph.from_list(_in(1, 10, 10), conv, _out(3, 10, 5), type_check=False)
    return Case(g, _x(1, 10, 10), expect=lambda x: _conv_ref(x, w, b, (1, 2), (1, 1)))


@case
def _ir__test_conv2d_same():
    w = np.ones((1, 1, 3, 3))
    # LI parameters of shape (3,), broadcast along the last axis of (1, 3, 3), as NIR's test
    li = nir.LI(np.array([0.6, 0.8, 1.0]), np.ones(3), np.zeros(3))
    conv = nir.Conv2d(input_shape=(3, 3), weight=w, stride=1, padding="same", dilation=1,
                      groups=1, bias=np.zeros(1))
    g = nir.NIRGraph(nodes={"input": _in(1, 3, 3), "conv2d": conv, "li": li, "output": _out()},
                     edges=[("input", "conv2d"), ("conv2d", "li"), ("li", "output")],
                     type_check=False)

    def expect(x):
        nr, u = _neuron("LI", 0.1, _p(li)), _conv_ref(x, w, np.zeros(1), (1, 1), (1, 1))
        return _mean(lambda: nr(u))
    return Case(g, _x(1, 3, 3), 0.1, expect)


def _cuba(lif, shape=(4, 5), **kw):
    p = dict(tau_mem=RNG.uniform(0.5, 2, shape), tau_syn=RNG.uniform(0.5, 2, shape),
             r=RNG.uniform(0.5, 2, shape), v_leak=RNG.normal(0, 0.1, shape), **kw)
    if lif:
        p.update(v_reset=np.zeros(shape), v_threshold=RNG.uniform(0.1, 0.5, shape))
    return nir.CubaLIF(**p) if lif else nir.CubaLI(**p)


@case
def _ir__test_cuba_li():
    return Case(nir.NIRGraph.from_list(_in(4, 5), _cuba(False), _out(4, 5)), _x(4, 5), 0.5)


@case
def _ir__test_cuba_lif():
    return Case(nir.NIRGraph.from_list(_in(4, 5), _cuba(True), _out(4, 5)), _x(4, 5), 0.5)


def _threshold_graph():
    th = np.array([0.3, 0.8, 1.2])
    return nir.NIRGraph(nodes={"in": _in(3), "thr": nir.Threshold(th), "out": _out(3)},
                        edges=[("in", "thr"), ("thr", "out")]), th


@case
def _ir__test_threshold():
    g, th = _threshold_graph()
    return Case(g, _x(3), expect=lambda x: (x > th).astype(float))


@case
def _ir__test_linear():
    a, b = _lin_node(3, 3), _lin_node(3, 3)
    return Case(nir.NIRGraph(nodes={"a": a, "b": b}, edges=[("a", "b")]), _x(3),
                expect=_chain(a, b))


# A Flatten of part of the shape (dims 0..1 of the per-sample (4, 5, 2), as nir's type rule
# counts them): a refsnn reshape to the (20, 2) nir infers.
@case
def _ir__test_flatten():
    g = nir.NIRGraph(nodes={"in": _in(4, 5, 2), "flat": nir.Flatten(
        start_dim=0, end_dim=1, input_type={"input": np.array([4, 5, 2])}),
        "out": _out(20, 2)}, edges=[("in", "flat"), ("flat", "out")])
    return Case(g, _x(4, 5, 2), expect=lambda x: x.reshape(len(x), 20, 2))


@case
def _ir__test_from_list_naming():
    dims = [2, 3, 2, 3, 2, 3, 2, 3, 2]
    nodes = [(_lin_node if k % 4 < 2 else _aff)(dims[k], dims[k + 1]) for k in range(8)]
    g = nir.NIRGraph.from_list(*nodes)
    assert {"linear", "linear_3", "affine", "affine_3"} <= set(g.nodes)
    return Case(g, _x(2), expect=_chain(*nodes))


@case
def _ir__test_from_list_tuple_or_list():
    a = _aff(2, 3)
    g = nir.NIRGraph.from_list((a, nir.Delay(np.array([0.0, 1.0, 3.0]))))
    return Case(g, _x(2), expect=lambda x: _lin(x, a.weight, a.bias) * (T - np.array([0, 1, 3]))
                / T)


def _dict_graph(n_in):
    return {"nodes": {"input": {"type": "Input", "shape": np.array([n_in])},
                      "module": {"type": "Linear", "weight": RNG.random((2, 2))},
                      "output": {"type": "Output", "shape": np.array([2])}},
            "edges": [("input", "module"), ("module", "output")]}


@case
def _ir__test_graph_from_dict_type_checked():
    d = _dict_graph(2)
    g = nir.NIRGraph.from_dict(d)
    return Case(g, _x(2), expect=lambda x: _lin(x, d["nodes"]["module"]["weight"]))


# Two nested graphs with an Input each and nothing feeding them, and no top-level Input (NIR
# skips this test): the unfed nested Inputs are the graph's inputs, L.input (2,) then
# R.input (1,).
@case
def _ir__test_subgraph_merge():
    left, right = (_lin_node(2, 3), _lin_node(3, 2)), (_lin_node(1, 3), _lin_node(3, 2))
    g = nir.NIRGraph(nodes={"L": nir.NIRGraph.from_list(*left),
                            "R": nir.NIRGraph.from_list(*right), "E": _out(2)},
                     edges=[("L.output", "E"), ("R.output", "E")], type_check=False)
    return Case(g, _x(3), expect=lambda x: _chain(*left)(x[:, :2]) + _chain(*right)(x[:, 2:]))


# The nested graph's Flatten is of part of the shape (a reshape, as in test_flatten); with
# the whole shape flattened the same structure runs too (below).
def _io_props(end_dim):
    inner = nir.NIRGraph(nodes={"in1": _in(4, 5, 2), "in2": _in(4, 5, 2), "flat": nir.Flatten(
        start_dim=0, end_dim=end_dim, input_type={"input": np.array([4, 5, 2])}),
        "out1": _out(), "out2": _out()},
        edges=[("in1", "flat"), ("in2", "flat"), ("flat", "out1"), ("flat", "out2")],
        type_check=False)
    return nir.NIRGraph(nodes={"in": _in(4, 5, 2), "inner": inner, "out": _out()},
                        edges=[("in", "inner.in1"), ("in", "inner.in2"), ("inner.out1", "out"),
                               ("inner.out2", "out")], type_check=False)


@case
def _ir__test_inputs_outputs_properties():
    # in1 + in2 reshaped, read twice: out1 + out2
    return Case(_io_props(1), _x(4, 5, 2), expect=lambda x: 4 * x.reshape(len(x), 20, 2))


def test_inputs_outputs_properties_with_a_whole_flatten_runs():
    x = _x(4, 5, 2)
    got = Simulator(from_nir(_io_props(-1)), "numpy").run(x, [3]).readout[3]
    # in1 + in2 flattened, read twice: out1 + out2
    np.testing.assert_allclose(got, 4 * x.reshape(len(x), -1), rtol=1e-15)


def _pool_graph(cls, shape=(1, 8, 8)):
    return nir.NIRGraph(nodes={"input": _in(*shape), "pool": cls(
        kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
        "output": _out()}, edges=[("input", "pool"), ("pool", "output")])


def _pool_ref(x, avg):
    s = x.reshape(*x.shape[:2], x.shape[2] // 2, 2, x.shape[3] // 2, 2).sum(axis=(3, 5))
    return s / 4 if avg else s


@case
def _ir__test_sumpool_type_inference():
    return Case(_pool_graph(nir.SumPool2d), _x(1, 8, 8), expect=lambda x: _pool_ref(x, False))


@case
def _ir__test_avgpool_type_inference():
    return Case(_pool_graph(nir.AvgPool2d), _x(1, 8, 8), expect=lambda x: _pool_ref(x, True))


def _flatten_graph(start, end, shape=(1, 6, 6)):
    return nir.NIRGraph(nodes={"input": _in(*shape), "flatten": nir.Flatten(
        start_dim=start, end_dim=end, input_type=None), "output": _out()},
        edges=[("input", "flatten"), ("flatten", "output")])


# NIR's test tries four (start_dim, end_dim); the whole-shape one is here, the three partial
# ones in test_flatten_of_part_of_the_shape_is_a_reshape_to_nirs_type.
@case
def _ir__test_flatten_type_inference():
    return Case(_flatten_graph(0, 2), _x(1, 6, 6), expect=lambda x: x.reshape(len(x), -1))


@pytest.mark.parametrize("start, end", [(0, 0), (0, 1), (1, 2), (1, -1), (-2, -1)])
def test_flatten_of_part_of_the_shape_is_a_reshape_to_nirs_type(start, end, restore_threads):
    """A partial Flatten reshapes the per-sample (1, 6, 6) to the output type nir's own type
    inference gives it (its dims count no batch axis); NumPy = Numba."""
    g = _flatten_graph(start, end)
    want = tuple(int(d) for d in g.nodes["flatten"].output_type["output"])
    x = _x(1, 6, 6)
    net = from_nir(g)
    got = Simulator(net, "numpy").run(x, [1, T]).readout
    assert got[1].shape == (len(x), *want)
    assert np.array_equal(got[1], x.reshape(len(x), *want))
    assert {n.op for n in net.graph.nodes} == {"reshape"}
    for threads in THREADS:
        numba.set_num_threads(threads)
        assert np.array_equal(Simulator(net).run(x, [T]).readout[T], got[T])


@pytest.mark.parametrize("start, end", [(2, 1), (0, 3), (-4, 0)])
def test_flatten_dims_outside_the_shape_are_one_line(start, end):
    with pytest.raises(ModelFormatError, match=r"/node/nodes/flatten: start_dim/end_dim: "
                                               r"expected axes of the per-sample shape") as e:
        from_nir(nir.NIRGraph(nodes={"input": _in(1, 6, 6), "flatten": nir.Flatten(
            start_dim=start, end_dim=end, input_type=None), "output": _out()},
            edges=[("input", "flatten"), ("flatten", "output")], type_check=False))
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("make", ["conv2d", "conv1d", "affine"])
def test_one_element_bias_broadcasts_over_the_channels(make):
    """NIR's test_conv1d and test_conv2d write ``bias=np.ndarray([1])`` over 2 and 3 output
    channels: a (1,) bias is read as NumPy broadcasts it, bit for bit the (C_out,) bias of
    that value; any other length stays an error."""
    def graph(bias):
        if make == "conv2d":
            node, shape = nir.Conv2d(input_shape=(5, 5), weight=np.ones((3, 1, 3, 3)), stride=1,
                                     padding=1, dilation=1, groups=1, bias=bias), (1, 5, 5)
        elif make == "conv1d":
            node, shape = nir.Conv1d(input_shape=9, weight=np.ones((3, 1, 3)), stride=2,
                                     padding=1, dilation=1, groups=1, bias=bias), (1, 9)
        else:
            node, shape = nir.Affine(weight=np.ones((3, 4)), bias=bias), (4,)
        return nir.NIRGraph.from_list(_in(*shape), node, _out(), type_check=False), shape
    g1, shape = graph(np.array([0.3]))
    x = _x(*shape)
    got = Simulator(from_nir(g1), "numpy").run(x, [2]).readout[2]
    assert np.array_equal(got, Simulator(from_nir(graph(np.full(3, 0.3))[0]), "numpy")
                          .run(x, [2]).readout[2])
    with pytest.raises(ModelFormatError, match=r"bias: expected shape \(3,\) or \(1, 3\), "
                                               r"found \(2,\)"):
        from_nir(graph(np.array([0.3, 0.1]))[0])


def _conv_unset(dims, input_shape):
    w = RNG.normal(0, 1, (1, 1) + (4,) * dims)
    cls = nir.Conv2d if dims == 2 else nir.Conv1d
    conv = cls(input_shape=input_shape, weight=w, stride=1, padding=0, dilation=1, groups=1,
               bias=None)  # no bias, as NIR's test writes it
    shape = (1,) + (12,) * dims
    g = nir.NIRGraph(nodes={"input": _in(*shape), "conv": conv, "output": _out()},
                     edges=[("input", "conv"), ("conv", "output")], type_check=False)
    return g, w


@case
def _ir__test_conv2d_type_inference():
    g, w = _conv_unset(2, None)
    return Case(g, _x(1, 12, 12), expect=lambda x: _conv_ref(x, w, 0.0, (1, 1), (0, 0)))


@case
def _ir__test_conv1d_type_inference():
    g, w = _conv_unset(1, 12)
    return Case(g, _x(1, 12), expect=lambda x: _conv_ref(x[:, :, None], w[:, :, None], 0.0,
                                                         (1, 1), (0, 0))[:, :, 0])


@case
def _ir__test_graph_input_output_type_inference():
    t = _lin_node(6, 4)
    g = nir.NIRGraph(nodes={"graph_input": _in(6), "transform": t, "graph_output": _out()},
                     edges=[("graph_input", "transform"), ("transform", "graph_output")])
    return Case(g, _x(6), expect=lambda x: _lin(x, t.weight))


@case
def _ir__test_type_check_recurrent():
    lin = nir.Linear(weight=np.array([[0.9, -0.2], [0.3, 0.7]]))
    ifn = nir.IF(r=np.array([0.8, 0.6]), v_threshold=np.array([0.5, 0.7]), v_reset=np.zeros(2))
    g = nir.NIRGraph(nodes={"a": _in(2), "b": lin, "c": ifn, "d": _out(2)},
                     edges=[("a", "b"), ("b", "c"), ("c", "b"), ("c", "d")])

    def expect(x):
        nr, prev = _neuron("IF", 1.0, _p(ifn)), [0.0]

        def step():
            prev[0] = nr(_lin(x + prev[0], lin.weight))
            return prev[0]
        return _mean(step)
    return Case(g, _x(2), 1.0, expect)


def test_type_check_recurrent_shape_mismatch_is_one_line():
    """NIR's test's second graph: a recurrent edge from a Flatten (16,) back into a Conv2d on
    (1, 5, 5)."""
    g = nir.NIRGraph(nodes={"a": _in(1, 5, 5), "b": nir.Conv2d(
        input_shape=None, weight=RNG.random((1, 1, 2, 2)), stride=1, padding=0, dilation=1,
        groups=1, bias=np.zeros(1)), "c": nir.Flatten(input_type=None, start_dim=0, end_dim=2),
        "d": _out(16)}, edges=[("a", "b"), ("b", "c"), ("c", "b"), ("c", "d")],
        type_check=False)
    with pytest.raises(ModelFormatError) as e:
        from_nir(g)
    assert "\n" not in str(e.value) and "(16,)" in str(e.value)


# ---- tests/test_readwrite.py (these also make the nir.write -> refsnn.load round trip) ----

@case
def _readwrite__test_simple():
    a = _aff(2, 2, 0.3)
    g = nir.NIRGraph(nodes={"input": _in(2), "a": a, "output": _out()},
                     edges=[("input", "a"), ("a", "a"), ("a", "output")])

    def expect(x):
        prev = [0.0]

        def step():  # the self-loop a -> a is a recurrent edge
            prev[0] = _lin(x + prev[0], a.weight, a.bias)
            return prev[0]
        return _mean(step)
    return Case(g, _x(2), 1.0, expect)


# NIR's graph leaves its Output unconnected (nir then adds an Input feeding it directly):
# nothing lies between Input and Output. The I <-> nested Delay loop runs when connected
# (test_nested_loop_connected_runs).
def _rw_nested(connected):
    inner = nir.NIRGraph(nodes={"a": _in(2), "b": nir.Delay(np.array([1.0, 2.0])), "c": _out(2)},
                         edges=[("a", "b"), ("b", "c")])
    nodes = {"a": nir.I(r=np.array([1.0, 0.5])), "b": inner, "c": _out(2)}
    if not connected:
        return nir.NIRGraph(nodes=nodes, edges=[("a", "b"), ("b", "a")])
    return nir.NIRGraph(nodes={"in": _in(2), **nodes},
                        edges=[("in", "a"), ("a", "b"), ("b", "a"), ("a", "c")])


@case
def _readwrite__test_nested():
    return Case(_rw_nested(False), _x(2),
                refused=r"/node/nodes/c: edges: expected at least one node between Input and "
                        r"Output")


def test_nested_loop_connected_runs(restore_threads):
    x = _x(2)
    net = from_nir(_rw_nested(True), dt=1.0)
    got = Simulator(net, "numpy").run(x, [T]).readout[T]
    nr, dl, prev = _neuron("I", 1.0, {"r": np.array([1.0, 0.5])}), _delay([1, 2]), [0.0]

    def step():
        v = nr(x + prev[0])
        prev[0] = dl(v)
        return v
    np.testing.assert_allclose(got, _mean(step), rtol=1e-12)
    for threads in THREADS:
        numba.set_num_threads(threads)
        assert np.array_equal(Simulator(net).run(x, [T]).readout[T], got)


# A Conv1d on a vector input (NIR skips this test: "broadcast type checking"): a Conv1d
# reads a (C, N) input, so refsnn names the weight and the input shape.
@case
def _readwrite__test_conv1d():
    conv = nir.Conv1d(input_shape=8, weight=RNG.normal(0, 1, (1, 8, 8)), bias=np.zeros(1),
                      stride=1, padding=0, dilation=1, groups=1)
    g = nir.NIRGraph.from_list(_aff(2, 8), conv, _aff(8, 2), type_check=False)
    return Case(g, _x(2), refused=r"/node/nodes/conv1d: weight: expected a \(C_out, C_in/groups, "
                                  r"k\) weight on a \(C, N\) input, found \(1, 8, 8\) on input "
                                  r"\(8,\)")


@case
def _readwrite__test_conv1d_2():
    w, b = RNG.normal(0, 1, (1, 2, 3, 3)), RNG.normal(0, 1, 1)
    conv = nir.Conv2d(input_shape=(6, 6), weight=w, bias=b, stride=1, padding=0, dilation=1,
                      groups=1)
    return Case(nir.NIRGraph.from_list(conv), _x(2, 6, 6),
                expect=lambda x: _conv_ref(x, w, b, (1, 1), (0, 0)))


def _affine_then(node, n_in=2):
    a = _aff(n_in, np.asarray(node.r).size)
    g = nir.NIRGraph(nodes={"a": a, "b": node}, edges=[("a", "b")])
    return g, a


def _then_expect(a, kind, node, dt):
    def expect(x):
        nr, u = _neuron(kind, dt, _p(node)), _lin(x, a.weight, a.bias)
        return _mean(lambda: nr(u))
    return expect


@case
def _readwrite__test_integrator():
    node = nir.I(np.array([1.0, 0.5]))
    g, a = _affine_then(node)
    return Case(g, _x(2), 1.0, _then_expect(a, "I", node, 1.0))


@case
def _readwrite__test_integrate_and_fire():
    node = nir.IF(r=np.array([1.0, 1.0]), v_threshold=np.array([1.0, 0.5]),
                  v_reset=np.array([0.0, 0.0]))
    g, a = _affine_then(node)
    return Case(g, _x(2), 1.0, _then_expect(a, "IF", node, 1.0))


@case
def _readwrite__test_leaky_integrator():
    node = nir.LI(np.array([1.0, 2.0, 3.0]), np.ones(3), np.ones(3))
    g = nir.NIRGraph.from_list(a := _aff(2, 3), node)
    return Case(g, _x(2), 0.5, _then_expect(a, "LI", node, 0.5))


@case
def _readwrite__test_linear():
    node = nir.LI(np.array([1.0, 2.0, 3.0]), np.ones(3), np.ones(3))
    lin = _lin_node(2, 3)
    g = nir.NIRGraph.from_list(lin, node)

    def expect(x):
        nr, u = _neuron("LI", 0.5, _p(node)), _lin(x, lin.weight)
        return _mean(lambda: nr(u))
    return Case(g, _x(2), 0.5, expect)


@case
def _readwrite__test_leaky_integrator_and_fire():
    node = nir.LIF(np.array([1.0, 2.0, 3.0]), np.ones(3), np.ones(3), np.zeros(3),
                   np.array([1.2, 1.5, 1.1]))
    g = nir.NIRGraph.from_list(a := _aff(2, 3), node)
    return Case(g, _x(2), 0.5, _then_expect(a, "LIF", node, 0.5))


@case
def _readwrite__test_current_based_leaky_integrator():
    g = nir.NIRGraph.from_list(_aff(2, 3), _cuba(False, (3,), w_in=np.array([2.0, 1.0, 0.5])))
    return Case(g, _x(2), 0.5)


@case
def _readwrite__test_current_based_leaky_integrator_and_fire():
    g = nir.NIRGraph.from_list(_aff(2, 3), _cuba(True, (3,), w_in=np.array([2.0, 1.0, 0.5])))
    return Case(g, _x(2), 0.5)


@case
def _readwrite__test_scale():
    s = np.array([1.0, -2.0, 0.5])
    g = nir.NIRGraph.from_list(_in(3), nir.Scale(scale=s), _out(3))
    return Case(g, _x(3), expect=lambda x: x * s)


@case
def _readwrite__test_simple_with_read_write():
    a = _aff(3, 3)
    return Case(nir.NIRGraph.from_list(_in(3), a, _out(3)), _x(3), expect=_chain(a))


@case
def _readwrite__test_delay():
    g = nir.NIRGraph.from_list(_in(3), nir.Delay(np.array([1.0, 2.0, 3.0])), _out(3))
    return Case(g, _x(3), 1.0, lambda x: x * (T - np.array([1, 2, 3])) / T)


@case
def _readwrite__test_threshold():
    g, th = _threshold_graph()
    return Case(g, _x(3), expect=lambda x: (x > th).astype(float))


@case
def _readwrite__test_flatten():
    g = nir.NIRGraph.from_list(_in(2, 3), nir.Flatten(start_dim=0, end_dim=1, input_type={
        "input": np.array([2, 3])}), _out(6))
    return Case(g, _x(2, 3), expect=lambda x: x.reshape(len(x), -1))


@case
def _readwrite__test_sum_pool_2d():
    return Case(_pool_graph(nir.SumPool2d, (2, 10, 10)), _x(2, 10, 10),
                expect=lambda x: _pool_ref(x, False))


@case
def _readwrite__test_avg_pool_2d():
    return Case(_pool_graph(nir.AvgPool2d, (2, 10, 10)), _x(2, 10, 10),
                expect=lambda x: _pool_ref(x, True))


# Two Linear nodes whose shapes do not chain (nir builds it only without its type check).
@case
def _readwrite__test_read_without_type_check():
    g = nir.NIRGraph.from_list(nir.Linear(weight=np.zeros((2, 2))),
                               nir.Linear(weight=np.zeros((1, 1))), type_check=False)
    return Case(g, _x(2), refused=r"/node/nodes/linear_1: weight: expected a \(N_out, 2\) "
                                  r"matrix")


# ---- the checks ----

#: Graphs outside test_readwrite.py that also make the file round trip: recurrent edges, nested
#: graphs with named ends, Delay, a (1, N) bias, two Inputs, a partial Flatten.
ROUND_TRIP = {"architectures::test_recurrent_on_first_node", "architectures::test_complex",
              "architectures::test_two_independent_branches_merging", "ir::test_flatten",
              "architectures::test_subgraph_multiple_input_output", "ir::test_nested",
              "architectures::test_sequential"}


def _run(net, x):
    return Simulator(net, "numpy").run(x, [T])


@pytest.mark.parametrize("name", list(CASES))
def test_nir_suite_graph(name, tmp_path, restore_threads):
    c = CASES[name]()
    if c.refused:
        with pytest.raises(ModelFormatError, match=c.refused) as e:
            from_nir(c.graph, dt=c.dt)
        assert "\n" not in str(e.value)
        return
    net = from_nir(c.graph, dt=c.dt)
    ref = _run(net, c.x)
    assert np.all(np.isfinite(ref.readout[T])) and np.any(ref.readout[T] != 0)
    # every spiking node fires, so that the spike rules are really compared
    assert all(n.any() for n in ref.counts.values())
    for threads in THREADS:
        numba.set_num_threads(threads)
        run = Simulator(net).run(c.x, [T])
        assert np.array_equal(run.readout[T], ref.readout[T])
        assert run.counts.keys() == ref.counts.keys()
        for k in ref.counts:
            assert np.array_equal(run.counts[k], ref.counts[k])
    if c.expect is not None:
        np.testing.assert_allclose(ref.readout[T], c.expect(c.x), rtol=1e-12, atol=1e-12)
    if name.startswith("readwrite::") or name in ROUND_TRIP:
        path = tmp_path / "g.nir"
        nir.write(path, c.graph)
        back = refsnn.load(path, dt=c.dt)
        assert np.array_equal(_run(back, c.x).readout[T], ref.readout[T])


def test_every_graph_building_nir_test_has_a_case():
    """The NIR test functions mirrored here (ids), by file; tests that build no graph and
    test_deserialize (the paper's files: tests/test_nir_published.py) are left out."""
    by_file = {}
    for name in CASES:
        by_file.setdefault(name.split("::")[0], set()).add(name.split("::")[1])
    assert len(by_file["architectures"]) == 10
    assert len(by_file["ir"]) == 24
    assert len(by_file["readwrite"]) == 19


@pytest.mark.parametrize("groups", [(1, 2), "one", 0, 1.5])
def test_conv_groups_other_than_one_count_is_one_line(groups):
    """reader.py read ``groups`` with ``int()``: ``(1, 1)`` raised a bare TypeError. Now one
    count, or a sequence of equal ones, is read; anything else is a one-line error."""
    g = nir.NIRGraph.from_list(_in(1, 6, 6), nir.Conv2d(
        input_shape=(6, 6), weight=np.ones((1, 1, 3, 3)), stride=1, padding=0, dilation=1,
        groups=groups, bias=np.zeros(1)), _out(), type_check=False)
    with pytest.raises(ModelFormatError, match=r"/node/nodes/conv2d: groups: expected one "
                                               r"positive integer") as e:
        from_nir(g)
    assert "\n" not in str(e.value)


def test_bias_none_is_no_bias():
    """reader.py read ``bias=None`` (NIR's tests write it) as NaN and refused it as 'NaN or
    inf'; it means no bias, as ``False`` does: every output is the bias-free sum, signed zeros
    included."""
    w = RNG.normal(0, 1, (2, 1, 3, 3))
    make = [nir.Conv2d(input_shape=(5, 5), weight=w, stride=1, padding=1, dilation=1, groups=1,
                       bias=b) for b in (None, False)]
    x = np.concatenate([_x(1, 5, 5, b=1), np.zeros((1, 1, 5, 5))])
    got = [Simulator(from_nir(nir.NIRGraph.from_list(_in(1, 5, 5), m, _out(),
                                                     type_check=False)), "numpy")
           .run(x, [2]).readout[2] for m in make]
    np.testing.assert_allclose(got[0], _conv_ref(x, w, 0.0, (1, 1), (1, 1)), rtol=1e-12)
    assert np.array_equal(got[0], got[1]) and not np.signbit(got[0][1]).any()
    assert not got[0][1].any()  # the zero sample: no events, +0 plus the -0.0 of no bias


@pytest.mark.parametrize("field, value", [("stride", (1, 2)), ("padding", (0, 3)),
                                          ("dilation", (1, 1))])
def test_conv1d_pair_is_one_line_not_cut_to_its_first_value(field, value):
    """reader.py read a Conv1d's stride and padding as ``_pair(v)[0]``: ``stride=(1, 2)`` ran
    as stride 1, its 2 silently dropped. A Conv1d has one axis: a pair is an error."""
    kw = {"stride": 1, "padding": 0, "dilation": 1, field: value}
    g = nir.NIRGraph.from_list(_in(1, 12), nir.Conv1d(input_shape=12, weight=np.ones((1, 1, 3)),
                                                      bias=np.zeros(1), groups=1, **kw),
                               _out(), type_check=False)
    with pytest.raises(ModelFormatError, match=rf"/node/nodes/conv1d: {field}: expected one "
                                               r"non-negative integer \(a Conv1d has one axis\)"):
        from_nir(g)
