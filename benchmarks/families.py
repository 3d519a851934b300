"""Small re-implementations of the blocks of torchvision's classification families.

torchvision's wheel for torch 2.13 is a CUDA build that does not import on the CPU torch these
machines have (``operator torchvision::nms does not exist``), so these are written here from
the architectures' published structure, following torchvision's module layout and call
patterns (``nn.ReLU6``, ``torch.cat``, ``x.chunk``, ``F.dropout(..., training=...)``,
``stochastic_depth`` in eval mode, ``permute`` around ``nn.LayerNorm``, ``torch._assert``),
at small widths and inputs (3 x 16 x 16, 10 classes) so that a whole family converts and
simulates in seconds. They are not copies of torchvision's code. Needs torch.

``FAMILIES`` maps a family name to a factory; ``make(name, seed)`` returns the module in eval
mode with random weights and random BatchNorm statistics.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

INPUT_SHAPE = (3, 16, 16)
CLASSES = 10


def stochastic_depth(input, p: float, mode: str, training: bool = True):
    """torchvision.ops.stochastic_depth's contract: the identity unless training."""
    if not training or p == 0.0:
        return input
    keep = torch.empty([input.shape[0]] + [1] * (input.ndim - 1)).bernoulli_(1 - p)
    return input * keep / (1 - p)


# torchvision wraps stochastic_depth for torch.fx, so a trace sees one call of it
torch.fx.wrap("stochastic_depth")
stochastic_depth.__module__ = "torchvision.ops.stochastic_depth"


def conv_bn(cin, cout, k, stride=1, groups=1, act=nn.ReLU):
    layers = [nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False),
              nn.BatchNorm2d(cout)]
    return nn.Sequential(*layers, act()) if act is not None else nn.Sequential(*layers)


def classifier(c, dropout=0.2):
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout),
                         nn.Linear(c, CLASSES))


# --- ResNet -----------------------------------------------------------------------------------

class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None if stride == 1 and cin == cout else conv_bn(cin, cout, 1, stride,
                                                                          act=None)

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += identity
        return self.relu(out)


class Bottleneck(nn.Module):
    def __init__(self, cin, width, stride=1, groups=1, expansion=4, se=False):
        super().__init__()
        cout = width * expansion
        self.conv1 = conv_bn(cin, width, 1)
        self.conv2 = conv_bn(width, width, 3, stride, groups)
        self.se = SqueezeExcitation(width, max(1, cin // 4), nn.ReLU, nn.Sigmoid) if se \
            else nn.Identity()
        self.conv3 = conv_bn(width, cout, 1, act=None)
        self.downsample = None if stride == 1 and cin == cout else conv_bn(cin, cout, 1, stride,
                                                                          act=None)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(self.conv3(self.se(self.conv2(self.conv1(x)))) + identity)


class ResNet(nn.Module):
    def __init__(self, block, widths, expansion=1):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, 1, 1, bias=False)  # 7x7/2 at full size
        self.bn1 = nn.BatchNorm2d(8)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        layers, cin = [], 8
        for i, w in enumerate(widths):
            layers.append(block(cin, w, 2 if i else 1))
            cin = w * expansion
        self.layers = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(cin, CLASSES)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.avgpool(self.layers(x))
        return self.fc(torch.flatten(x, 1))


def resnet18():
    return ResNet(BasicBlock, (8, 16))


def resnet50():
    return ResNet(lambda cin, w, s: Bottleneck(cin, w, s), (4, 8), expansion=4)


# --- VGG with BN ------------------------------------------------------------------------------

def vgg_bn(cfg=(8, "M", 16, "M", 16)):
    layers, cin = [], 3
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(cin, v, 3, padding=1), nn.BatchNorm2d(v), nn.ReLU(True)]
            cin = v
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d((2, 2)), nn.Flatten(),
                         nn.Linear(cin * 4, 32), nn.ReLU(True), nn.Dropout(),
                         nn.Linear(32, CLASSES))


# --- MobileNetV2 / V3, EfficientNet ----------------------------------------------------------

