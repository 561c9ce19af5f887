"""Restoration API: inpaint, denoise, super-resolve and deblur by latent MAP.

Every task is a row of `TASKS`: how it turns the damaged image into a latent MAP problem (the
operator, the first guess, the noise level of the data term, what the restoration encoder is
told), whether it starts from the restoration encoder, its default gradient steps, and the
classical last step that refines the latent MAP estimate. The learned refiner (`refine`) then
corrects that estimate, and super-resolution and deblurring end with one more data step, which
brings back what the observation holds (`Problem.fit`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np
import torch
from PIL import Image
from torch import nn

from vqpress.codec import limits
from vqpress.codec.blocks import DOWNSCALE
from vqpress.codec.errors import VQPressError
from vqpress.codec.container import MODE_GRAY, MODE_GRAY16
from vqpress.codec.imageio import as_image, has_alpha, open_image, to_rgb8
from vqpress.nets.device import resolve_device, to_uint8

from . import local_wiener, operators
from .damage import kriging_fill, rough_fill, smooth_fill, upscale
from .latent_map import LatentPrior, pad_to, solve_tiled
from .refine import condition, observation, refined, refiner_for, scattered
from .vae import load_vae

DEFAULT_VAE = "vae-v3"


@dataclass
class Problem:
    """One restoration as latent MAP sees it."""

    height: int  # of the (padded) output
    width: int
    scale: int  # output pixels per observed pixel along each side
    # (y0, y1, x0, x1) of the output -> (observation, operator, first guess, known-pixel mask,
    # the linear map that makes the first guess): see `latent_map.solve_tiled`
    tile: Callable
    damage: dict  # what the restoration encoder is told: noise=, blur=, scale=
    noise: float  # std of the data term's noise, in [0, 1] units
    last_step: Callable[[torch.Tensor], torch.Tensor]  # latent MAP estimate -> final estimate
    # after the last step and the refiner: the nearest image that fits the observation
    # (`local_wiener.fit_blurred` / `fit_downscaled`); None for inpainting, whose last step
    # keeps the known pixels as given, and denoising
    fit: Callable[[torch.Tensor], torch.Tensor] | None = None


def whole_image(y: torch.Tensor, op: nn.Module, first_guess: Callable, scale: int = 1) -> Callable:
    """A tile function for tasks whose first guess is made once for the whole image."""
    init = first_guess(y).clamp(0, 1)

    def tile(y0, y1, x0, x1):
        s = scale
        return (y[..., y0 // s:y1 // s, x0 // s:x1 // s], op, init[..., y0:y1, x0:x1],
                torch.ones_like(init[:, :1, y0:y1, x0:x1]), first_guess)

    return tile


def denoise_problem(y: torch.Tensor, prior: LatentPrior, sigma: float = 25.0, **_) -> Problem:
    if not 0 < sigma <= 100:
        raise VQPressError("--sigma must be in (0, 100]")
    noise = sigma / 255
    return Problem(*y.shape[-2:], 1, whole_image(y, nn.Identity(), lambda v: v), {"noise": noise}, noise,
                   lambda x: local_wiener.denoise(y, x, noise))


def sr_problem(y: torch.Tensor, prior: LatentPrior, scale: int = 4, **_) -> Problem:
    if scale not in (2, 3, 4):
        raise VQPressError("--scale must be 2, 3 or 4")
    op = operators.Downsample(scale)
    tile = whole_image(y, op, lambda v: upscale(v, scale), scale)
    return Problem(y.shape[-2] * scale, y.shape[-1] * scale, scale, tile, {"scale": scale}, 1 / 255,
                   lambda x: local_wiener.super_resolve(y, op, x, 1 / 255),
                   lambda x: local_wiener.fit_downscaled(y, op, x, 1 / 255))


def deblur_problem(y: torch.Tensor, prior: LatentPrior, blur_sigma: float = 2.0, **_) -> Problem:
    if not 0 < blur_sigma <= 10:
        raise VQPressError("--blur-sigma must be in (0, 10]")
    radius = len(operators.gaussian_1d(blur_sigma)) // 2
    if min(y.shape[-2:]) < radius + 2:  # the blur's reflect padding needs a side over its radius
        shortest = -(-(radius + 2) // DOWNSCALE) * DOWNSCALE - DOWNSCALE + 1  # y's sides are padded to multiples
        raise VQPressError(f"--blur-sigma {blur_sigma:g} is too wide for this image: deblurring it "
                           f"needs sides of at least {shortest} px")
    op = operators.gaussian_blur(blur_sigma).to(y.device)
    return Problem(*y.shape[-2:], 1, whole_image(y, op, lambda v: v), {"blur": blur_sigma}, 1 / 255,
                   lambda x: local_wiener.deblur(y, op.kernel[0, 0], x, 1 / 255),
                   lambda x: local_wiener.fit_blurred(y, op.kernel[0, 0], x, 1 / 255))


def inpaint_problem(y: torch.Tensor, prior: LatentPrior, *, known: torch.Tensor, **_) -> Problem:
    """known (1, 1, H, W): 1 where a pixel is observed. The first guess, a kriging fill, is made
    per tile, which bounds its memory."""
    rough = rough_fill(y, known)

    def tile(y0, y1, x0, x1):
        k, observed = known[..., y0:y1, x0:x1], y[..., y0:y1, x0:x1] * known[..., y0:y1, x0:x1]
        init = kriging_fill(observed, k, prior.image_power, rough[..., y0:y1, x0:x1])
        # The power the first guess loses is measured through the smooth fill: a linear map
        # (conjugate gradients are not), and on training crops its larger estimate did better.
        return observed, operators.Mask(k[0, 0]), init, k, lambda v: smooth_fill(v, k)

    return Problem(*y.shape[-2:], 1, tile, {}, 2 / 255,
                   lambda x: local_wiener.inpaint(y, known, x))  # known pixels exactly as given


@dataclass(frozen=True)
class Task:
    make: Callable[..., Problem]
    # Start from the restoration encoder (else the plain encoder of the first guess). vae-v2's
    # encoder, trained on every task, gained 0.25 / 0.64 / 1.42 dB at noise 15 / 25 / 50 on 8
    # training-photo crops (256 px) and lost 0.03-0.1 dB on holes, x2 upscaling and deblurring;
    # vae-v3's was then trained on noise only.
    restorer: bool
    # Gradient steps on z, measured on the first validation photo with vae-v1: the encoder's
    # estimate plus the pixel step is best. 10 steps lower PSNR by 0.6-1.2 dB for inpainting
    # and 0.3-0.7 dB for sr and deblur, and add only 0.06-0.09 dB to denoising, for ten times
    # the time. (`steps=` still runs them.)
    steps: int = 0


TASKS = {"inpaint": Task(inpaint_problem, restorer=False), "denoise": Task(denoise_problem, restorer=True),
         "sr": Task(sr_problem, restorer=False), "deblur": Task(deblur_problem, restorer=False)}


@cache
def _prior(device: str, restorer: bool) -> tuple[LatentPrior, torch.device]:
    dev = resolve_device(device)
    vae, _ = _vae()
    return LatentPrior.from_vae(vae.to(dev), restorer=restorer), dev


@cache
def _vae():
    return load_vae(DEFAULT_VAE)


@cache
def _refiner(task: str, device: str):
    net = refiner_for(task)
    return None if net is None else net.to(resolve_device(device))


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
        limits.check_size(rgb.shape[1], rgb.shape[0], "the image")
        return cls(rgb, alpha, mode in (MODE_GRAY, MODE_GRAY16))

    def tensor(self, device) -> torch.Tensor:
        """(1, 3, H', W') float in [0, 1], edge-padded to multiples of DOWNSCALE."""
        x = torch.tensor(self.rgb).permute(2, 0, 1)[None].float().div(255).to(device)
        return pad_to(x, DOWNSCALE)

    def image(self, x: torch.Tensor, scale: int = 1) -> Image.Image:
        """The restored image of x (1, 3, >= H*scale, >= W*scale), with the source's alpha
        (resized by `scale` with Lanczos) and grayscale mode."""
        h, w = self.rgb.shape[0] * scale, self.rgb.shape[1] * scale
        out = Image.fromarray(to_uint8(x[0, :, :h, :w]))
        if self.gray:
            out = out.convert("L")
        if self.alpha is not None:
            alpha = Image.fromarray(self.alpha)
            out.putalpha(alpha.resize((w, h), Image.LANCZOS) if scale > 1 else alpha)
        return out


def _is_number(value, whole: bool = False) -> bool:
    """An int (or with whole=False a float), numpy's included; not a bool."""
    kinds = (int, np.integer) if whole else (int, float, np.integer, np.floating)
    return isinstance(value, kinds) and not isinstance(value, bool)


