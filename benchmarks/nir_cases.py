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

NIR's published graphs (:func:`published_cases`; files from ``neuromorphs/NIR``'s ``paper/``
folder, found under ``data/nir/NIR/paper/`` or in the folder ``$REFSNN_NIR_FILES``), each on
a seeded random sequence (one input per step, the way these graphs are fed):

- ``Braille: bias_zero``, ``Braille: noBias_subtract``: the paper's recurrent task
  (``paper/03_rnn``: Affine/Linear → CubaLIF with a recurrent ``w_rec`` edge → Affine/Linear →
  CubaLIF), ``dt = 10⁻⁴`` and 256 steps as the task's README gives, on 4 samples of
  Bernoulli(0.1) spikes on the 12 taxels (the dataset is not in this repository).
- ``Braille: … without w_rec``: the same graphs with the recurrent edge and its node removed
  (derived here, not published): feed-forward CubaLIF, which snnTorch's reader can run.
- ``CNN (Sinabs)``: ``paper/02_cnn/cnn_sinabs.nir`` (five IF layers), 2 samples of
  Bernoulli(0.05) events on N-MNIST's (2, 34, 34) for 32 steps, ``dt = 1``.
- ``LIF (Norse)``: ``paper/01_lif/lif_norse.nir``, 4 samples of Bernoulli(0.3) spikes for
  256 steps, ``dt = 10⁻⁴``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

STEPS = 32
ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Case:
    """A graph, its inputs ``x`` (B, *input_shape) and, for a sequence, ``encoded``
    (steps, B, *input_shape): the input at each step (then ``x`` is its mean over steps)."""

    name: str
    graph: object
    x: np.ndarray
    dt: float
    compare_output: bool = False
    encoded: np.ndarray | None = None
    steps: int = STEPS


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


#: The published graph files by case name: their paths under ``data/nir/`` (the source
#: repository, then its path; ``data/nir/README.md``).
PUBLISHED = {
    "Braille: bias_zero": "NIR/paper/03_rnn/braille_noDelay_bias_zero.nir",
    "Braille: noBias_subtract": "NIR/paper/03_rnn/braille_noDelay_noBias_subtract.nir",
    "CNN (Sinabs)": "NIR/paper/02_cnn/cnn_sinabs.nir",
    "LIF (Norse)": "NIR/paper/01_lif/lif_norse.nir",
}


def published_file(path: str) -> Path | None:
    """The published graph file ``data/nir/<path>``, else, in the folder
    ``$REFSNN_NIR_FILES``, the same file flattened to one name (``NIR/paper/01_lif/x.nir``:
    ``NIR__paper_01_lif_x.nir``); None when neither exists."""
    found = ROOT / "data" / "nir" / path
    if found.is_file():
        return found
    folder = os.environ.get("REFSNN_NIR_FILES")
    repo, _, rest = path.partition("/")
    flat = Path(folder) / f"{repo}__{rest.replace('/', '_')}" if folder else None
    return flat if flat is not None and flat.is_file() else None


def spike_sequence(steps: int, samples: int, shape, p: float, seed: int) -> np.ndarray:
    """Seeded Bernoulli(``p``) spikes, float32 (steps, samples, *shape)."""
    rng = np.random.default_rng(seed)
    return (rng.random((steps, samples) + tuple(shape)) < p).astype(np.float32)


def without_recurrence(graph, node: str):
    """A copy of ``graph`` without node ``node`` and its edges."""
    import copy

    graph = copy.deepcopy(graph)
    del graph.nodes[node]
    graph.edges = [e for e in graph.edges if node not in e]
    return graph


def published_cases() -> list[Case]:
    """The cases on NIR's published graphs whose files are present (:func:`published_file`)."""
    import nir

    def sequence(name, graph, steps, samples, shape, p, dt, seed):
        enc = spike_sequence(steps, samples, shape, p, seed)
        out.append(Case(name, graph, enc.mean(0), dt, encoded=enc, steps=steps))

    out: list[Case] = []
    for seed, name in enumerate(("Braille: bias_zero", "Braille: noBias_subtract"), 1):
        path = published_file(PUBLISHED[name])
        if path is not None:
            graph = nir.read(path)
            sequence(name, graph, 256, 4, (12,), 0.1, 1e-4, seed)
            out.append(Case(f"{name} without w_rec", without_recurrence(graph, "lif1.w_rec"),
                            out[-1].x, 1e-4, encoded=out[-1].encoded, steps=256))
    path = published_file(PUBLISHED["CNN (Sinabs)"])
    if path is not None:
        sequence("CNN (Sinabs)", nir.read(path), STEPS, 2, (2, 34, 34), 0.05, 1.0, 3)
    path = published_file(PUBLISHED["LIF (Norse)"])
    if path is not None:
        sequence("LIF (Norse)", nir.read(path), 256, 4, (1,), 0.3, 1e-4, 4)
    return out


@dataclass
class Cell:
    status: str   # "agrees", "diverges", "fails"
    text: str


