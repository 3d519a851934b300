"""Scale-out on Dask: a sharded evaluation equals the single-process one, bit for bit.

The identity would fail if a batch's Poisson streams depended on its position in the batch
(not on the samples' global ids), if the runs were joined in completion order rather than
batch order (``test_batches_are_joined_in_batch_order`` makes the first batch finish last),
if the last, shorter batch were padded or dropped, or if the step counts were not summed over
batches.
"""

from __future__ import annotations

import subprocess
import sys

import h5py
import numpy as np
import pytest

from refsnn.cli.main import main
from refsnn.errors import OptionError

from conftest import DATA, MODELS, ROOT, assert_same_h5

distributed = pytest.importorskip("distributed")

CNN = str(MODELS / "cnn.h5")


@pytest.fixture(scope="module")
def client():
    """A 2-worker local cluster (processes, one thread each), shared by this module's tests."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as lc, distributed.Client(lc) as c:
        yield c


def _cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_if_poisson_cli_workers_identical_to_single_process(capsys, tmp_path):
    """IF, Poisson input (per-sample streams), rasters and potentials: `--workers 2` prints
    the same numbers and writes the same run file as the single-process run."""
    common = ["evaluate", CNN, "--data", DATA, "--limit", "30", "--steps", "3,12",
              "--encoding", "poisson", "--seed", "5", "--batch-size", "8",
              "--backend", "numpy", "--record-rasters", "relu1", "--record-potentials", "relu2"]
    code, single, _ = _cli(capsys, *common, "-o", tmp_path / "single.h5")
    assert code == 0
    code, sharded, err = _cli(capsys, *common, "-o", tmp_path / "dask.h5", "--workers", "2")
    assert code == 0, err
    assert sharded.replace("dask.h5", "single.h5") == single
    assert_same_h5(tmp_path / "single.h5", tmp_path / "dask.h5")
    # the run files are byte-stable (test_cli.py), so the sharded one has the same bytes
    assert (tmp_path / "single.h5").read_bytes() == (tmp_path / "dask.h5").read_bytes()
    with h5py.File(tmp_path / "dask.h5") as f:  # the 30 samples are all there, in order
        assert f["rasters/relu1"].shape[:2] == (12, 30)
        assert f["counts/relu1"].shape[0] == 30


def test_signgd_api_on_a_scheduler_identical_to_single_process(client):
    """signGD through the Python API on an existing scheduler: every field of the
    evaluation and every array of the run are identical."""
    from refsnn.conversion import convert_signgd
    from refsnn.data import load_data
    from refsnn.evaluation import evaluate
    from refsnn.files import load_model

    graph = load_model(MODELS / "mlp.h5")
    xc, _ = load_data(DATA, "train", graph.input_shape, 64)
    x, y = load_data(DATA, "test", graph.input_shape, 37)
    net = convert_signgd(graph, xc)
    names = net.neuron_nodes()
    kw = dict(ann_graph=graph, batch_size=10, backend="numba", rasters=names[:1],
              potentials=names[-1:])
    one = evaluate(net, x, y, [4, 24], **kw)
    many = evaluate(net, x, y, [4, 24], client=client, threads=1, **kw)
    assert one.ann_accuracy == many.ann_accuracy and one.accuracy == many.accuracy
    assert one.max_abs_error == many.max_abs_error and one.sin is many.sin is None
    for key in ("readout", "counts", "step_counts", "rasters", "potentials", "saturated"):
        a, b = getattr(one.run, key), getattr(many.run, key)
        assert list(a) == list(b), key
        for k in a:
            assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]), (key, k)


def test_bsnn_cli_dask_address_streamed_identical(capsys, tmp_path, client):
    """`--dask tcp://...` (an existing scheduler) for a third method, BSNN, with `--stream`:
    each batch's rasters are written into the run file as the batch arrives."""
    common = ["evaluate", CNN, "--data", DATA, "--method", "bsnn", "--limit", "20",
              "--steps", "8,16", "--batch-size", "6", "--backend", "numpy", "--json",
              "--record-rasters", "relu2", "--record-potentials", "relu1"]
    code, single, _ = _cli(capsys, *common, "-o", tmp_path / "a.h5")
    assert code == 0
    code, sharded, err = _cli(capsys, *common, "-o", tmp_path / "b.h5", "--dask",
                              client.scheduler.address, "--stream")
    assert code == 0, err
    assert sharded.replace("b.h5", "a.h5") == single
    assert_same_h5(tmp_path / "a.h5", tmp_path / "b.h5")


