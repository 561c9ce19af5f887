"""Restoration API: inpaint, denoise, super-resolve and deblur by latent MAP."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import torch
from PIL import Image
from torch import nn

from codec.errors import VQPressError
from codec.imageio import MODE_GRAY, MODE_GRAY16, as_image, has_alpha, to_rgb8
from codec.vqvae import DOWNSCALE

from . import local_wiener, operators
from .damage import kriging_fill, smooth_fill, upscale
from .latent_map import LatentPrior, pad_to, solve_tiled
from .vae import load_vae

TASKS = ("denoise", "sr", "deblur")
DEFAULT_VAE = "vae-v3"
# Gradient steps on z by default, per task, measured on the first validation photo with vae-v1:
# the encoder's estimate plus the pixel step is best. 10 steps lower PSNR by 0.6-1.2 dB for
# inpainting and 0.3-0.7 dB for sr and deblur, and add only 0.06-0.09 dB to denoising, for
# ten times the time. (`--steps` still runs them.)
DEFAULT_STEPS = {"inpaint": 0, "denoise": 0, "sr": 0, "deblur": 0}
# Tasks that start from the restoration encoder; the others from the plain encoder of the first
# guess. vae-v2's encoder, trained on every task, gained 0.25 / 0.64 / 1.42 dB at noise
# 15 / 25 / 50 on 8 training-photo crops (256 px) and lost 0.03-0.1 dB on holes, x2 upscaling and
# deblurring; vae-v3's was then trained on noise only.
RESTORER_TASKS = {"denoise"}


def _prior(device: str, task: str) -> tuple[LatentPrior, torch.device]:
    return _cached_prior(device, task in RESTORER_TASKS)


@cache
def _cached_prior(device: str, restorer: bool) -> tuple[LatentPrior, torch.device]:
    from codec.codec import resolve_device

    dev = resolve_device(device)
    vae, _ = _vae()
    return LatentPrior.from_vae(vae.to(dev), restorer=restorer), dev


@cache
def _vae():
    return load_vae(DEFAULT_VAE)


def _tensor(rgb: np.ndarray, device) -> torch.Tensor:
    return torch.tensor(rgb).permute(2, 0, 1)[None].float().div(255).to(device)


@dataclass
class Planes:
    """An input image as restoration sees it: 8-bit RGB, and what goes back on at the end."""

    rgb: np.ndarray  # (H, W, 3) uint8, not composited: alpha is restored as a plane of its own
    alpha: np.ndarray | None  # (H, W) uint8
    gray: bool

    @classmethod
    def of(cls, image) -> Planes:
        image = as_image(image)
        alpha = None
        if isinstance(image, Image.Image) and has_alpha(image):
            rgba = np.asarray(image.convert("RGBA"))
            alpha = rgba[..., 3]
            image = Image.fromarray(rgba[..., :3]).convert("L" if image.mode in ("LA", "La") else "RGB")
        elif isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 4:
            alpha, image = to_rgb8(image[..., 3])[0][..., 0], image[..., :3]
        rgb, mode = to_rgb8(image)
        return cls(rgb, alpha, mode in (MODE_GRAY, MODE_GRAY16))

    def image(self, x: torch.Tensor, scale: int = 1) -> Image.Image:
        """The restored image of x (1, 3, >= H*scale, >= W*scale), with the source's alpha
        (resized by `scale` with Lanczos) and grayscale mode."""
        h, w = self.rgb.shape[0] * scale, self.rgb.shape[1] * scale
        rgb = x[0, :, :h, :w].clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()
        out = Image.fromarray(rgb)
        if self.gray:
            out = out.convert("L")
        if self.alpha is not None:
            alpha = Image.fromarray(self.alpha)
            out.putalpha(alpha.resize((w, h), Image.LANCZOS) if scale > 1 else alpha)
        return out


def inpaint(image, mask, steps: int | None = None, device: str = "auto") -> Image.Image:
    """Fill the pixels where `mask` is true (white = missing); known pixels are kept exactly.

    image: PIL image, array or path (alpha and grayscale are kept); mask: PIL image or HxW
    array of the same size. Ends with `local_wiener.inpaint`, which takes the latent MAP
    estimate as its pilot."""
    planes = Planes.of(image)
    rgb = planes.rgb
    missing = np.asarray(mask.convert("L") if isinstance(mask, Image.Image) else mask)
    missing = missing if missing.dtype == bool else missing > 127
    if missing.ndim == 3:
        missing = missing.any(axis=2)
    if missing.shape != rgb.shape[:2]:
        raise VQPressError(f"mask is {missing.shape[1]}x{missing.shape[0]}, "
                           f"image is {rgb.shape[1]}x{rgb.shape[0]}")
    if not missing.any():
        raise VQPressError("mask is empty: no pixel is marked missing (white)")
    if missing.all():
        raise VQPressError("mask covers the whole image: nothing is known")
    prior, dev = _prior(device, "inpaint")
    y = pad_to(_tensor(rgb, dev), DOWNSCALE)
    known = pad_to(torch.from_numpy(~missing)[None, None].float().to(dev), DOWNSCALE)
    rough = operators.gaussian_smooth(smooth_fill(y, known), 16)

    def tile(y0, y1, x0, x1):
        k, observed = known[..., y0:y1, x0:x1], y[..., y0:y1, x0:x1] * known[..., y0:y1, x0:x1]
        init = kriging_fill(observed, k, prior.image_power, rough[..., y0:y1, x0:x1])
        # The power the first guess loses is measured through the smooth fill: a linear map
        # (conjugate gradients are not), and on training crops its larger estimate did better.
        return observed, operators.Mask(k[0, 0]), init, k, lambda v: smooth_fill(v, k)

    steps = DEFAULT_STEPS["inpaint"] if steps is None else steps
    x = solve_tiled(prior, y.shape[-2], y.shape[-1], 1, tile, {}, sigma=2 / 255, steps=steps,
                    desc="inpaint")
    x = local_wiener.inpaint(y, known, x)  # known pixels exactly as given
    return planes.image(x)


def restore(image, task: str, sigma: float = 25.0, scale: int = 4, blur_sigma: float = 2.0,
            steps: int | None = None, device: str = "auto") -> Image.Image:
    """denoise (sigma: noise std in 8-bit units), sr (output `scale` times larger) or deblur
    (Gaussian blur of std `blur_sigma` pixels). Denoising and deblurring end with
    `local_wiener`, which takes the latent MAP estimate as its pilot."""
    if task not in TASKS:
        raise VQPressError(f"unknown task {task!r} (choose from {', '.join(TASKS)})")
    planes = Planes.of(image)
    rgb = planes.rgb
    prior, dev = _prior(device, task)
    y = _tensor(rgb, dev)
    if task == "sr":
        if scale not in (2, 3, 4):
            raise VQPressError("--scale must be 2, 3 or 4")
        y = pad_to(y, DOWNSCALE)

        def first_guess(v):
            return upscale(v, scale)

        init = first_guess(y).clamp(0, 1)
        op, noise = operators.Downsample(scale), 1 / 255
        damage = {"scale": scale}
    else:
        if task == "denoise" and not 0 < sigma <= 100:
            raise VQPressError("--sigma must be in (0, 100]")
        if task == "deblur" and not 0 < blur_sigma <= 10:
            raise VQPressError("--blur-sigma must be in (0, 10]")
        scale = 1
        y = pad_to(y, DOWNSCALE)

        def first_guess(v):
            return v

        init = y
        op = nn.Identity() if task == "denoise" else operators.gaussian_blur(blur_sigma).to(dev)
        noise = sigma / 255 if task == "denoise" else 1 / 255
        damage = {"noise": sigma / 255} if task == "denoise" else {"blur": blur_sigma}

    def tile(y0, y1, x0, x1):
        s = scale
        return (y[..., y0 // s:y1 // s, x0 // s:x1 // s], op, init[..., y0:y1, x0:x1],
                torch.ones_like(init[:, :1, y0:y1, x0:x1]), first_guess)

    steps = DEFAULT_STEPS[task] if steps is None else steps
    x = solve_tiled(prior, init.shape[-2], init.shape[-1], scale, tile, damage, sigma=noise,
                    steps=steps, desc=task)
    if task == "denoise":
        x = local_wiener.denoise(y, x, noise)
    elif task == "deblur":
        x = local_wiener.deblur(y, op.kernel[0, 0], x, noise)
    return planes.image(x, scale)
