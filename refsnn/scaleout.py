"""Scale-out: the batches of an evaluation run as tasks on a Dask cluster (optional extra).

``pip install 'refsnn[dask]'`` installs ``dask[distributed]``. Nothing here imports dask at
module level, so the core runs without it.

Why the results cannot depend on the cluster: a batch's run depends only on the network, the
batch's samples, the step counts, the seed and the samples' global ids (each sample's Poisson
stream is ``SeedSequence([seed, id])``, :mod:`refsnn.sim.encoders`), never on the batch's
neighbours, the worker or its thread count (the kernels are deterministic for any thread
count). The batches are exactly those of the single-process loop, and their runs are joined in
batch order by the same :func:`refsnn.sim.record.concat_runs`, so every array is identical.
"""

from __future__ import annotations

import contextlib
import dataclasses
import uuid
from typing import Callable, Iterator

import numpy as np

from refsnn.errors import OptionError

#: What to install when dask is missing (the extra of setup.cfg).
EXTRA = "pip install 'refsnn[dask]'  (or: pip install 'dask[distributed]')"


def _distributed():
    try:
        import distributed
    except ImportError:
        raise OptionError(f"--dask / --workers need the dask extra, which is not installed: "
                          f"{EXTRA}") from None
    return distributed


@contextlib.contextmanager
def cluster(address: str | None = None, workers: int | None = None) -> Iterator:
    """A Dask client: of the scheduler at ``address``, or of a local cluster of ``workers``
    worker processes (one thread each), closed when the block ends.

    Parameters
    ----------
    address : str, optional
        Scheduler address of an existing cluster, e.g. ``tcp://10.0.0.5:8786``.
    workers : int, optional
        Number of local worker processes. Exactly one of ``address`` and ``workers``.

    Yields
    ------
    distributed.Client
    """
    if address is not None and workers is not None:
        raise OptionError("--dask and --workers exclude each other: --dask ADDRESS uses an "
                          "existing scheduler, --workers N starts a local cluster")
    if address is None and workers is None:
        raise OptionError("cluster: give a scheduler address or a number of workers")
    if workers is not None and workers < 1:
        raise OptionError(f"--workers: expected a positive integer, found {workers}")
    distributed = _distributed()
    if workers is not None:
        # Processes, not threads: the NumPy backend holds the GIL; one thread per worker so
        # that N workers use N cores (a worker's Numba kernels use --threads, default 1 here).
        with distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                      dashboard_address=None) as lc, \
                distributed.Client(lc) as client:
            yield client
    else:
        try:
            client = distributed.Client(address, timeout="20s")
        except (OSError, TimeoutError, ValueError) as e:
            raise OptionError(f"--dask: cannot reach a scheduler at {address!r} ({e})") from None
        with client:
            yield client


def check_workers(client) -> None:
    """Refuse a cluster whose workers run another refsnn or NumPy version than this process
    (they could simulate differently), or that has no workers."""
    import refsnn

    here = (refsnn.__version__, np.__version__)
    found = client.run(_versions)
    if not found:
        raise OptionError("--dask: the scheduler has no workers")
    for worker, versions in found.items():
        if tuple(versions) != here:
            raise OptionError(f"--dask: worker {worker} runs refsnn {versions[0]} with NumPy "
                              f"{versions[1]}; this process runs refsnn {here[0]} with NumPy "
                              f"{here[1]}: results could differ, so the cluster is refused")


def _versions():
    import refsnn
    return refsnn.__version__, np.__version__


def run_batch(net, backend: str, x, steps, seed: int, ids, rasters, potentials,
              threads: int | None = None):
    """One batch, on a worker: exactly what the single-process loop of
    :func:`refsnn.evaluation.simulate` does for it.

    Returns
    -------
    Run
    """
    from refsnn.sim.simulator import Simulator

    if threads is not None and backend == "numba":
        import numba
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    return Simulator(net, backend).run(x, steps, seed=seed, sample_ids=ids, rasters=rasters,
                                       potentials=potentials)


