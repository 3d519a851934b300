"""Train QCFS versions of the shipped digits models, without and with residual-error noise (NQ).

Usage::

    python data/train_noise.py                  # writes data/models/{cnn,resnet}_{qcfs,nq}.h5
                                                # and data/models/noise_history.json
    python data/train_noise.py --models cnn     # only these; other history entries are kept

Needs PyTorch (``pip install -e .[train]``); the activation module is
:mod:`refsnn.extras.torch_qcfs` (the refsnn core never imports torch).

Each model is the shipped architecture (``data/train_models.py``) with every ReLU replaced by a
QCFS activation (``L = 4`` levels, trainable clip ``λ`` starting at 8.0), trained twice from the
same seed: ``<name>_qcfs`` with ``σ = 0`` throughout, and ``<name>_nq`` with the NQ noise. After
every epoch, on a held-out validation part of the training split, the torch model's current
weights are exported to a refsnn graph, converted with ``--method noise`` and simulated by
refsnn for ``T_n = 4`` steps; :func:`refsnn.conversion.noise.measure_gap` (the one definition of
the gap, also behind ``refsnn diagnose --only gap``) gives each layer's ``σ_l``, the spread of
``h(x) − count·λ/T_n``. The NQ run trains its next epoch with those ``σ_l`` (the first epoch
with ``σ = 0``); both runs keep the checkpoint with the best SNN accuracy at ``T = 4`` on the
validation part (ties: the later epoch). Apart from ``σ`` the two runs are identical.

Data: the 1,347 training images of ``digits.h5`` are split once (seeded permutation) into 1,077
for training and 270 for validation; the test split is never used for a choice. Training is
seeded, deterministic, CPU-only on 2 threads, float32, Adam (lr 1e-3), batch 64,
cross-entropy, as ``train_models.py``. Every exported file is read back and checked: refsnn's
NumPy forward pass must match the torch model (eval mode, float64) to 1e-8 on the test split,
with the same predictions.
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
import train_models as tm  # noqa: E402  (data loading, export helpers, determinism, checks)
from refsnn.ann import forward  # noqa: E402
from refsnn.conversion.noise import convert_noise, measure_gap  # noqa: E402
from refsnn.extras.torch_qcfs import QCFS  # noqa: E402
from refsnn.model import load_refsnn_h5, make_graph, save_model  # noqa: E402
from refsnn.sim.simulator import Simulator  # noqa: E402

LEVELS = 4
CLIP_INIT = 8.0
# Adam's lr for the clip values λ. With the weights' 1e-3, λ moves by at most about 0.4 in
# the whole run and stays near its initial 8.0 (a quantisation step of 2 on activations of
# order 1); the paper's long SGD runs train λ far from its start.
CLIP_LR = 0.05
T_NOISE = 4  # noise-induction length T_n: sigma_l is measured at this many steps
T_SELECT = 4  # checkpoints are chosen by SNN accuracy at this many steps
VALIDATION = 270
EPOCHS = {"cnn": 25, "resnet": 25}
VARIANTS = ("qcfs", "nq")


# ---------------------------------------------------------------------------------------------
# Models: the shipped architectures with QCFS in place of ReLU. Attribute names are node names.


class CNNQ(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16)
        self.qcfs1 = QCFS(LEVELS, CLIP_INIT)
        self.conv2, self.bn2 = nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32)
        self.qcfs2 = QCFS(LEVELS, CLIP_INIT)
        self.fc = nn.Linear(32 * 2 * 2, 10)

    def forward(self, x):
        x = nn.functional.avg_pool2d(self.qcfs1(self.bn1(self.conv1(x))), 2, 2)
        x = nn.functional.avg_pool2d(self.qcfs2(self.bn2(self.conv2(x))), 2, 2)
        return self.fc(torch.flatten(x, 1))


class ResNetQ(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16)
        self.qcfs1 = QCFS(LEVELS, CLIP_INIT)
        self.block_conv1 = nn.Conv2d(16, 16, 3, padding=1)
        self.block_bn1 = nn.BatchNorm2d(16)
        self.block_qcfs1 = QCFS(LEVELS, CLIP_INIT)
        self.block_conv2 = nn.Conv2d(16, 16, 3, padding=1)
        self.block_bn2 = nn.BatchNorm2d(16)
        self.block_qcfs2 = QCFS(LEVELS, CLIP_INIT)
        self.fc = nn.Linear(16 * 4 * 4, 10)

    def forward(self, x):
        stem = self.qcfs1(self.bn1(self.conv1(x)))
        h = self.block_qcfs1(self.block_bn1(self.block_conv1(stem)))
        x = self.block_qcfs2(self.block_bn2(self.block_conv2(h)) + stem)
        x = nn.functional.avg_pool2d(x, 2, 2)
        return self.fc(torch.flatten(x, 1))


BUILDERS = {"cnn": CNNQ, "resnet": ResNetQ}


def _qcfs(name, src, m: QCFS):
    return dict(name=name, op="qcfs", inputs=[src], attrs=dict(levels=m.levels),
                params=dict(clip=tm._np(m.clip)))


def export(name: str, m: nn.Module):
    """The refsnn graph (op ``qcfs`` for every activation) of a torch model's current weights."""
    if name == "cnn":
        nodes = [tm._conv("conv1", "input", m.conv1), tm._bn("bn1", "conv1", m.bn1),
                 _qcfs("qcfs1", "bn1", m.qcfs1), tm._pool("pool1", "qcfs1", "avg"),
                 tm._conv("conv2", "pool1", m.conv2), tm._bn("bn2", "conv2", m.bn2),
                 _qcfs("qcfs2", "bn2", m.qcfs2), tm._pool("pool2", "qcfs2", "avg"),
                 tm._op("flatten", "flatten", "pool2"), tm._linear("fc", "flatten", m.fc)]
    elif name == "resnet":
        nodes = [tm._conv("conv1", "input", m.conv1), tm._bn("bn1", "conv1", m.bn1),
                 _qcfs("qcfs1", "bn1", m.qcfs1),
                 tm._conv("block_conv1", "qcfs1", m.block_conv1),
                 tm._bn("block_bn1", "block_conv1", m.block_bn1),
                 _qcfs("block_qcfs1", "block_bn1", m.block_qcfs1),
                 tm._conv("block_conv2", "block_qcfs1", m.block_conv2),
                 tm._bn("block_bn2", "block_conv2", m.block_bn2),
                 tm._op("block_add", "add", "block_bn2", "qcfs1"),
                 _qcfs("block_qcfs2", "block_add", m.block_qcfs2),
                 tm._pool("pool", "block_qcfs2", "avg"),
                 tm._op("flatten", "flatten", "pool"), tm._linear("fc", "flatten", m.fc)]
    else:
        raise KeyError(name)
    return make_graph(input_shape=(1, 8, 8), nodes=nodes, output="fc")


