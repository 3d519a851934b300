"""What the simulating commands share: the network a command runs (a converted file as it is,
or a model converted with the conversion flags) and when recordings are streamed."""

from __future__ import annotations

import numpy as np

from refsnn.errors import OptionError
from refsnn.options import NO_CALIBRATION, OPTIONS, check_calibration, resolve

#: ``evaluate -o`` and ``trace`` stream their recordings to the file without ``--stream`` when
#: they would take more than this in memory.
STREAM_ABOVE = 1 << 30
#: The calibration flags and their argparse ``dest``.
CALIBRATION_FLAGS = (("--calibration", "calibration"), ("--calibration-split",
                     "calibration_split"), ("--calibration-limit", "calibration_limit"))


def convert_with_flags(graph, args, calibration_path):
    """``graph`` converted with the flags of ``args`` (``--method`` and the options), calibrated
    on ``calibration_path``; refusals name the flags.

    Returns
    -------
    SpikingNetwork
    """
    import sys

    from refsnn.conversion import convert, takes_progress
    from refsnn.data import load_data

    method = args.method or "if"
    # option errors before any file is read
    kwargs = resolve(method, {o.key: getattr(args, o.key) for o in OPTIONS}, flags=True)
    if method in NO_CALIBRATION:
        for flag, key in CALIBRATION_FLAGS:
            check_calibration(method, getattr(args, key) is not None, flag)
        return convert(graph, method, None, **kwargs)
    check_calibration(method, calibration_path is not None, "--calibration")
    xc, _ = load_data(calibration_path, args.calibration_split or "train", graph.input_shape,
                      args.calibration_limit)
    progress = CalibrationProgress(sys.stderr.isatty()) if takes_progress(method) else None
    return convert(graph, method, xc, progress=progress, **kwargs)


class CalibrationProgress:
    """Calibration progress on stderr: one :class:`~refsnn.cli.progress.ProgressBar` per
    pass over the calibration data, shown only on a terminal (as the simulation's).

    Parameters
    ----------
    enabled : bool
        When false every call does nothing (pipes, CI logs, one-line errors).
    """

    def __init__(self, enabled: bool):
        self.enabled, self.bar, self.index = enabled, None, None

    def __call__(self, index: int, done: int, total: int) -> None:
        from refsnn.cli.progress import ProgressBar

        if index != self.index:
            self.close()
            self.bar, self.index = ProgressBar(f"calibrating, pass {index + 1}",
                                               self.enabled), index
        self.bar.update(done, total)
        if done == total:
            self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


#: What :func:`network` reads (:data:`refsnn.files.READERS`).
RUNNABLE = ("a model", "a converted network", "a NIR graph")


def network(args):
    """``(graph, net)``: the model ``args.model`` (``graph``, a Graph) converted with the flags,
    or ``(None, net)`` for a converted network or NIR graph (refused with conversion flags);
    ``--seed`` is refused unless ``net`` has Poisson input."""
    from refsnn.files import file_kind, load
    from refsnn.model.graph import Graph

    # a NIR graph is simulated in --dtype (float64 or float32, argparse's choices); default
    # its metadata's refsnn_dtype, else float64 (refsnn.files.nir_dtype)
    nir = args.dtype is not None and file_kind(args.model) == "nir"
    dtype = np.dtype(args.dtype).type if nir else None
    graph = load(args.model, dtype=dtype, dt=args.dt, accept=RUNNABLE,
                 discretisation=args.discretisation)
    if isinstance(graph, Graph):
        net = convert_with_flags(graph, args, args.calibration or args.data)
    else:
        given = [o.flag for o in OPTIONS if getattr(args, o.key) is not None
                 and not (nir and o.key == "dtype")]
        given += [flag for flag, key in (("--method", "method"), *CALIBRATION_FLAGS)
                  if getattr(args, key) is not None]
        if given:
            raise OptionError(f"{args.model} is already converted; {', '.join(given)} would "
                              f"be ignored: drop them or pass the source model")
        graph, net = None, graph
    if args.seed is not None and net.encoding != "poisson":
        raise OptionError("--seed applies to --encoding poisson only")
    return graph, net


def network_input(args, net):
    """``(x, y, dt)``: the split ``--split`` of ``--data`` (its first ``--limit`` samples), for
    ``net``: plain samples (``dt`` None) or a sequence file's sequences (N, T, *input_shape)
    with their time step, which must be a NIR network's own ``dt``."""
    from refsnn.data import load_split

    x, y, dt = load_split(args.data, args.split, net.graph.input_shape, args.limit)
    own = net.schedule.get("dt") if net.method == "nir" else None
    if dt is not None and own is not None and dt != own:
        raise OptionError(f"{args.data}: the sequences are dt = {dt!r} apart, but {args.model} "
                          f"steps by dt = {own!r}; give --dt {dt!r} or convert the data")
    return x, y, dt
