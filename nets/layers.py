"""The layers of the transforms and the prior: GDN, a residual block, masked convolutions.

Parameter and buffer names follow the checkpoints vqpress trained with compressai's layers
(`beta_reparam.lower_bound.bound`, `mask`, ...), so every shipped weights file loads as is;
compressai itself is needed only to train and run the learned peers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv(inputs: int, outputs: int, kernel_size: int = 5, stride: int = 2) -> nn.Conv2d:
    """A convolution that divides each side by `stride` ("same" padding)."""
    return nn.Conv2d(inputs, outputs, kernel_size, stride, padding=kernel_size // 2)


def deconv(inputs: int, outputs: int, kernel_size: int = 5, stride: int = 2) -> nn.ConvTranspose2d:
    """A transposed convolution that multiplies each side by `stride`."""
    return nn.ConvTranspose2d(inputs, outputs, kernel_size, stride, padding=kernel_size // 2,
                              output_padding=stride - 1)


class _LowerBoundGrad(torch.autograd.Function):
    """max(x, bound), whose gradient also flows while x sits on the bound if descent would
    lift it off (a plain max would freeze a parameter there forever)."""

    @staticmethod
    def forward(ctx, x, bound):
        ctx.save_for_backward(x, bound)
        return torch.max(x, bound)

    @staticmethod
    def backward(ctx, grad):
        x, bound = ctx.saved_tensors
        return grad * ((x >= bound) | (grad < 0)), None


class LowerBound(nn.Module):
    def __init__(self, bound: float):
        super().__init__()
        self.register_buffer("bound", torch.tensor([float(bound)]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_tracing() or not x.requires_grad:  # ONNX export and inference
            return torch.max(x, self.bound)
        return _LowerBoundGrad.apply(x, self.bound)


class NonNegative(nn.Module):
    """A parameter kept >= `minimum` by storing its square root, offset by a tiny pedestal so
    that the gradient near zero stays finite."""

    def __init__(self, minimum: float = 0.0, offset: float = 2**-18):
        super().__init__()
        self.register_buffer("pedestal", torch.tensor([offset**2]))
        self.lower_bound = LowerBound((minimum + offset**2) ** 0.5)

    def init(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sqrt(torch.max(x + self.pedestal, self.pedestal))

    def forward(self, stored: torch.Tensor) -> torch.Tensor:
        return self.lower_bound(stored) ** 2 - self.pedestal


class GDN(nn.Module):
    """Generalised divisive normalisation (Balle et al. 2016): y_i = x_i / sqrt(beta_i +
    sum_j gamma_ij x_j^2); the inverse (synthesis) multiplies by the square root instead."""

    def __init__(self, channels: int, inverse: bool = False, beta_min: float = 1e-6,
                 gamma_init: float = 0.1):
        super().__init__()
        self.inverse = inverse
        self.beta_reparam = NonNegative(beta_min)
        self.gamma_reparam = NonNegative()
        self.beta = nn.Parameter(self.beta_reparam.init(torch.ones(channels)))
        self.gamma = nn.Parameter(self.gamma_reparam.init(gamma_init * torch.eye(channels)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        gamma = self.gamma_reparam(self.gamma).reshape(c, c, 1, 1)
        norm = F.conv2d(x * x, gamma, self.beta_reparam(self.beta))
        return x * (torch.sqrt(norm) if self.inverse else torch.rsqrt(norm))


class ResidualBlock(nn.Module):
    """x + leaky(conv(leaky(conv(x)))), two 3x3 convolutions at a constant width."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = conv(channels, channels, 3, 1)
        self.conv2 = conv(channels, channels, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.leaky_relu(self.conv1(x))
        return x + F.leaky_relu(self.conv2(out))


class MaskedConv2d(nn.Conv2d):
    """A convolution that sees only the positions before the centre in raster order: type A
    (the first layer) not the centre itself, type B (later layers, whose centre holds
    features of earlier positions only) the centre too."""

    def __init__(self, *args, mask_type: str = "A", **kwargs):
        super().__init__(*args, **kwargs)
        if mask_type not in ("A", "B"):
            raise ValueError(f"mask_type must be A or B, got {mask_type!r}")
        mask = torch.ones_like(self.weight)
        _, _, h, w = mask.shape
        mask[:, :, h // 2, w // 2 + (mask_type == "B"):] = 0
        mask[:, :, h // 2 + 1:] = 0
        self.register_buffer("mask", mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, self.stride, self.padding)
