"""Writing a run to HDF5 (``refsnn-run``, version 1), atomically.

Layout::

    /                      attrs: format = "refsnn-run", format_version = 2, and the run's
                                  settings (model file, method, steps, seed, dtype, ...)
    /counts/<node>         int64 (N, *shape): spikes per neuron over the run
    /step_counts/<node>    int64 (T_max,): spikes per step, summed over samples and neurons
    /readout/T<steps>      (N, *output_shape): the readout after that many steps
    /rasters/<node>        bool (T_max, N, *shape), only for nodes asked for
    /potentials/<node>     (T_max, N, *shape), only for nodes asked for
    /saturated/<node>      bool (N, *shape): signGD neurons whose last target was out of reach
    /labels                int64 (N,) when known

Datasets are written without compression or timestamps, so the same run gives the same bytes.
:func:`stream_recorders` makes ``/rasters`` and ``/potentials`` before the run and fills them
step by step (one chunk per step), so long recordings need not fit in memory; the datasets and
values are the same.
"""

from __future__ import annotations

from typing import Mapping

import h5py
import numpy as np

from refsnn.checksum import ATTR
from refsnn.errors import ModelFormatError
from refsnn.io import atomic_h5, check_header, read_dataset, read_h5

FORMAT = "refsnn-run"
FORMAT_VERSION = 2  # 2: with checksums (refsnn.checksum); version 1 files still load


def save_run(path, run, settings: Mapping[str, object], labels=None) -> None:
    """Write ``run`` (a :class:`~refsnn.sim.simulator.Run`) and its settings to ``path``."""
    with atomic_h5(path) as f:
        write_run(f, run, settings, labels)


def write_run(f, run, settings: Mapping[str, object], labels=None) -> None:
    """Write ``run`` into the open file ``f``; ``/rasters`` and ``/potentials`` may already be
    there, filled step by step by the recorders of :func:`stream_recorders`."""
    f.attrs["format"] = FORMAT
    f.attrs["format_version"] = FORMAT_VERSION
    for key, value in settings.items():
        f.attrs[key] = value
    for group, items in (("counts", run.counts), ("step_counts", run.step_counts),
                         ("rasters", run.rasters), ("potentials", run.potentials),
                         ("saturated", run.saturated)):
        g = f[group] if group in f else f.create_group(group, track_order=True)
        for name, arr in items.items():
            g.create_dataset(name, data=arr)
    g = f.create_group("readout", track_order=True)
    for t, arr in run.readout.items():
        g.create_dataset(f"T{t}", data=arr)
    if labels is not None:
        f.create_dataset("labels", data=np.asarray(labels, dtype=np.int64))


def stream_recorders(f, net, samples: int, steps: int, rasters=(), potentials=()):
    """Make ``/rasters/<node>`` and ``/potentials/<node>`` in the open run file ``f``, of shape
    (steps, samples, *node_shape) stored one chunk per step, and return a function
    ``(start, stop) -> H5Recorder`` that writes the batch ``start:stop`` into them step by step
    (pass it to :func:`refsnn.evaluation.evaluate` as ``recorders``).

    Parameters
    ----------
    f : h5py.File
    net : SpikingNetwork
    samples, steps : int
        Samples of the whole evaluation, and its longest run (``max(steps)``).
    rasters, potentials : sequence of str
        Neuron nodes to record.
    """
    from refsnn.sim.recorders import H5Recorder, create_steps
    from refsnn.sim.simulator import check_recorded

    check_recorded(net, (*rasters, *potentials))
    shapes = net.graph.shapes
    made = {}
    for group, names, dtype in (("rasters", rasters, bool),
                                ("potentials", potentials, net.graph.dtype)):
        g = f.create_group(group, track_order=True)
        made[group] = {n: create_steps(g, n, steps, (samples,) + shapes[n], dtype)
                       for n in dict.fromkeys(names)}
    return lambda start, stop: H5Recorder(made["rasters"], made["potentials"],
                                          slice(start, stop))


