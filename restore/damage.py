"""Damage and first guesses: what the restoration encoder sees, at training and at run time.

A first guess is an image the size of the clean one: the smooth fill of the known pixels
(inpainting), the noisy or blurred image itself (denoising, deblurring), the bicubic upscale
(super-resolution). `random_damage` draws the training examples: a random task and setting per
crop, observations rounded to 8 bits as they are in real files.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from . import operators
from .spectra import refine

TASK_WEIGHTS = {"inpaint": 0.4, "denoise": 0.25, "sr": 0.2, "deblur": 0.15}


def smooth_fill(y: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """First guess for the missing pixels: normalised Gaussian averages of the filled pixels,
    at growing scales, each scale filling only the pixels it has enough support for."""
    filled = known.expand_as(y).clone()  # 1 where a value is known or already filled
    x = y * filled
    for sigma in (2, 4, 8, 16, 32, 64, 128):
        if filled.all():
            break
        support = operators.gaussian_smooth(filled, sigma)
        new = (filled == 0) & (support > 0.05)
        x = torch.where(new, operators.gaussian_smooth(x, sigma) / support.clamp_min(1e-8), x)
        filled = filled + new.float()
    return torch.where(filled > 0, x, y.new_tensor(0.5))


def rough_fill(y: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """The smooth fill blurred by 16 px: the mean that kriging fills around."""
    return operators.gaussian_smooth(smooth_fill(y, known), 16)


# Conjugate-gradient iterations of `kriging_fill`. 100, the earlier default, took half of latent
# MAP's time for inpainting and changed the final inpainting by under 0.03 dB against 25 (a
# scratch measurement on 3 training crops); 12 lost 0.06 dB on thin strokes
# (benchmarks/fit_refine.py, docs/results/fit-refine.md).
KRIGING_ITERATIONS = 25


def kriging_fill(y: torch.Tensor, known: torch.Tensor, image_power: torch.Tensor,
                 rough: torch.Tensor | None = None) -> torch.Tensor:
    """First guess for the missing pixels, sharper than `smooth_fill`: the most probable image
    under a stationary Gaussian field with the photos' power spectrum, given the known pixels
    (simple kriging), around a rough mean (`rough_fill` unless given). Known pixels are kept."""
    if rough is None:
        rough = rough_fill(y, known)
    power = image_power.clone()
    power[0] = power[1]  # the mean offset is observed: see LatentPrior.error_power
    fill = refine(rough, y * known, lambda v: v * known, 2 / 255, power, iters=KRIGING_ITERATIONS)
    return torch.where(known > 0, y, fill)


def upscale(low: torch.Tensor, scale: int) -> torch.Tensor:
    """First guess for super-resolution (linear: not clamped to [0, 1])."""
    return F.interpolate(low, scale_factor=scale, mode="bicubic", align_corners=False)


def strokes(shape: tuple[int, int], lines: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A mask (True = missing) of `lines` curved strokes through 4 random points each."""
    mask = Image.new("L", (shape[1], shape[0]), 0)
    draw = ImageDraw.Draw(mask)
    for _ in range(lines):
        pts = [tuple(int(v) for v in (rng.integers(0, shape[1]), rng.integers(0, shape[0])))
               for _ in range(4)]
        draw.line(pts, fill=255, width=width, joint="curve")
    return np.asarray(mask) > 0


def random_mask(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Strokes (1-15, 2-24 px wide), 1-2 boxes (16 px to half the side) or 30-95% random pixels."""
    kind = rng.choice(3, p=[0.4, 0.25, 0.35])
    if kind == 0:
        return strokes(shape, int(rng.integers(1, 16)), int(rng.integers(2, 25)), rng)
    if kind == 1:
        mask = np.zeros(shape, bool)
        for _ in range(rng.integers(1, 3)):
            h, w = (int(rng.integers(16, max(17, s // 2 + 1))) for s in shape)
            y, x = rng.integers(0, shape[0] - h + 1), rng.integers(0, shape[1] - w + 1)
            mask[y:y + h, x:x + w] = True
        return mask
    return rng.random(shape) < rng.uniform(0.3, 0.95)


def as_8bit(x: torch.Tensor) -> torch.Tensor:
    return x.clamp(0, 1).mul(255).round().div(255)


@dataclass
class Damaged:
    """A batch of first guesses and what the restoration encoder is told of the damage."""

    guess: torch.Tensor  # (B, 3, H, W)
    known: torch.Tensor  # (B, 1, H, W): 1 = observed pixel
    noise: torch.Tensor  # (B,) std in [0, 1] units
    blur: torch.Tensor  # (B,) Gaussian std in pixels
    scale: torch.Tensor  # (B,) super-resolution factor
    tasks: list[str]


def random_damage(x: torch.Tensor, rng: np.random.Generator, task: str | None = None) -> Damaged:
    """Damage each image of a batch x (B, 3, H, W) in [0, 1] with a random task (or `task`) and setting:
    inpainting (`random_mask`), noise of std 3-60 (8-bit units), downsampling x2/x3/x4 (the scales
    that divide the sides by 8 x scale) or a Gaussian blur of std 0.5-4 px."""
    b, _, h, w = x.shape
    guesses, knowns, tasks = [], [], []
    noise, blur, scale = torch.zeros(b), torch.zeros(b), torch.ones(b)
    drawn = [task] * b if task else rng.choice(list(TASK_WEIGHTS), b, p=list(TASK_WEIGHTS.values()))
    for i, name in enumerate(drawn):
        clean = x[i:i + 1]
        known = torch.ones(1, 1, h, w)
        if name == "inpaint":
            known = torch.from_numpy(~random_mask((h, w), rng)).float()[None, None]
            guess = smooth_fill(clean * known, known)
        elif name == "denoise":
            noise[i] = rng.uniform(3, 60) / 255
            guess = as_8bit(clean + noise[i] * torch.from_numpy(rng.standard_normal(clean.shape)).float())
        elif name == "sr":
            s = int(rng.choice([s for s in (2, 3, 4) if h % (8 * s) == 0 and w % (8 * s) == 0] or [1]))
            scale[i] = s
            guess = upscale(as_8bit(operators.Downsample(s)(clean)), s).clamp(0, 1) if s > 1 else clean
        else:
            blur[i] = rng.uniform(0.5, 4.0)
            guess = as_8bit(operators.gaussian_smooth(clean, float(blur[i])))
        guesses.append(guess)
        knowns.append(known)
        tasks.append(str(name))
    return Damaged(torch.cat(guesses), torch.cat(knowns), noise, blur, scale, tasks)