class InvertedResidual(nn.Module):
    """MobileNetV2's block: 1x1 expand (ReLU6), 3x3 depthwise (ReLU6), 1x1 project."""

    def __init__(self, cin, cout, stride, expand):
        super().__init__()
        hidden = cin * expand
        self.use_res = stride == 1 and cin == cout
        self.conv = nn.Sequential(conv_bn(cin, hidden, 1, act=nn.ReLU6),
                                  conv_bn(hidden, hidden, 3, stride, hidden, act=nn.ReLU6),
                                  conv_bn(hidden, cout, 1, act=None))

    def forward(self, x):
        return x + self.conv(x) if self.use_res else self.conv(x)


def mobilenet_v2():
    return nn.Sequential(conv_bn(3, 8, 3, 2, act=nn.ReLU6), InvertedResidual(8, 8, 1, 1),
                         InvertedResidual(8, 12, 2, 4), InvertedResidual(12, 12, 1, 4),
                         conv_bn(12, 32, 1, act=nn.ReLU6), classifier(32))


class SqueezeExcitation(nn.Module):
    """torchvision.ops.SqueezeExcitation: x * scale_activation(fc2(act(fc1(avgpool(x)))))."""

    def __init__(self, c, squeeze, activation=nn.ReLU, scale_activation=nn.Sigmoid):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(c, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, c, 1)
        self.activation = activation()
        self.scale_activation = scale_activation()

    def forward(self, x):
        scale = self.fc2(self.activation(self.fc1(self.avgpool(x))))
        return x * self.scale_activation(scale)


class MBConv(nn.Module):
    """MobileNetV3 block (act = Hardswish, SE gate Hardsigmoid) or EfficientNet's MBConv
    (act = SiLU, SE gate Sigmoid, stochastic depth on the residual)."""

    def __init__(self, cin, cout, stride, expand, act, gate, sd_prob=0.0):
        super().__init__()
        hidden = cin * expand
        self.use_res = stride == 1 and cin == cout
        layers = [conv_bn(cin, hidden, 1, act=act)] if expand != 1 else []
        layers += [conv_bn(hidden, hidden, 3, stride, hidden, act=act),
                   SqueezeExcitation(hidden, max(1, cin // 4), nn.ReLU if gate is nn.Hardsigmoid
                                     else nn.SiLU, gate),
                   conv_bn(hidden, cout, 1, act=None)]
        self.block = nn.Sequential(*layers)
        self.sd_prob = sd_prob

    def forward(self, x):
        out = self.block(x)
        if self.use_res:
            out = stochastic_depth(out, self.sd_prob, "row", self.training) + x
        return out


def mobilenet_v3_small():
    return nn.Sequential(conv_bn(3, 8, 3, 2, act=nn.Hardswish),
                         MBConv(8, 8, 1, 1, nn.ReLU, nn.Hardsigmoid),
                         MBConv(8, 12, 2, 3, nn.Hardswish, nn.Hardsigmoid),
                         MBConv(12, 12, 1, 3, nn.Hardswish, nn.Hardsigmoid),
                         conv_bn(12, 32, 1, act=nn.Hardswish),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 24), nn.Hardswish(),
                         nn.Dropout(0.2), nn.Linear(24, CLASSES))


def efficientnet_b0():
    return nn.Sequential(conv_bn(3, 8, 3, 2, act=nn.SiLU),
                         MBConv(8, 8, 1, 1, nn.SiLU, nn.Sigmoid, 0.1),
                         MBConv(8, 12, 2, 4, nn.SiLU, nn.Sigmoid, 0.1),
                         MBConv(12, 12, 1, 4, nn.SiLU, nn.Sigmoid, 0.2),
                         conv_bn(12, 32, 1, act=nn.SiLU), classifier(32))


# --- RegNet -----------------------------------------------------------------------------------

def regnet(se: bool):
    """RegNetX (se=False) / RegNetY (se=True): stem, bottleneck blocks with group convs
    (bottleneck ratio 1) and, for Y, squeeze-and-excitation."""
    return nn.Sequential(conv_bn(3, 8, 3, 2),
                         Bottleneck(8, 8, 1, groups=2, expansion=1, se=se),
                         Bottleneck(8, 16, 2, groups=4, expansion=1, se=se),
                         classifier(16, 0.0))


# --- ConvNeXt ---------------------------------------------------------------------------------