def reference(case: Case):
    """refsnn's trace and output per step of ``case`` (:func:`refsnn.nir.frameworks.
    reference_trace`), or the one-line reason refsnn refuses the graph (a str)."""
    from refsnn.errors import RefsnnError
    from refsnn.nir.frameworks import reference_trace

    try:
        return reference_trace(case.graph, case.x, case.steps, case.dt, encoded=case.encoded)
    except RefsnnError as e:
        return str(e).split(": ", 1)[-1]


def run(framework: str, case: Case):
    """``framework``'s run of ``case`` (:func:`refsnn.nir.frameworks.run_framework`)."""
    from refsnn.nir.frameworks import run_framework

    return run_framework(framework, case.graph, case.x, case.steps, case.dt,
                         encoded=case.encoded)


def _multi(fw_run) -> str:
    multi = [f"{n}: up to {int(v)} per step" for n, v in fw_run.max_value.items() if v > 1]
    return f"; multi-spike ({', '.join(multi)})" if multi else ""


def cell(framework: str, case: Case, ref=None, peer=None, fw_run=None) -> Cell:
    """Run ``case`` in ``framework`` and refsnn, compare, and say what happened.

    ``ref``: :func:`reference` of ``case``, if already made; ``fw_run``: ``framework``'s
    :func:`run` of ``case``, if already made. ``compare`` has refsnn's network of the
    case, so it names another discretisation of refsnn that reproduces the run on every
    layer (class ``discretisation``) when no replay of one layer does. When refsnn refuses
    the graph the cell says so, and ``peer`` (``(name, FrameworkRun)`` of another framework on the same
    case) is what the run is held against instead: same spikes, or the first layer and
    step where they differ and whether that layer's input already differed."""
    from refsnn.nir.frameworks import FrameworkError, framework_trace
    from refsnn.nir.reader import from_nir
    from refsnn.oracle.compare import compare

    ref = reference(case) if ref is None else ref
    try:
        fw_run = run(framework, case) if fw_run is None else fw_run
    except FrameworkError as e:
        return Cell("fails", f"fails: {str(e).split(' raised ', 1)[-1]}")
    if isinstance(ref, str):
        return _unchecked(fw_run, peer)
    ref, ref_out = ref
    # the reference's network (float32, as reference_trace's): a departure no replay of one
    # layer explains (e.g. in a recurrent layer) is tried against its other discretisations
    c = compare(ref, framework_trace(case.graph, fw_run, framework, case.x), rtol=1e-4,
                network=from_nir(case.graph, dt=case.dt, dtype=np.float32))
    first = c.first_divergence
    extra = _multi(fw_run)
    err = 0.0
    if case.compare_output:
        scale = float(np.abs(ref_out).max()) or 1.0
        theirs = fw_run.output.reshape(ref_out.shape)
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


def _unchecked(fw_run, peer) -> Cell:
    """The cell of a run refsnn cannot check (it refuses the graph: the table's refsnn
    column says why): its spike count, and how it compares with ``peer``'s run."""
    spikes = int(sum(v.sum() for v in fw_run.spikes.values()))
    text = f"runs ({spikes} spikes{_multi(fw_run)}), unchecked"
    if peer is None:
        return Cell("unchecked", text)
    name, other = peer
    for layer, mine in fw_run.spikes.items():
        diff = mine != other.spikes[layer]
        if diff.any():
            t = int(np.argmax(diff.reshape(diff.shape[0], -1).any(1)))
            same_in = np.array_equal(fw_run.inputs[layer][:t + 1], other.inputs[layer][:t + 1])
            return Cell("unchecked", f"{text}; differs from {name} from layer {layer}, step "
                        f"{t + 1} (its input {'equal' if same_in else 'already different'} "
                        f"up to that step)")
    return Cell("unchecked", f"{text}; spike for spike as {name}")


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
    return reference_trace(graph, case.x, case.steps, case.dt, encoded=case.encoded)[1]


def write_traces(framework: str, case: Case, directory) -> tuple[Path, Path]:
    """Write refsnn's trace of ``case`` and ``framework``'s as refsnn-trace files
    ``<case>.refsnn.h5`` and ``<case>.<framework>.h5`` in ``directory``, for
    ``refsnn compare``; returns their paths. Raises FrameworkError as :func:`run_framework`,
    and refsnn's error when it refuses the graph."""
    from refsnn.nir.frameworks import framework_trace, reference_trace
    from refsnn.oracle.trace import write_trace

    stem = "".join(ch if ch.isalnum() else "_" for ch in case.name).strip("_")
    ref, _ = reference_trace(case.graph, case.x, case.steps, case.dt, encoded=case.encoded)
    fw_run = run(framework, case)
    paths = Path(directory) / f"{stem}.refsnn.h5", Path(directory) / f"{stem}.{framework}.h5"
    write_trace(paths[0], ref)
    write_trace(paths[1], framework_trace(case.graph, fw_run, framework, case.x))
    return paths
