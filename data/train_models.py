"""Train the nine small example networks on ``data/digits.h5`` and export them as refsnn models.

Usage::

    python data/make_digits.py      # once, writes data/digits.h5
    python data/train_models.py     # writes data/models/{mlp,cnn,cnn_maxpool,resnet,
                                    # convnext,mixer,resmlp,cnn_silu,resnet_stem}.h5
                                    # and data/models/accuracy.json
    python data/train_models.py --models mixer resmlp   # only these; other entries are kept

Needs PyTorch (``pip install -e .[train]``); refsnn itself never imports torch.

Training is seeded (``torch.manual_seed(0)``, ``np.random.seed(0)``), deterministic
(``torch.use_deterministic_algorithms(True)``), CPU-only on 2 threads, in float32, with Adam
(lr 1e-3), batch 64, cross-entropy loss and no augmentation or weight decay. The trained
weights are exported in float64 through :func:`refsnn.model.save_model`. Every exported file is
then read back with :func:`refsnn.model.load_refsnn_h5` and checked: refsnn's NumPy reference
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
from refsnn.model import load_refsnn_h5, make_graph, save_model  # noqa: E402

DATA = HERE / "digits.h5"
OUT = HERE / "models"

SEED = 0
THREADS = 2
BATCH = 64
LR = 1e-3
TOLERANCE = 1e-8
EPOCHS = {"mlp": 60, "cnn": 40, "cnn_maxpool": 40, "resnet": 40,
          "convnext": 60, "mixer": 60, "resmlp": 100, "cnn_silu": 40, "resnet_stem": 40}


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


class ResNetStem(nn.Module):
    """A resnet18-style stem for 8x8 images: conv 5x5 pad 2 (for 7x7 / stride 2 / pad 3,
    stride 1 on images this small) -> BN -> ReLU -> MaxPool2d(3, 2, padding 1), one basic
    block (identity shortcut), global average pooling, linear read-out."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 5, padding=2)
        self.bn1 = nn.BatchNorm2d(16)
        self.block_conv1 = nn.Conv2d(16, 16, 3, padding=1)
        self.block_bn1 = nn.BatchNorm2d(16)
        self.block_conv2 = nn.Conv2d(16, 16, 3, padding=1)
        self.block_bn2 = nn.BatchNorm2d(16)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        stem = nn.functional.max_pool2d(torch.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        h = torch.relu(self.block_bn1(self.block_conv1(stem)))
        h = self.block_bn2(self.block_conv2(h))
        x = torch.relu(h + stem)
        x = nn.functional.avg_pool2d(x, 4, 4)
        return self.fc(torch.flatten(x, 1))


# The models below use the operators beyond ReLU networks: GELU, SiLU, LayerNorm (over the
# channels or the last axis), layer scale, affine, mean, reshape and transpose. Each torch
# module maps onto one refsnn operator, so that the export is node by node.

WIDTH = 16  # channels after the stem / patch embedding of convnext, mixer and resmlp
HIDDEN = 32  # hidden width of their MLPs (two times the width)
TOKENS = 16  # patches of 2x2 pixels in an 8x8 image
DEPTH = 2  # blocks in each of convnext, mixer and resmlp
# Initial layer scale. ConvNeXt's 0.1 also trains ResMLP, but too slowly: without any
# normalisation its activations and logits keep growing while it creeps towards 95 % test
# accuracy (about 160 epochs); with 1.0 it gets there in about 80.
CONVNEXT_LAYER_SCALE = 0.1
RESMLP_LAYER_SCALE = 1.0


class Scale(nn.Module):
    """Layer scale: ``x * weight`` along ``axis`` ("channel" = dim 1, "last" = dim -1)."""

    def __init__(self, dim: int, axis: str, init: float):
        super().__init__()
        self.axis = axis
        self.weight = nn.Parameter(torch.full((dim,), init))

    def _along(self, v, x):
        return v.view(-1, *([1] * (x.dim() - 2))) if self.axis == "channel" else v

    def forward(self, x):
        return x * self._along(self.weight, x)


class Affine(Scale):
    """ResMLP's Aff: ``weight * x + bias`` along ``axis``; starts as the identity."""

    def __init__(self, dim: int, axis: str):
        super().__init__(dim, axis, init=1.0)
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x):
        return x * self._along(self.weight, x) + self._along(self.bias, x)


