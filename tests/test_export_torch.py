"""refsnn.export.from_torch: traced PyTorch modules give the same ANN in refsnn (float64).

Skipped without torch (CI installs it). Every model is compared with the module's own float64
forward pass; a wrong layout (e.g. a conv weight transposed, a permutation inverted, BN's
running statistics or eps ignored, LayerNorm over the wrong axis) changes the outputs by far
more than the 1e-5 allowed.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

from refsnn import ann  # noqa: E402
from refsnn.cli.main import main  # noqa: E402
from refsnn.errors import ConversionError  # noqa: E402
from refsnn.export import from_torch  # noqa: E402
from refsnn.model import load_refsnn_h5  # noqa: E402


def _randomize_bn(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.2)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    return model


class BasicBlock(nn.Module):
    """torchvision's ResNet BasicBlock, with the 1x1 downsample shortcut."""

    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                            nn.BatchNorm2d(cout))

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class ResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = nn.Sequential(BasicBlock(8, 8), BasicBlock(8, 8))
        self.layer2 = nn.Sequential(BasicBlock(8, 16, stride=2))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(16, 5)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer2(self.layer1(x))
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)


class VGG(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(inplace=True),
            nn.MaxPool2d(2, 2),
            nn.Conv2d(8, 16, 3, padding="same"), nn.ReLU(inplace=True),
            nn.AvgPool2d(2))
        self.avgpool = nn.AdaptiveAvgPool2d((2, 2))
        self.classifier = nn.Sequential(nn.Linear(64, 32), nn.ReLU(True), nn.Dropout(),
                                        nn.Linear(32, 5))

    def forward(self, x):
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


class ConvNeXtBlock(nn.Module):
    """ConvNeXt's block as in torchvision: depthwise 7x7, channels-last LayerNorm and MLP,
    layer scale, residual."""

    def __init__(self, dim=8):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.layer_scale = nn.Parameter(torch.rand(dim, 1, 1) + 0.5)

    def forward(self, x):
        y = self.dwconv(x).permute(0, 2, 3, 1)
        y = self.pwconv2(self.act(self.pwconv1(self.norm(y))))
        y = y.permute(0, 3, 1, 2)
        return x + self.layer_scale * y


class ConvNeXt(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 2, stride=2)
        self.blocks = nn.Sequential(ConvNeXtBlock(), ConvNeXtBlock())
        self.head = nn.Linear(8, 5)

    def forward(self, x):
        x = self.blocks(self.stem(x))
        return self.head(x.mean([-2, -1]))


class MixerBlock(nn.Module):
    def __init__(self, tokens, dim):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.token_fc1 = nn.Linear(tokens, 2 * tokens)
        self.token_fc2 = nn.Linear(2 * tokens, tokens)
        self.norm2 = nn.LayerNorm(dim)
        self.channel_fc1 = nn.Linear(dim, 2 * dim)
        self.channel_fc2 = nn.Linear(2 * dim, dim)

    def forward(self, x):
        y = self.norm1(x).transpose(1, 2)
        y = self.token_fc2(F.gelu(self.token_fc1(y))).transpose(1, 2)
        x = x + y
        y = self.channel_fc2(F.gelu(self.channel_fc1(self.norm2(x)), approximate="tanh"))
        return x + y


class Mixer(nn.Module):
    def __init__(self):
        super().__init__()
        self.patch = nn.Conv2d(3, 8, 4, stride=4)
        self.blocks = nn.Sequential(MixerBlock(4, 8), MixerBlock(4, 8))
        self.norm = nn.LayerNorm(8)
        self.head = nn.Linear(8, 5)

    def forward(self, x):
        x = self.patch(x).flatten(2).transpose(1, 2)  # (B, tokens, dim)
        x = self.norm(self.blocks(x))
        return self.head(torch.mean(x, dim=1))


class FunctionalMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(3 * 8 * 8, 16)
        self.bn = nn.BatchNorm1d(16)
        self.fc2 = nn.Linear(16, 16)
        self.fc3 = nn.Linear(16, 5)

    def forward(self, x):
        x = x.view(x.size(0), -1)
        x = F.leaky_relu(self.bn(self.fc1(x)), 0.2)
        x = F.silu(self.fc2(x)) * 0.5
        return F.softmax(self.fc3(torch.sigmoid(x) + x), dim=-1)


MODELS = {"resnet": ResNet, "vgg": VGG, "convnext": ConvNeXt, "mixer": Mixer,
          "mlp": FunctionalMLP}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_export_matches_torch(name, tmp_path):
    torch.manual_seed(0)
    module = _randomize_bn(MODELS[name]())
    x = torch.randn(4, 3, 8, 8)
    path = tmp_path / f"{name}.h5"
    from_torch(module, x, path)
    assert module.training and next(module.parameters()).dtype == torch.float32  # untouched
    with torch.no_grad():
        expected = module.double().eval()(x.double()).numpy()
    got = ann.forward(load_refsnn_h5(path), x.double().numpy())
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
    # far below the tolerance: the same float64 arithmetic up to summation order
    assert np.max(np.abs(got - expected)) < 1e-10


