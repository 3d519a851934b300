"""Evaluation: accuracy of an ANN and of its spiking conversion over a data set, in batches.

:func:`evaluate` (``refsnn.evaluate``) is :func:`simulate` (the orchestration: batches, a Dask
cluster, checkpoints, streamed recordings) followed by :func:`score` (the accuracies).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from refsnn import ann
from refsnn.diagnose.sin import RATE_CODED, sin_counts
from refsnn.errors import OptionError
from refsnn.model.graph import Graph
from refsnn.resume import run_batches
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


def evaluate(net: SpikingNetwork, x, y, steps, ann_graph: Graph | None = None, **batches):
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
    **batches
        How to simulate: the keywords of :func:`simulate` (``batch_size``, ``seed``,
        ``backend``, ``rasters``, ``potentials``, ``progress``, ``client``, ``threads``,
        ``recorders``, ``checkpoint``); none of them changes the result. ``sequence=True``:
        ``x`` holds sequences (N, T_seq, *input_shape) (see :func:`simulate`); there is no
        ANN output of a sequence, so the ANN scores are NaN (no ``ann_graph``).

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
    if batches.get("sequence"):
        if ann_graph is not None:
            raise OptionError("ann_graph: an ANN takes one sample, not a sequence; pass none "
                              "with sequence input")
        run = simulate(net, x, steps, **batches)
        return score(run, y)
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
    run = simulate(net, x, steps, **batches)
    sin = sin_counts(net, limit, run.counts) if net.method in RATE_CODED else None
    return score(run, y, ann_out, sin)


def score(run: Run, y, ann_out=None, sin=None) -> Evaluation:
    """Score a run's readouts ``run.readout[t]``, shape (N, *output_shape), and the ANN outputs
    ``ann_out`` of the same shape (None: NaN scores) against the labels ``y``, shape (N,); keep
    ``sin`` as it is.

    Returns
    -------
    Evaluation
    """
    acc = {t: accuracy(run.readout[t], y) for t in run.steps}
    if ann_out is None:
        return Evaluation(float("nan"), acc, {t: float("nan") for t in run.steps}, run, None)
    return Evaluation(accuracy(ann_out, y), acc,
                      {t: float(np.max(np.abs(run.readout[t] - ann_out))) for t in run.steps},
                      run, sin)


def simulate(net: SpikingNetwork, x, steps, batch_size: int = 64, seed: int = 0,
             backend: str = "numba", rasters=(), potentials=(),
             progress: Callable[[int, int], None] | None = None, client=None,
             threads: int | None = None, recorders=None, checkpoint=None,
             sequence: bool = False) -> Run:
    """Simulate ``net`` on ``x`` in batches: in this process, or on a Dask cluster, resumed
    from a checkpoint, recordings streamed; the run is the same in every case.

    Parameters
    ----------
    net : SpikingNetwork
    x : ndarray, shape (N, *input_shape)
    steps : sequence of int
    batch_size : int
        Samples per simulated batch; results do not depend on it.
    seed : int
        Poisson encoder seed (sample ``i`` always uses stream ``i``).
    backend : {"numba", "numpy"}
    rasters, potentials : sequence of str
        Neuron nodes whose spikes and membrane potentials are recorded.
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
    sequence : bool
        ``x`` holds sequences (N, T_seq, *input_shape), the input node's value at each step
        (:meth:`Simulator.run`'s ``sequence``); not with ``client``.

    Returns
    -------
    Run
        All batches joined.
    """
    if checkpoint is not None and (client is not None or recorders is not None):
        raise OptionError("a checkpoint (--resume) keeps batches in memory-recorded runs: not "
                          "with a Dask client or streamed recorders")
    if client is not None and sequence:
        raise OptionError("sequence input runs in this process: not with a Dask client")
    if client is not None:
        from refsnn.scaleout import map_batches

        bounds = [(a, min(a + batch_size, x.shape[0])) for a in range(0, x.shape[0], batch_size)]
        return concat_runs(map_batches(client, net, backend, x, bounds, steps, seed, rasters,
                                       potentials, threads, progress, recorders))
    sim = Simulator(net, backend)
    return concat_runs(run_batches(x.shape[0], batch_size, lambda a, b: sim.run(
        x[a:b], steps, seed=seed, sample_ids=np.arange(a, b), rasters=rasters,
        potentials=potentials, recorder=None if recorders is None else recorders(a, b),
        sequence=sequence),
        checkpoint, progress))
