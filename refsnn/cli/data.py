"""``refsnn data``: make a data file from NumPy arrays, a CSV file or a folder of images.

::

    refsnn data from-arrays X.npy Y.npy [D.npz ...] -o data.h5 [--split test ...]
    refsnn data from-csv FILE.csv [...] -o data.h5 [--label first|last] [--header]
    refsnn data from-images FOLDER [...] -o data.h5          (one subfolder per class)
    refsnn data from-arrays X.npy Y.npy --dt DT -o seq.h5     (X: sequences (N, T, ...))
    refsnn data from-events EV.npz [...] -o seq.h5 --sensor-size W,H,P
                            (--time-window W | --n-time-bins N) [--overlap O] --dt DT

Each input is one split, named by the ``--split`` flags in order (one input: ``test`` by
default). ``--shape C,H,W`` reshapes every sample, ``--scale`` multiplies the values and
``--mean``/``--std`` normalise each channel after it; all of it is recorded in the file's
``provenance`` and shown by ``refsnn inspect``. The file is written atomically.
"""

from __future__ import annotations

import argparse

import numpy as np

from refsnn.errors import DataFormatError, OptionError


def positive_ints(text: str, skip_empty: bool = False) -> list[int]:
    """The positive integers of ``text``, comma-separated (``skip_empty``: "8,,16," is 8, 16)."""
    try:
        values = [int(s) for s in text.split(",") if s.strip() or not skip_empty]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, found {text!r}")
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, found {text!r}")
    return values


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (np.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a number > 0, found {text!r}")
    return value


def _floats(text: str) -> list[float]:
    try:
        values = [float(s) for s in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, found {text!r}")
    if not all(np.isfinite(values)):
        raise argparse.ArgumentTypeError(f"expected finite numbers, found {text!r}")
    return values


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", required=True, help="data file to write (refsnn-data)")
    p.add_argument("--split", action="append", default=None, metavar="NAME",
                   help="name of the next input's split; repeat once per input (default: "
                        "test for a single input)")
    p.add_argument("--shape", type=positive_ints, default=None, metavar="C,H,W",
                   help="per-sample shape, channels first (default: as read; CSV rows are "
                        "vectors)")
    p.add_argument("--scale", type=float, default=None,
                   help="multiply every value by this, e.g. 0.00392156862745098 for 0..255 "
                        "pixels (kept as the uint8 decoding attribute when the values are "
                        "bytes)")
    p.add_argument("--mean", type=_floats, default=None, metavar="M[,M...]",
                   help="per-channel mean subtracted after --scale (one per channel)")
    p.add_argument("--std", type=_floats, default=None, metavar="S[,S...]",
                   help="per-channel standard deviation divided by after --mean")
    p.add_argument("--classes", default=None, metavar="N|NAMES",
                   help="number of classes, or their comma-separated names (default: the "
                        "largest label + 1; for images, the folder names)")


def add_parser(sub) -> None:
    """Register ``refsnn data`` and its three sub-commands on the main parser's ``sub``."""
    p = sub.add_parser("data", help="make a data file from arrays, CSV or image folders")
    dsub = p.add_subparsers(dest="source", required=True, metavar="SOURCE")
    q = dsub.add_parser("from-arrays", help="X.npy Y.npy pairs, or .npz files holding x and y")
    q.add_argument("inputs", nargs="+", metavar="FILE",
                   help="X.npy Y.npy (a pair) or D.npz (arrays x and y), once per split")
    _common(q)
    q.add_argument("--dt", type=_positive_float, default=None,
                   help="make a sequence file: each x is (N, T, ...), T steps DT apart (the "
                        "input of every step; --shape then shapes one step)")
    q.set_defaults(func=cmd_data, reader="arrays")
    q = dsub.add_parser("from-csv", help="CSV files, one sample per row")
    q.add_argument("inputs", nargs="+", metavar="FILE.csv", help="one CSV file per split")
    q.add_argument("--label", choices=("first", "last"), default="first",
                   help="the column holding the label (default first, as MNIST's CSV)")
    q.add_argument("--header", action="store_true", help="skip the first line (column names)")
    _common(q)
    q.set_defaults(func=cmd_data, reader="csv")
    q = dsub.add_parser("from-images", help="folders with one subfolder of images per class "
                                            "(needs Pillow: pip install 'refsnn[images]')")
    q.add_argument("inputs", nargs="+", metavar="FOLDER", help="one folder per split")
    _common(q)
    q.set_defaults(func=cmd_data, reader="images")
    q = dsub.add_parser("from-events", help="event streams (t, x, y, p), binned into frames "
                                            "as tonic's ToFrame does: a sequence file")
    q.add_argument("inputs", nargs="+", metavar="EV.npz",
                   help="one .npz per split: events_0 .. events_<N-1> (structured arrays with "
                        "fields t, x, p and optionally y) and labels")
    _common(q)
    q.add_argument("--sensor-size", type=positive_ints, required=True, metavar="W,H,P",
                   help="sensor width, height (1 without y) and polarities")
    q.add_argument("--time-window", type=_positive_float, default=None,
                   help="bins of this length, in the events' time unit")
    q.add_argument("--n-time-bins", type=positive_ints, default=None, metavar="N",
                   help="this many bins per stream, each (t_last - t_first) // N long")
    q.add_argument("--overlap", type=float, default=0.0,
                   help="overlap of consecutive bins: time (--time-window) or a fraction of "
                        "a bin in [0, 1) (--n-time-bins); default 0")
    q.add_argument("--dt", type=_positive_float, required=True,
                   help="the time step of the frames as the network counts time (e.g. the "
                        "bin length in seconds for a NIR graph)")
    q.set_defaults(func=cmd_data, reader="events")


def _group_arrays(inputs: list[str]) -> list[tuple]:
    """``X.npy Y.npy`` pairs and single ``.npz`` files, in order."""
    groups, i = [], 0
    while i < len(inputs):
        if inputs[i].lower().endswith(".npz"):
            groups.append((inputs[i],))
            i += 1
        elif i + 1 < len(inputs) and not inputs[i + 1].lower().endswith(".npz"):
            groups.append((inputs[i], inputs[i + 1]))
            i += 2
        else:
            raise OptionError(f"{inputs[i]}: an X.npy needs its labels Y.npy after it")
    return groups


def _read_arrays(args):
    from refsnn.importers import read_arrays
    groups = _group_arrays(args.inputs)
    return [read_arrays(*g) for g in groups], [list(g) for g in groups], None


def _read_csv(args):
    from refsnn.importers import read_csv
    pairs = [read_csv(f, args.label, args.header) for f in args.inputs]
    return pairs, [[f] for f in args.inputs], None


def _read_images(args):
    from refsnn.importers import read_image_folder
    pairs, names = [], None
    for folder in args.inputs:
        x, y, classes = read_image_folder(folder)
        if names is not None and classes != names:
            raise DataFormatError(f"{folder}: class folders {classes} differ from "
                                  f"{args.inputs[0]}'s {names}")
        names = classes
        pairs.append((x, y))
    return pairs, [[f] for f in args.inputs], names


def _read_events(args):
    from refsnn.events import streams_to_sequences
    from refsnn.importers import read_event_streams

    if (args.time_window is None) == (args.n_time_bins is None):
        raise OptionError("from-events: give one of --time-window and --n-time-bins")
    if len(args.sensor_size) != 3:
        raise OptionError(f"--sensor-size: expected W,H,P, found {args.sensor_size}")
    if args.n_time_bins is not None and len(args.n_time_bins) != 1:
        raise OptionError(f"--n-time-bins: expected one number, found {args.n_time_bins}")
    pairs = []
    for f in args.inputs:
        streams, y = read_event_streams(f)
        frames, _ = streams_to_sequences(
            streams, args.sensor_size, args.time_window,
            None if args.n_time_bins is None else args.n_time_bins[0], args.overlap, f)
        # counts: bytes when they fit (stored exactly, scale 1), else float64
        pairs.append((frames.astype(np.uint8) if frames.max() <= 255
                      else frames.astype(np.float64), y))
    return pairs, [[f] for f in args.inputs], None


#: ``from-<source>`` -> reader of its inputs: ``(x, y)`` pairs, their file names, and the
#: class names (images only).
READERS = {"arrays": _read_arrays, "csv": _read_csv, "images": _read_images,
           "events": _read_events}


def _classes(args, pairs, names):
    top = max(int(y.max()) for _, y in pairs) + 1
    if args.classes is None:
        return names if names is not None else top
    if args.classes.isdigit():
        return int(args.classes)
    given = [s.strip() for s in args.classes.split(",")]
    if names is not None and given != names:
        raise OptionError(f"--classes: the folders name the classes {names}; found {given}")
    return given


def cmd_data(args) -> int:
    from refsnn import __version__
    from refsnn.data import save

    dt = getattr(args, "dt", None)  # from-arrays and from-events only
    if dt is not None and (args.mean is not None or args.std is not None):
        raise OptionError("--mean/--std: not in a sequence file (axis 1 is time, not "
                          "channels); normalise the arrays before")
    pairs, files, names = READERS[args.reader](args)
    splits = args.split or (["test"] if len(pairs) == 1 else None)
    if splits is None or len(splits) != len(pairs):
        raise OptionError(f"--split: give one name per input ({len(pairs)} input(s), "
                          f"{len(args.split or [])} name(s))")
    if len(set(splits)) != len(splits):
        raise OptionError(f"--split: names must differ, found {splits}")
    shaped = {name: (_reshaped(x, args.shape, src[0], dt), y)
              for name, (x, y), src in zip(splits, pairs, files)}
    channels = next(iter(shaped.values()))[0].shape[1]
    for flag, v in (("--mean", args.mean), ("--std", args.std)):
        if v is not None and len(v) == 1 and channels > 1:
            raise OptionError(f"{flag}: give one value per channel ({channels}), found 1")
    classes = _classes(args, pairs, names)
    provenance = {"made_by": f"refsnn {__version__} data from-{args.reader}",
                  "inputs": {s: f for s, f in zip(splits, files)},
                  "shape": args.shape,
                  **({"label": args.label, "header": args.header}
                     if args.reader == "csv" else {}),
                  **({"sensor_size": args.sensor_size, "time_window": args.time_window,
                      "n_time_bins": args.n_time_bins and args.n_time_bins[0],
                      "overlap": args.overlap, "binning": "tonic ToFrame (docs/data.md)"}
                     if args.reader == "events" else {}),
                  **({} if dt is None else {"dt": dt})}
    save(args.output, shaped, classes, scale=args.scale, mean=args.mean, std=args.std,
         provenance=provenance, **({} if dt is None else {"dt": dt}))
    for name, (x, y) in shaped.items():
        what = "samples" if dt is None else f"sequences of {x.shape[1]} steps"
        print(f"{name}: {x.shape[0]} {what} of shape {x.shape[1 if dt is None else 2:]}, "
              f"stored as {'uint8' if x.dtype == np.uint8 else 'float'}")
    n = classes if isinstance(classes, int) else len(classes)
    print(f"wrote {args.output}: {len(shaped)} split(s), {n} classes")
    return 0


def _reshaped(x, shape, what: str, dt):
    """``x`` with ``--shape`` applied to each sample, or to each step of a sequence."""
    from refsnn.importers import reshape_samples

    if dt is None or shape is None:
        return reshape_samples(x, shape, what)
    if x.ndim < 3:
        raise DataFormatError(f"{what}: --dt: expected sequences (N, T, ...), found shape "
                              f"{x.shape}")
    steps = reshape_samples(x.reshape((-1,) + x.shape[2:]), shape, what)
    return steps.reshape(x.shape[:2] + steps.shape[1:])


def print_data_file(info: dict) -> int:
    """``refsnn inspect`` of a data file: classes, splits, encodings and provenance (``info``:
    :func:`refsnn.data.describe` of it)."""
    names = info["class_names"]
    print(f"data file: {info['classes']} classes"
          + (f" ({', '.join(names)})" if names else ""))
    if info["source"]:
        print(f"source: {info['source']}")
    if info.get("dt") is not None:
        print(f"sequences: x is (N, T, *step shape), steps dt = {info['dt']:g} apart")
    for name, s in info["splits"].items():
        enc = s["encoding"]
        how = (f"uint8, values = x * {enc['scale']:.10g}"
               + (f", then (- mean {enc['mean']}) / std {enc['std']} per channel"
                  if "mean" in enc else "")) if enc else s["dtype"]
        what = (f"samples of shape {tuple(s['shape'][1:])}" if info.get("dt") is None else
                f"sequences of {s['shape'][1]} steps of shape {tuple(s['shape'][2:])}")
        print(f"  {name}: {s['shape'][0]} {what}, {how}")
        print(f"    per class: {s['counts']}")
    if info["provenance"]:
        print("provenance:")
        for key, value in info["provenance"].items():
            print(f"  {key}: {value}")
    return 0


def add_plot_parser(sub) -> None:
    """Register ``refsnn plot`` (accuracy against T from ``evaluate --json`` files)."""
    p = sub.add_parser("plot", help="draw accuracy against T from 'evaluate --json' outputs "
                                    "(needs matplotlib)")
    p.add_argument("runs", nargs="+", metavar="RUN.json",
                   help="files holding one 'refsnn evaluate --json' output each")
    p.add_argument("-o", "--output", required=True, help="PNG file to write")
    p.add_argument("--title", default=None, help="title (default: says what is drawn)")
    p.set_defaults(func=cmd_plot)


def cmd_plot(args) -> int:
    from refsnn.diagnose.plot import require_matplotlib
    from refsnn.diagnose.plot_accuracy import read_run, save_accuracy_plot

    require_matplotlib()  # before reading anything: no matplotlib, nothing to draw
    runs = [read_run(p) for p in args.runs]
    save_accuracy_plot(args.output, runs, args.title)
    print(f"wrote {args.output}: {len(runs)} curve(s)")
    return 0
