"""Train the four small example networks on ``data/digits.h5`` and export them as refsnn models.

Usage::

    python data/make_digits.py      # once, writes data/digits.h5
    python data/train_models.py     # writes data/models/{mlp,cnn,cnn_maxpool,resnet}.h5
                                    # and data/models/accuracy.json

Needs PyTorch (``pip install -e .[train]``); refsnn itself never imports torch.

Training is seeded (``torch.manual_seed(0)``, ``np.random.seed(0)``), deterministic
(``torch.use_deterministic_algorithms(True)``), CPU-only on 2 threads, in float32, with Adam
(lr 1e-3), batch 64, cross-entropy loss and no augmentation or weight decay. The trained
weights are exported in float64 through :func:`refsnn.model.save_model`. Every exported file is
then read back with :func:`refsnn.model.load_model` and checked: refsnn's NumPy reference
:func:`refsnn.ann.forward` must match the torch model, run in eval mode in float64, to 1e-8 on
the whole test set, with the same predicted class for every image. Any mismatch stops the
script with a non-zero exit status.

Results are bit-reproducible for one torch version on one CPU, not across versions or CPUs;
that is why the trained files are shipped in the repository.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import torch
from torch import nn

HERE = Path(__file__).resolve().parent
try:
    import refsnn  # noqa: F401
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(HERE.parent))
from refsnn.ann import forward  # noqa: E402
from refsnn.model import load_model, make_graph, save_model  # noqa: E402

DATA = HERE / "digits.h5"
OUT = HERE / "models"

SEED = 0
THREADS = 2
BATCH = 64
LR = 1e-3
TOLERANCE = 1e-8
EPOCHS = {"mlp": 60, "cnn": 40, "cnn_maxpool": 40, "resnet": 40}


# ---------------------------------------------------------------------------------------------
# Data


def load_split(path: Path, split: str):
    with h5py.File(path, "r") as f:
        if f.attrs.get("format") != "refsnn-data":
            raise SystemExit(f"{path}: not a refsnn-data file (run data/make_digits.py)")
        return f[split]["x"][()], f[split]["y"][()]


# ---------------------------------------------------------------------------------------------
# Torch models. Layer names are the node names used in the exported graph.


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(64, 128)
        self.fc2 = nn.Linear(128, 64)
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        x = torch.flatten(x, 1)
        x = torch.relu(self.fc1(x))
        x = torch.relu(self.fc2(x))
        return self.fc(x)


class CNN(nn.Module):
    """conv-bn-relu-pool twice, then a linear read-out; ``pool`` is "avg" or "max"."""

    def __init__(self, pool: str = "avg"):
        super().__init__()
        self.pool = pool
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(16)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(32)
        self.fc = nn.Linear(32 * 2 * 2, 10)

    def _pool(self, x):
        if self.pool == "avg":
            return nn.functional.avg_pool2d(x, 2, 2)
        return nn.functional.max_pool2d(x, 2, 2)

    def forward(self, x):
        x = self._pool(torch.relu(self.bn1(self.conv1(x))))
        x = self._pool(torch.relu(self.bn2(self.conv2(x))))
        return self.fc(torch.flatten(x, 1))


class ResNet(nn.Module):
    """A stem and one residual block (identity shortcut), average pooling, linear read-out."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(16)
        self.block_conv1 = nn.Conv2d(16, 16, 3, padding=1)
        self.block_bn1 = nn.BatchNorm2d(16)
        self.block_conv2 = nn.Conv2d(16, 16, 3, padding=1)
        self.block_bn2 = nn.BatchNorm2d(16)
        self.fc = nn.Linear(16 * 4 * 4, 10)

    def forward(self, x):
        stem = torch.relu(self.bn1(self.conv1(x)))
        h = torch.relu(self.block_bn1(self.block_conv1(stem)))
        h = self.block_bn2(self.block_conv2(h))
        x = torch.relu(h + stem)
        x = nn.functional.avg_pool2d(x, 2, 2)
        return self.fc(torch.flatten(x, 1))


BUILDERS = {
    "mlp": MLP,
    "cnn": lambda: CNN("avg"),
    "cnn_maxpool": lambda: CNN("max"),
    "resnet": ResNet,
}


