"""Record the reference signGD code's outputs on small seeded networks (``--compat`` golden data).

    python data/golden/compat/make_compat.py --reference /path/to/snn_signgd [--commit SHA]

``--reference`` is a checkout of https://github.com/snuhcs/snn_signgd (its package lives in
``src/packages``); nothing of it is copied here: this script only calls its public
``snn_signgd.convert`` on PyTorch modules defined below. It needs torch,
``spikingjelly==0.0.0.0.14`` (installed with ``--no-deps``), munch, loguru, tqdm and refsnn.

For every case it writes ``<case>.h5``, the PyTorch model exported with
:func:`refsnn.export.from_torch`, and a group ``/<case>`` of ``reference.h5`` holding the
calibration batch, the test inputs, the ANN outputs (PyTorch, float64) and the reference SNN's
outputs at each T of ``STEPS`` (``/<case>/snn``, shape (len(STEPS), B, ...)). Everything runs on
the CPU in float64. The reference code is configured as in its
``experiments/config/neuronal_dynamics/signgd_dynamics.py``: SGD steps 0.15, exponential
decay 0.95 (eager), max-scaled ReLUs, the ``float`` codec. ``tests/test_compat_golden.py``
converts each model with ``refsnn``'s ``--compat`` and compares.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from refsnn.export import from_torch
from refsnn.io import atomic_h5

HERE = Path(__file__).resolve().parent
STEPS = (8, 16, 32, 64)
N_CAL, N_TEST = 16, 4


class MLP(nn.Module):
    """linear - act - linear - act - linear."""

    def __init__(self, act0: nn.Module, act1: nn.Module, sizes=(6, 10, 8, 3)):
        super().__init__()
        self.fc0, self.act0 = nn.Linear(sizes[0], sizes[1]), act0
        self.fc1, self.act1 = nn.Linear(sizes[1], sizes[2]), act1
        self.fc2 = nn.Linear(sizes[2], sizes[3])

    def forward(self, x):
        return self.fc2(self.act1(self.fc1(self.act0(self.fc0(x)))))


class PoolNet(nn.Module):
    """conv 3x3 pad 1 - ReLU - max pooling - flatten - linear; ``relu_after``: conv - max
    pooling - ReLU (the pooling then sees negative values too)."""

    def __init__(self, c_in, size, kernel, stride, padding, relu_after=False):
        super().__init__()
        self.conv = nn.Conv2d(c_in, 3, 3, padding=1)
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(kernel, stride, padding)
        self.relu_after = relu_after
        out = (size + 2 * padding - kernel) // stride + 1
        self.fc = nn.Linear(3 * out * out, 4)

    def forward(self, x):
        h = self.conv(x)
        h = self.relu(self.pool(h)) if self.relu_after else self.pool(self.relu(h))
        return self.fc(torch.flatten(h, 1))


class Residual(nn.Module):
    """conv-ReLU, conv-ReLU-conv + shortcut, ReLU, average pooling 2x2 and 3x3/2 pad 1, linear."""

    def __init__(self):
        super().__init__()
        self.conv0, self.relu0 = nn.Conv2d(2, 3, 3, padding=1), nn.ReLU()
        self.conv1, self.relu1 = nn.Conv2d(3, 3, 3, padding=1), nn.ReLU()
        self.conv2, self.relu2 = nn.Conv2d(3, 3, 3, padding=1), nn.ReLU()
        self.pool0, self.pool1 = nn.AvgPool2d(2), nn.AvgPool2d(3, 2, 1)
        self.fc = nn.Linear(3 * 2 * 2, 4)

    def forward(self, x):
        h = self.relu0(self.conv0(x))
        h = self.relu2(self.conv2(self.relu1(self.conv1(h))) + h)
        return self.fc(torch.flatten(self.pool1(self.pool0(h)), 1))


class Tokens(nn.Module):
    """(4, 6) tokens: linear - LayerNorm - GELU - linear - softmax - flatten - linear.

    ``explicit``: softmax as ``exp(z) / sum(exp(z))`` with ``torch.exp``, ``torch.sum`` and
    ``torch.div``, the operators the reference code turns into neurons (it has no softmax
    neuron); otherwise ``torch.softmax``, which refsnn's exporter knows. Same function.
    """

    def __init__(self):
        super().__init__()
        self.fc0, self.norm, self.act = nn.Linear(6, 8), nn.LayerNorm(8), nn.GELU()
        self.fc1, self.head = nn.Linear(8, 5), nn.Linear(4 * 5, 3)
        with torch.no_grad():  # a LayerNorm affine that is not the identity
            self.norm.weight.uniform_(0.5, 1.5)
            self.norm.bias.uniform_(-0.3, 0.3)
        self.explicit = False

    def forward(self, x):
        z = self.fc1(self.act(self.norm(self.fc0(x))))
        if self.explicit:
            e = torch.exp(z)
            p = torch.div(e, torch.sum(e, dim=-1, keepdim=True))
        else:
            p = torch.softmax(z, dim=-1)
        return self.head(torch.flatten(p, 1))


class BatchNormNet(nn.Module):
    """conv - BatchNorm2d - ReLU - adaptive avgpool 2x2 - linear - BatchNorm1d - ReLU - linear,
    with running statistics that are not the identity."""

    def __init__(self):
        super().__init__()
        self.conv, self.bn0, self.relu0 = nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.fc0, self.bn1, self.relu1 = nn.Linear(16, 6), nn.BatchNorm1d(6), nn.ReLU()
        self.fc1 = nn.Linear(6, 3)
        with torch.no_grad():
            for bn in (self.bn0, self.bn1):
                bn.running_mean.uniform_(-0.2, 0.2)
                bn.running_var.uniform_(0.5, 2.0)
                bn.weight.uniform_(0.5, 1.5)
                bn.bias.uniform_(-0.2, 0.2)

    def forward(self, x):
        h = self.pool(self.relu0(self.bn0(self.conv(x))))
        return self.fc1(self.relu1(self.bn1(self.fc0(torch.flatten(h, 1)))))


#: case -> (model factory, input shape, input range, what it covers)
CASES = {
    "mlp_relu": (lambda: MLP(nn.ReLU(), nn.ReLU()), (6,), (-1.0, 1.0),
                 "MLP 6-10-8-3, ReLU (per-element max scales), inputs in [-1, 1)"),
    "mlp_leaky_gelu": (lambda: MLP(nn.LeakyReLU(0.1), nn.GELU()), (6,), (-1.0, 1.0),
                       "MLP 6-10-8-3, LeakyReLU(0.1) then GELU (unscaled, strict ties)"),
    "max2": (lambda: PoolNet(1, 6, 2, 2, 0), (1, 6, 6), (0.0, 1.0),
             "conv-ReLU-maxpool 2x2/2-linear on (1, 6, 6)"),
    "max3_s2_p1": (lambda: PoolNet(1, 7, 3, 2, 1), (1, 7, 7), (0.0, 1.0),
                   "conv-ReLU-maxpool 3x3/2 pad 1 (a ResNet stem's pooling)-linear on (1, 7, 7)"),
    "max3_s1_p1": (lambda: PoolNet(2, 5, 3, 1, 1), (2, 5, 5), (0.0, 1.0),
                   "conv-ReLU-maxpool 3x3/1 pad 1-linear on (2, 5, 5)"),
    "max2_s1_p1": (lambda: PoolNet(1, 5, 2, 1, 1), (1, 5, 5), (0.0, 1.0),
                   "conv-ReLU-maxpool 2x2/1 pad 1-linear on (1, 5, 5)"),
    "max3_s2_p1_signed": (lambda: PoolNet(1, 7, 3, 2, 1, relu_after=True), (1, 7, 7),
                          (-1.0, 1.0), "conv-maxpool 3x3/2 pad 1-ReLU-linear: max pooling of "
                                       "signed values, inputs in [-1, 1)"),
    "residual_avgpool": (Residual, (2, 6, 6), (0.0, 1.0),
                         "conv-ReLU, conv-ReLU-conv + shortcut, ReLU, avgpool 2x2/2 and "
                         "3x3/2 pad 1, linear on (2, 6, 6)"),
    "tokens_layernorm_softmax": (Tokens, (4, 6), (-1.0, 1.0),
                                 "(4, 6) tokens: linear-LayerNorm(8, random affine)-GELU-"
                                 "linear-softmax-flatten-linear"),
    "batchnorm": (BatchNormNet, (2, 6, 6), (0.0, 1.0),
                  "conv-BatchNorm2d-ReLU-adaptive avgpool-linear-BatchNorm1d-ReLU-linear on "
                  "(2, 6, 6): batchnorm folding"),
}


def _reference(model, calibration, inputs):
    """The reference code's SNN outputs at every T of STEPS, (len(STEPS), B, ...)."""
    from torch.utils.data import DataLoader, TensorDataset
    from snn_signgd import (ExponentialScheduler, SGDModule, construct_spiking_neurons_for_operators,
                            convert)
    from snn_signgd.functional_config import FunctionalConfig

    dynamics = construct_spiking_neurons_for_operators(
        moduleoptimizer_cfg=FunctionalConfig(module=SGDModule, lr=0.15, inplace=False),
        lr_scheduler_cfg=FunctionalConfig(module=ExponentialScheduler, gamma=0.95,
                                          eager_evaluation=True))
    # one batch: the whole calibration set sets the ReLU scales (and the shape of the
    # all-ones / all-zeros passes that give the offsets)
    loader = DataLoader(TensorDataset(calibration, torch.zeros(len(calibration))),
                        batch_size=len(calibration), shuffle=False)
    quiet = io.StringIO()  # its progress bars and graph printouts
    with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet), torch.no_grad():
        snn, _, _ = convert(model, neuronal_dynamics=dynamics, dynamics_type="signgd",
                            default_simulation_length=max(STEPS),
                            activation_scale_dataloader=loader,
                            max_activation_scale_iterations=10,
                            scale_relu_with_max_activation=True)
        _, history = snn(inputs, list(STEPS))
    return np.stack([h.numpy() for h in history])


