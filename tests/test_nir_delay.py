"""NIR's Delay (refsnn/neurons/delay.py, op ``nir_delay``): the ring buffer's kernel equals
its NumPy twin on 1 and 2 threads, a delay of d steps shifts every element's sequence by
exactly d steps (0 before), delays that are not whole steps are refused naming the file, the
node and the field, and graphs with Delay round-trip through NIR. Skipped without nir."""

from __future__ import annotations

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import THREADS
from refsnn.errors import ModelFormatError
from refsnn.neurons.delay import TOLERANCE, delay_step_numba, delay_step_numpy
from refsnn.sim.simulator import Simulator

nir = pytest.importorskip("nir")
from refsnn.nir.reader import from_nir, load_nir  # noqa: E402
from refsnn.nir.writer import to_nir  # noqa: E402

pytestmark = pytest.mark.usefixtures("restore_threads")


def _graph(delay, dt, weight=None):
    """Input -> Delay (-> Affine) -> Output."""
    n = delay.size
    nodes = {"in": nir.Input(input_type={"input": np.array([n])}),
             "d": nir.Delay(delay=delay),
             "out": nir.Output(output_type={"output": np.array([n])})}
    edges = [("in", "d"), ("d", "out")]
    if weight is not None:
        nodes["s"] = nir.Affine(weight=weight, bias=np.zeros(weight.shape[0]))
        nodes["out"] = nir.Output(output_type={"output": np.array([weight.shape[0]])})
        edges = [("in", "d"), ("d", "s"), ("s", "out")]
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={"dt": dt}, type_check=False)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), b=st.integers(1, 4), n=st.integers(1, 30),
       depth=st.integers(0, 6), dtype=st.sampled_from([np.float64, np.float32]),
       threads=st.sampled_from(THREADS))
def test_kernel_equals_its_twin_and_shifts_each_element(seed, b, n, depth, dtype, threads):
    numba.set_num_threads(threads)
    rng = np.random.default_rng(seed)
    steps = rng.integers(0, depth + 1, n).astype(np.int64)
    length = int(steps.max()) + 1
    x = rng.normal(0, 1, (3 * length + 2, b, n)).astype(dtype)
    buf1, buf2 = (np.zeros((b, length, n), dtype) for _ in range(2))
    for t in range(x.shape[0]):
        y1 = delay_step_numpy(buf1, t % length, x[t], steps)
        y2 = delay_step_numba(buf2, t % length, x[t], steps)
        want = np.where(t >= steps, x[np.maximum(t - steps, 0), :, np.arange(n)].T, 0)
        assert y1.dtype == y2.dtype == dtype
        assert np.array_equal(y1, y2) and np.array_equal(y1, want), t


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 10), dt=st.sampled_from(
       [1.0, 0.1, 1e-3, 0.3]), dtype=st.sampled_from([np.float64, np.float32]))
def test_delay_of_d_steps_shifts_by_exactly_d(seed, n, dt, dtype):
    """Through the reader and the simulator's step op: y[t] = x[t - d] (1-based t), 0 for
    t <= d, per element; the delays given in time units of a float32 file (d·dt rounded)."""
    rng = np.random.default_rng(seed)
    d = rng.integers(0, 5, n)
    delay = (d * dt).astype(np.float32)  # as a NIR file stores it
    net = from_nir(_graph(delay, dt), dtype=dtype)
    sim = Simulator(net, "numba")
    (op,) = [o for o in sim.ops if o.node.op == "nir_delay"]
    assert np.array_equal(op.steps, d)
    state = op.init(2)
    x = rng.normal(0, 1, (12, 2, n)).astype(dtype)
    for t in range(1, 13):  # 1-based steps
        y = op.step(state, x[t - 1])
        want = np.where(t > d, x[np.maximum(t - 1 - d, 0), :, np.arange(n)].T, 0)
        assert np.array_equal(y, want), t
    # a constant input: the mean over T steps is x·(T − d)/T, the same on both backends
    xs = rng.uniform(0, 1, (3, n))
    runs = [Simulator(net, backend).run(xs, 8).readout[8] for backend in ("numpy", "numba")]
    assert np.array_equal(runs[0], runs[1])
    assert np.allclose(runs[0], xs * (8 - d) / 8, rtol=1e-6 if dtype == np.float32 else 1e-14)


def test_delays_not_whole_steps_are_refused_naming_file_node_field(tmp_path):
    path = tmp_path / "d.nir"
    nir.write(path, _graph(np.array([0.0, 0.15, 0.2]), 0.1))
    with pytest.raises(ModelFormatError,
                       match=f"{path}.*nodes/d: delay: expected non-negative whole "
                       r"multiples of dt = 0\.1.*found 0\.15"):
        load_nir(path)
    with pytest.raises(ModelFormatError, match="nodes/d: delay.*found -0.1"):
        from_nir(_graph(np.array([0.1, -0.1]), 0.1))
    with pytest.raises(ModelFormatError, match="nodes/d: delay: expected finite"):
        from_nir(_graph(np.array([0.1, np.nan]), 0.1))
    # within the tolerance: accepted and rounded; just outside: refused
    ok = from_nir(_graph(np.array([2.0 * (1 + TOLERANCE / 2)]), 1.0))
    assert np.array_equal(Simulator(ok).ops[0].steps, [2])
    with pytest.raises(ModelFormatError, match="delay"):
        from_nir(_graph(np.array([2.0 * (1 + 2 * TOLERANCE)]), 1.0))
    with pytest.raises(Exception, match="needs a time step"):
        from_nir(nir.NIRGraph(nodes=dict(_graph(np.ones(2), 1.0).nodes),
                              edges=[("in", "d"), ("d", "out")], metadata={},
                              type_check=False))


def test_graph_with_delay_round_trips_through_nir(tmp_path):
    from refsnn.nir.writer import export_nir

    net = from_nir(_graph(np.array([0.0, 2e-3, 1e-3, 5e-3]), 1e-3,
                          weight=np.random.default_rng(1).normal(0, 1, (3, 4))))
    assert [n.op for n in net.graph.nodes] == ["nir_delay", "linear"]
    graph = to_nir(net)
    assert isinstance(graph.nodes["d"], nir.Delay) and graph.metadata["dt"] == 1e-3
    export_nir(net, tmp_path / "d.nir")
    back = load_nir(tmp_path / "d.nir")
    assert np.array_equal(back.graph.node("d").params["delay"],
                          net.graph.node("d").params["delay"])
    x = np.random.default_rng(0).normal(0, 1, (3, 4))
    a, b = Simulator(net).run(x, 9).readout[9], Simulator(back).run(x, 9).readout[9]
    assert np.array_equal(a, b) and not np.array_equal(a, Simulator(net).run(x, 1).readout[1])