class LayerNorm2d(nn.LayerNorm):
    """torchvision's LayerNorm2d: F.layer_norm over the channels of (N, C, H, W)."""

    def forward(self, x):
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class CNBlock(nn.Module):
    def __init__(self, dim, sd_prob=0.1):
        super().__init__()
        self.block = nn.Sequential(nn.Conv2d(dim, dim, 7, padding=3, groups=dim),
                                   Permute((0, 2, 3, 1)), nn.LayerNorm(dim, eps=1e-6),
                                   nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim),
                                   Permute((0, 3, 1, 2)))
        self.layer_scale = nn.Parameter(torch.rand(dim, 1, 1) + 0.5)
        self.sd_prob = sd_prob

    def forward(self, x):
        out = self.layer_scale * self.block(x)
        return stochastic_depth(out, self.sd_prob, "row", self.training) + x


class Permute(nn.Module):
    def __init__(self, dims):
        super().__init__()
        self.dims = list(dims)

    def forward(self, x):
        return torch.permute(x, self.dims)


def convnext_tiny():
    return nn.Sequential(nn.Conv2d(3, 8, 4, 4), LayerNorm2d(8, eps=1e-6), CNBlock(8),
                         LayerNorm2d(8, eps=1e-6), nn.Conv2d(8, 16, 2, 2), CNBlock(16),
                         nn.AdaptiveAvgPool2d(1), LayerNorm2d(16, eps=1e-6), nn.Flatten(1),
                         nn.Linear(16, CLASSES))


# --- DenseNet ---------------------------------------------------------------------------------

class DenseLayer(nn.Module):
    def __init__(self, cin, growth, bn_size=2, drop_rate=0.1):
        super().__init__()
        self.norm1, self.relu1 = nn.BatchNorm2d(cin), nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(cin, bn_size * growth, 1, bias=False)
        self.norm2, self.relu2 = nn.BatchNorm2d(bn_size * growth), nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(bn_size * growth, growth, 3, padding=1, bias=False)
        self.drop_rate = drop_rate

    def forward(self, inputs):
        x = torch.cat(inputs, 1)
        out = self.conv2(self.relu2(self.norm2(self.conv1(self.relu1(self.norm1(x))))))
        return F.dropout(out, p=self.drop_rate, training=self.training)