def _commit(reference: Path, given: str | None) -> str:
    if given:
        return given
    try:
        return subprocess.run(["git", "-C", str(reference), "rev-parse", "HEAD"], check=True,
                              capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        sys.exit("error: --reference is not a git checkout; give its commit with --commit")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reference", type=Path, required=True,
                   help="checkout of snuhcs/snn_signgd (the folder holding src/packages)")
    p.add_argument("--commit", help="the checkout's commit (default: git rev-parse HEAD)")
    p.add_argument("--out", type=Path, default=HERE, help="output folder (default: beside me)")
    args = p.parse_args(argv)
    sys.path.insert(0, str(args.reference / "src" / "packages"))
    from loguru import logger
    logger.remove()  # the reference code logs every graph rewrite
    commit = _commit(args.reference, args.commit)
    torch.set_default_dtype(torch.float64)
    import spikingjelly

    with atomic_h5(args.out / "reference.h5") as f:
        f.attrs["reference"] = "https://github.com/snuhcs/snn_signgd"
        f.attrs["commit"] = commit
        f.attrs["versions"] = (f"python {platform.python_version()}, torch {torch.__version__}, "
                               f"numpy {np.__version__}, "
                               f"spikingjelly {getattr(spikingjelly, '__version__', '0.0.0.0.14')}")
        f["steps"] = np.asarray(STEPS)
        for i, (name, (make, shape, (lo, hi), what)) in enumerate(CASES.items()):
            torch.manual_seed(100 + i)
            model = make().double().eval()
            gen = torch.Generator().manual_seed(200 + i)
            calibration = lo + (hi - lo) * torch.rand((N_CAL,) + shape, generator=gen)
            inputs = lo + (hi - lo) * torch.rand((N_TEST,) + shape, generator=gen)
            with torch.no_grad():
                ann = model(inputs)
            from_torch(model, inputs, args.out / f"{name}.h5")
            if isinstance(model, Tokens):
                model.explicit = True
                with torch.no_grad():
                    assert torch.allclose(model(inputs), ann, rtol=0, atol=1e-12)
            snn = _reference(model, calibration, inputs)
            g = f.create_group(name)
            g.attrs["covers"] = what
            g["calibration"], g["inputs"] = calibration.numpy(), inputs.numpy()
            g["ann"], g["snn"] = ann.numpy(), snn
            err = np.abs(snn - ann.numpy()).reshape(len(STEPS), -1).max(axis=1)
            print(f"{name}: |reference SNN - ANN| at T={STEPS}: "
                  + ", ".join(f"{e:.3g}" for e in err))


if __name__ == "__main__":
    main()