def test_batches_are_joined_in_batch_order(client):
    """A large first batch and two one-sample batches: on 2 workers the small ones finish
    first, yet the joined run equals the single-process one (a join in completion order would
    put samples 24, 25 first)."""
    from refsnn.conversion import METHODS
    from refsnn.data import load_data
    from refsnn.files import load_model
    from refsnn.scaleout import map_batches
    from refsnn.sim.record import concat_runs
    from refsnn.sim.simulator import Simulator

    graph = load_model(CNN)
    x, _ = load_data(DATA, "test", graph.input_shape, 26)
    net = METHODS["if"](graph, x, encoding="poisson")
    finished = []
    runs = map_batches(client, net, "numpy", x, [(0, 24), (24, 25), (25, 26)], [6], 3,
                       rasters=["relu1"], progress=lambda done, n: finished.append(done))
    assert sorted(finished) == finished and finished[-1] == 26
    one = Simulator(net, "numpy").run(x, [6], seed=3, rasters=["relu1"])
    joined = concat_runs(runs)
    for key in ("readout", "counts", "step_counts", "rasters"):
        for k, a in getattr(one, key).items():
            assert np.array_equal(a, getattr(joined, key)[k]), (key, k)


def test_bad_record_node_fails_before_any_task(client):
    from refsnn.evaluation import evaluate
    from refsnn.files import load_model
    from refsnn.conversion import METHODS
    from refsnn.data import load_data

    graph = load_model(CNN)
    x, y = load_data(DATA, "test", graph.input_shape, 4)
    net = METHODS["if"](graph, x)
    with pytest.raises(OptionError, match="'fc' is not a neuron node"):
        evaluate(net, x, y, [2], rasters=["fc"], client=client)


def test_dask_and_workers_together_are_refused(capsys):
    code, _, err = _cli(capsys, "evaluate", CNN, "--data", DATA, "--dask", "tcp://h:1",
                        "--workers", "2")
    assert code == 2
    assert err.count("\n") == 1 and "--dask and --workers exclude each other" in err


def test_missing_extra_is_an_option_error_naming_it(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    code, _, err = _cli(capsys, "evaluate", CNN, "--data", DATA, "--limit", "2", "--steps",
                        "2", "--workers", "2")
    assert code == 2
    assert err.count("\n") == 1 and "refsnn[dask]" in err and "not installed" in err


def test_workers_of_another_version_are_refused():
    from refsnn.scaleout import check_workers

    class Fake:
        def __init__(self, versions):
            self.versions = versions

        def run(self, fn):
            return self.versions

    import refsnn
    check_workers(Fake({"w1": (refsnn.__version__, np.__version__)}))  # same: accepted
    with pytest.raises(OptionError, match="worker w2 runs refsnn 0.0.1"):
        check_workers(Fake({"w1": (refsnn.__version__, np.__version__),
                            "w2": ("0.0.1", np.__version__)}))
    with pytest.raises(OptionError, match="no workers"):
        check_workers(Fake({}))


def test_core_does_not_import_dask():
    code = ("import sys, refsnn.cli.main, refsnn.evaluation, refsnn.scaleout; "
            "bad = [m for m in ('dask', 'distributed') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={"PYTHONPATH": str(ROOT), "PATH": ""}, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