def _run(task: str, planes: Planes, steps: int | None, device: str, last_step: bool, refine: bool,
         fit: bool = True, **settings) -> Image.Image:
    spec = TASKS[task]
    if steps is not None and not (_is_number(steps, whole=True) and steps >= 0):
        raise VQPressError(f"steps must be a whole number of at least 0, got {steps!r}")
    prior, dev = _prior(device, spec.restorer)
    y = planes.tensor(dev)
    if "known" in settings:
        settings["known"] = pad_to(settings["known"].to(dev), DOWNSCALE)
    problem = spec.make(y, prior, **settings)
    h, w = planes.rgb.shape[:2]  # refuse an output over the size limits before the work, not after
    limits.check_size(w * problem.scale, h * problem.scale, "the restored image")
    x = solve_tiled(prior, problem.height, problem.width, problem.scale, problem.tile, problem.damage,
                    sigma=problem.noise, steps=spec.steps if steps is None else steps, desc=task)
    if last_step:
        x = problem.last_step(x)
        if refine:
            x = _refine(task, problem, x, y, settings.get("known"), device)
        if fit and problem.fit is not None:
            x = problem.fit(x)
    return planes.image(x, problem.scale)


def _refine(task: str, problem: Problem, x: torch.Tensor, y: torch.Tensor, known: torch.Tensor | None,
            device: str) -> torch.Tensor:
    """The task's refiner (`refine.refiner_for`) on the last step's estimate, if it has one
    (for inpainting, only if the mask is `refine.scattered`); known pixels stay exactly as given."""
    if task == "inpaint" and not scattered(known):  # before loading: nothing to refine
        return x
    net = _refiner(task, device)
    if net is None:
        return x
    mask = torch.ones_like(x[:, :1]) if known is None else known
    out = refined(net, x, observation(y, known, problem.scale), mask, condition(task, problem.damage))
    return out if known is None else torch.where(known > 0, y, out)


