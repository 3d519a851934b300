"""The ``refsnn trace`` and ``refsnn compare`` commands (parsers in refsnn/cli/main.py)."""

from __future__ import annotations

import json

import numpy as np

from refsnn.cli.network import STREAM_ABOVE, network, network_input
from refsnn.errors import OptionError


def cmd_trace(args) -> int:
    """Simulate a batch and write every neuron layer's trace (``refsnn-trace``)."""
    from refsnn import __version__
    from refsnn.oracle.trace import record_trace, stream_trace, write_trace
    from refsnn.sim.decoders import with_readout
    from refsnn.sim.simulator import Simulator

    _, net = network(args)
    net = with_readout(net, args.decode)
    x, _, dt = network_input(args, net)
    attrs = {"producer": f"refsnn {__version__}", "model": str(args.model),
             "data": str(args.data), "split": args.split, "samples": int(x.shape[0]),
             "method": net.method, "encoding": net.encoding, "backend": args.backend}
    if args.decode is not None or dt is not None:  # plain traces keep their attributes
        attrs["readout"] = net.decoder
    if dt is not None:
        attrs.update(sequence=True, dt=float(dt))
    sim = Simulator(net, args.backend)
    batched = args.resume or args.batch_size is not None
    if batched and args.stream:
        raise OptionError("--stream writes the whole trace step by step: not with --resume "
                          "or --batch-size")
    if dt is not None and args.stream:
        raise OptionError("--stream: a trace of sequence input is recorded in memory; drop "
                          "--stream (or use --batch-size)")
    streamed = not batched and dt is None and (
        args.stream or recorded_bytes(sim, x.shape[0], args.steps) > STREAM_ABOVE)
    if streamed:
        layers = stream_trace(args.output, sim, x, args.steps, seed=args.seed or 0,
                              attrs=attrs)
    else:
        trace = (_batched_trace(args, sim, x, attrs, dt is not None) if batched
                 else record_trace(sim, x, args.steps, seed=args.seed or 0, attrs=attrs,
                                   sequence=dt is not None))
        write_trace(args.output, trace)
        layers = list(trace.layers)
        if args.resume:
            from refsnn.resume import checkpoint_for
            checkpoint_for(args, "trace").remove()  # the output is complete
    print(f"wrote {args.output}: {len(layers)} layers, T = {args.steps}, "
          f"{x.shape[0]} samples" + (", streamed" if streamed else ""))
    return 0


def _batched_trace(args, sim, x, attrs, sequence: bool):
    """The trace of ``x`` recorded in batches of ``--batch-size`` samples (each with its
    sample ids, so the same trace as in one batch), kept in a checkpoint with ``--resume``."""
    from refsnn.oracle.trace import join_traces, record_trace
    from refsnn.resume import checkpoint_for, run_batches

    checkpoint = checkpoint_for(args, "trace") if args.resume else None
    parts = run_batches(x.shape[0], args.batch_size or 1, lambda a, b: record_trace(
        sim, x[a:b], args.steps, seed=args.seed or 0, attrs=attrs, sample_ids=np.arange(a, b),
        sequence=sequence),
        checkpoint)
    for p in parts:  # the kept batches' checkpoint attributes
        p.attrs = {k: v for k, v in p.attrs.items() if k not in ("fingerprint", "start", "stop")}
    return join_traces(parts, {"dtype": np.dtype(sim.dtype).name, "seed": int(args.seed or 0),
                               **attrs})


def recorded_bytes(sim, batch: int, steps: int) -> int:
    """Bytes a trace of ``batch`` samples and ``steps`` steps holds in memory: per neuron,
    a bool spike, a potential and (at most) a current of the simulation dtype per step."""
    per_step = 1 + 2 * np.dtype(sim.dtype).itemsize
    sizes = (int(np.prod(sim.net.graph.shapes[op.node.name])) for op in sim.ops if op.is_neuron)
    return steps * batch * per_step * sum(sizes)


def cmd_compare(args) -> int:
    """Compare two traces; exit 1 on a real (not benign) divergence."""
    from refsnn.oracle.compare import compare, format_table
    from refsnn.oracle.trace import read_trace

    ref, other = read_trace(args.reference), read_trace(args.other)
    if ref.steps != other.steps:
        raise OptionError(f"the traces have different lengths: T = {ref.steps} in "
                          f"{args.reference}, {other.steps} in {args.other}")
    c = compare(ref, other, rtol=args.rtol, network=_reference_network(args, ref))
    if args.json:
        first = c.first_divergence
        print(json.dumps({"real_divergence": c.real,
                          "first": None if first is None else
                          {"layer": first.name, "step": first.first and first.first[0],
                           "class": first.kind},
                          "layers": [dict(vars(r), first=r.first) for r in c.layers]}))
    else:
        print(format_table(c))
    return 1 if c.real else 0


def _reference_network(args, ref):
    """``--model`` loaded as the reference ``ref`` was recorded: in its dtype, with ``--dt``
    and ``--discretisation`` defaulting to what its layers recorded (a NIR layer's ``dt`` and
    ``discretisation`` parameters, when all agree); None without ``--model``."""
    from refsnn.files import file_kind, load

    if args.model is None:
        for flag in ("dt", "discretisation"):
            if getattr(args, flag) is not None:
                raise OptionError(f"--{flag} applies with --model only")
        return None
    nir = file_kind(args.model) == "nir"
    recorded = {}
    for key in ("dt", "discretisation"):
        values = {layer.params[key] for layer in ref.layers.values() if key in layer.params}
        recorded[key] = values.pop() if len(values) == 1 and nir else None
    dtype = ref.attrs.get("dtype")
    return load(args.model, dtype=np.dtype(dtype).type if dtype is not None else None,
                dt=args.dt if args.dt is not None else recorded["dt"],
                discretisation=args.discretisation or recorded["discretisation"],
                accept=("a converted network", "a NIR graph"))
