"""Shared fixtures: small graphs built in code, and the shipped files."""

from __future__ import annotations

import os
from pathlib import Path

import numba
import numpy as np
import pytest
from hypothesis import settings

from refsnn.model import make_graph

# In CI the examples are derived from each test's name, so a run is repeatable; locally,
# Hypothesis explores new examples every run and stores failures in .hypothesis/.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

# Kernels pick their serial compilation for small work (refsnn.jit.SERIAL_BELOW). The tests'
# arrays are small, so without this they would never reach the parallel one: here every kernel
# runs serial on 1 thread and parallel on 2, and the tests compare both with the NumPy twins.
import refsnn.jit  # noqa: E402

refsnn.jit.SERIAL_BELOW = 0

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "digits.h5"
MODELS = ROOT / "data" / "models"
JIT_DISABLED = bool(numba.config.DISABLE_JIT)

#: Thread counts the determinism tests compare (1 and 2 where the machine has 2).
THREADS = sorted({1, min(2, numba.config.NUMBA_NUM_THREADS)})


@pytest.fixture
def restore_threads():
    """Put Numba's thread count back after a test that changes it."""
    before = numba.get_num_threads()
    yield
    numba.set_num_threads(before)


#: Mark for tests that would take many minutes as plain Python under NUMBA_DISABLE_JIT=1.
needs_jit = pytest.mark.skipif(JIT_DISABLED, reason="too slow with NUMBA_DISABLE_JIT=1")


def small_cnn(seed: int = 0, pool: str = "avgpool2d", residual: bool = False):
    """A conv-BN-ReLU-pool-(residual)-linear net on (2, 6, 6) inputs with random weights."""
    rng = np.random.default_rng(seed)
    nodes = [
        dict(name="conv", op="conv2d", inputs=["input"], attrs=dict(padding=(1, 1)),
             params=dict(weight=rng.normal(0, 0.5, (4, 2, 3, 3)), bias=rng.normal(0, 0.1, 4))),
        dict(name="bn", op="batchnorm", inputs=["conv"], attrs=dict(eps=1e-5),
             params=dict(gamma=rng.uniform(0.5, 1.5, 4), beta=rng.normal(0, 0.1, 4),
                         mean=rng.normal(0, 0.1, 4), var=rng.uniform(0.5, 1.5, 4))),
        dict(name="relu", op="relu", inputs=["bn"]),
    ]
    last = "relu"
    if residual:
        nodes += [
            dict(name="conv2", op="conv2d", inputs=["relu"], attrs=dict(padding=(1, 1)),
                 params=dict(weight=rng.normal(0, 0.3, (4, 4, 3, 3)), bias=np.zeros(4))),
            dict(name="add", op="add", inputs=["conv2", "relu"]),
            dict(name="relu2", op="relu", inputs=["add"]),
        ]
        last = "relu2"
    nodes += [
        dict(name="pool", op=pool, inputs=[last], attrs=dict(kernel=(2, 2), stride=(2, 2))),
        dict(name="flat", op="flatten", inputs=["pool"]),
        dict(name="fc", op="linear", inputs=["flat"],
             params=dict(weight=rng.normal(0, 0.3, (3, 36)), bias=rng.normal(0, 0.1, 3))),
    ]
    return make_graph((2, 6, 6), nodes, "fc")


def small_mlp(seed: int = 0, sizes=(12, 10, 8, 3)):
    """A ReLU MLP with random weights on vector inputs."""
    rng = np.random.default_rng(seed)
    nodes, prev = [], "input"
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        nodes.append(dict(name=f"fc{i}", op="linear", inputs=[prev],
                          params=dict(weight=rng.normal(0, 1 / np.sqrt(n_in), (n_out, n_in)),
                                      bias=rng.normal(0, 0.1, n_out))))
        prev = f"fc{i}"
        if i < len(sizes) - 2:
            nodes.append(dict(name=f"relu{i}", op="relu", inputs=[prev]))
            prev = f"relu{i}"
    return make_graph((sizes[0],), nodes, prev)


@pytest.fixture
def cnn():
    return small_cnn()


@pytest.fixture
def inputs():
    return np.random.default_rng(1).uniform(0, 1, (5, 2, 6, 6))


def graph_to_dicts(graph):
    """The nodes of ``graph`` as the dicts ``make_graph`` takes, for tests that edit them by
    hand (refsnn's passes edit graphs with ``Graph.edit()``)."""
    return [dict(vars(n), inputs=list(n.inputs), attrs=dict(n.attrs), params=dict(n.params))
            for n in graph.nodes]


def assert_same_h5(a, b):
    """Two HDF5 files hold the same groups and datasets (names, order of listing, dtypes,
    shapes, values) and the same attributes everywhere; storage layout (chunked or not) may
    differ."""
    import h5py

    def items(path):
        out = {}
        with h5py.File(path, "r") as f:
            out["/"] = dict(f.attrs)

            def visit(name, obj):
                out[name] = dict(obj.attrs)
                if isinstance(obj, h5py.Dataset):
                    out[name + ":data"] = obj[()]
            f.visititems(visit)
        return out

    ia, ib = items(a), items(b)
    assert list(ia) == list(ib)
    for key in ia:
        if key.endswith(":data"):
            x, y = ia[key], ib[key]
            assert x.dtype == y.dtype and x.shape == y.shape and np.array_equal(x, y), key
        else:
            assert list(ia[key]) == list(ib[key]), key
            for k in ia[key]:
                assert np.array_equal(ia[key][k], ib[key][k]), (key, k)
