"""Latent MAP: z* = argmin_z ||A(D(z)) - y||^2 / (2 sigma^2) - log p(z), solved by Adam.

D is the decoder of the restoration VAE and p(z) = N(0, I) on its latent map; z starts at the
encoder's posterior mean of a first guess of the clean image. Big images are solved in
overlapping tiles.

Like any VAE, the model does not say an image *is* D(z): x = D(z) + e. Here e is a stationary
Gaussian field (`restore.spectra`) whose spectrum is the decoder's own error on training images
plus the image content that the degradation and the first guess lose (`error_power`). After z*,
the output is the MAP x given y under that model: what the observation says where it says
something, D(z*) where it does not.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from tqdm import tqdm

from .spectra import power_gain, refine
from .vae import VAE

# The most output pixels per tile side, a multiple of 8 x each scale (2, 3, 4), and the least
# overlap of two tiles. An image longer than a tile is cut into as few tiles as that allows,
# spread evenly and as short as the grid allows (`_tiling`): a 768x512 or 1024x1024 photo is one
# tile, a 1920x1080 one two of 1008 x 1080, a 4000x3000 one 4 x 3 of 1072 x 1064, covering 1.14
# times its area, where tiles of 1152 cut from the corner covered 1.33 times.
TILE_PIXELS = 1152
OVERLAP = 96  # a multiple of 8 x each scale, as the tiles' sides and starts are
# Conjugate-gradient iterations of the pixel step after z*: on 4 training crops inpainted with
# thin strokes, a 128 box and 50% missing (benchmarks/fit_refine.py; docs/results/fit-refine.md)
# the missing pixels' PSNR is 29.207 dB with 50 (the earlier default), 29.204 with 25 and
# 29.209 with 12, for 4.65, 3.80 and 3.53 s per image.
REFINE_ITERATIONS = 25


@dataclass
class LatentPrior:
    # (first guess, known-pixel mask, noise=, blur=, scale=) -> latent: the VAE's restoration
    # encoder, or its plain encoder (posterior mean of the first guess) when it has none
    encoder: Callable[..., torch.Tensor]
    decoder: nn.Module
    residual_power: torch.Tensor  # radial spectrum of x - D(E(x)) on training images
    image_power: torch.Tensor  # radial spectrum of training images

    @classmethod
    def from_vae(cls, vae: VAE, restorer: bool = True) -> LatentPrior:
        """restorer: start from the VAE's restoration encoder when it has one."""
        encoder = vae.restore_mean if restorer and vae.config.restorer else (
            lambda guess, known, **damage: vae.encode_mean(guess))
        return cls(encoder, vae.decoder, 10 ** vae.log_residual_power.float().cpu(),
                   10 ** vae.log_image_power.float().cpu())

    @staticmethod
    def neg_log_prior(z: torch.Tensor) -> torch.Tensor:
        return (z**2).sum() / 2

    def error_power(self, op: nn.Module, first_guess: Callable, like: torch.Tensor) -> torch.Tensor:
        """Spectrum of x - D(E(first_guess(A x))): the decoder's error, plus the image power
        that I - first_guess o A does not remove (none for denoising, the high frequencies for
        deblurring and super-resolution, roughly the missing fraction for inpainting)."""
        with torch.no_grad():
            lost = power_gain(lambda v: v - first_guess(op(v)), like)
        power = self.residual_power + self.image_power * lost
        # The lowest bin holds each training crop's mean offset, which every task observes
        # anyway; left as measured it only makes conjugate gradients converge 5x slower.
        power[0] = power[1]
        return power