# ---------------------------------------------------------------------------------------------
# Export to a refsnn graph


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().to(torch.float64).cpu().numpy().copy()


def _linear(name, src, layer: nn.Linear):
    bias = _np(layer.bias) if layer.bias is not None else np.zeros(layer.out_features)
    return dict(name=name, op="linear", inputs=[src], params=dict(weight=_np(layer.weight),
                                                                  bias=bias))


def _conv(name, src, layer: nn.Conv2d):
    if layer.padding_mode != "zeros" or layer.dilation != (1, 1):
        raise ValueError(f"{name}: only zero padding and no dilation can be exported")
    bias = _np(layer.bias) if layer.bias is not None else np.zeros(layer.out_channels)
    return dict(name=name, op="conv2d", inputs=[src],
                attrs=dict(stride=tuple(layer.stride), padding=tuple(layer.padding),
                           groups=int(layer.groups)),
                params=dict(weight=_np(layer.weight), bias=bias))


def _bn(name, src, layer: nn.BatchNorm2d):
    return dict(name=name, op="batchnorm", inputs=[src], attrs=dict(eps=float(layer.eps)),
                params=dict(gamma=_np(layer.weight), beta=_np(layer.bias),
                            mean=_np(layer.running_mean), var=_np(layer.running_var)))


def _op(name, op, *inputs, **attrs):
    return dict(name=name, op=op, inputs=list(inputs), attrs=attrs)


def _pool(name, src, kind):
    return _op(name, f"{kind}pool2d", src, kernel=(2, 2), stride=(2, 2), padding=(0, 0))


def export(name: str, model: nn.Module):
    """Return the refsnn graph of a trained torch model (float64 parameters)."""
    m = model
    if name == "mlp":
        nodes = [
            _op("flatten", "flatten", "input"),
            _linear("fc1", "flatten", m.fc1), _op("relu1", "relu", "fc1"),
            _linear("fc2", "relu1", m.fc2), _op("relu2", "relu", "fc2"),
            _linear("fc", "relu2", m.fc),
        ]
    elif name in ("cnn", "cnn_maxpool"):
        kind = m.pool
        nodes = [
            _conv("conv1", "input", m.conv1), _bn("bn1", "conv1", m.bn1),
            _op("relu1", "relu", "bn1"), _pool("pool1", "relu1", kind),
            _conv("conv2", "pool1", m.conv2), _bn("bn2", "conv2", m.bn2),
            _op("relu2", "relu", "bn2"), _pool("pool2", "relu2", kind),
            _op("flatten", "flatten", "pool2"),
            _linear("fc", "flatten", m.fc),
        ]
    elif name == "resnet":
        nodes = [
            _conv("conv1", "input", m.conv1), _bn("bn1", "conv1", m.bn1),
            _op("relu1", "relu", "bn1"),
            _conv("block_conv1", "relu1", m.block_conv1),
            _bn("block_bn1", "block_conv1", m.block_bn1),
            _op("block_relu1", "relu", "block_bn1"),
            _conv("block_conv2", "block_relu1", m.block_conv2),
            _bn("block_bn2", "block_conv2", m.block_bn2),
            _op("block_add", "add", "block_bn2", "relu1"),
            _op("block_relu2", "relu", "block_add"),
            _pool("pool", "block_relu2", "avg"),
            _op("flatten", "flatten", "pool"),
            _linear("fc", "flatten", m.fc),
        ]
    else:
        raise KeyError(name)
    return make_graph(input_shape=(1, 8, 8), nodes=nodes, output="fc")


# ---------------------------------------------------------------------------------------------
# Training and checks


def set_determinism() -> None:
    torch.manual_seed(SEED)
    np.random.seed(SEED)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(THREADS)


