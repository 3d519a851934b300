"""The NIR graphs the frameworks are checked on, and one table cell per (framework, graph).

Used by ``benchmarks/nir_frameworks.py`` (the README's table) and by
``tests/test_nir_frameworks.py`` (which pins what each framework does). Cases:

- ``IF: MLP``, ``IF: CNN``, ``IF: ResNet``: the shipped models (``data/models``) converted
  with ``--reset zero --dtype float32`` (thresholds from 200 training images) and exported
  by refsnn; 4 test images, analog input.
- ``IF: r=2, v_reset=-0.1``: a hand-made Affine-IF-Affine-IF graph whose IF nodes have a
  resistance and a reset potential (what refsnn's export never writes).
- ``LIF``: Affine-LIF-Affine-LIF, τ = 5·10⁻⁴, dt = 10⁻⁴ (snnTorch's fixed dt), v_leak = 0,
  v_reset = 0.
- ``LI``: Affine-LIF-Affine-LI: the LIF's spikes and the LI's potential (the output).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

STEPS = 32
ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Case:
    name: str
    graph: object
    x: np.ndarray
    dt: float
    compare_output: bool = False


def _exported(model: str):
    from refsnn.conversion import convert_if
    from refsnn.data import load_data
    from refsnn.files import load_model
    from refsnn.nir.writer import to_nir

    data = ROOT / "data" / "digits.h5"
    xc = load_data(data, "train", limit=200)[0]
    net = convert_if(load_model(ROOT / "data" / "models" / f"{model}.h5"), xc, reset="zero",
                     dtype=np.float32)
    return to_nir(net), load_data(data, "test", limit=4)[0].astype(np.float32)


def _hand_made(cell2, cell1=None, seed=0):
    import nir

    rng = np.random.default_rng(seed)
    n_in, n1, n2 = 8, 16, 6
    cell1 = cell1 or cell2
    graph = nir.NIRGraph(nodes={
        "input": nir.Input(input_type={"input": np.array([n_in])}),
        "fc1": nir.Affine(weight=rng.normal(0, 0.5, (n1, n_in)).astype(np.float32),
                          bias=rng.normal(0.1, 0.1, n1).astype(np.float32)),
        "n1": cell1(n1),
        "fc2": nir.Affine(weight=rng.normal(0, 0.5, (n2, n1)).astype(np.float32),
                          bias=rng.normal(0, 0.1, n2).astype(np.float32)),
        "n2": cell2(n2),
        "output": nir.Output(output_type={"output": np.array([n2])})},
        edges=[("input", "fc1"), ("fc1", "n1"), ("n1", "fc2"), ("fc2", "n2"),
               ("n2", "output")])
    return graph, rng.uniform(0, 1, (4, n_in)).astype(np.float32)


def _f32(v, n):
    return np.full(n, v, np.float32)


def cases() -> list[Case]:
    """Every case, built from the shipped files and fixed seeds."""
    import nir

    out = [Case(f"IF: {label}", *_exported(model), 1.0)
           for label, model in (("MLP", "mlp"), ("CNN", "cnn"), ("ResNet", "resnet"))]
    g, x = _hand_made(lambda n: nir.IF(r=_f32(2, n), v_threshold=_f32(0.5, n),
                                       v_reset=_f32(-0.1, n)))
    out.append(Case("IF: r=2, v_reset=-0.1", g, x, 1.0))

    def lif(n):
        return nir.LIF(tau=_f32(5e-4, n), r=_f32(1, n), v_leak=_f32(0, n),
                       v_threshold=_f32(0.15, n), v_reset=_f32(0, n))
    g, x = _hand_made(lif)
    out.append(Case("LIF", g, x, 1e-4))
    g, x = _hand_made(lambda n: nir.LI(tau=_f32(5e-4, n), r=_f32(1, n), v_leak=_f32(0, n)),
                      cell1=lif)
    out.append(Case("LI", g, x, 1e-4, compare_output=True))
    return out


@dataclass
class Cell:
    status: str   # "agrees", "diverges", "fails"
    text: str


def cell(framework: str, case: Case) -> Cell:
    """Run ``case`` in ``framework`` and refsnn, compare, and say what happened."""
    from refsnn.nir.frameworks import (FrameworkError, framework_trace,
                                               reference_trace, run_framework)
    from refsnn.oracle.compare import compare

    ref, ref_out = reference_trace(case.graph, case.x, STEPS, case.dt)
    try:
        run = run_framework(framework, case.graph, case.x, STEPS, case.dt)
    except FrameworkError as e:
        return Cell("fails", f"fails: {str(e).split(' raised ', 1)[-1]}")
    c = compare(ref, framework_trace(case.graph, run, framework, case.x), rtol=1e-4)
    first = c.first_divergence
    multi = [f"{n}: up to {int(v)} per step" for n, v in run.max_value.items() if v > 1]
    extra = f"; multi-spike ({', '.join(multi)})" if multi else ""
    err = 0.0
    if case.compare_output:
        scale = float(np.abs(ref_out).max()) or 1.0
        theirs = run.output.reshape(ref_out.shape)
        err = float(np.abs(theirs - ref_out).max()) / scale
        extra += f"; output max rel. diff {err:.2g}"
        dropped = _without_li(case)
        if err > 1e-3 and np.allclose(theirs, dropped, rtol=1e-5, atol=1e-6 * scale):
            extra += " (the output is the LI's input: the LI node was dropped)"
    if first is None:
        spikes = int(sum(layer.spikes.sum() for layer in ref.layers.values()))
        return Cell("agrees" if err < 1e-3 else "diverges",
                    f"agrees spike for spike ({spikes} spikes){extra}")
    benign = " (benign)" if first.benign else ""
    return Cell("agrees" if first.benign else "diverges",
                f"layer {first.name}, step {first.first[0]}: {first.kind}{benign}"
                f"{' — ' + first.detail if first.detail else ''}{extra}")


def _without_li(case: Case) -> np.ndarray:
    """refsnn's output per step of ``case`` with its LI nodes replaced by identities
    (``Scale(1)``: ``1·x = x`` exactly)."""
    import copy

    import nir

    from refsnn.nir.frameworks import reference_trace

    graph = copy.deepcopy(case.graph)
    for name, node in list(graph.nodes.items()):
        if isinstance(node, nir.LI):
            graph.nodes[name] = nir.Scale(scale=np.ones_like(node.tau))
    return reference_trace(graph, case.x, STEPS, case.dt)[1]


def write_traces(framework: str, case: Case, directory) -> tuple[Path, Path]:
    """Write refsnn's trace of ``case`` and ``framework``'s as refsnn-trace files
    ``<case>.refsnn.h5`` and ``<case>.<framework>.h5`` in ``directory``, for
    ``refsnn compare``; returns their paths. Raises FrameworkError as :func:`run_framework`."""
    from refsnn.nir.frameworks import framework_trace, reference_trace, run_framework
    from refsnn.oracle.trace import write_trace

    stem = "".join(ch if ch.isalnum() else "_" for ch in case.name).strip("_")
    ref, _ = reference_trace(case.graph, case.x, STEPS, case.dt)
    run = run_framework(framework, case.graph, case.x, STEPS, case.dt)
    paths = Path(directory) / f"{stem}.refsnn.h5", Path(directory) / f"{stem}.{framework}.h5"
    write_trace(paths[0], ref)
    write_trace(paths[1], framework_trace(case.graph, run, framework, case.x))
    return paths
