"""A drop-in PyTorch activation for NQ training: QCFS with additive Gaussian noise.

Optional extra (needs torch; the refsnn core never imports this module). Forward::

    h(x)       = λ · floor(clamp(x/λ, 0, 1) · L + 1/2) / L        (refsnn op ``qcfs``)
    training:    h(x) + σ · ε,  ε ~ N(0, 1) per element, fresh every forward pass
    evaluation:  h(x)

``λ`` (``clip``) is a trainable scalar per layer; the floor passes gradients straight through
(its derivative is taken as 1), so ``dh/dx = 1`` on ``0 < x < λ`` and ``λ`` learns from both
the clipped and the quantised part. ``σ`` (``sigma``) is a buffer, not a parameter: the NQ
method sets it from the measured gap between the ANN and its SNN after every epoch
(:func:`refsnn.conversion.noise.measure_gap`, used by ``data/train_noise.py``).
"""

from __future__ import annotations

import torch
from torch import nn


class _StraightFloor(torch.autograd.Function):
    """``floor`` forward, identity backward (the straight-through estimator)."""

    @staticmethod
    def forward(ctx, x):
        return torch.floor(x)

    @staticmethod
    def backward(ctx, grad):
        return grad


class QCFS(nn.Module):
    """QCFS activation with optional training noise; exports to refsnn's ``qcfs`` op.

    Parameters
    ----------
    levels : int
        Quantisation levels ``L`` (at least 1).
    clip : float
        Initial clip value ``λ`` (the NQ code starts at 8.0).

    Attributes
    ----------
    clip : nn.Parameter, shape (1,)
    sigma : buffer, shape ()
        Noise scale used in training mode; 0 turns the noise off.
    """

    def __init__(self, levels: int = 4, clip: float = 8.0):
        super().__init__()
        if levels < 1:
            raise ValueError(f"levels: expected an integer >= 1, found {levels}")
        self.levels = int(levels)
        self.clip = nn.Parameter(torch.tensor([float(clip)]))
        self.register_buffer("sigma", torch.tensor(0.0))

    def forward(self, x):
        q = _StraightFloor.apply(torch.clamp(x / self.clip, 0.0, 1.0) * self.levels + 0.5)
        h = self.clip * q / self.levels
        if self.training and float(self.sigma) > 0:
            h = h + self.sigma * torch.randn_like(h)
        return h

    def extra_repr(self) -> str:
        return f"levels={self.levels}"