class ChannelLayerNorm(nn.LayerNorm):
    """LayerNorm over the channels of (B, C, H, W) at every position (ConvNeXt's
    channels-first LayerNorm; refsnn's ``layernorm`` with axis "channel")."""

    def forward(self, x):
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def gelu(x):
    return nn.functional.gelu(x, approximate="none")


class ConvNeXtBlock(nn.Module):
    """dwconv 3x3 -> LN(channels) -> 1x1 conv up -> GELU -> 1x1 conv down -> layer scale,
    added to the block's input."""

    def __init__(self, dim: int = WIDTH, hidden: int = HIDDEN):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.norm = ChannelLayerNorm(dim)
        self.pwconv1 = nn.Conv2d(dim, hidden, 1)
        self.pwconv2 = nn.Conv2d(hidden, dim, 1)
        self.scale = Scale(dim, "channel", CONVNEXT_LAYER_SCALE)

    def forward(self, x):
        h = self.pwconv2(gelu(self.pwconv1(self.norm(self.dwconv(x)))))
        return x + self.scale(h)


class ConvNeXt(nn.Module):
    """Stem conv 2x2 stride 2 -> LN(channels) -> blocks -> global mean -> LN -> linear."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, WIDTH, 2, stride=2)
        self.stem_norm = ChannelLayerNorm(WIDTH)
        self.blocks = nn.ModuleList(ConvNeXtBlock() for _ in range(DEPTH))
        self.head_norm = nn.LayerNorm(WIDTH)
        self.fc = nn.Linear(WIDTH, 10)

    def forward(self, x):
        x = self.stem_norm(self.stem(x))
        for block in self.blocks:
            x = block(x)
        return self.fc(self.head_norm(x.mean(dim=(2, 3))))


class PatchEmbed(nn.Module):
    """conv 1->WIDTH 2x2 stride 2 to (WIDTH, 4, 4), reshaped to (WIDTH, TOKENS) and
    transposed to (TOKENS, WIDTH): one row per patch."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, WIDTH, 2, stride=2)

    def forward(self, x):
        x = self.conv(x)
        return x.reshape(x.shape[0], WIDTH, TOKENS).transpose(1, 2)


class MixerBlock(nn.Module):
    """Token mixing x + T(MLP(T(LN(x)))) then channel mixing x + MLP(LN(x)), on (T, C)."""

    def __init__(self):
        super().__init__()
        self.norm1 = nn.LayerNorm(WIDTH)
        self.token_fc1 = nn.Linear(TOKENS, HIDDEN)
        self.token_fc2 = nn.Linear(HIDDEN, TOKENS)
        self.norm2 = nn.LayerNorm(WIDTH)
        self.channel_fc1 = nn.Linear(WIDTH, HIDDEN)
        self.channel_fc2 = nn.Linear(HIDDEN, WIDTH)

    def forward(self, x):
        h = self.norm1(x).transpose(1, 2)
        x = x + self.token_fc2(gelu(self.token_fc1(h))).transpose(1, 2)
        return x + self.channel_fc2(gelu(self.channel_fc1(self.norm2(x))))


class Mixer(nn.Module):
    """Patch embedding -> Mixer blocks -> LN -> mean over the tokens -> linear."""

    def __init__(self):
        super().__init__()
        self.patch = PatchEmbed()
        self.blocks = nn.ModuleList(MixerBlock() for _ in range(DEPTH))
        self.head_norm = nn.LayerNorm(WIDTH)
        self.fc = nn.Linear(WIDTH, 10)

    def forward(self, x):
        x = self.patch(x)
        for block in self.blocks:
            x = block(x)
        return self.fc(self.head_norm(x).mean(dim=1))


class ResMLPBlock(nn.Module):
    """x + scale(T(linear_tokens(T(aff(x))))) then x + scale(linear(GELU(linear(aff(x))))),
    on (T, C), every affine and scale along the channels (the last axis)."""

    def __init__(self):
        super().__init__()
        self.aff1 = Affine(WIDTH, "last")
        self.token_fc = nn.Linear(TOKENS, TOKENS)
        self.scale1 = Scale(WIDTH, "last", RESMLP_LAYER_SCALE)
        self.aff2 = Affine(WIDTH, "last")
        self.channel_fc1 = nn.Linear(WIDTH, HIDDEN)
        self.channel_fc2 = nn.Linear(HIDDEN, WIDTH)
        self.scale2 = Scale(WIDTH, "last", RESMLP_LAYER_SCALE)

    def forward(self, x):
        h = self.token_fc(self.aff1(x).transpose(1, 2)).transpose(1, 2)
        x = x + self.scale1(h)
        h = self.channel_fc2(gelu(self.channel_fc1(self.aff2(x))))
        return x + self.scale2(h)