def activations(m: nn.Module) -> dict[str, QCFS]:
    return {n: mod for n, mod in m.named_modules() if isinstance(mod, QCFS)}


# ---------------------------------------------------------------------------------------------
# Training


def validation_indices(n: int) -> np.ndarray:
    """Indices (into the training split) of the 270 validation images, one seeded permutation."""
    return np.sort(np.random.default_rng(tm.SEED).permutation(n)[:VALIDATION])


def split_validation(x, y):
    """1,077 training and 270 validation images (written to the history file)."""
    val = validation_indices(len(x))
    train = np.setdiff1d(np.arange(len(x)), val)
    return (x[train], y[train]), (x[val], y[val])


def snn_check(name: str, model: nn.Module, x_val, y_val):
    """Convert the current weights and measure the gap with refsnn at T_n; SNN accuracy at T."""
    graph = export(name, model)
    net = convert_noise(graph)
    gaps, run = measure_gap(net, x_val, T_NOISE)
    if T_SELECT != T_NOISE:
        run = Simulator(net).run(x_val, T_SELECT)
    snn_acc = float(np.mean(run.readout[T_SELECT].argmax(1) == y_val))
    ann_acc = float(np.mean(forward(graph, x_val).argmax(1) == y_val))
    return gaps, snn_acc, ann_acc