def inpaint(image, mask, steps: int | None = None, device: str = "auto", last_step: bool = True,
            refine: bool = True) -> Image.Image:
    """Fill the pixels where `mask` is true (white = missing); known pixels are kept exactly.

    image: PIL image, array or path (alpha and grayscale are kept); mask: PIL image or HxW
    array of the same size. Ends with `local_wiener.inpaint`, which takes the latent MAP
    estimate as its pilot, then the refiner (refine=False leaves it out; last_step=False
    returns the latent MAP estimate itself)."""
    planes = Planes.of(image)
    if isinstance(mask, (str, os.PathLike)):
        mask = open_image(mask)
    if not isinstance(mask, (Image.Image, np.ndarray)):
        raise VQPressError(f"expected the mask as a PIL image, an array or a path, got {type(mask).__name__}")
    missing = np.asarray(mask.convert("L") if isinstance(mask, Image.Image) else mask)
    if missing.dtype != bool and missing.dtype.kind not in "uif":
        raise VQPressError(f"unsupported mask dtype {missing.dtype}")
    missing = missing if missing.dtype == bool else missing > 127
    if missing.ndim == 3:
        missing = missing.any(axis=2)
    if missing.ndim != 2:
        raise VQPressError(f"expected an HxW mask, got shape {missing.shape}")
    if missing.shape != planes.rgb.shape[:2]:
        raise VQPressError(f"mask is {missing.shape[1]}x{missing.shape[0]}, "
                           f"image is {planes.rgb.shape[1]}x{planes.rgb.shape[0]}")
    if not missing.any():
        raise VQPressError("mask is empty: no pixel is marked missing (white)")
    if missing.all():
        raise VQPressError("mask covers the whole image: nothing is known")
    known = torch.from_numpy(~missing)[None, None].float()
    return _run("inpaint", planes, steps, device, last_step, refine, known=known)


def restore(image, task: str, sigma: float = 25.0, scale: int = 4, blur_sigma: float = 2.0,
            steps: int | None = None, device: str = "auto", last_step: bool = True,
            refine: bool = True, fit: bool = True) -> Image.Image:
    """denoise (sigma: noise std in 8-bit units), sr (output `scale` times larger) or deblur
    (Gaussian blur of std `blur_sigma` pixels). Every task ends with `local_wiener`, which
    takes the latent MAP estimate as its pilot, then the refiner (refine=False leaves it out;
    last_step=False returns the latent MAP estimate itself); super-resolution and deblurring
    then take the nearest image that fits the observation (`local_wiener.fit_downscaled`,
    `fit_blurred`; fit=False leaves that out: the refiner is trained on estimates without it)."""
    if not isinstance(task, str) or task not in TASKS or task == "inpaint":
        raise VQPressError(f"unknown task {task!r} (choose from denoise, sr, deblur; or use inpaint)")
    for name, value in (("sigma", sigma), ("blur_sigma", blur_sigma)):
        if not _is_number(value):
            raise VQPressError(f"{name} must be a number, got {value!r}")
    if task == "sr" and not _is_number(scale, whole=True):
        raise VQPressError(f"scale must be an integer (2, 3 or 4), got {scale!r}")
    return _run(task, Planes.of(image), steps, device, last_step, refine, fit, sigma=sigma, scale=scale,
                blur_sigma=blur_sigma)
