"""Latent MAP: z* = argmin_z ||A(D(z)) - y||^2 / (2 sigma^2) - log p(z), solved by Adam.

D is a generative decoder and p(z) a Gaussian over its latent map. Until a dedicated VAE is
shipped, D is the codec's VQ-VAE decoder with the quantiser relaxed to a continuous latent,
and p(z) is the per-channel Gaussian implied by its codebooks (usage-weighted means and
variances of the residual stages, summed). Big images are solved in overlapping tiles.

Like a VAE, the model does not say an image *is* D(z): x = D(z) + e, with e white Gaussian of
the decoder's reconstruction error (pixel_std). So after z*, the image itself is the MAP
argmin_x ||A x - y||^2 / (2 sigma^2) + ||x - D(z*)||^2 / (2 pixel_std^2): what the observation
says where it says something, D(z*) where it does not (`refine`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from tqdm import tqdm

from codec.quantizer import ResidualVQ

TILE = 960  # output pixels per tile side (a 768x512 photo is one tile): a multiple of 8 x each scale (2, 3, 4)
OVERLAP = 96  # so tile starts (multiples of TILE - OVERLAP) stay on that grid too


@dataclass
class LatentPrior:
    encoder: nn.Module
    decoder: nn.Module
    mean: torch.Tensor  # (1, C, 1, 1)
    std: torch.Tensor
    pixel_std: float  # the decoder's RMS reconstruction error, [0, 1] units

    @classmethod
    def from_vqvae(cls, vqvae, pixel_std: float) -> LatentPrior:
        mean, var = codebook_gaussian(vqvae.rvq)
        return cls(vqvae.encoder, vqvae.decoder, mean[None, :, None, None],
                   var.sqrt()[None, :, None, None], pixel_std)

    def neg_log_prior(self, z: torch.Tensor) -> torch.Tensor:
        return (((z - self.mean) / self.std) ** 2).sum() / 2


def codebook_gaussian(rvq: ResidualVQ) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and variance per channel of a sum of independent stage codes."""
    mean = var = 0
    for vq in rvq.stages:
        w = vq.cluster_size / vq.cluster_size.sum()
        m = (w[:, None] * vq.codebook).sum(0)
        mean = mean + m
        var = var + (w[:, None] * (vq.codebook - m) ** 2).sum(0)
    return mean, var.clamp_min(1e-6)


def solve(prior: LatentPrior, y: torch.Tensor, op: nn.Module, init: torch.Tensor, sigma: float,
          steps: int, lr: float = 0.05, bar: tqdm | None = None) -> torch.Tensor:
    """MAP estimate D(z*) for one image or tile: y is the observation (1, 3, h, w), init a
    first guess of the clean image (1, 3, H, W), sigma the noise level in [0, 1] units."""
    with torch.no_grad():
        z = prior.encoder(init)
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
    return refine(x0, y, op, sigma, prior.pixel_std).clamp(0, 1)


def refine(x0: torch.Tensor, y: torch.Tensor, op: nn.Module, sigma: float, pixel_std: float,
           iters: int = 50, tol: float = 1e-6) -> torch.Tensor:
    """argmin_x ||A x - y||^2 / sigma^2 + ||x - x0||^2 / pixel_std^2 for a linear A, i.e.
    (A^T A + lam I) x = A^T y + lam x0 with lam = (sigma / pixel_std)^2, by conjugate gradients
    from x0 (A^T comes from autograd). Exact after one step where A is a mask or the identity."""
    lam = (sigma / pixel_std) ** 2

    def adjoint(v: torch.Tensor) -> torch.Tensor:  # A^T v
        probe = torch.zeros_like(x0, requires_grad=True)
        with torch.enable_grad():
            return torch.autograd.grad(op(probe), probe, v)[0]

    def normal(v: torch.Tensor) -> torch.Tensor:  # (A^T A + lam I) v
        return adjoint(op(v)) + lam * v

    with torch.no_grad():
        x = x0.clone()
        r = adjoint(y - op(x0))  # the right-hand side minus the system at x0
        p, rr = r.clone(), (r * r).sum()
        scale = rr.sqrt().clamp_min(1e-30)
        for _ in range(iters):
            if rr.sqrt() <= tol * scale:
                break
            q = normal(p)
            alpha = rr / (p * q).sum()
            x += alpha * p
            r -= alpha * q
            rr_new = (r * r).sum()
            p = r + (rr_new / rr) * p
            rr = rr_new
    return x


def _starts(length: int) -> list[int]:
    if length <= TILE:
        return [0]
    step = TILE - OVERLAP
    starts = list(range(0, length - TILE, step)) + [length - TILE]
    return sorted(set(starts))


def _ramp(n: int, device) -> torch.Tensor:
    r = torch.ones(n, device=device)
    k = min(OVERLAP, n // 2)
    if k:
        edge = torch.linspace(1 / (k + 1), k / (k + 1), k, device=device)
        r[:k], r[-k:] = edge, edge.flip(0)
    return r


def solve_tiled(prior: LatentPrior, height: int, width: int, scale: int,
                tile_problem: Callable[[int, int, int, int], tuple], sigma: float, steps: int,
                desc: str) -> torch.Tensor:
    """Solve over overlapping output tiles and blend them; height and width must be multiples
    of 8 * scale.

    tile_problem(y0, y1, x0, x1) returns (y, op, init) for that output region."""
    ys, xs = _starts(height), _starts(width)
    out = weight = None
    with tqdm(total=len(ys) * len(xs) * steps, desc=desc, unit="step") as bar:
        for y0 in ys:
            for x0 in xs:
                y1, x1 = min(height, y0 + TILE), min(width, x0 + TILE)
                y, op, init = tile_problem(y0, y1, x0, x1)
                tile = solve(prior, y, op, init, sigma, steps, bar=bar)
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