def train(name: str, variant: str, train_set, val_set, epochs: int, seed: int = tm.SEED):
    """Train one model; return the model at its best checkpoint and the epoch history."""
    torch.manual_seed(seed)  # both variants start from the same weights and batches
    np.random.seed(seed)
    model = BUILDERS[name]().to(torch.float32)
    acts = activations(model)
    clips = [a.clip for a in acts.values()]
    others = [p for p in model.parameters() if all(p is not c for c in clips)]
    opt = torch.optim.Adam([{"params": others}, {"params": clips, "lr": CLIP_LR}], lr=tm.LR)
    loss_fn = nn.CrossEntropyLoss()
    xt = torch.from_numpy(train_set[0].astype(np.float32))
    yt = torch.from_numpy(train_set[1].astype(np.int64))
    gen = torch.Generator().manual_seed(seed)
    n = len(xt)
    history, best, best_acc = [], None, -1.0
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(n, generator=gen)
        total = 0.0
        for start in range(0, n, tm.BATCH):
            idx = order[start:start + tm.BATCH]
            opt.zero_grad()
            loss = loss_fn(model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        model.eval()
        used = {k: float(a.sigma) for k, a in acts.items()}
        gaps, snn_acc, ann_acc = snn_check(name, model, *val_set)
        if variant == "nq":  # the next epoch trains with the sigma measured now
            for k, a in acts.items():
                a.sigma.fill_(gaps[k].sigma)
        history.append({
            "epoch": epoch, "loss": total / n, "val_ann_accuracy": ann_acc,
            f"val_snn_accuracy_T{T_SELECT}": snn_acc,
            "sigma_used": used,
            "sigma_measured": {k: g.sigma for k, g in gaps.items()},
            "gap_mean": {k: g.mean for k, g in gaps.items()},
            "clip": {k: float(a.clip.detach()) for k, a in acts.items()},
        })
        if snn_acc >= best_acc:
            best_acc, best = snn_acc, {k: v.detach().clone() for k, v in
                                       model.state_dict().items()}
            history[-1]["kept"] = True
        if epoch == 1 or epoch % 10 == 0 or epoch == epochs:
            print(f"  {name}_{variant} epoch {epoch:3d}/{epochs}: loss {total / n:.4f}, val ANN "
                  f"{ann_acc:.4f}, SNN@{T_SELECT} {snn_acc:.4f}, sigma "
                  f"{[round(g.sigma, 3) for g in gaps.values()]}", flush=True)
    model.load_state_dict(best)
    model.eval()
    return model, history


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=tm.DATA)
    parser.add_argument("--out", type=Path, default=tm.OUT)
    parser.add_argument("--models", nargs="+", choices=list(BUILDERS), default=list(BUILDERS))
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--seed", type=int, default=tm.SEED,
                        help="training seed (initial weights, batches, noise; default 0, the "
                             "shipped files); the validation split never changes. Use with "
                             "--out elsewhere to study the spread over seeds")
    args = parser.parse_args(argv)

    tm.set_determinism()
    x_train, y_train = tm.load_data(args.data, "train")
    x_test, y_test = tm.load_data(args.data, "test")
    train_set, val_set = split_validation(x_train, y_train)
    args.out.mkdir(parents=True, exist_ok=True)
    hist_path = args.out / "noise_history.json"
    results = json.loads(hist_path.read_text()) if hist_path.exists() else {}
    results["validation_indices"] = validation_indices(len(x_train)).tolist()
    print(f"torch {torch.__version__}, {tm.THREADS} threads; train {len(train_set[0])}, "
          f"validation {len(val_set[0])}, test {x_test.shape[0]}", flush=True)
    for name in args.models:
        for variant in args.variants:
            key = f"{name}_{variant}"
            t0 = time.perf_counter()
            model, history = train(name, variant, train_set, val_set, EPOCHS[name], args.seed)
            seconds = time.perf_counter() - t0
            path = args.out / f"{key}.h5"
            save_model(export(name, model), path)
            os.chmod(path, 0o644)
            graph = load_refsnn_h5(path)  # check what was written, not what is in memory
            tm.check(key, graph, model, x_test, y_test)
            kept = max(h["epoch"] for h in history if h.get("kept"))
            results[key] = {
                "levels": LEVELS, "clip_init": CLIP_INIT, "clip_lr": CLIP_LR, "t_noise": T_NOISE,
                "t_select": T_SELECT, "epochs": EPOCHS[name], "kept_epoch": kept,
                "test_ann_accuracy": tm.accuracy(graph, x_test, y_test),
                "seconds": round(seconds, 1), "history": history,
            }
            print(f"  {key}: kept epoch {kept}, test ANN accuracy "
                  f"{results[key]['test_ann_accuracy']:.4f}, {seconds:.1f} s", flush=True)
            tmp = hist_path.with_name(f".{hist_path.name}.partial")
            tmp.write_text(json.dumps(results, indent=1) + "\n")
            os.replace(tmp, hist_path)
    print(f"wrote {hist_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