def solve(prior: LatentPrior, y: torch.Tensor, op: nn.Module, init: torch.Tensor,
          known: torch.Tensor, damage: dict, sigma: float, steps: int, power: torch.Tensor,
          lr: float = 0.05, bar: tqdm | None = None) -> torch.Tensor:
    """MAP estimate of the clean image for one image or tile: y is the observation (1, 3, h, w),
    init a first guess of the clean image (1, 3, H, W), known (1, 1, H, W) 1 where init is an
    observed pixel, damage the encoder's noise / blur / scale, sigma the noise level of the data
    term in [0, 1] units, power the spectrum of the error x - D(z) (`LatentPrior.error_power`)."""
    with torch.no_grad():
        z = prior.encoder(init, known, **damage)
    z.requires_grad_(True)
    optimizer = torch.optim.Adam([z], lr=lr)
    pixels = init.numel()
    for _ in range(steps):
        data = ((op(prior.decoder(z)) - y) ** 2).sum() / (2 * sigma**2)
        loss = (data + prior.neg_log_prior(z)) / pixels
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.4f}")
    with torch.no_grad():
        x0 = prior.decoder(z)
    return refine(x0, y, op, sigma, power, iters=REFINE_ITERATIONS).clamp(0, 1)


def _tiling(length: int, grid: int) -> tuple[int, list[int]]:
    """(tile side, tile starts) along a side of `length` pixels, both multiples of `grid`: the
    fewest tiles of at most TILE_PIXELS overlapping by at least OVERLAP, evenly spread."""
    if length <= TILE_PIXELS:
        return length, [0]
    count = -(-(length - OVERLAP) // (TILE_PIXELS - OVERLAP))
    side = -(-(length + (count - 1) * OVERLAP) // (count * grid)) * grid
    # floored starts, each step at most side - OVERLAP (a multiple of grid) apart
    return side, [(length - side) * k // (count - 1) // grid * grid for k in range(count)]


def _ramp(n: int, device) -> torch.Tensor:
    r = torch.ones(n, device=device)
    k = min(OVERLAP, n // 2)
    if k:
        edge = torch.linspace(1 / (k + 1), k / (k + 1), k, device=device)
        r[:k], r[-k:] = edge, edge.flip(0)
    return r


def solve_tiled(prior: LatentPrior, height: int, width: int, scale: int,
                tile_problem: Callable[[int, int, int, int], tuple], damage: dict, sigma: float,
                steps: int, desc: str) -> torch.Tensor:
    """Solve over overlapping output tiles and blend them; height and width must be multiples
    of 8 * scale.

    tile_problem(y0, y1, x0, x1) returns (y, op, init, known, first_guess) for that output
    region: init is the first guess made from y, first_guess a linear map that makes one
    (`LatentPrior.error_power`)."""
    (tile_h, ys), (tile_w, xs) = _tiling(height, 8 * scale), _tiling(width, 8 * scale)
    out = weight = None
    # one unit per gradient step and one for the rest of each tile (first guess, pixel step)
    with tqdm(total=len(ys) * len(xs) * (steps + 1), desc=f"{desc}: latent MAP", unit="step") as bar:
        for y0 in ys:
            for x0 in xs:
                y1, x1 = y0 + tile_h, x0 + tile_w
                y, op, init, known, first_guess = tile_problem(y0, y1, x0, x1)
                power = prior.error_power(op, first_guess, init)
                tile = solve(prior, y, op, init, known, damage, sigma, steps, power, bar=bar)
                bar.update(1)
                if out is None:
                    out = torch.zeros(1, 3, height, width, device=tile.device)
                    weight = torch.zeros(1, 1, height, width, device=tile.device)
                w = _ramp(y1 - y0, tile.device)[:, None] * _ramp(x1 - x0, tile.device)[None, :]
                if len(ys) == 1 and len(xs) == 1:
                    w = torch.ones_like(w)
                out[..., y0:y1, x0:x1] += tile * w
                weight[..., y0:y1, x0:x1] += w
    return out / weight


def pad_to(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Edge-pad (B, C, H, W) so both sides are multiples of `multiple`."""
    h, w = x.shape[-2:]
    return nn.functional.pad(x, (0, -w % multiple, 0, -h % multiple), mode="replicate")
