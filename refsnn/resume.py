"""Checkpoints of an evaluation, so that a killed ``refsnn evaluate -o RUN.h5 --resume``
continues from its last completed batch instead of starting again.

With ``--resume``, each completed batch is written (atomically, with checksums) as a small run
file in the folder ``.<RUN.h5>.resume/`` beside the output, named by its samples
(``<start>-<stop>.h5``), and records the *fingerprint* of the command: the SHA-256 of
everything that decides the results (the model, data and calibration files' bytes, the split,
limit, steps, seed, conversion options and recorded nodes; not the batch size, thread count or
backend, which do not change results). A run started again with ``--resume`` reads the
batches that cover samples ``0..k`` without a gap, checks their checksums and fingerprint,
simulates samples ``k..N`` only, writes the output as an uninterrupted run would (same
datasets and values: samples are simulated independently, each with its own random stream)
and removes the folder. A batch file whose checksums fail (it cannot be half-written, being
renamed into place when complete) is simulated again, as are all after it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import shutil
import sys
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np

from refsnn.errors import OptionError, RefsnnError
from refsnn.oracle.trace import read_trace, write_trace
from refsnn.sim.record import read_run, save_run

_BATCH = re.compile(r"^(\d{12})-(\d{12})\.h5$")


def fingerprint(settings: dict, files) -> str:
    """SHA-256 (hex) of ``settings`` (JSON-able values, order-independent) and the bytes of
    ``files`` (paths; None entries skipped)."""
    h = hashlib.sha256(json.dumps(settings, sort_keys=True, default=repr).encode())
    for path in files:
        if path is None:
            continue
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def _save_run(path, run, meta: dict) -> None:
    save_run(path, run, {**meta, "steps": np.asarray(run.steps, dtype=np.int64)})


def _save_trace(path, trace, meta: dict) -> None:
    write_trace(path, replace(trace, attrs={**trace.attrs, **meta}))


def _read_trace(path):
    trace = read_trace(path)
    return trace, trace.attrs


#: What a checkpoint keeps per batch -> (save(path, batch, meta), read(path) -> (batch, attrs)).
KINDS = {"run": (_save_run, read_run), "trace": (_save_trace, _read_trace)}


class Checkpoint:
    """The completed batches of one evaluation or trace, in ``.<output name>.resume/`` beside
    its output.

    Parameters
    ----------
    output : str or Path
        The run or trace file the command writes.
    fingerprint : str
        :func:`fingerprint` of the command.
    kind : {"run", "trace"}
        What a batch is (a key of :data:`KINDS`): a :class:`~refsnn.sim.simulator.Run` or a
        :class:`~refsnn.oracle.trace.Trace`.
    """

    def __init__(self, output, fingerprint: str, kind: str = "run"):
        output = Path(output)
        self.folder = output.parent / f".{output.name}.resume"
        self.fingerprint = fingerprint
        self.save_batch, self.read_batch = KINDS[kind]
        self.damaged = None  # the error of a kept batch that failed to read, if any

    def completed(self):
        """The runs of the batches that cover samples ``0..done`` without a gap.

        Returns
        -------
        runs : list of Run
            In sample order.
        done : int
            Samples completed.

        Raises
        ------
        OptionError
            If the batches were made by a different command (another fingerprint).
        """
        if not self.folder.is_dir():
            return [], 0
        found = {}
        for p in self.folder.iterdir():
            m = _BATCH.match(p.name)
            if m:
                found[int(m.group(1))] = (int(m.group(2)), p)
        runs, done = [], 0
        self.damaged = None
        while done in found:
            stop, path = found[done]
            try:
                run, attrs = self.read_batch(path)
            except RefsnnError as e:
                self.damaged = str(e)  # (cannot be half-written: renamed when complete)
                break  # simulate it again
            if attrs.get("fingerprint") != self.fingerprint:
                raise OptionError(f"--resume: {self.folder} holds the batches of a different "
                                  "command (model, data or options changed); remove it, or "
                                  "run without --resume")
            runs.append(run)
            done = stop
        return runs, done

    def save(self, start: int, stop: int, run) -> None:
        """Keep the run (or trace) of samples ``start:stop`` (atomically, with checksums)."""
        self.folder.mkdir(exist_ok=True)
        self.save_batch(self.folder / f"{start:012d}-{stop:012d}.h5", run,
                        {"fingerprint": self.fingerprint, "start": int(start),
                         "stop": int(stop)})

    def remove(self) -> None:
        """Delete the checkpoint (once the output is complete)."""
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(self.folder)


def run_batches(total: int, size: int, run, checkpoint=None, progress=None) -> list:
    """``run(start, stop)`` of each batch of ``size`` samples of ``0..total``, in order, after
    the batches ``checkpoint`` holds (saying so on stderr; each new one kept in it);
    ``progress(done, total)`` after each batch.

    Returns
    -------
    list
        Every batch's result, the kept ones first, in sample order.
    """
    parts, done = ([], 0) if checkpoint is None else checkpoint.completed()
    if checkpoint is not None and checkpoint.damaged is not None:
        warnings.warn(f"--resume: {checkpoint.damaged}; simulating it again")
    if done:
        print(f"resuming after {done} of {total} samples (kept in {checkpoint.folder})",
              file=sys.stderr)
        if progress is not None:
            progress(done, total)
    for start in range(done, total, size):
        stop = min(start + size, total)
        parts.append(run(start, stop))
        if checkpoint is not None:
            checkpoint.save(start, stop, parts[-1])
        if progress is not None:
            progress(stop, total)
    return parts


#: ``evaluate`` / ``trace`` options that do not change the results: not in the fingerprint.
NOT_IN_FINGERPRINT = ("func", "output", "resume", "threads", "batch_size", "backend", "json",
                      "workers", "dask", "stream", "command")


def checkpoint_for(args, kind: str = "run") -> Checkpoint:
    """The checkpoint of the command line ``args`` (an :class:`argparse.Namespace` of
    ``evaluate`` or ``trace`` with ``-o FILE --resume``): its fingerprint covers every option
    but :data:`NOT_IN_FINGERPRINT`, and the bytes of the model, data and calibration files."""
    settings = {k: v for k, v in vars(args).items() if k not in NOT_IN_FINGERPRINT}
    files = (args.model, args.data, getattr(args, "calibration", None))
    return Checkpoint(args.output, fingerprint(settings, files), kind)