def concat_runs(runs: list):
    """Join the runs of consecutive batches along the sample axis (step counts are summed)."""
    from refsnn.sim.simulator import Run

    first = runs[0]
    cat = lambda key, axis: {k: np.concatenate([getattr(r, key)[k] for r in runs], axis=axis)
                             for k in getattr(first, key)}
    return Run(first.steps, cat("readout", 0), cat("counts", 0),
               {k: sum(r.step_counts[k] for r in runs) for k in first.step_counts},
               cat("rasters", 1), cat("potentials", 1), cat("saturated", 0))


#: Run groups read back into :class:`~refsnn.sim.simulator.Run` fields: group -> (field, axis
#: of the samples, allowed dtype kinds).
_GROUPS = {"counts": ("counts", 0, "iu"), "step_counts": ("step_counts", None, "iu"),
           "rasters": ("rasters", 1, "b"), "potentials": ("potentials", 1, "f"),
           "saturated": ("saturated", 0, "b")}


def read_run(path):
    """Read a run file written by :func:`save_run` (checksums verified).

    Returns
    -------
    run : Run
    attrs : dict
        The root attributes (the run's settings).

    Raises
    ------
    ModelFormatError
        Naming the file, path and field of any problem (groups, dtypes, sample counts that
        disagree, non-finite readouts).
    """
    return read_h5(path, "run file", _read_run)


def _read_run(f, file: str):
    from refsnn.sim.simulator import Run

    def err(where, field, expected, found):
        return ModelFormatError(file, where, field, expected, found)

    check_header(f, file, FORMAT, FORMAT_VERSION)
    steps = np.asarray(f.attrs.get("steps", np.zeros(0, np.int64)))
    if steps.dtype.kind not in "iu" or steps.ndim != 1 or not steps.size \
            or np.any(steps < 1) or np.any(np.diff(steps) <= 0):
        raise err("/", "steps", "ascending step counts >= 1 (int array)", repr(steps))
    steps = tuple(int(t) for t in steps)
    samples = None

    def group(name):
        g = f.get(name)
        if g is None:
            return {}
        if not isinstance(g, h5py.Group):
            raise err(f"/{name}", "kind", "a group", "a dataset")
        return {k: read_dataset(g, k, file, f"/{name}/{k}") for k in g}

    def check(where, a, kinds, axis):
        nonlocal samples
        if not isinstance(a, np.ndarray) or a.dtype.kind not in kinds or \
                (axis is not None and a.ndim <= axis):
            raise err(where, "dtype/shape", f"an array of kind {kinds!r}",
                      f"{getattr(a, 'dtype', type(a).__name__)} {getattr(a, 'shape', '')}")
        if axis is not None:
            if samples is None:
                samples = a.shape[axis]
            if a.shape[axis] != samples:
                raise err(where, "shape", f"{samples} samples on axis {axis}", str(a.shape))
        if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
            raise err(where, "values", "finite numbers", "NaN or inf")

    readout = {}
    for t in steps:
        where = f"/readout/T{t}"
        if f"readout/T{t}" not in f:
            raise err(where, "dataset", f"the readout after {t} steps", "nothing (missing)")
        readout[t] = read_dataset(f["readout"], f"T{t}", file, where)
        check(where, readout[t], "f", 0)
    fields = {}
    for name, (field_, axis, kinds) in _GROUPS.items():
        fields[field_] = group(name)
        for k, a in fields[field_].items():
            check(f"/{name}/{k}", a, kinds, axis)
            if name in ("rasters", "potentials", "step_counts") and a.shape[:1] != \
                    (steps[-1],):
                raise err(f"/{name}/{k}", "shape", f"({steps[-1]}, ...)", str(a.shape))
    attrs = {k: v for k, v in f.attrs.items() if k != ATTR}
    return Run(steps, readout, **fields), attrs
