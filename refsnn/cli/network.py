"""What the simulating commands share: the network a command runs (a converted file as it is,
or a model converted with the conversion flags) and when recordings are streamed."""

from __future__ import annotations

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
    progress = CalibrationProgress() if takes_progress(method) else None
    return convert(graph, method, xc, progress=progress, **kwargs)


class CalibrationProgress:
    """Prints calibration progress to stderr: about every tenth of a pass, and its end."""

    def __init__(self, stream=None):
        self.stream, self.shown = stream, (-1, -1)

    def __call__(self, index: int, done: int, total: int) -> None:
        import sys

        tenth = 10 * done // max(total, 1)
        if (index, tenth) == self.shown:
            return
        self.shown = (index, tenth)
        print(f"calibrating: pass {index + 1}, {done}/{total} samples",
              file=self.stream or sys.stderr, flush=True)


#: What :func:`network` reads (:data:`refsnn.files.READERS`).
RUNNABLE = ("a model", "a converted network", "a NIR graph")


def network(args):
    """``(graph, net)``: the model ``args.model`` (``graph``, a Graph) converted with the flags,
    or ``(None, net)`` for a converted network or NIR graph (refused with conversion flags);
    ``--seed`` is refused unless ``net`` has Poisson input."""
    from refsnn.files import load
    from refsnn.model.graph import Graph

    graph = load(args.model, dt=args.dt, accept=RUNNABLE)
    if isinstance(graph, Graph):
        net = convert_with_flags(graph, args, args.calibration or args.data)
    else:
        given = [o.flag for o in OPTIONS if getattr(args, o.key) is not None]
        given += [flag for flag, key in (("--method", "method"), *CALIBRATION_FLAGS)
                  if getattr(args, key) is not None]
        if given:
            raise OptionError(f"{args.model} is already converted; {', '.join(given)} would "
                              f"be ignored: drop them or pass the source model")
        graph, net = None, graph
    if args.seed is not None and net.encoding != "poisson":
        raise OptionError("--seed applies to --encoding poisson only")
    return graph, net
