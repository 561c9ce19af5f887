"""Degradation operators A: what happened to the image. Each maps a clean batch (B, 3, H, W)
in [0, 1] to what was observed, differentiably, so latent MAP can fit A(D(z)) to y."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class Mask(nn.Module):
    """Inpainting: only the known pixels (mask 1) are observed."""

    def __init__(self, known: torch.Tensor):
        super().__init__()
        self.register_buffer("known", known.float().reshape(1, 1, *known.shape[-2:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.known


class Downsample(nn.Module):
    """Super-resolution: the observation is the image shrunk `scale` times (antialiased
    bicubic, as most photos are downscaled)."""

    def __init__(self, scale: int):
        super().__init__()
        if scale not in (2, 3, 4):
            raise ValueError("scale must be 2, 3 or 4")
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _shrink(x, (x.shape[-2] // self.scale, x.shape[-1] // self.scale))

    def matrix(self, n: int, device=None, chunk: int = 1024) -> torch.Tensor:
        """The resampling of one side of n pixels, (n // scale, n): the operator is this matrix
        down the columns and across the rows (the filter is separable; edges as `forward`).
        Made from `chunk` impulses at a time, side by side as the columns of an image whose
        width stays as it is."""
        parts = []
        for start in range(0, n, chunk):
            k = torch.arange(min(chunk, n - start), device=device)
            impulses = torch.zeros(n, len(k), device=device)
            impulses[start + k, k] = 1
            parts.append(_shrink(impulses[None, None], (n // self.scale, len(k)))[0, 0])
        return torch.cat(parts, 1)


def _shrink(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bicubic", antialias=True, align_corners=False)


class Blur(nn.Module):
    """Convolution with a normalised kernel (reflect padding keeps the size)."""

    def __init__(self, kernel: torch.Tensor):
        super().__init__()
        kernel = kernel / kernel.sum()
        self.register_buffer("kernel", kernel[None, None].repeat(3, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kh, kw = self.kernel.shape[-2:]
        x = F.pad(x, (kw // 2, kw // 2, kh // 2, kh // 2), mode="reflect")
        return F.conv2d(x, self.kernel, groups=3)


def gaussian_1d(sigma: float) -> torch.Tensor:
    """The normalised Gaussian of std sigma, cut at 3 sigma (at least 3 taps), float64."""
    radius = max(1, math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    g = torch.exp(-t**2 / (2 * sigma**2))
    return g / g.sum()


def gaussian_kernel(sigma: float) -> torch.Tensor:
    g = gaussian_1d(sigma)
    return (g[:, None] * g[None, :]).float()


def gaussian_smooth(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """What gaussian_blur(sigma)(x) gives, as two 1-D passes: far faster for wide kernels.
    On an image too small for the kernel's reflect padding (a side under 3 sigma + 1 pixels),
    sigma shrinks to what the image allows."""
    g = gaussian_1d(min(sigma, (min(x.shape[-2:]) - 1) / 3)).float().to(x.device)
    radius = len(g) // 2
    c = x.shape[1]
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="reflect"), g.view(1, 1, 1, -1).repeat(c, 1, 1, 1),
                 groups=c)
    return F.conv2d(F.pad(x, (0, 0, radius, radius), mode="reflect"), g.view(1, 1, -1, 1).repeat(c, 1, 1, 1),
                    groups=c)


def gaussian_blur(sigma: float) -> Blur:
    return Blur(gaussian_kernel(sigma))