def train(name: str, x: np.ndarray, y: np.ndarray, epochs: int) -> nn.Module:
    torch.manual_seed(SEED)  # each model starts from the same seed, whatever ran before it
    np.random.seed(SEED)
    model = BUILDERS[name]().to(torch.float32)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    loss_fn = nn.CrossEntropyLoss()
    xt = torch.from_numpy(x.astype(np.float32))
    yt = torch.from_numpy(y.astype(np.int64))
    gen = torch.Generator().manual_seed(SEED)
    n = len(xt)
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(n, generator=gen)
        total = 0.0
        for start in range(0, n, BATCH):
            idx = order[start:start + BATCH]
            opt.zero_grad()
            loss = loss_fn(model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        if epoch == 0 or (epoch + 1) % 10 == 0 or epoch + 1 == epochs:
            print(f"  {name} epoch {epoch + 1:3d}/{epochs}: loss {total / n:.4f}", flush=True)
    model.eval()
    return model


def torch_logits64(model: nn.Module, x: np.ndarray) -> np.ndarray:
    m64 = model.to(torch.float64).eval()
    try:
        with torch.no_grad():
            return m64(torch.from_numpy(np.asarray(x, dtype=np.float64))).numpy()
    finally:
        model.to(torch.float32)


def check(name: str, graph, model, x_test, y_test) -> None:
    """Fail loudly unless refsnn's forward pass reproduces the torch model."""
    ref = torch_logits64(model, x_test)
    got = forward(graph, x_test)
    if got.shape != ref.shape:
        raise SystemExit(f"{name}: refsnn output shape {got.shape} != torch {ref.shape}")
    err = float(np.max(np.abs(got - ref)))
    if not err <= TOLERANCE:
        raise SystemExit(f"{name}: refsnn forward differs from torch by {err:.3e} > {TOLERANCE}")
    p_ref, p_got = ref.argmax(1), got.argmax(1)
    if not np.array_equal(p_ref, p_got):
        bad = np.flatnonzero(p_ref != p_got)
        raise SystemExit(f"{name}: predictions differ on {len(bad)} test images, e.g. {bad[:5]}")
    acc_ref, acc_got = float(np.mean(p_ref == y_test)), float(np.mean(p_got == y_test))
    if acc_ref != acc_got:
        raise SystemExit(f"{name}: accuracy {acc_got} (refsnn) != {acc_ref} (torch)")
    print(f"  {name}: refsnn forward matches torch float64 (max |diff| {err:.1e})")


def accuracy(graph, x, y) -> float:
    return float(np.mean(forward(graph, x).argmax(1) == y))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--models", nargs="+", choices=list(BUILDERS), default=list(BUILDERS))
    args = parser.parse_args(argv)

    set_determinism()
    x_train, y_train = load_split(args.data, "train")
    x_test, y_test = load_split(args.data, "test")
    args.out.mkdir(parents=True, exist_ok=True)
    acc_path = args.out / "accuracy.json"
    results = json.loads(acc_path.read_text()) if acc_path.exists() else {}
    print(f"torch {torch.__version__}, {THREADS} threads; "
          f"train {x_train.shape[0]}, test {x_test.shape[0]}", flush=True)

    seconds = {}
    for name in args.models:
        t0 = time.perf_counter()
        model = train(name, x_train, y_train, EPOCHS[name])
        seconds[name] = time.perf_counter() - t0
        path = args.out / f"{name}.h5"
        save_model(export(name, model), path)
        os.chmod(path, 0o644)
        graph = load_model(path)  # check what was written, not what is in memory
        check(name, graph, model, x_test, y_test)
        logits = forward(graph, x_test)
        results[name] = {
            "test_accuracy": accuracy(graph, x_test, y_test),
            "train_accuracy": accuracy(graph, x_train, y_train),
            "epochs": EPOCHS[name],
            "n_params": int(graph.n_params()),
        }
        print(f"  {name}: test logits in [{logits.min():.2f}, {logits.max():.2f}], "
              f"{seconds[name]:.1f} s", flush=True)

    ordered = {k: results[k] for k in BUILDERS if k in results}
    ordered.update({k: v for k, v in results.items() if k not in ordered})
    tmp = acc_path.with_name(f".{acc_path.name}.partial")
    tmp.write_text(json.dumps(ordered, indent=2) + "\n")
    os.replace(tmp, acc_path)

    print()
    print(f"{'model':12s} {'test acc':>9s} {'train acc':>10s} {'epochs':>7s} {'params':>8s}"
          f" {'time':>7s}")
    for name, r in ordered.items():
        t = f"{seconds[name]:6.1f}s" if name in seconds else "      -"
        print(f"{name:12s} {r['test_accuracy']:9.4f} {r['train_accuracy']:10.4f} "
              f"{r['epochs']:7d} {r['n_params']:8d} {t}")
    print(f"wrote {acc_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
