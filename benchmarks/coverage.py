"""Model coverage: family x source x method -> exported (or the exact refusal), max ANN
difference, and how far the SNN's readout is from the ANN's at T steps.

Sources: ``torch`` (the small re-implementations of :mod:`families`, exported with
:func:`refsnn.export.torch.to_graph`, compared with the module's own float64 forward pass) and
``keras`` (the same families written with Keras layers in :mod:`keras_families`, with
``--keras-families``, and keras.applications MobileNetV2 and ResNet50 built with
``weights=None``, with ``--keras``; saved as .keras archives and read back with
:mod:`refsnn.interop.keras`, compared with Keras' float32 forward pass) and, with
``--onnx``, ``onnx`` (the same modules in float64 written by ``torch.onnx.export`` with the
TorchScript exporter, ``dynamo=False``, opset 17, default EVAL mode, so BatchNorm is folded into
the convolutions by torch; read with :func:`refsnn.interop.onnx.load_onnx` and compared with
the module's float64 forward pass). Every
network has random weights, so "accuracy" is agreement: the fraction of inputs whose SNN
argmax differs from the ANN's (the ANN's argmax counts as the label).

Usage::

    python benchmarks/coverage.py [--families a,b] [--samples 8] [--steps 32,64] [--keras]
        [--keras-families all|a,b] [--onnx] [--json out.json]

``--families ""`` leaves out the torch rows (and the onnx rows, made from the same modules).
Each family's rows are printed together: torch, onnx, keras.

Prints a Markdown table (the README's). Needs torch (keras with ``--keras`` or
``--keras-families``, keras_families.py picks its torch backend unless KERAS_BACKEND is set;
onnx with ``--onnx``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from refsnn import ann  # noqa: E402
from refsnn.conversion import convert  # noqa: E402
from refsnn.errors import RefsnnError  # noqa: E402
from refsnn.sim.simulator import Simulator  # noqa: E402

METHODS = ("if", "signgd", "bsnn")
#: BSNN needs more steps per packet: its readout at T steps holds T / period packets.
OPTIONS = {"if": {"percentile": 100.0}, "signgd": {}, "bsnn": {"percentile": 100.0}}


def _methods(graph, x, steps):
    """{method: (status, max |readout - ANN| at the last T, {T: disagreement})}."""
    out = {}
    ref = ann.forward(graph, x)
    for method in METHODS:
        try:
            net = convert(graph, method, x, **OPTIONS[method])
        except RefsnnError as e:
            out[method] = ("refused", str(e), None, None)
            continue
        run = Simulator(net, "numba").run(x, list(steps))
        target = ref
        before = net.options.get("readout_before")
        if before:  # an output softmax dropped: the readout is the logits
            target = ann.forward(graph, x, all_nodes=True)[1][graph.node(before).inputs[0]]
        label = np.argmax(ref.reshape(len(x), -1), axis=1)
        wrong = {t: float(np.mean(np.argmax(run.readout[t].reshape(len(x), -1), axis=1)
                                  != label)) for t in steps}
        diff = float(np.max(np.abs(run.readout[steps[-1]] - target)))
        out[method] = ("converted", "", diff, wrong)
    return out


def torch_rows(names, samples, steps):
    import torch

    import families
    from refsnn.export.torch import to_graph

    rows = []
    x = torch.randn(samples, *families.INPUT_SHAPE, generator=torch.Generator().manual_seed(0),
                    dtype=torch.float64)
    for name in names:
        module = families.make(name)
        try:
            graph = to_graph(module, x)
        except RefsnnError as e:
            rows.append(dict(family=name, source="torch", export=f"refused: {e}"))
            continue
        with torch.no_grad():
            expected = module.double()(x).numpy()
        diff = float(np.max(np.abs(ann.forward(graph, x.numpy()) - expected)))
        rows.append(dict(family=name, source="torch", export="exported", ann_diff=diff,
                         nodes=len(graph.nodes), methods=_methods(graph, x.numpy(), steps)))
    return rows


#: ONNX opset of the ``onnx`` rows.
OPSET = 17


def onnx_rows(names, samples, steps):
    import warnings

    import torch

    import families
    from refsnn.interop.onnx import load_onnx

    rows = []
    x = torch.randn(samples, *families.INPUT_SHAPE, generator=torch.Generator().manual_seed(0),
                    dtype=torch.float64)
    for name in names:
        module = families.make(name).double()
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"{name}.onnx"
            with warnings.catch_warnings():  # the TorchScript exporter's deprecation notice
                warnings.simplefilter("ignore")
                torch.onnx.export(module, (x,), str(path), dynamo=False, opset_version=OPSET)
            try:
                graph = load_onnx(path)
            except RefsnnError as e:
                rows.append(dict(family=name, source="onnx",
                                 export=f"refused: {str(e).replace(str(path), name + '.onnx')}"))
                continue
        with torch.no_grad():
            expected = module(x).numpy()
        diff = float(np.max(np.abs(ann.forward(graph, x.numpy()) - expected)))
        rows.append(dict(family=name, source="onnx", export="exported", ann_diff=diff,
                         nodes=len(graph.nodes), methods=_methods(graph, x.numpy(), steps)))
    return rows


def keras_rows(samples, steps):
    import keras

    from refsnn.interop.keras import load_keras_archive

    rows = []
    apps = {"keras MobileNetV2": lambda: keras.applications.MobileNetV2(
                input_shape=(32, 32, 3), weights=None, classes=10, alpha=0.35),
            "keras ResNet50": lambda: keras.applications.ResNet50(
                input_shape=(32, 32, 3), weights=None, classes=10)}
    rng = np.random.default_rng(0)
    x_nhwc = rng.normal(size=(samples, 32, 32, 3)).astype(np.float32)
    rng = np.random.default_rng(1)
    for name, build in apps.items():
        keras.utils.set_random_seed(0)
        model = build()
        # weights=None leaves BN at mean 0, var 1, gamma 1, beta 0, and these untrained
        # networks then give the same output for every input; random statistics (as the
        # tests use) make the outputs differ
        for layer in model.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                c = layer.get_weights()[0].shape[0]
                layer.set_weights([rng.uniform(0.5, 1.5, c), rng.normal(0, 0.1, c),
                                   rng.normal(0, 0.2, c), rng.uniform(0.5, 1.5, c)])
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "m.keras"
            model.save(path)
            try:
                graph = load_keras_archive(path)
            except RefsnnError as e:
                rows.append(dict(family=name, source="keras", export=f"refused: {e}"))
                continue
        x = x_nhwc.transpose(0, 3, 1, 2).astype(np.float64)
        expected = model.predict(x_nhwc, verbose=0).astype(np.float64)
        diff = float(np.max(np.abs(ann.forward(graph, x) - expected)))
        rows.append(dict(family=name, source="keras", export="exported", ann_diff=diff,
                         nodes=len(graph.nodes), methods=_methods(graph, x, steps)))
    return rows


def keras_family_rows(names, samples, steps):
    """Rows of the families of :mod:`keras_families` (source ``keras``): each saved as a
    .keras archive, read back with refsnn, compared with Keras' float32 forward pass."""
    import keras_families

    from refsnn.interop.keras import load_keras_archive

    rows = []
    x_nhwc = np.random.default_rng(0).normal(
        size=(samples, *keras_families.INPUT_SHAPE)).astype(np.float32)
    x = x_nhwc.transpose(0, 3, 1, 2).astype(np.float64)
    for name in names:
        model = keras_families.make(name)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"{name}.keras"
            model.save(path)
            try:
                graph = load_keras_archive(path)
            except RefsnnError as e:  # the message without the temporary directory
                rows.append(dict(family=name, source="keras",
                                 export=f"refused: {str(e).replace(str(path), path.name)}"))
                continue
        expected = model.predict(x_nhwc, verbose=0).astype(np.float64)
        diff = float(np.max(np.abs(ann.forward(graph, x) - expected)))
        rows.append(dict(family=name, source="keras", export="exported", ann_diff=diff,
                         nodes=len(graph.nodes), methods=_methods(graph, x, steps)))
    return rows