def map_batches(client, net, backend: str, x: np.ndarray, bounds, steps, seed: int,
                rasters=(), potentials=(), threads: int | None = None,
                progress: Callable[[int, int], None] | None = None,
                recorders: Callable | None = None) -> list:
    """Run each batch ``x[start:stop]`` of ``bounds`` as one task on ``client``'s cluster.

    Parameters
    ----------
    client : distributed.Client
    net : SpikingNetwork
        Sent once to every worker.
    x : ndarray, shape (N, *input_shape)
    bounds : sequence of (int, int)
        The batches' ``(start, stop)``, in order.
    progress : callable, optional
        Called as ``progress(done_samples, N)`` as batches finish (in any order).
    recorders : callable, optional
        ``recorders(start, stop)`` gives the recorder of batch ``start:stop``: each batch's
        recordings are handed to it as the batch arrives (:func:`replay`), and its run is kept
        without them.

    Returns
    -------
    list of Run
        The batches' runs in the order of ``bounds`` (not of completion).
    """
    distributed = _distributed()
    _check_locally(net, backend, steps, seed, (*rasters, *potentials))
    check_workers(client)
    tag = uuid.uuid4().hex  # unique task keys: a shared scheduler may hold other runs
    net_f = client.scatter(net, broadcast=True)
    parts = client.scatter([x[a:b] for a, b in bounds])
    futures = [client.submit(run_batch, net_f, backend, part, steps, seed,
                             np.arange(a, b), tuple(rasters), tuple(potentials), threads,
                             key=f"refsnn-batch-{i}-{tag}")
               for i, (part, (a, b)) in enumerate(zip(parts, bounds))]
    try:
        index = {f.key: i for i, f in enumerate(futures)}
        runs = [None] * len(futures)
        done = 0
        for future in distributed.as_completed(futures):
            i = index[future.key]
            runs[i] = future.result()  # a worker's exception is raised here, as it was
            if recorders is not None:
                runs[i] = replay(runs[i], recorders(*bounds[i]), rasters, potentials)
            done += bounds[i][1] - bounds[i][0]
            if progress is not None:
                progress(done, x.shape[0])
        return runs
    finally:
        client.cancel(futures + parts + [net_f])


def replay(run, recorder, rasters, potentials):
    """Hand a finished batch's recordings to ``recorder`` step by step, as the simulator
    would have, and return the run without them (so the batches' recordings are not all held
    at once).

    Returns
    -------
    Run
    """
    names_r, names_u = list(dict.fromkeys(rasters)), list(dict.fromkeys(potentials))
    if not names_r and not names_u:
        return run
    t_max = run.steps[-1]
    batch = (run.rasters[names_r[0]] if names_r else run.potentials[names_u[0]]).shape[1]
    dtype = run.potentials[names_u[0]].dtype if names_u else np.float64
    recorder.start(t_max, batch, {n: run.rasters[n].shape[2:] for n in names_r},
                   {n: run.potentials[n].shape[2:] for n in names_u}, dtype)
    for t in range(1, t_max + 1):
        for n in names_r:
            recorder.spikes(t, n, run.rasters[n][t - 1])
        for n in names_u:
            recorder.potential(t, n, run.potentials[n][t - 1])
    r, u = recorder.finish()
    return dataclasses.replace(run, rasters=r, potentials=u)


def _check_locally(net, backend, steps, seed, recorded) -> None:
    """The batch-independent checks of :meth:`Simulator.run`, made here so that a bad option
    fails at once with the single-process run's message, not in every task."""
    from refsnn.sim.simulator import Simulator, check_steps, check_recorded, check_seed

    Simulator(net, backend)  # unknown backend, unconverted ops
    check_steps(steps)
    check_seed(net, seed)
    check_recorded(net, recorded)
