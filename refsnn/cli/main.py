"""The ``refsnn`` command: ANN-to-SNN conversion, simulation and checking.

Commands: inspect, convert, evaluate, diagnose, export-torch, import-onnx, export-nir, trace,
compare, data, plot.

User mistakes (missing files, malformed models, bad options) end with one line on stderr,
``refsnn: error: ...``, and exit status 2 (bad usage) or 1 (bad input); never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys

import numpy as np

from refsnn import __version__
from refsnn.cli.data import add_parser as add_data_parser, add_plot_parser, positive_ints
from refsnn.cli.progress import ProgressBar
from refsnn.cli.network import STREAM_ABOVE, convert_with_flags, network, network_input
from refsnn.cli.oracle import cmd_compare, cmd_trace
from refsnn.errors import OptionError, RefsnnError
from refsnn.neurons.nir_base import DISCRETISATIONS
from refsnn.options import ALL as METHOD_NAMES, OPTIONS
from refsnn.sim.decoders import READOUTS


def _steps(text: str) -> list[int]:
    return positive_ints(text, skip_empty=True)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, found {text!r}")
    return value


def _names(text: str) -> list[str]:
    return [s for s in text.split(",") if s]


def _add_conversion(p: argparse.ArgumentParser, has_data: bool = True) -> None:
    p.add_argument("--method", default=None, choices=METHOD_NAMES,
                   help="conversion method (default if)")
    p.add_argument("--calibration", default=None,
                   help="data file whose samples set the thresholds or scales (required by "
                        "every method but noise" + ("; default: --data)" if has_data else ")"))
    p.add_argument("--calibration-split", default=None,
                   help="split of the calibration file (default train)")
    p.add_argument("--calibration-limit", type=_positive, default=None,
                   help="use only the first N calibration samples")
    for option in OPTIONS:
        p.add_argument(option.flag, dest=option.key, default=None, **option.cli)


def _add_batch_run(p: argparse.ArgumentParser, limit: int) -> None:
    """The arguments of commands that simulate one batch: ``diagnose`` and ``trace``."""
    p.add_argument("model", help="model file, or a network file written by 'refsnn convert'")
    p.add_argument("--data", required=True, help="data file (refsnn-data HDF5)")
    p.add_argument("--split", default="test", help="split to use (default test)")
    p.add_argument("--limit", type=_positive, default=limit,
                   help=f"first N samples of the split (default {limit})")
    _add_conversion(p)
    p.add_argument("--steps", type=_positive, default=64, help="run length T (default 64)")
    p.add_argument("--seed", type=int, default=None, help="Poisson encoder seed (default 0)")
    p.add_argument("--backend", choices=("numba", "numpy"), default="numba",
                   help="numba kernels (default) or the NumPy reference")
    _add_dt(p)


def _add_dt(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dt", type=float, default=None,
                   help="NIR graphs only: the forward Euler time step (default: the graph's "
                        "metadata 'dt'; required if it has none and the graph has IF, LIF, LI "
                        "or I nodes)")
    p.add_argument("--discretisation", choices=DISCRETISATIONS, default=None,
                   help="NIR graphs only: how the leaky nodes (LIF, LI, CubaLIF, CubaLI) are "
                        "stepped: euler (the default), euler-same-step (a CubaLIF's membrane "
                        "reads the current of the same step) or exact (exponential decay); "
                        "docs/semantics.md")


def _add_decode(p: argparse.ArgumentParser) -> None:
    p.add_argument("--decode", choices=READOUTS, default=None,
                   help="the readout: how the output's values over steps 1..T become the "
                        "scores: mean (the default of IF, L4, noise and NIR networks), count "
                        "(their sum: a spiking output's spike count) or last (the value at "
                        "step T)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="refsnn", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"refsnn {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("inspect", help="show a model's or converted network's graph, or a data "
                                       "file's splits and provenance")
    p.add_argument("model", help="model (.h5, .onnx), converted network, NIR graph (.nir) or "
                   "data file; with --verify, any refsnn HDF5 file")
    p.add_argument("--verify", action="store_true",
                   help="only check the file's checksums (exit 1 if its content changed)")
    _add_dt(p)
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("convert", help="convert an ANN into a spiking network file")
    p.add_argument("model", help="model file (refsnn-model HDF5, Keras .h5 or .keras, .onnx)")
    _add_conversion(p, has_data=False)
    p.add_argument("-o", "--output", required=True, help="converted network file to write")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("evaluate", help="ANN and SNN accuracy over a data set")
    p.add_argument("model", help="model file, or a network file written by 'refsnn convert'")
    p.add_argument("--data", required=True, help="data file (refsnn-data HDF5)")
    p.add_argument("--split", default="test", help="split to evaluate (default test)")
    p.add_argument("--limit", type=_positive, default=None, help="first N samples only")
    _add_conversion(p)
    p.add_argument("--steps", type=_steps, default=[8, 16, 32, 64, 128],
                   help="comma-separated step counts (default 8,16,32,64,128)")
    p.add_argument("--batch-size", type=_positive, default=64,
                   help="samples per simulated batch; results do not depend on it")
    p.add_argument("--seed", type=int, default=None, help="Poisson encoder seed (default 0)")
    p.add_argument("--threads", type=_positive, default=None,
                   help="Numba threads; results do not depend on it")
    p.add_argument("--backend", choices=("numba", "numpy"), default="numba",
                   help="numba kernels (default) or the NumPy reference (slow, same results)")
    p.add_argument("--record-rasters", type=_names, default=[], metavar="NODES",
                   help="comma-separated neuron nodes whose spike rasters go into -o")
    p.add_argument("--record-potentials", type=_names, default=[], metavar="NODES",
                   help="comma-separated neuron nodes whose membrane potentials go into -o")
    p.add_argument("--stream", action="store_true",
                   help="write recorded rasters and potentials into -o step by step instead of "
                        "holding them in memory (automatic above 1 GiB); same file contents")
    p.add_argument("--dask", default=None, metavar="ADDRESS",
                   help="run the batches on the Dask scheduler at ADDRESS (tcp://HOST:PORT); "
                        "same results (needs the dask extra)")
    p.add_argument("--workers", type=_positive, default=None,
                   help="run the batches on a local Dask cluster of N worker processes; same "
                        "results (needs the dask extra)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("-o", "--output", default=None, help="run file to write (HDF5)")
    _add_dt(p)
    _add_decode(p)
    p.add_argument("--resume", action="store_true",
                   help="keep each completed batch beside -o, and continue a killed run of the "
                        "same command from its last completed batch (same output)")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("diagnose", help="per-layer diagnostics of a conversion on a batch")
    _add_batch_run(p, limit=64)
    p.add_argument("--only", type=_names, default=None, metavar="NAMES",
                   help="comma-separated diagnostics to run (default: all that apply)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--plot", default=None, metavar="PNG",
                   help="also draw the fidelity diagnostic (per layer and per step) to this "
                        "PNG file; needs matplotlib (pip install 'refsnn[plot]')")
    p.set_defaults(func=cmd_diagnose)

    p = sub.add_parser("trace", help="write every neuron layer's spikes per step (refsnn-trace)")
    _add_batch_run(p, limit=8)
    _add_decode(p)
    p.add_argument("-o", "--output", required=True, help="trace file to write (HDF5)")
    p.add_argument("--resume", action="store_true",
                   help="simulate in batches of --batch-size samples kept beside -o, and "
                        "continue a killed run of the same command from its last completed "
                        "batch (same output)")
    p.add_argument("--batch-size", type=_positive, default=None,
                   help="samples simulated per batch (default: all at once; with --resume, 1); "
                        "the trace does not depend on it")
    p.add_argument("--stream", action="store_true",
                   help="write each step to the file as it is simulated (memory does not grow "
                        "with T; automatic above 1 GiB of recordings); same file contents")
    p.set_defaults(func=cmd_trace)

    p = sub.add_parser("compare", help="compare two traces layer by layer; exit 1 on a real "
                                       "divergence")
    p.add_argument("reference", help="reference trace (written by 'refsnn trace')")
    p.add_argument("other", help="trace of the implementation under test")
    p.add_argument("--rtol", type=float, default=1e-5,
                   help="a mismatch within rtol * threshold of the threshold (signGD: "
                        "within rtol * |target| of the target) is a rounding tie "
                        "(default 1e-5)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--model", default=None,
                   help="the network the reference was recorded from (a NIR graph or a "
                        "converted network): a first divergence no replay of its layer "
                        "explains is then tried against it re-simulated under each other "
                        "discretisation (class 'discretisation')")
    _add_dt(p)
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("export-torch", help="export a PyTorch module to a refsnn model file "
                                            "(needs torch)")
    p.add_argument("factory", help="module.py:function that returns the torch.nn.Module")
    p.add_argument("weights", nargs="?", default=None,
                   help="state_dict file (torch.save) to load into it, optional")
    p.add_argument("--input-shape", required=True, type=_names, metavar="SHAPE",
                   help="per-sample input shape, e.g. 3,32,32")
    p.add_argument("-o", "--output", required=True, help="model file to write (HDF5)")
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64",
                   help="dtype of the written parameters (default float64; float32 halves "
                        "the file)")
    p.set_defaults(func=cmd_export_torch)

    p = sub.add_parser("import-onnx", help="read an ONNX model and write it as a refsnn model "
                                           "file (needs onnx)")
    p.add_argument("model", help="ONNX file (.onnx)")
    p.add_argument("-o", "--output", required=True, help="model file to write (HDF5)")
    p.set_defaults(func=cmd_import_onnx)

    p = sub.add_parser("export-nir", help="export a converted IF network to a NIR graph "
                                          "(needs nir)")
    p.add_argument("network", help="network file written by 'refsnn convert' (--method if "
                                   "--reset zero)")
    p.add_argument("-o", "--output", required=True, help="NIR file to write (HDF5)")
    p.set_defaults(func=cmd_export_nir)

    add_data_parser(sub)
    add_plot_parser(sub)
    return parser


def cmd_inspect(args) -> int:
    from refsnn.data import DataFile
    from refsnn.files import load
    from refsnn.io import checksum_status
    from refsnn.model.graph import Graph

    if args.verify:
        print(f"{args.model}: checksums {checksum_status(args.model)}")
        return 0
    graph = load(args.model, dt=args.dt, accept=INSPECTED,
                     discretisation=args.discretisation)
    if isinstance(graph, DataFile):
        from refsnn.cli.data import print_data_file
        return print_data_file(graph.info)
    if not isinstance(graph, Graph):
        net, graph = graph, graph.graph
        print(f"converted network: method {net.method}, encoding {net.encoding}")
        for key, value in net.options.items():
            print(f"  {key}: {value}")
    print(f"input {graph.input_shape}")
    rows = [("node", "op", "inputs", "shape", "params")]
    for node in graph.nodes:
        n = sum(p.size for p in node.params.values())
        rows.append((node.name, node.op, ",".join(node.inputs), str(graph.shapes[node.name]),
                     str(n)))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    print(f"output {graph.output} {graph.shapes[graph.output]}; "
          f"{len(graph.nodes)} nodes, {graph.n_params()} parameters")
    print(f"checksums {checksum_status(args.model)}")
    return 0


#: What ``refsnn inspect`` shows (:data:`refsnn.files.READERS`).
INSPECTED = ("a model", "a converted network", "a NIR graph", "a data file")


def cmd_convert(args) -> int:
    from refsnn.files import load_model
    from refsnn.sim.network import save_snn

    net = convert_with_flags(load_model(args.model), args, args.calibration)
    save_snn(net, args.output)
    print(f"wrote {args.output}: {len(net.neuron_nodes())} neuron layers, method {net.method}, "
          f"encoding {net.encoding}")
    return 0


def cmd_evaluate(args) -> int:
    import numba

    from refsnn.evaluation import evaluate
    from refsnn.resume import checkpoint_for
    from refsnn.sim.decoders import with_readout
    from refsnn.sim.record import save_run, write_run

    if args.dask is not None and args.workers is not None:
        raise OptionError("--dask and --workers exclude each other: --dask ADDRESS uses an "
                          "existing scheduler, --workers N starts a local cluster")
    if args.stream and not args.output:
        raise OptionError("--stream writes the recordings into the run file: give -o RUN.h5")
    if args.resume and not args.output:
        raise OptionError("--resume continues the run file of -o: give -o RUN.h5")
    if args.resume and (args.stream or args.dask is not None or args.workers is not None):
        raise OptionError("--resume works with an in-memory local run: not with --stream, "
                          "--workers or --dask")
    graph, net = network(args)
    net = with_readout(net, args.decode)
    if args.threads is not None:
        if args.threads > numba.config.NUMBA_NUM_THREADS:
            raise OptionError(f"--threads: at most {numba.config.NUMBA_NUM_THREADS} on this "
                              f"machine, found {args.threads}")
        numba.set_num_threads(args.threads)
    x, y, dt = network_input(args, net)
    sequence = {} if dt is None else {"sequence": True}  # plain data: the calls as before
    if dt is not None and (args.dask is not None or args.workers is not None):
        raise OptionError("sequence data run in this process: not with --workers or --dask")
    if dt is not None and graph is not None:
        graph = None  # an ANN takes one sample, not a sequence: its accuracy is n/a
    with contextlib.ExitStack() as stack:
        client = recorders = out = None
        big = _recorded_bytes(net, x.shape[0], args) > STREAM_ABOVE
        if args.output and (args.stream or big):
            from refsnn.io import atomic_h5
            from refsnn.sim.record import stream_recorders
            # the file is complete (and renamed to -o) only when the block ends normally
            out = stack.enter_context(atomic_h5(args.output))
            recorders = stream_recorders(out, net, x.shape[0], max(args.steps),
                                         args.record_rasters, args.record_potentials)
        if args.dask is not None or args.workers is not None:
            from refsnn.scaleout import cluster
            client = stack.enter_context(cluster(args.dask, args.workers))
        checkpoint = checkpoint_for(args) if args.resume else None
        if checkpoint is not None and big:
            raise OptionError("--resume: the recordings exceed 1 GiB and would be streamed; "
                              "record fewer nodes or samples")
        bar = ProgressBar("simulating", enabled=sys.stderr.isatty() and not args.json)
        result = evaluate(net, x, y, args.steps, ann_graph=graph, batch_size=args.batch_size,
                          seed=args.seed or 0, backend=args.backend,
                          rasters=args.record_rasters, potentials=args.record_potentials,
                          progress=bar.update, client=client,
                          # local workers: one Numba thread each unless told, so N workers
                          # use N cores
                          threads=args.threads or (1 if args.workers else None),
                          recorders=recorders, checkpoint=checkpoint, **sequence)
        bar.close()
        if args.output:
            settings = {"refsnn_version": __version__, "model": str(args.model),
                        "data": str(args.data), "split": args.split, "samples": int(x.shape[0]),
                        "method": net.method, "encoding": net.encoding,
                        "steps": np.asarray(result.run.steps, dtype=np.int64),
                        "seed": int(args.seed or 0), "backend": args.backend,
                        "ann_accuracy": result.ann_accuracy,
                        **{f"option_{k}": v for k, v in net.options.items()},
                        **_sequence_settings(args, net, dt)}
            if out is not None:
                write_run(out, result.run, settings, labels=y)
            else:
                save_run(args.output, result.run, settings, labels=y)
            if checkpoint is not None:
                checkpoint.remove()  # the output is complete
    saturated = {k: int(v.sum()) for k, v in result.run.saturated.items() if v.any()}
    sin = result.sin  # None for signGD, whose spikes are not rate-coded
    if args.json:
        print(json.dumps({
            "ann_accuracy": result.ann_accuracy,
            "results": [{"steps": t, "accuracy": a, "max_abs_error": result.max_abs_error[t]}
                        for t, a in result.accuracy.items()],
            "saturated": saturated, "sin": sin,
            "model": str(args.model), "data": str(args.data), "split": args.split,
            "samples": int(x.shape[0]), "method": net.method, "encoding": net.encoding,
            "options": dict(net.options), **_sequence_settings(args, net, dt),
        }))
    else:
        print(f"{args.model}: {x.shape[0]} samples of {args.data}:{args.split}, "
              f"method {net.method}, encoding {net.encoding}")
        if dt is not None or args.decode is not None:
            print(f"readout {net.decoder}" + ("" if dt is None else
                                              f", sequences of {x.shape[1]} steps, dt = {dt:g}"))
        print("ANN accuracy     n/a (a NIR graph has no ANN)" if net.method == "nir" else
              "ANN accuracy     n/a (sequence input)" if dt is not None else
              f"ANN accuracy  {100 * result.ann_accuracy:6.2f} %")
        for t, a in result.accuracy.items():
            print(f"SNN T={t:<6d}  {100 * a:6.2f} %   max |output - ANN| "
                  f"{result.max_abs_error[t]:.3g}")
        if sin is not None:
            print(f"spikes of inactivated neurons (ANN activation 0) in {max(args.steps)} steps: "
                  + ", ".join(f"{k} {v}" for k, v in sin.items()))
        for name, n in saturated.items():
            print(saturation_warning(name, n, net))
        if args.output:
            print(f"wrote {args.output}")
    return 0


def _sequence_settings(args, net, dt) -> dict:
    """What a run records of its readout and sequence input: nothing for a plain run with the
    default readout (so its run file and JSON stay as they were)."""
    out = {} if args.decode is None and dt is None else {"readout": net.decoder}
    if dt is not None:
        out.update(sequence=True, dt=float(dt))
    return out


def saturation_warning(name: str, count: int, net) -> str:
    """The warning for ``count`` saturated neurons of the signGD network ``net``'s node
    ``name``, naming only the remedies measured to help, each where it helped (README, "How
    signGD conversion works", has the measurements)."""
    from refsnn.neurons.signgd import reach
    text = [f"warning: {count} neuron(s) of '{name}' ended further from their target than "
            f"their estimate can still travel (saturated; reach eta0/(1-gamma) = "
            f"{reach(net.schedule['eta0'], net.schedule['gamma']):.3g})."]
    if net.options.get("compat"):
        text.append("Under --compat only ReLU neurons are scaled, so --scale and "
                    "--scale-floor do not change the others; a larger --eta0 extends the "
                    "reach.")
    else:
        text.append("If the inputs go beyond the calibration data, calibrate on data like "
                    "them (--calibration); a larger --eta0 extends the reach (that reduces "
                    "such saturation, it does not remove it).")
        if net.options.get("scale_floor", 0.1) < 0.1:
            text.append("A neuron with a tiny scale stalls: raise --scale-floor (the default "
                        "0.1 removes such stalls).")
        if net.graph.node(name).attrs.get("fn") == "normalize":
            text.append("LayerNorm's a/sqrt(b) neurons stall where the variance is small: a "
                        "coarser --scale or a higher --scale-floor makes that worse; a larger "
                        "--eta0 can lower the error.")
    return " ".join(text)


def _recorded_bytes(net, samples: int, args) -> int:
    shapes, item = net.graph.shapes, np.dtype(net.graph.dtype).itemsize
    size = lambda names: sum(int(np.prod(shapes.get(n, ()))) for n in set(names))
    return samples * max(args.steps) * (size(args.record_rasters)
                                        + item * size(args.record_potentials))


def cmd_diagnose(args) -> int:
    from refsnn.data import load_data
    from refsnn.diagnose import DIAGNOSTICS, Probe, applicable, diagnose

    _, net = network(args)
    if net.method == "nir":
        raise OptionError(f"{args.model}: diagnose compares a conversion with its ANN, and a "
                          "NIR graph has none; use evaluate or trace (then compare)")
    names = applicable(net)
    if args.only is not None:
        for name in args.only:
            if name not in DIAGNOSTICS:
                raise OptionError(f"--only: unknown diagnostic {name!r}; known: "
                                  f"{', '.join(DIAGNOSTICS)}")
            if name not in names:
                raise OptionError(f"--only: {name!r} does not apply to --method {net.method} "
                                  f"(it applies to {', '.join(DIAGNOSTICS[name].methods)})")
        names = list(args.only)
    if args.plot is not None:  # refused before simulating: no matplotlib, nothing to draw
        from refsnn.diagnose.plot import PLOTS, require_matplotlib
        require_matplotlib()
        if not any(n in PLOTS for n in names):
            raise OptionError(f"--plot draws {', '.join(PLOTS)}, which "
                              f"{'is not selected by --only' if args.only else 'does not apply'}"
                              f" here (method {net.method})")
    x, _ = load_data(args.data, args.split, net.graph.input_shape, args.limit)
    probe = Probe(net, x, args.steps, seed=args.seed or 0, backend=args.backend)
    tables = diagnose(probe, names)
    if args.json:
        print(json.dumps({"model": str(args.model), "data": str(args.data), "split": args.split,
                          "samples": int(x.shape[0]), "steps": args.steps, "method": net.method,
                          "encoding": net.encoding, "options": dict(net.options),
                          "diagnostics": {k: t.to_json() for k, t in tables.items()}}))
    else:
        print(f"{args.model}: {x.shape[0]} samples of {args.data}:{args.split}, "
              f"method {net.method}, encoding {net.encoding}, T = {args.steps}")
        for table in tables.values():
            print()
            print(table.format())
    if args.plot is not None:
        from refsnn.diagnose.plot import save_plot
        drawn = save_plot(args.plot, probe, tables)
        print(f"wrote {args.plot} ({drawn})", file=sys.stderr if args.json else sys.stdout)
    return 0


def cmd_export_torch(args) -> int:
    try:
        import torch

        from refsnn.export.torch import from_torch, load_factory
    except ImportError:
        raise RefsnnError("export-torch needs torch: pip install torch") from None
    if not all(s.isdigit() and int(s) > 0 for s in args.input_shape):
        raise OptionError(f"--input-shape: expected positive integers like 3,32,32, found "
                          f"{','.join(args.input_shape)!r}")
    module = load_factory(args.factory, args.weights)
    shape = tuple(int(s) for s in args.input_shape)
    graph = from_torch(module, torch.zeros((2,) + shape), args.output, dtype=np.dtype(args.dtype))
    print(f"wrote {args.output}: {len(graph.nodes)} nodes, {graph.n_params()} parameters, "
          f"input {graph.input_shape}")
    return 0


def cmd_import_onnx(args) -> int:
    from refsnn.interop.onnx import import_onnx

    graph = import_onnx(args.model, args.output)
    print(f"wrote {args.output}: {len(graph.nodes)} nodes, {graph.n_params()} parameters, "
          f"input {graph.input_shape}")
    return 0


def cmd_export_nir(args) -> int:
    from refsnn.files import file_kind
    from refsnn.nir import require_nir
    from refsnn.nir.writer import export_nir
    from refsnn.sim.network import FORMAT, load_snn

    require_nir()
    if file_kind(args.network) != FORMAT:
        raise OptionError(f"{args.network} is not a converted network: convert it first "
                          "(refsnn convert MODEL --calibration DATA --reset zero -o NET.h5)")
    net = load_snn(args.network)
    export_nir(net, args.output)
    print(f"wrote {args.output}: {len(net.neuron_nodes())} IF layers as NIR IF nodes, "
          f"dt = 1, encoding {net.encoding}, readout = mean of the Output's value")
    return 0


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except RefsnnError as e:  # an OptionError is bad usage (exit 2), the others bad input
        print(f"refsnn: error: {e}", file=sys.stderr)
        return 2 if isinstance(e, OptionError) else 1
    except BrokenPipeError:  # stdout closed early (``refsnn inspect M | head``): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no flush error at exit
        return 141  # 128 + SIGPIPE, as a shell reports it
    except OSError as e:  # e.g. an output folder that does not exist
        print(f"refsnn: error: {e.filename or ''}: {e.strerror or e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("refsnn: interrupted; no output file was written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
