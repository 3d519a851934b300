"""Train the small MNIST (or Fashion-MNIST) networks and export them as refsnn models.

Usage::

    python data/make_mnist.py --wheel ...      # once, writes data/mnist.h5
    python data/train_mnist.py                 # writes data/models/mnist_{lenet,vgg,resnet,
                                               # convnext,qcfs,nq}.h5 and
                                               # data/models/mnist_accuracy.json
    python data/train_mnist.py --models lenet  # only these; other entries are kept
    python data/train_mnist.py --dataset fashion  # data/fashion.h5: writes
                                               # data/models/fashion_{lenet,qcfs,nq}.h5 and
                                               # data/models/fashion_accuracy.json

Needs PyTorch (``pip install -e .[train]``); refsnn itself never imports torch.

Models (kept small so that simulating them for 256 steps stays cheap):

- ``lenet``: LeNet-5 style, conv 5x5 (6) - ReLU - avg pool - conv 5x5 (16) - ReLU - avg pool -
  fc 120 - ReLU - fc 84 - ReLU - fc 10.
- ``vgg``: VGG style, 3x3 convs with BatchNorm and ReLU (8 | pool | 16, 16 | pool | 32),
  2x2 max pooling, fc 10.
- ``resnet``: a stride-2 stem (16 channels) and two residual blocks with identity
  shortcuts (conv-BN-ReLU-conv-BN, add, ReLU), 2x2 average pooling, fc 10.
- ``convnext``: ConvNeXt style, a 4x4 patch embedding to 7x7x16, two blocks of depthwise 7x7
  conv - LayerNorm (channels) - fc 32 - GELU - fc 16 with a residual add, global mean,
  LayerNorm, fc 10.
- ``qcfs`` and ``nq``: the LeNet layout with BatchNorm and QCFS activations (``L = 4``,
  trainable clip, :mod:`refsnn.extras.torch_qcfs`), for ``--method noise``; ``qcfs`` trains
  with ``σ = 0``, ``nq`` with the NQ noise: after each epoch refsnn converts the current
  weights (``--method noise``), simulates ``T_n = 4`` steps on the validation images and
  :func:`refsnn.conversion.noise.measure_gap` gives each layer's ``σ`` for the next epoch
  (as ``data/train_noise.py`` does for the digits models). The last epoch is kept.

Data: the 60,000 training images; the last 1,000 of them (fixed) are the validation images of
the NQ gap measurement and are not trained on by any model. ``--dataset fashion`` trains on
``data/fashion.h5`` instead, whose training split is a stratified 10,000-image subset (in
random order, so its last 1,000 hold every class): 9,000 training images, hence more epochs
(``DATASETS``), and by default only the models of the Fashion-MNIST table (the LeNet for IF,
Poisson + L4, BSNN and signGD; QCFS and NQ for the noise method). The test split is never used for a
choice. Training is seeded (``torch.manual_seed(0)``), deterministic
(``torch.use_deterministic_algorithms(True)``), CPU-only on 2 threads, float32, Adam (lr 1e-3),
batch 64, cross-entropy, no augmentation, the epochs of ``DATASETS``. Every exported file is read back
and checked: refsnn's NumPy forward pass must match the torch model (eval mode, float64) to
1e-8 on the whole test split with the same predictions, else the script stops.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
try:
    import refsnn  # noqa: F401
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(HERE.parent))
import train_models as tm  # noqa: E402  (export helpers, the torch-vs-refsnn check)
from refsnn.ann import forward  # noqa: E402
from refsnn.conversion.noise import convert_noise, measure_gap  # noqa: E402
from refsnn.data import load_data  # noqa: E402
from refsnn.export.torch import to_graph  # noqa: E402
from refsnn.extras.torch_qcfs import QCFS  # noqa: E402
from refsnn.model import load_refsnn_h5, make_graph, save_model  # noqa: E402

OUT = HERE / "models"
SEED = 0
THREADS = 2
BATCH = 64
LR = 1e-3
VALIDATION = 1000  # the last training images: NQ's gap measurement, never trained on
#: --dataset -> (data file, epochs of each model it trains; its keys are the default --models).
#: Fashion-MNIST ships 9,000 training images (against MNIST's 59,000): more epochs, and only
#: the LeNets, which carry every method of its table.
DATASETS = {
    "mnist": (HERE / "mnist.h5", {"lenet": 2, "vgg": 2, "resnet": 2, "convnext": 3, "qcfs": 2,
                                  "nq": 2}),
    "fashion": (HERE / "fashion.h5", {"lenet": 10, "qcfs": 10, "nq": 10}),
}
LEVELS, CLIP_INIT, CLIP_LR, T_NOISE = 4, 8.0, 0.05, 4


class LeNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1, self.fc2, self.fc3 = nn.Linear(400, 120), nn.Linear(120, 84), nn.Linear(84, 10)

    def forward(self, x):
        x = nn.functional.avg_pool2d(torch.relu(self.conv1(x)), 2)
        x = nn.functional.avg_pool2d(torch.relu(self.conv2(x)), 2)
        x = torch.relu(self.fc1(torch.flatten(x, 1)))
        return self.fc3(torch.relu(self.fc2(x)))


def _cbr(cin, cout, stride=1):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.BatchNorm2d(cout), nn.ReLU())


class VGG(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(_cbr(1, 8), nn.MaxPool2d(2), _cbr(8, 16), _cbr(16, 16),
                                      nn.MaxPool2d(2), _cbr(16, 32), nn.MaxPool2d(2))
        self.fc = nn.Linear(32 * 3 * 3, 10)

    def forward(self, x):
        return self.fc(torch.flatten(self.features(x), 1))


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c)
        self.conv2, self.bn2 = nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c)

    def forward(self, x):
        h = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(h)) + x)


class ResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = _cbr(1, 16, stride=2)
        self.block1, self.block2 = Block(16), Block(16)
        self.pool = nn.AvgPool2d(2)
        self.fc = nn.Linear(16 * 7 * 7, 10)

    def forward(self, x):
        x = self.pool(self.block2(self.block1(self.stem(x))))
        return self.fc(torch.flatten(x, 1))


class ConvNeXtBlock(nn.Module):
    def __init__(self, c=16, hidden=32):
        super().__init__()
        self.dw = nn.Conv2d(c, c, 7, padding=3, groups=c)
        self.norm = nn.LayerNorm(c)
        self.fc1, self.act, self.fc2 = nn.Linear(c, hidden), nn.GELU(), nn.Linear(hidden, c)

    def forward(self, x):
        h = self.dw(x).permute(0, 2, 3, 1)  # channels last for LayerNorm and the MLP
        h = self.fc2(self.act(self.fc1(self.norm(h))))
        return x + h.permute(0, 3, 1, 2)


class ConvNeXt(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Conv2d(1, 16, 4, stride=4)
        self.block1, self.block2 = ConvNeXtBlock(), ConvNeXtBlock()
        self.norm, self.fc = nn.LayerNorm(16), nn.Linear(16, 10)

    def forward(self, x):
        x = self.block2(self.block1(self.embed(x)))
        return self.fc(self.norm(torch.mean(x, dim=(2, 3))))


class LeNetQ(nn.Module):
    """LeNet with BatchNorm and QCFS in place of ReLU (attribute names are node names)."""

    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(1, 6, 5, padding=2), nn.BatchNorm2d(6)
        self.qcfs1 = QCFS(LEVELS, CLIP_INIT)
        self.conv2, self.bn2 = nn.Conv2d(6, 16, 5), nn.BatchNorm2d(16)
        self.qcfs2 = QCFS(LEVELS, CLIP_INIT)
        self.fc1, self.qcfs3 = nn.Linear(400, 120), QCFS(LEVELS, CLIP_INIT)
        self.fc2, self.qcfs4 = nn.Linear(120, 84), QCFS(LEVELS, CLIP_INIT)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = nn.functional.avg_pool2d(self.qcfs1(self.bn1(self.conv1(x))), 2)
        x = nn.functional.avg_pool2d(self.qcfs2(self.bn2(self.conv2(x))), 2)
        x = self.qcfs3(self.fc1(torch.flatten(x, 1)))
        return self.fc3(self.qcfs4(self.fc2(x)))


BUILDERS = {"lenet": LeNet, "vgg": VGG, "resnet": ResNet, "convnext": ConvNeXt,
            "qcfs": LeNetQ, "nq": LeNetQ}


def _qcfs(name, src, m: QCFS):
    return dict(name=name, op="qcfs", inputs=[src], attrs=dict(levels=m.levels),
                params=dict(clip=tm._np(m.clip)))


def export_qcfs(m: LeNetQ):
    """The refsnn graph of a LeNetQ (torch.fx cannot trace QCFS's training branch)."""
    nodes = [tm._conv("conv1", "input", m.conv1), tm._bn("bn1", "conv1", m.bn1),
             _qcfs("qcfs1", "bn1", m.qcfs1), tm._pool("pool1", "qcfs1", "avg"),
             tm._conv("conv2", "pool1", m.conv2), tm._bn("bn2", "conv2", m.bn2),
             _qcfs("qcfs2", "bn2", m.qcfs2), tm._pool("pool2", "qcfs2", "avg"),
             tm._op("flatten", "flatten", "pool2"), tm._linear("fc1", "flatten", m.fc1),
             _qcfs("qcfs3", "fc1", m.qcfs3), tm._linear("fc2", "qcfs3", m.fc2),
             _qcfs("qcfs4", "fc2", m.qcfs4), tm._linear("fc3", "qcfs4", m.fc3)]
    return make_graph(input_shape=(1, 28, 28), nodes=nodes, output="fc3")


def export(name: str, model: nn.Module):
    if isinstance(model, LeNetQ):
        return export_qcfs(model)
    return to_graph(model, torch.zeros(2, 1, 28, 28))


def train(name: str, x, y, x_val, epochs: int):
    """Train one model from seed 0; returns the model (eval mode) and its epoch history."""
    torch.manual_seed(SEED)
    np.random.seed(SEED)
    model = BUILDERS[name]().to(torch.float32)
    acts = {n: m for n, m in model.named_modules() if isinstance(m, QCFS)}
    clips = [a.clip for a in acts.values()]
    others = [p for p in model.parameters() if all(p is not c for c in clips)]
    groups = [{"params": others}] + ([{"params": clips, "lr": CLIP_LR}] if clips else [])
    opt = torch.optim.Adam(groups, lr=LR)
    loss_fn = nn.CrossEntropyLoss()
    xt, yt = torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y)
    gen = torch.Generator().manual_seed(SEED)
    history = []
    for epoch in range(1, epochs + 1):
        model.train()
        order, total = torch.randperm(len(xt), generator=gen), 0.0
        for start in range(0, len(xt), BATCH):
            idx = order[start:start + BATCH]
            opt.zero_grad()
            loss = loss_fn(model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        model.eval()
        entry = {"epoch": epoch, "loss": total / len(xt)}
        if name == "nq":  # the next epoch trains with the gap measured now (NQ)
            threads = torch.get_num_threads()
            gaps, _ = measure_gap(convert_noise(export_qcfs(model)), x_val, T_NOISE)
            # Numba's OpenMP layer shares torch's libgomp and leaves its own thread count as
            # the OpenMP default, which torch then uses: on a crowded machine a 2-thread team
            # under --threads 1 made each later epoch about 40 times slower (seen 2026-12-06)
            torch.set_num_threads(threads)
            entry["sigma_used"] = {k: float(a.sigma) for k, a in acts.items()}
            for k, a in acts.items():
                a.sigma.fill_(gaps[k].sigma)
            entry["sigma_measured"] = {k: g.sigma for k, g in gaps.items()}
        if acts:
            entry["clip"] = {k: float(a.clip.detach()) for k, a in acts.items()}
        history.append(entry)
        print(f"  {name} epoch {epoch}/{epochs}: loss {entry['loss']:.4f}", flush=True)
    return model, history


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=list(DATASETS), default="mnist",
                        help="the data file, the models' name prefix and their epochs "
                             "(default mnist)")
    parser.add_argument("--data", type=Path, default=None,
                        help="the data file (default: the --dataset's, data/<dataset>.h5)")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--models", nargs="+", choices=list(BUILDERS), default=None,
                        help="default: every model of the --dataset")
    parser.add_argument("--threads", type=int, default=THREADS,
                        help=f"torch threads (default {THREADS}; on a crowded machine 1 is "
                             f"much faster: two threads wait on each other)")
    args = parser.parse_args(argv)
    data, epochs = DATASETS[args.dataset]
    data = args.data if args.data is not None else data
    models = args.models if args.models is not None else list(epochs)
    unknown = [m for m in models if m not in epochs]
    if unknown:  # no epoch count chosen for them on this data set
        parser.error(f"--models {' '.join(unknown)}: not trained on --dataset {args.dataset} "
                     f"(choose from {', '.join(epochs)})")
    prefix = args.dataset
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(args.threads)
    x_all, y_all = load_data(data, "train")
    x_train, y_train = x_all[:-VALIDATION], y_all[:-VALIDATION]
    x_val = x_all[-VALIDATION:]
    x_test, y_test = load_data(data, "test")
    args.out.mkdir(parents=True, exist_ok=True)
    acc_path = args.out / f"{prefix}_accuracy.json"
    results = json.loads(acc_path.read_text()) if acc_path.exists() else {}
    print(f"torch {torch.__version__}, {args.threads} threads; train {len(x_train)}, "
          f"validation {len(x_val)}, test {len(x_test)}", flush=True)
    for name in models:
        t0 = time.perf_counter()
        model, history = train(name, x_train, y_train, x_val, epochs[name])
        seconds = time.perf_counter() - t0
        path = args.out / f"{prefix}_{name}.h5"
        save_model(export(name, model), path)
        os.chmod(path, 0o644)
        graph = load_refsnn_h5(path)  # check what was written, not what is in memory
        tm.check(f"{prefix}_{name}", graph, model, x_test, y_test)
        results[f"{prefix}_{name}"] = {
            "test_accuracy": float(np.mean(forward(graph, x_test).argmax(1) == y_test)),
            "epochs": epochs[name], "n_params": int(graph.n_params()),
            "train_seconds": round(seconds, 1), "threads": args.threads, "history": history}
        print(f"  {prefix}_{name}: test accuracy "
              f"{results[f'{prefix}_{name}']['test_accuracy']:.4f}, "
              f"{graph.n_params()} parameters, {seconds:.0f} s", flush=True)
        tmp = acc_path.with_name(f".{acc_path.name}.partial")
        tmp.write_text(json.dumps(results, indent=1) + "\n")
        os.replace(tmp, acc_path)
    print(f"wrote {acc_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
