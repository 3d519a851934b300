"""The NIR graph files others publish (data/nir/, provenance in data/nir/README.md): each
one nir can read and that is well formed runs in refsnn; the others keep a one-line error.
The paper's single-LIF graph spikes at exactly the steps of the paper's Norse trace. Skipped
without the nir extra."""

from __future__ import annotations

import dataclasses
import hashlib

import numba
import numpy as np
import pytest

from conftest import ROOT, THREADS
from refsnn.errors import ModelFormatError
from refsnn.sim.simulator import Simulator

nir = pytest.importorskip("nir")
from refsnn.nir.reader import load_nir, read_nir  # noqa: E402

HERE = ROOT / "data" / "nir"

#: the 9 files nir reads that are well formed: they run (the last four with CubaLIF nodes and
#: a recurrent edge)
RUNS = ["NIR/paper/01_lif/lif_norse.nir",
        "NIR/paper/01_lif/debug_spike_representation/two_lif_neurons.nir",
        "NIR/paper/02_cnn/cnn_sinabs.nir", "NIRTorch/tests/lif_norse.nir",
        "NIRTorch/tests/feedback_graph.nir",
        "NIR/paper/03_rnn/braille_noDelay_bias_zero.nir",
        "NIR/paper/03_rnn/braille_noDelay_noBias_subtract.nir", "NIRTorch/tests/braille.nir",
        "nirviz/srnn.nir"]
#: file -> its one-line error
ERRORS = {
    # the Output node's type disagrees with its source (the LIF's (1,))
    "NIR/paper/01_lif/lif_rockpool.nir":
        r"lif_rockpool.nir: /node/nodes/output: output_type: expected \(1,\), found \[1, 1, 1\]",
    "NIR/paper/03_rnn/extras/braille_noDelay_bias_zero_subgraph.nir":
        r"_subgraph.nir: /node: graph: expected a graph nir.read \(nir 1.0.8\) can load, found "
        r"ValueError: Edge \('input', 'lif'\) references destination node 'lif'",
    "NIR/paper/03_rnn/extras/braille_noDelay_noBias_subtract_subgraph.nir":
        r"_subgraph.nir: /node: graph: expected a graph nir.read \(nir 1.0.8\) can load, found "
        r"ValueError: Edge \('input', 'lif'\) references destination node 'lif'",
}

def test_the_twelve_files_are_the_published_bytes():
    sums = (HERE / "SHA256SUMS").read_text().split("\n")
    listed = {line.split()[1][2:]: line.split()[0] for line in sums if line.strip()}
    graphs = sorted(p for p in listed if p.endswith(".nir"))
    assert graphs == sorted(RUNS + list(ERRORS)) and len(graphs) == 12
    for path, digest in listed.items():
        assert hashlib.sha256((HERE / path).read_bytes()).hexdigest() == digest, path


def _run(path, steps=12):
    """The file's network on 2 samples of random spike input: NumPy, and Numba on 1 and 2
    threads, the same bits."""
    graph = read_nir(HERE / path)
    dt = None if "dt" in (graph.metadata or {}) else 1e-3
    net = load_nir(HERE / path, dt=dt)
    # time-varying input through the Python API: the recorded-input path
    net = dataclasses.replace(net, encoding="poisson")
    shape = net.graph.input_shape
    spikes = (np.random.default_rng(5).uniform(0, 1, (steps, 2) + shape) < 0.3) * 1.0
    names = net.neuron_nodes()
    kw = dict(encoded=spikes, rasters=names, potentials=names)
    ref = Simulator(net, "numpy").run(np.zeros((2,) + shape), steps, **kw)
    assert np.all(np.isfinite(ref.readout[steps]))
    for threads in THREADS:
        numba.set_num_threads(threads)
        run = Simulator(net).run(np.zeros((2,) + shape), steps, **kw)
        assert np.array_equal(ref.readout[steps], run.readout[steps])
        for n in names:
            assert np.array_equal(ref.rasters[n], run.rasters[n])
            assert np.array_equal(ref.potentials[n], run.potentials[n])
    return net, ref


@pytest.mark.parametrize("path", RUNS)
def test_published_graph_runs(path):
    _run(path)


@pytest.mark.parametrize("path", sorted(ERRORS))
def test_published_graph_keeps_its_one_line_error(path):
    with pytest.raises(ModelFormatError, match=ERRORS[path]) as e:
        load_nir(HERE / path, dt=1e-3)
    assert "\n" not in str(e.value)


def test_recurrent_edges_of_the_published_graphs_are_the_weights_back():
    """The DFS rule picks the edge from the recurrent weights back into the neurons."""
    for path, edge in [("NIR/paper/03_rnn/braille_noDelay_bias_zero.nir", "lif1.w_rec"),
                       ("NIRTorch/tests/braille.nir", "lif1.w_rec"),
                       ("nirviz/srnn.nir", "affine_rec")]:
        net = load_nir(HERE / path, dt=1e-3)
        assert [n.inputs for n in net.graph.nodes if n.op == "recurrent"] == [(edge,)]


def test_single_lif_graph_spikes_at_the_steps_of_the_papers_norse_trace():
    """paper/01_lif/lif_norse.ipynb: a Linear(1, 1) of weight 1 into a Norse LIFBoxCell at
    dt = 1e-4, fed the 1,000-step input of the trace's first column (written out there); the
    trace holds (input, v, z) per step."""
    trace = np.loadtxt(HERE / "NIR/paper/01_lif/lif_norse.csv", delimiter=",")
    assert trace.shape == (1000, 3)
    net = dataclasses.replace(load_nir(HERE / "NIR/paper/01_lif/lif_norse.nir", dt=1e-4),
                              encoding="poisson")
    (lif,) = net.neuron_nodes()
    run = Simulator(net, "numpy").run(np.zeros((1, 1)), 1000,
                                      encoded=trace[:, 0].reshape(1000, 1, 1),
                                      rasters=[lif], potentials=[lif])
    steps = np.flatnonzero(run.rasters[lif][:, 0, 0])
    assert steps.tolist() == np.flatnonzero(trace[:, 2]).tolist() == [460, 510, 710, 760]
    # the trace is stored in float32: the potentials agree to its precision
    np.testing.assert_allclose(run.potentials[lif][:, 0, 0], trace[:, 1], rtol=0, atol=1e-7)