def test_export_keeps_batchnorm_and_layouts(tmp_path):
    """The exported graph holds BN unfolded and channels-first weights as torch stores them."""
    torch.manual_seed(1)
    module = _randomize_bn(ResNet())
    graph = from_torch(module, torch.zeros(1, 3, 8, 8), tmp_path / "r.h5")
    assert graph.input_shape == (3, 8, 8)
    bn = graph.node("bn1")
    assert bn.op == "batchnorm"
    np.testing.assert_array_equal(bn.params["var"], module.bn1.running_var.double().numpy())
    np.testing.assert_array_equal(graph.node("conv1").params["weight"],
                                  module.conv1.weight.double().detach().numpy())
    assert graph.node("maxpool").attrs["padding"] == (1, 1)


class _Up(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.up = nn.Upsample(scale_factor=2, mode="bilinear")

    def forward(self, x):
        return self.up(self.conv(x))


class _Sin(nn.Module):
    def forward(self, x):
        return torch.sin(x)


class _Dilated(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, dilation=2)

    def forward(self, x):
        return self.conv(x)


class _AddConst(nn.Module):
    def forward(self, x):
        return F.relu(x) + 1.0


class _BatchMerge(nn.Module):
    def forward(self, x):
        return F.relu(x.reshape(-1))


@pytest.mark.parametrize("module, message", [
    (_Up(), r"module 'up' \(Upsample\) cannot be exported to refsnn: mode='bilinear' is not "
            r"supported \(refsnn upsamples with mode='nearest'\)"),
    # functions by their public name, with the user's source line
    (_Sin(), r"^function torch\.sin \(node 'sin'\) at test_export_torch\.py, line \d+ cannot "
             r"be exported"),
    (_Dilated(), r"module 'conv' \(Conv2d\) cannot be exported to refsnn: dilation=\(2, 2\) "
                 r"\(refsnn convolves with dilation 1\)"),
    (_AddConst(), r"^function operator\.add \(node 'add'\) at test_export_torch\.py, line \d+ "
                  r"cannot be exported to refsnn: adds the constant 1.0"),
    (_BatchMerge(), r"^tensor method \.reshape\(\) \(node 'reshape'\) at test_export_torch\.py, "
                    r"line \d+ cannot be exported to refsnn: it merges or moves the batch axis"),
])
def test_export_refuses_by_name(module, message, tmp_path):
    with pytest.raises(ConversionError, match=message):
        from_torch(module, torch.zeros(2, 3, 8, 8), tmp_path / "m.h5")
    assert not (tmp_path / "m.h5").exists()


FACTORY = '''
import torch.nn as nn

def make():
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.AvgPool2d(2), nn.Flatten(), nn.Linear(64, 5))
'''


def test_export_torch_cli(tmp_path, capsys):
    (tmp_path / "net.py").write_text(FACTORY)
    torch.manual_seed(2)
    ns = {}
    exec(FACTORY, ns)
    module = _randomize_bn(ns["make"]())
    torch.save(module.state_dict(), tmp_path / "w.pt")
    out = tmp_path / "net.h5"
    assert main(["export-torch", f"{tmp_path / 'net.py'}:make", str(tmp_path / "w.pt"),
                 "--input-shape", "3,8,8", "-o", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    x = torch.randn(3, 3, 8, 8, dtype=torch.float64)
    with torch.no_grad():
        expected = module.double().eval()(x).numpy()
    graph = load_refsnn_h5(out)
    np.testing.assert_allclose(ann.forward(graph, x.numpy()), expected, atol=1e-10)
    assert [n.name for n in graph.nodes][:2] == ["layer_0", "layer_1"]  # not fx's "_0"
    # errors: one line, no traceback
    assert main(["export-torch", f"{tmp_path / 'net.py'}:nothing", "--input-shape", "3,8,8",
                 "-o", str(out)]) == 2
    assert "defines no function 'nothing'" in capsys.readouterr().err
    assert main(["export-torch", f"{tmp_path / 'net.py'}:make", "--input-shape", "2,8,8",
                 "-o", str(out)]) == 1
    assert "Sequential cannot run on inputs of shape (2, 8, 8)" in capsys.readouterr().err
    torch.save({"bogus": torch.zeros(1)}, tmp_path / "bad.pt")
    assert main(["export-torch", f"{tmp_path / 'net.py'}:make", str(tmp_path / "bad.pt"),
                 "--input-shape", "3,8,8", "-o", str(out)]) == 1
    assert "cannot be loaded into" in capsys.readouterr().err