class ResMLP(nn.Module):
    """Patch embedding -> ResMLP blocks -> affine -> mean over the tokens -> linear."""

    def __init__(self):
        super().__init__()
        self.patch = PatchEmbed()
        self.blocks = nn.ModuleList(ResMLPBlock() for _ in range(DEPTH))
        self.head_aff = Affine(WIDTH, "last")
        self.fc = nn.Linear(WIDTH, 10)

    def forward(self, x):
        x = self.patch(x)
        for block in self.blocks:
            x = block(x)
        return self.fc(self.head_aff(x).mean(dim=1))


class CNNSiLU(CNN):
    """``cnn_maxpool`` with SiLU in place of ReLU: conv-bn-silu-maxpool twice, linear."""

    def __init__(self):
        super().__init__("max")

    def forward(self, x):
        x = self._pool(nn.functional.silu(self.bn1(self.conv1(x))))
        x = self._pool(nn.functional.silu(self.bn2(self.conv2(x))))
        return self.fc(torch.flatten(x, 1))


BUILDERS = {
    "mlp": MLP,
    "cnn": lambda: CNN("avg"),
    "cnn_maxpool": lambda: CNN("max"),
    "resnet": ResNet,
    "convnext": ConvNeXt,
    "mixer": Mixer,
    "resmlp": ResMLP,
    "cnn_silu": CNNSiLU,
    "resnet_stem": ResNetStem,
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


def _layernorm(name, src, layer: nn.LayerNorm, axis):
    if tuple(layer.normalized_shape) != (layer.weight.shape[0],):
        raise ValueError(f"{name}: only a LayerNorm over one axis can be exported")
    return dict(name=name, op="layernorm", inputs=[src],
                attrs=dict(axis=axis, eps=float(layer.eps)),
                params=dict(weight=_np(layer.weight), bias=_np(layer.bias)))


def _scale(name, src, layer: Scale):
    if isinstance(layer, Affine):
        return dict(name=name, op="affine", inputs=[src], attrs=dict(axis=layer.axis),
                    params=dict(weight=_np(layer.weight), bias=_np(layer.bias)))
    return dict(name=name, op="scale", inputs=[src], attrs=dict(axis=layer.axis),
                params=dict(weight=_np(layer.weight)))


def _gelu(name, src):
    return _op(name, "gelu", src, approximate="none")


def _patch_embed(m: PatchEmbed):
    """Nodes ``patch`` (conv), ``patch_reshape`` (WIDTH, TOKENS) and ``patch_tokens``
    (TOKENS, WIDTH)."""
    return [
        _conv("patch", "input", m.conv),
        _op("patch_reshape", "reshape", "patch", shape=f"{WIDTH},{TOKENS}"),
        _op("patch_tokens", "transpose", "patch_reshape", perm="1,0"),
    ]


def _convnext_block(p, src, b: ConvNeXtBlock):
    return [
        _conv(f"{p}_dwconv", src, b.dwconv),
        _layernorm(f"{p}_norm", f"{p}_dwconv", b.norm, "channel"),
        _conv(f"{p}_pwconv1", f"{p}_norm", b.pwconv1),
        _gelu(f"{p}_gelu", f"{p}_pwconv1"),
        _conv(f"{p}_pwconv2", f"{p}_gelu", b.pwconv2),
        _scale(f"{p}_scale", f"{p}_pwconv2", b.scale),
        _op(f"{p}_add", "add", src, f"{p}_scale"),
    ]


def _mixer_block(p, src, b: MixerBlock):
    return [
        _layernorm(f"{p}_norm1", src, b.norm1, "last"),
        _op(f"{p}_t1", "transpose", f"{p}_norm1", perm="1,0"),
        _linear(f"{p}_token_fc1", f"{p}_t1", b.token_fc1),
        _gelu(f"{p}_token_gelu", f"{p}_token_fc1"),
        _linear(f"{p}_token_fc2", f"{p}_token_gelu", b.token_fc2),
        _op(f"{p}_t2", "transpose", f"{p}_token_fc2", perm="1,0"),
        _op(f"{p}_add1", "add", src, f"{p}_t2"),
        _layernorm(f"{p}_norm2", f"{p}_add1", b.norm2, "last"),
        _linear(f"{p}_channel_fc1", f"{p}_norm2", b.channel_fc1),
        _gelu(f"{p}_channel_gelu", f"{p}_channel_fc1"),
        _linear(f"{p}_channel_fc2", f"{p}_channel_gelu", b.channel_fc2),
        _op(f"{p}_add2", "add", f"{p}_add1", f"{p}_channel_fc2"),
    ]


def _resmlp_block(p, src, b: ResMLPBlock):
    return [
        _scale(f"{p}_aff1", src, b.aff1),
        _op(f"{p}_t1", "transpose", f"{p}_aff1", perm="1,0"),
        _linear(f"{p}_token_fc", f"{p}_t1", b.token_fc),
        _op(f"{p}_t2", "transpose", f"{p}_token_fc", perm="1,0"),
        _scale(f"{p}_scale1", f"{p}_t2", b.scale1),
        _op(f"{p}_add1", "add", src, f"{p}_scale1"),
        _scale(f"{p}_aff2", f"{p}_add1", b.aff2),
        _linear(f"{p}_channel_fc1", f"{p}_aff2", b.channel_fc1),
        _gelu(f"{p}_channel_gelu", f"{p}_channel_fc1"),
        _linear(f"{p}_channel_fc2", f"{p}_channel_gelu", b.channel_fc2),
        _scale(f"{p}_scale2", f"{p}_channel_fc2", b.scale2),
        _op(f"{p}_add2", "add", f"{p}_add1", f"{p}_scale2"),
    ]


def _blocks(make, blocks, src):
    """Nodes of consecutive residual blocks ``block1``, ``block2``, ...; and the last output."""
    nodes = []
    for i, b in enumerate(blocks, start=1):
        nodes += make(f"block{i}", src, b)
        src = nodes[-1]["name"]
    return nodes, src


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
    elif name == "resnet_stem":
        nodes = [
            _conv("conv1", "input", m.conv1), _bn("bn1", "conv1", m.bn1),
            _op("relu1", "relu", "bn1"),
            _op("pool1", "maxpool2d", "relu1", kernel=(3, 3), stride=(2, 2), padding=(1, 1)),
            _conv("block_conv1", "pool1", m.block_conv1),
            _bn("block_bn1", "block_conv1", m.block_bn1),
            _op("block_relu1", "relu", "block_bn1"),
            _conv("block_conv2", "block_relu1", m.block_conv2),
            _bn("block_bn2", "block_conv2", m.block_bn2),
            _op("block_add", "add", "block_bn2", "pool1"),
            _op("block_relu2", "relu", "block_add"),
            _op("pool", "avgpool2d", "block_relu2", kernel=(4, 4), stride=(4, 4),
                padding=(0, 0)),
            _op("flatten", "flatten", "pool"),
            _linear("fc", "flatten", m.fc),
        ]
    elif name == "convnext":
        stem = [_conv("stem", "input", m.stem),
                _layernorm("stem_norm", "stem", m.stem_norm, "channel")]
        body, last = _blocks(_convnext_block, m.blocks, "stem_norm")
        nodes = stem + body + [
            _op("pool", "mean", last, axis="spatial", keepdims=0),
            _layernorm("head_norm", "pool", m.head_norm, "last"),
            _linear("fc", "head_norm", m.fc),
        ]
    elif name == "mixer":
        body, last = _blocks(_mixer_block, m.blocks, "patch_tokens")
        nodes = _patch_embed(m.patch) + body + [
            _layernorm("head_norm", last, m.head_norm, "last"),
            _op("pool", "mean", "head_norm", axis="channel", keepdims=0),
            _linear("fc", "pool", m.fc),
        ]
    elif name == "resmlp":
        body, last = _blocks(_resmlp_block, m.blocks, "patch_tokens")
        nodes = _patch_embed(m.patch) + body + [
            _scale("head_aff", last, m.head_aff),
            _op("pool", "mean", "head_aff", axis="channel", keepdims=0),
            _linear("fc", "pool", m.fc),
        ]
    elif name == "cnn_silu":
        nodes = [
            _conv("conv1", "input", m.conv1), _bn("bn1", "conv1", m.bn1),
            _op("silu1", "silu", "bn1"), _pool("pool1", "silu1", "max"),
            _conv("conv2", "pool1", m.conv2), _bn("bn2", "conv2", m.bn2),
            _op("silu2", "silu", "bn2"), _pool("pool2", "silu2", "max"),
            _op("flatten", "flatten", "pool2"),
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
        graph = load_refsnn_h5(path)  # check what was written, not what is in memory
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