class DenseNet(nn.Module):
    def __init__(self, growth=4, layers=3):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False),
                                      nn.BatchNorm2d(8), nn.ReLU(inplace=True),
                                      nn.MaxPool2d(3, 2, 1))
        self.block = nn.ModuleList(DenseLayer(8 + i * growth, growth) for i in range(layers))
        c = 8 + layers * growth
        self.transition = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(inplace=True),
                                        nn.Conv2d(c, c // 2, 1, bias=False), nn.AvgPool2d(2, 2))
        self.norm5 = nn.BatchNorm2d(c // 2)
        self.classifier = nn.Linear(c // 2, CLASSES)

    def forward(self, x):
        features = [self.features(x)]
        for layer in self.block:
            features.append(layer(features))
        out = F.relu(self.norm5(self.transition(torch.cat(features, 1))), inplace=True)
        out = torch.flatten(F.adaptive_avg_pool2d(out, (1, 1)), 1)
        return self.classifier(out)


# --- ShuffleNetV2 -----------------------------------------------------------------------------

def channel_shuffle(x, groups: int):
    b, c, h, w = x.size()
    x = x.view(b, groups, c // groups, h, w)
    x = torch.transpose(x, 1, 2).contiguous()
    return x.view(b, -1, h, w)


class ShuffleUnit(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.stride = stride
        half = cout // 2
        if stride > 1:
            self.branch1 = nn.Sequential(conv_bn(cin, cin, 3, stride, cin, act=None),
                                         conv_bn(cin, half, 1))
        self.branch2 = nn.Sequential(conv_bn(cin if stride > 1 else half, half, 1),
                                     conv_bn(half, half, 3, stride, half, act=None),
                                     conv_bn(half, half, 1))

    def forward(self, x):
        if self.stride == 1:
            x1, x2 = x.chunk(2, dim=1)
            out = torch.cat((x1, self.branch2(x2)), dim=1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        return channel_shuffle(out, 2)


def shufflenet_v2():
    return nn.Sequential(conv_bn(3, 8, 3, 2), ShuffleUnit(8, 16, 2), ShuffleUnit(16, 16, 1),
                         conv_bn(16, 32, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(32, CLASSES))


# --- SqueezeNet -------------------------------------------------------------------------------

class Fire(nn.Module):
    def __init__(self, cin, squeeze, e1, e3):
        super().__init__()
        self.squeeze = nn.Conv2d(cin, squeeze, 1)
        self.squeeze_activation = nn.ReLU(inplace=True)
        self.expand1x1 = nn.Conv2d(squeeze, e1, 1)
        self.expand1x1_activation = nn.ReLU(inplace=True)
        self.expand3x3 = nn.Conv2d(squeeze, e3, 3, padding=1)
        self.expand3x3_activation = nn.ReLU(inplace=True)

    def forward(self, x):
        x = self.squeeze_activation(self.squeeze(x))
        return torch.cat([self.expand1x1_activation(self.expand1x1(x)),
                          self.expand3x3_activation(self.expand3x3(x))], 1)


def squeezenet():
    return nn.Sequential(nn.Conv2d(3, 8, 3, 2), nn.ReLU(inplace=True),
                         nn.MaxPool2d(3, 2, ceil_mode=True), Fire(8, 4, 8, 8), Fire(16, 4, 8, 8),
                         nn.Dropout(0.5), nn.Conv2d(16, CLASSES, 1), nn.ReLU(inplace=True),
                         nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten())


# --- ViT (attention) ---------------------------------------------------------------------------

class SelfAttention(nn.Module):
    """Multi-head self-attention written with matmuls (nn.MultiheadAttention's computation)."""

    def __init__(self, dim, heads):
        super().__init__()
        self.qkv, self.proj, self.heads = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim), heads
        self.scale = (dim // heads) ** -0.5

    def forward(self, x):
        b, t, d = x.shape
        qkv = self.qkv(x).chunk(3, dim=-1)
        q, k, v = [qkv[i].reshape(b, t, self.heads, d // self.heads).transpose(1, 2)
                   for i in range(3)]
        attn = (q @ k.transpose(-2, -1) * self.scale).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, t, d))


class EncoderBlock(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.ln_1, self.ln_2 = nn.LayerNorm(dim, eps=1e-6), nn.LayerNorm(dim, eps=1e-6)
        self.self_attention = SelfAttention(dim, heads)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Dropout(0.0),
                                 nn.Linear(2 * dim, dim))

    def forward(self, x):
        x = x + self.self_attention(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class ViT(nn.Module):
    """Patch embedding (conv 4x4/4), encoder blocks, LayerNorm, mean over tokens, head. No
    class token and no learned positional embedding (refsnn adds no full-shape constants)."""

    def __init__(self, dim=8, heads=2, depth=1):
        super().__init__()
        self.conv_proj = nn.Conv2d(3, dim, 4, 4)
        self.encoder = nn.Sequential(*[EncoderBlock(dim, heads) for _ in range(depth)])
        self.ln = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, CLASSES)

    def forward(self, x):
        x = self.conv_proj(x).flatten(2).transpose(1, 2)  # (B, tokens, dim)
        return self.head(self.ln(self.encoder(x)).mean(1))


FAMILIES = {
    "resnet18": resnet18,
    "resnet50": resnet50,
    "vgg11_bn": vgg_bn,
    "mobilenet_v2": mobilenet_v2,
    "mobilenet_v3_small": mobilenet_v3_small,
    "efficientnet_b0": efficientnet_b0,
    "regnet_x": lambda: regnet(False),
    "regnet_y": lambda: regnet(True),
    "convnext_tiny": convnext_tiny,
    "densenet": DenseNet,
    "shufflenet_v2": shufflenet_v2,
    "squeezenet": squeezenet,
    "vit_tiny": ViT,
}


def make(name: str, seed: int = 0) -> nn.Module:
    """Family ``name`` with seeded random weights and BatchNorm statistics, in eval mode."""
    torch.manual_seed(seed)
    model = FAMILIES[name]()
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    return model.eval()
