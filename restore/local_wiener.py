"""Denoising's last step: a locally adaptive Wiener filter in sliding 8x8 DCT windows, with the
latent MAP estimate as its pilot.

The pixel step of latent MAP (`spectra.refine`) models the decoder's error as one stationary
field; real errors are large at edges and in texture and small in flat regions. Here each
coefficient x of each window (the codec's orthonormal colour transform, then an 8x8 DCT) has
three pieces of evidence:
  - a prior N(0, p^2) whose power is the pilot's own coefficient p (the empirical Wiener filter
    of BM3D's second stage, without its block matching),
  - the pilot p itself, with an error of std TAU,
  - the noisy coefficient y, with noise of std sigma,
and gets their posterior mean. Windows overlap (stride 2) and are averaged with BM3D's weights
1 / (sigma^2 sum g^2), g the weight the window gives y. The result is the next pilot.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from tqdm import tqdm

from codec.detail import BLOCK, COLOR, DCT

# The pilot's error std in [0, 1] units, and how many times the filter runs: fitted on 8
# training crops at noise 15/25/50 (benchmarks/fit_local_wiener.py). Mean PSNR 31.99 dB against
# 30.16 for the pilot; the grid's best (TAU 8/255, 8 runs) has 32.08 for 8/5 of the time.
TAU = 10 / 255
ITERATIONS = 5
STRIDE = 2
BAND = 128  # rows filtered at a time (plus BLOCK rows of context each side): bounded memory


def _windows(channel: torch.Tensor, dct: torch.Tensor) -> torch.Tensor:
    """(H, W) -> (8, 8, L): the DCT of every 8x8 window at the stride, edges replicated."""
    padded = F.pad(channel[None, None], (BLOCK,) * 4, mode="replicate")
    windows = F.unfold(padded, BLOCK, stride=STRIDE)[0].reshape(BLOCK, BLOCK, -1)
    return torch.einsum("ki,ijl,mj->kml", dct, windows, dct)


def _filter(y: torch.Tensor, pilot: torch.Tensor, sigma: float, tau: float,
            dct: torch.Tensor) -> torch.Tensor:
    """One pass over (3, h, w) images already in the opponent colour space."""
    h, w = y.shape[-2:]
    size = (h + 2 * BLOCK, w + 2 * BLOCK)
    out = torch.empty_like(y)
    for c in range(3):  # one channel at a time: less memory
        yw, pw = _windows(y[c], dct), _windows(pilot[c], dct)
        prior = 1 / pw.square().clamp_min(1e-10)
        prior[0, 0] = 0  # no prior on a window's mean: a N(0, p^2) one would darken dark regions
        precision = prior + 1 / tau**2 + 1 / sigma**2
        estimate = (pw / tau**2 + yw / sigma**2) / precision
        gain = (1 / sigma**2) / precision
        weight = 1 / (sigma**2 * gain.square().sum((0, 1)))
        pixels = torch.einsum("ki,kml,mj->ijl", dct, estimate, dct) * weight
        total = F.fold(pixels.reshape(1, BLOCK * BLOCK, -1), size, BLOCK, stride=STRIDE)
        norm = F.fold(weight.expand(BLOCK * BLOCK, -1)[None], size, BLOCK, stride=STRIDE)
        out[c] = (total / norm)[0, 0, BLOCK:-BLOCK, BLOCK:-BLOCK]
    return out


def denoise(y: torch.Tensor, pilot: torch.Tensor, sigma: float, iterations: int | None = None,
            tau: float = TAU, band: int = BAND) -> torch.Tensor:
    """y: the noisy image (1, 3, H, W) in [0, 1], noise std sigma in the same units; pilot: an
    estimate of the clean image of the same shape. Returns the refined estimate (float32).
    iterations: ITERATIONS unless given (0 returns the pilot).

    Runs over bands of `band` rows: an output pixel depends only on the windows that cover it,
    so a band with BLOCK rows of context each side is exact, as long as every band starts on
    the same window grid (an even row: band must be even)."""
    if y.shape[0] != 1 or y.shape != pilot.shape:
        raise ValueError("y and pilot must be one image each, of the same shape")
    if band % STRIDE:
        raise ValueError(f"band must be a multiple of {STRIDE}")
    colour = torch.tensor(COLOR, dtype=torch.float32, device=y.device)
    dct = torch.tensor(DCT, dtype=torch.float32, device=y.device)
    # the colour transform is orthonormal: noise stays white with std sigma in every channel
    y, pilot = (torch.einsum("ij,jhw->ihw", colour, t[0].float()) for t in (y, pilot))
    h = y.shape[-2]
    tops = range(0, h, band)
    runs = ITERATIONS if iterations is None else iterations
    with torch.no_grad(), tqdm(total=runs * len(tops), desc="local Wiener", unit="band",
                               disable=runs * len(tops) < 2) as bar:
        for _ in range(runs):
            out = torch.empty_like(y)
            for top in tops:
                bottom = min(h, top + band)
                lo, hi = max(0, top - BLOCK), min(h, bottom + BLOCK)
                part = _filter(y[:, lo:hi], pilot[:, lo:hi], sigma, tau, dct)
                out[:, top:bottom] = part[:, top - lo:bottom - lo]
                bar.update(1)
            pilot = out
    return torch.einsum("ij,ihw->jhw", colour, pilot)[None]
