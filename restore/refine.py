"""The learned last step: the refiner (`vqpress.nets.refiner`) on the restoration's estimate, in
tiles with overlap for big images."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.numpy import load_file
from tqdm import tqdm

from vqpress import weights
from vqpress.nets.refiner import CONDITIONS, Refiner, RefinerConfig

from .damage import upscale

# Each task is refined by the first of these that was trained for it (`refiner_for`):
# super-resolution by refiner-v10 since 0.26 (refiner-v3 trained on super-resolution alone,
# grown to 12 layers and trained 16,000 steps more; refiner-v7 in 0.24-0.25); inpainting by
# refiner-v11 since 0.27 (refiner-v7 trained 10,000 steps on 2,000 pairs of scattered missing
# pixels alone, refiner-v9 in 0.26, then 8,000 on 4,000; 0.25's refiner-v8 had the first 6,000),
# on scattered masks only (`scattered`); denoising and deblurring by refiner-v3.
REFINERS = ("refiner-v10", "refiner-v11", "refiner-v3")
TASK_ORDER = ("inpaint", "denoise", "sr", "deblur")
TILE = 1024  # output pixels per tile side, even
ORIENTATIONS = 8  # the square's symmetries: k's bits are a transpose, a vertical and a horizontal flip
# The refiner's outputs are averaged over the first ENSEMBLE orientations of its input (the
# four flips). With refiner-v3 on the held-out training pairs the mean over them added 0.04
# (deblurring) to 0.14 dB (denoising) to the refiner's gain; all eight orientations added
# 0.00-0.04 dB more, for twice the time (benchmarks/study_refiner_ensemble.py).
ENSEMBLE = 4
# On big images the self-ensemble shrinks so that at most ENSEMBLE_PIXELS output pixels go
# through the refiner in all (at least one orientation): at 4000x3000 four orientations of a
# 12-layer refiner took 113 s, and a 4000x3000 inpainting with half its pixels missing at random
# 246 s in all (bench_restore_speed.py). Images up to 4 megapixels keep all four.
ENSEMBLE_PIXELS = 16_000_000
# The inpainting refiner was trained on scattered missing pixels only (40-95% missing at random,
# `training.refiner.scattered_pixels`), so it runs only on masks like those (`scattered`).
SCATTERED = 0.25


def oriented(t: torch.Tensor, k: int) -> torch.Tensor:
    """The image tensor (..., h, w) in orientation k (0 is itself)."""
    if k & 4:
        t = t.transpose(-1, -2)
    if k & 2:
        t = t.flip(-2)
    return t.flip(-1) if k & 1 else t


def unoriented(t: torch.Tensor, k: int) -> torch.Tensor:
    """The inverse of `oriented`."""
    if k & 1:
        t = t.flip(-1)
    if k & 2:
        t = t.flip(-2)
    return t.transpose(-1, -2) if k & 4 else t


def condition(task: str, damage: dict) -> torch.Tensor:
    """The refiner's numbers for a task and its damage (`api.Problem.damage`): which task, and
    its setting near 1 at the benchmark's (noise 25/255, scale 4, blur 2 px)."""
    c = torch.zeros(CONDITIONS)
    c[TASK_ORDER.index(task)] = 1
    if task == "denoise":
        c[4] = damage["noise"] * 255 / 25
    elif task == "sr":
        c[5] = damage["scale"] / 4
    elif task == "deblur":
        c[6] = damage["blur"] / 2
    return c


def scattered(known: torch.Tensor) -> bool:
    """Whether the missing pixels of a mask (..., H, W; known == 0) are scattered: at least
    SCATTERED of all pixels are missing with a known pixel among their 8 neighbours. Masks of
    40-95% missing at random give 0.32-0.51; the benchmark's strokes and 128 box under 0.08,
    40 strokes 2-6 px wide across a 768x512 image 0.12-0.18."""
    known = (known.reshape(1, 1, *known.shape[-2:]) > 0).float()
    beside_known = F.max_pool2d(known, 3, stride=1, padding=1) > 0
    return ((known == 0) & beside_known).float().mean().item() >= SCATTERED


def observation(y: torch.Tensor, known: torch.Tensor | None, scale: int) -> torch.Tensor:
    """What the refiner sees of the damaged image y (1, 3, h, w), at the output's size: the
    bicubic upscale for super-resolution, else y with its missing pixels (known == 0) zeroed."""
    if scale > 1:
        return upscale(y, scale)
    return y if known is None else y * known


def load_refiner(model_id: str) -> tuple[Refiner, dict]:
    """A shipped refiner (checksum verified) in eval mode, and its card."""
    path, _ = weights.verified(model_id)
    meta = weights.metadata(path)
    if "refiner_config" not in meta:
        raise weights.WeightsError(f"model {model_id} is not a restoration refiner")
    net = Refiner(RefinerConfig.from_dict(meta["refiner_config"]))
    net.load_state_dict({k: torch.from_numpy(v.astype(np.float32)) for k, v in load_file(str(path)).items()})
    return net.eval(), meta["card"]


def refiner_for(task: str, models: tuple[str, ...] = REFINERS) -> Refiner | None:
    """The first refiner of `models` (shipped ids) trained for `task`, or None."""
    for model_id in models:
        net, _ = load_refiner(model_id)
        if task not in net.config.skip:
            return net
    return None


@torch.no_grad()
def refined(net: Refiner, estimate: torch.Tensor, observed: torch.Tensor, known: torch.Tensor,
           cond: torch.Tensor, orientations: int | None = None) -> torch.Tensor:
    """The refined estimate of (1, 3, H, W) tensors (H, W even): the mean of the net's outputs
    over the first `orientations` (default `ensemble_size`) orientations of its inputs, each
    computed tile by tile with a margin wider than the net's reach, so tiles join exactly."""
    orientations = ensemble_size(estimate.shape[-2] * estimate.shape[-1]) if orientations is None else orientations
    tiles = -(-estimate.shape[-2] // TILE) * -(-estimate.shape[-1] // TILE)
    total = torch.zeros_like(estimate)
    passes = orientations * tiles
    with tqdm(total=passes, desc="refiner", unit="tile", disable=passes < 2) as bar:
        for k in range(orientations):
            inputs = (oriented(t, k) for t in (estimate, observed, known))
            total += unoriented(_tiled(net, *inputs, cond, bar), k)
    return total / orientations


def ensemble_size(pixels: int) -> int:
    """How many orientations the self-ensemble averages for an output of that many pixels."""
    return max(1, min(ENSEMBLE, ENSEMBLE_PIXELS // pixels))


def _tiled(net: Refiner, estimate: torch.Tensor, observed: torch.Tensor, known: torch.Tensor,
           cond: torch.Tensor, bar: tqdm) -> torch.Tensor:
    h, w = estimate.shape[-2:]
    margin = 2 * net.config.layers + 2  # each 3x3 layer at half resolution reaches 2 pixels
    cond = cond[None].to(estimate)
    out = torch.empty_like(estimate)
    for y0 in range(0, h, TILE):
        for x0 in range(0, w, TILE):
            y1, x1 = min(y0 + TILE, h), min(x0 + TILE, w)
            ya, xa, yb, xb = max(0, y0 - margin), max(0, x0 - margin), min(h, y1 + margin), min(w, x1 + margin)
            part = net(*(t[..., ya:yb, xa:xb] for t in (estimate, observed, known)), cond)
            out[..., y0:y1, x0:x1] = part[..., y0 - ya:y1 - ya, x0 - xa:x1 - xa]
            bar.update()
    return out