def _short(message: str) -> str:
    """A refusal's first clause: the node and the reason, without the lists and hints."""
    for cut in (" (supported:", "; "):
        if cut in message:
            return message[:message.index(cut)] + " …"
    return message


def table(rows, steps) -> str:
    t = steps[-1]
    lines = ["| family | source | export (max ANN diff) | " +
             " | ".join(f"{m}: wrong at T={','.join(map(str, steps))} (max diff at T={t})"
                        for m in METHODS) + " |",
             "|---|---|---|" + "---|" * len(METHODS)]
    for r in rows:
        if r["export"] != "exported":
            lines.append(f"| {r['family']} | {r['source']} | {r['export']} |" +
                         " |" * len(METHODS))
            continue
        cells = []
        for m in METHODS:
            status, why, diff, wrong = r["methods"][m]
            if status == "refused":
                cells.append(f"refused: {_short(why)}")
            else:
                wrong = {int(k): v for k, v in wrong.items()}  # JSON keys are strings
                cells.append(" / ".join(f"{wrong[s]:.2f}" for s in steps) + f" ({diff:.2g})")
        lines.append(f"| {r['family']} | {r['source']} | {r['ann_diff']:.1e} | " +
                     " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    import families

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--families", default=",".join(families.FAMILIES))
    p.add_argument("--samples", type=int, default=8)
    p.add_argument("--steps", default="32,64")
    p.add_argument("--keras", action="store_true",
                   help="add the keras.applications MobileNetV2 and ResNet50 rows")
    p.add_argument("--keras-families", default="",
                   help="comma-separated families of keras_families.py ('all': every one)")
    p.add_argument("--onnx", action="store_true",
                   help="add a row per family read from torch.onnx.export's file")
    p.add_argument("--json")
    p.add_argument("--table", nargs="+", metavar="JSON",
                   help="only print the table of rows saved with --json")
    args = p.parse_args(argv)
    steps = [int(s) for s in args.steps.split(",")]
    if args.table:
        print(table([r for f in args.table for r in json.loads(Path(f).read_text())], steps))
        return
    names = [f for f in args.families.split(",") if f]
    rows = torch_rows(names, args.samples, steps)
    if args.onnx:
        rows += onnx_rows(names, args.samples, steps)
    if args.keras_families:
        import keras_families
        picked = args.keras_families.split(",")
        rows += keras_family_rows(list(keras_families.FAMILIES) if picked == ["all"] else
                                  [f for f in picked if f], args.samples, steps)
    # each family's rows together, in the order of the families
    order = {name: k for k, name in enumerate(families.FAMILIES)}
    rows.sort(key=lambda r: order.get(r["family"], len(order)))  # stable: torch, onnx, keras
    if args.keras:
        rows += keras_rows(args.samples, steps)
    print(table(rows, steps))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
