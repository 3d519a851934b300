"""Evaluation: accuracy of an ANN and of its spiking conversion over a data set, in batches.

The module itself is callable: ``refsnn.evaluate(net, x, y, steps)`` is :func:`evaluate`.
"""

from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

from refsnn import ann
from refsnn._callable import make_callable
from refsnn.diagnose.sin import RATE_CODED, sin_counts
from refsnn.errors import OptionError
from refsnn.model.graph import Graph
from refsnn.sim.network import SpikingNetwork, ann_limit
from refsnn.sim.record import concat_runs
from refsnn.sim.simulator import Run, Simulator


@dataclass
class Evaluation:
    """Accuracies of one evaluation.

    Attributes
    ----------
    ann_accuracy : float
        Accuracy of the source ANN (for a network loaded already converted: of its ANN limit,
        :func:`refsnn.sim.network.ann_limit`).
    accuracy : dict of int to float
        SNN accuracy after each step count.
    max_abs_error : dict of int to float
        Largest ``|readout - ANN output|`` over samples and outputs, per step count.
    run : Run
        The whole simulation, all batches joined.
    sin : dict of str to int, or None
        Spikes of inactivated neurons per neuron node over the whole run
        (:func:`refsnn.diagnose.sin.sin_counts`); None for methods whose spikes are not
        rate-coded (signGD).
    """

    ann_accuracy: float
    accuracy: dict[int, float]
    max_abs_error: dict[int, float]
    run: Run
    sin: dict[str, int] | None = None


def accuracy(scores: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of samples whose highest score is the label (ties: lowest index wins)."""
    return float(np.mean(np.argmax(scores.reshape(scores.shape[0], -1), axis=1) == labels))


def evaluate(net: SpikingNetwork, x, y, steps, ann_graph: Graph | None = None,
             batch_size: int = 64, seed: int = 0, backend: str = "numba",
             rasters=(), potentials=(), progress: Callable[[int, int], None] | None = None,
             client=None, threads: int | None = None, recorders=None, checkpoint=None):
    """Simulate ``net`` on ``x`` in batches and score it against ``y``.

    Parameters
    ----------
    net : SpikingNetwork
    x : ndarray, shape (N, *input_shape)
    y : int ndarray, shape (N,)
    steps : sequence of int
    ann_graph : Graph, optional
        The source ANN; without it, the converted network's ANN limit
        (:func:`refsnn.sim.network.ann_limit`) is scored.
    batch_size : int
        Samples per simulated batch; results do not depend on it.
    seed : int
        Poisson encoder seed (sample ``i`` always uses stream ``i``).
    progress : callable, optional
        Called as ``progress(done, total)`` after each batch.
    client : distributed.Client, optional
        Run the batches as tasks on this Dask cluster (:mod:`refsnn.scaleout`); the result is
        identical to the single-process run (the default).
    threads : int, optional
        With ``client``: Numba threads of each task (results do not depend on it).
    recorders : callable, optional
        ``recorders(start, stop)`` gives the recorder of batch ``start:stop``
        (:mod:`refsnn.sim.recorders`), e.g. :func:`refsnn.sim.record.stream_recorders`'s,
        which writes its rasters and potentials to a file step by step; the returned run then
        holds none. With ``client``, each batch's recordings are handed to it as the batch
        arrives.
    checkpoint : refsnn.resume.Checkpoint, optional
        Keep each completed batch in it, and start after the batches it already holds (a
        resumed evaluation; the result is the same). Not with ``client`` or ``recorders``.

    Returns
    -------
    Evaluation

    Examples
    --------
    >>> import refsnn
    >>> graph = refsnn.load_model("data/models/cnn.h5")
    >>> xc, _ = refsnn.load_data("data/digits.h5", "train", graph.input_shape)
    >>> x, y = refsnn.load_data("data/digits.h5", "test", graph.input_shape, limit=64)
    >>> net = refsnn.convert(graph, method="if", calibration=xc)
    >>> result = refsnn.evaluate(net, x, y, steps=[16, 128], ann_graph=graph)
    >>> result.run.readout[128].shape
    (64, 10)
    >>> result.accuracy[128] >= result.ann_accuracy - 0.05
    True
    """
    if net.method == "nir" and ann_graph is None:
        ann_out = limit = None  # an imported NIR graph has no ANN: its scores are NaN
    else:
        ann_out, limit = ann_limit(net, x, all_nodes=True)
    if ann_graph is not None:
        ann_out = ann.forward(ann_graph, x, all_nodes=True)[1]
        # a rate-coded readout that stops before an output softmax reads its input, the logits
        before = net.options.get("readout_before")
        out = ann_graph.output
        ann_out = ann_out[ann_graph.node(out).inputs[0] if before == out else out]
    done_runs, done = [], 0
    if checkpoint is not None:
        if client is not None or recorders is not None:
            raise OptionError("a checkpoint (--resume) keeps batches in memory-recorded runs: "
                              "not with a Dask client or streamed recorders")
        done_runs, done = checkpoint.completed()
        if checkpoint.damaged is not None:
            warnings.warn(f"--resume: {checkpoint.damaged}; simulating it again")
        if done:
            print(f"resuming after {done} of {x.shape[0]} samples (kept in "
                  f"{checkpoint.folder})", file=sys.stderr)
        if progress is not None and done:
            progress(done, x.shape[0])
    bounds = [(start, min(start + batch_size, x.shape[0]))
              for start in range(done, x.shape[0], batch_size)]
    if client is not None:
        from refsnn.scaleout import map_batches

        consume = None if recorders is None else \
            (lambda i, r: _replay(r, recorders(*bounds[i]), rasters, potentials))
        runs = map_batches(client, net, backend, x, bounds, steps, seed, rasters, potentials,
                           threads, progress, consume)
    else:
        sim = Simulator(net, backend)
        runs = []
        for start, stop in bounds:
            runs.append(sim.run(x[start:stop], steps, seed=seed,
                                sample_ids=np.arange(start, stop), rasters=rasters,
                                potentials=potentials,
                                recorder=None if recorders is None else recorders(start, stop)))
            if checkpoint is not None:
                checkpoint.save(start, stop, runs[-1])
            if progress is not None:
                progress(stop, x.shape[0])
    run = concat_runs(done_runs + runs)
    sin = sin_counts(net, limit, run.counts) if net.method in RATE_CODED else None
    if ann_out is None:
        return Evaluation(float("nan"), {t: accuracy(run.readout[t], y) for t in run.steps},
                          {t: float("nan") for t in run.steps}, run, None)
    return Evaluation(accuracy(ann_out, y), {t: accuracy(run.readout[t], y) for t in run.steps},
                      {t: float(np.max(np.abs(run.readout[t] - ann_out))) for t in run.steps},
                      run, sin)


def _replay(run: Run, recorder, rasters, potentials) -> Run:
    """Hand a finished batch's recordings to ``recorder`` step by step, as the simulator
    would have, and return the run without them (so the batches' recordings are not all held
    at once)."""
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
    return replace(run, rasters=r, potentials=u)


make_callable(__name__, evaluate)
