"""Stationary Gaussian fields described by a radial power spectrum, and the MAP image under one.

The restoration model says x = D(z) + e: the decoder gives the image up to an error e, and e is
modelled as a stationary Gaussian field whose power depends only on the spatial frequency |f|
(cycles per pixel). `refine` finds the most probable x given the observation y = A x + noise.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

NUM_BINS = 64  # radial frequency bins over 0 .. sqrt(2)/2 cycles per pixel
_TOP = math.sqrt(0.5) * (1 + 1e-6)


def _radius(h: int, w: int, device=None) -> torch.Tensor:
    """|f| on the rfft2 grid of an h x w field."""
    fy = torch.fft.fftfreq(h, device=device)[:, None]
    fx = torch.fft.rfftfreq(w, device=device)[None, :]
    return (fy**2 + fx**2).sqrt()


def radial_power(fields: torch.Tensor) -> torch.Tensor:
    """Mean power per radial frequency bin (NUM_BINS,) of fields (..., h, w): Hann-windowed
    periodograms (so the fields' edges do not leak), scaled so white noise of variance v gives v."""
    h, w = fields.shape[-2:]
    window = (torch.hann_window(h, periodic=False, device=fields.device)[:, None]
              * torch.hann_window(w, periodic=False, device=fields.device)[None, :])
    power = torch.fft.rfft2(fields * window, norm="ortho").abs().pow(2) / window.pow(2).mean()
    power = power.reshape(-1, h, w // 2 + 1).mean(0)
    bins = (_radius(h, w, fields.device) / _TOP * NUM_BINS).long().flatten()
    total = torch.zeros(NUM_BINS, device=fields.device).index_add_(0, bins, power.flatten())
    count = torch.zeros(NUM_BINS, device=fields.device).index_add_(0, bins, torch.ones_like(power.flatten()))
    # a small field leaves some bins empty: give them the nearest filled bin's value
    filled = count.nonzero().squeeze(1)
    nearest = (torch.arange(NUM_BINS, device=fields.device)[:, None] - filled[None]).abs().argmin(1)
    return (total / count.clamp_min(1))[filled[nearest]]


def power_grid(power: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """The radial spectrum (NUM_BINS,) interpolated onto the rfft2 grid of an h x w field."""
    pos = (_radius(h, w, power.device) / _TOP * NUM_BINS - 0.5).clamp(0, NUM_BINS - 1)
    lo = pos.floor().long()
    t = pos - lo
    return power[lo] * (1 - t) + power[(lo + 1).clamp(max=NUM_BINS - 1)] * t


def power_gain(transform: Callable[[torch.Tensor], torch.Tensor], like: torch.Tensor,
               seed: int = 0) -> torch.Tensor:
    """How much of each frequency's power a (roughly shift-invariant) linear map lets through,
    measured on white noise shaped like `like`, on its device (NUM_BINS,), on the CPU."""
    noise = torch.randn(like.shape, generator=torch.Generator().manual_seed(seed)).to(like.device)
    return (radial_power(transform(noise)) / radial_power(noise)).cpu()


def fft_size(n: int) -> int:
    """The smallest m >= n that is a multiple of 4 with no prime factor over 7: a size the FFT
    is fast at. Others took up to 2.4 times as long (1534 = 2 x 13 x 59 against 1536, and
    1250 = 2 x 5^4 against 1260). (scipy.fft.next_fast_len allows 11 for complex transforms,
    only 2, 3 and 5 for real ones, and no multiple of 4: other canvases.)"""
    m = -(-n // 4) * 4
    while True:
        rest = m
        for p in (2, 3, 5, 7):
            while rest % p == 0:
                rest //= p
        if rest == 1:
            return m
        m += 4


def refine(x0: torch.Tensor, y: torch.Tensor, op: Callable, sigma: float, power: torch.Tensor,
           pad: int = 32, iters: int = 50, tol: float = 1e-5) -> torch.Tensor:
    """argmin_x ||A x - y||^2 / sigma^2 + (x - x0)^T C^-1 (x - x0), C the covariance of a
    stationary field with radial spectrum `power`, for a linear A.

    Solved by conjugate gradients in whitened coordinates x = x0 + C^(1/2) u, which keeps the
    system well conditioned, on a canvas at least `pad` pixels wider on each side (A sees the
    image at its top left corner, `pad` in; the canvas is a fast FFT size), so the FFT's
    wrap-around joins edges through unobserved pixels. A^T comes from autograd."""
    h, w = x0.shape[-2:]
    hp, wp = fft_size(h + 2 * pad), fft_size(w + 2 * pad)
    root = power_grid(power.to(x0.device), hp, wp).sqrt()

    def colour(u):  # C^(1/2) u: symmetric, real
        return torch.fft.irfft2(torch.fft.rfft2(u, norm="ortho") * root, s=(hp, wp), norm="ortho")

    def adjoint(v):  # A^T v
        probe = torch.zeros_like(x0, requires_grad=True)
        with torch.enable_grad():
            return torch.autograd.grad(op(probe), probe, v)[0]

    def observe(u):  # A (centre of C^(1/2) u)
        return op(colour(u)[..., pad:pad + h, pad:pad + w])

    def back(v):  # its adjoint
        return colour(F.pad(adjoint(v), (pad, wp - w - pad, pad, hp - h - pad)))

    with torch.no_grad():
        r = back(y - op(x0))
        u, p, rr = torch.zeros_like(r), r.clone(), (r * r).sum()
        scale = rr.sqrt().clamp_min(1e-30)
        for _ in range(iters):
            if rr.sqrt() <= tol * scale:
                break
            q = back(observe(p)) + sigma**2 * p
            alpha = rr / (p * q).sum()
            u += alpha * p
            r -= alpha * q
            rr_new = (r * r).sum()
            p = r + (rr_new / rr) * p
            rr = rr_new
        return x0 + colour(u)[..., pad:pad + h, pad:pad + w]
