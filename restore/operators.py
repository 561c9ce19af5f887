"""Degradation operators A: what happened to the image. Each maps a clean batch (B, 3, H, W)
in [0, 1] to what was observed, differentiably, so latent MAP can fit A(D(z)) to y."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .spectra import fft_size


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
    """What gaussian_blur(sigma)(x) gives, on any image: on one too small for the kernel's
    reflect padding (a side under 3 sigma + 1 pixels), sigma shrinks to what the image allows."""
    return _smoothed(x, gaussian_1d(min(sigma, (min(x.shape[-2:]) - 1) / 3)).float().to(x.device))


def _smoothed(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """x convolved with the kernel g g^T, reflect padded, by FFT on a canvas of a fast size at
    least that of the padded image, so the wrap-around reaches only the padding. On a
    4000x3000 image that is 1.2 to 5 times as fast as two 1-D convolutions (std 2 to 32)."""
    r = len(g) // 2
    h, w = x.shape[-2:]
    size = (fft_size(h + 2 * r), fft_size(w + 2 * r))
    transfer = _centred_fft(g, size[0], torch.fft.fft)[:, None] * _centred_fft(g, size[1], torch.fft.rfft)[None, :]
    padded = torch.fft.rfft2(F.pad(x, (r, r, r, r), mode="reflect"), s=size)
    return torch.fft.irfft2(padded * transfer, s=size)[..., r:r + h, r:r + w]


def _centred_fft(g: torch.Tensor, n: int, fft) -> torch.Tensor:
    """The FFT of the odd 1-D kernel g, its centre at 0, on n points."""
    r = len(g) // 2
    line = g.new_zeros(n)
    line[:2 * r + 1] = g
    return fft(torch.roll(line, -r))


class GaussianBlur(Blur):
    """A Gaussian blur: `Blur` of its 2-D kernel, computed by `_smoothed`. Latent MAP's pixel
    step runs it and its adjoint at every iteration: as a 2-D convolution (13x13 at std 2) they
    took 3.7 s of a 17 s deblurring of a 768x512 photo on one thread."""

    def __init__(self, sigma: float):
        super().__init__(gaussian_kernel(sigma))
        self.register_buffer("factor", gaussian_1d(sigma).float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _smoothed(x, self.factor)


def gaussian_blur(sigma: float) -> Blur:
    return GaussianBlur(sigma)
