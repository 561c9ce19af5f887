"""The data fit that ends deblurring and super-resolution (`local_wiener.fit_blurred`,
`fit_downscaled`) on training crops: its spread, deblurring's rounds of passes, and added noise.

    python benchmarks/study_data_fit.py ../shared/corpus/train [--photos 20] [--threads 1]

Takes fit_plug_and_play.py's crops, blurs them by std 1, 2 and 3 or downscales them by 2 and 4
(8-bit), restores them by latent MAP, the plug-and-play step and the refiner (the fit switched
off), then prints the mean PSNR (dB) of that estimate and of the fit after it: at each spread
with the data noise fixed at 1/255 and no passes (NOISE_GAIN = 0), as in 0.19 (deblurring: one
round of 8 passes and fit), as shipped (FIT_ROUNDS rounds of FIT_PASSES passes and fit), and
as shipped on the observation with noise of std 1 and 2 (8-bit units) added.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from unittest import mock

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from vqpress import restore
from vqpress.nets.device import to_uint8
from vqpress.restore import local_wiener
from vqpress.restore.damage import as_8bit
from vqpress.restore.operators import Downsample, gaussian_blur, gaussian_kernel
from vqpress.restore.refine import condition, observation, refined, refiner_for

sys.path.insert(0, str(Path(__file__).parent))
from fit_plug_and_play import crops, psnr, tensor  # noqa: E402

SPREADS = (4, 8, 12, 16, 24, 32)  # 8-bit units
NOISES = (1, 2)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    parser.add_argument("--photos", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    refiners = {task: refiner_for(task) for task in ("deblur", "sr")}
    noise_rng = torch.Generator().manual_seed(0)
    scores = {}

    def add(setting, column, value):
        scores.setdefault(setting, {}).setdefault(column, []).append(value)

    for rgb in tqdm(crops(args.folder, args.photos), desc="photos"):
        clean = tensor(rgb)
        cases = [(f"blur std {b:g}", as_8bit(gaussian_blur(b)(clean)), "deblur", {"blur_sigma": b}) for b in (1.0, 2.0, 3.0)]
        for s in (2, 4):
            small = np.asarray(Image.fromarray(rgb).resize((rgb.shape[1] // s, rgb.shape[0] // s), Image.BICUBIC))
            cases.append((f"x{s}", tensor(small), "sr", {"scale": s}))
        for setting, y, task, kwargs in cases:
            pilot = tensor(np.asarray(restore.restore(to_uint8(y[0]), task, device="cpu", last_step=False, **kwargs)))
            truth = clean[..., :pilot.shape[-2], :pilot.shape[-1]]
            for noise in (0, *NOISES):
                observed = as_8bit(y + noise / 255 * torch.randn(y.shape, generator=noise_rng)) if noise else y
                if task == "deblur":
                    kernel = gaussian_kernel(kwargs["blur_sigma"])
                    estimate = local_wiener.deblur(observed, kernel, pilot, 1 / 255)
                    seen = observed
                    fit = lambda e, **kw: local_wiener.fit_blurred(observed, kernel, e, 1 / 255, **kw)  # noqa: E731
                    damage = {"blur": kwargs["blur_sigma"]}
                else:
                    op = Downsample(kwargs["scale"])
                    estimate = local_wiener.super_resolve(observed, op, pilot, 1 / 255)
                    seen = observation(observed, None, kwargs["scale"])
                    fit = lambda e, **kw: local_wiener.fit_downscaled(  # noqa: E731
                        observed, op, e, 1 / 255, **{k: v for k, v in kw.items() if k != "rounds"})
                    damage = {"scale": kwargs["scale"]}
                r = refined(refiners[task], estimate, seen, torch.ones_like(estimate[:, :1]), condition(task, damage))
                if noise:
                    add(f"{setting}, noise {noise}/255", "refined", psnr(r, truth))
                    add(f"{setting}, noise {noise}/255", "shipped fit", psnr(fit(r), truth))
                    with mock.patch.object(local_wiener, "NOISE_GAIN", 0.0):
                        add(f"{setting}, noise {noise}/255", "fit, noise fixed", psnr(fit(r), truth))
                    continue
                add(setting, "refined", psnr(r, truth))
                add(setting, "shipped fit", psnr(fit(r), truth))
                if task == "deblur":
                    add(setting, "0.19: one round of 8 passes", psnr(fit(r, passes=(2, 1, 8), rounds=1), truth))
                with mock.patch.object(local_wiener, "NOISE_GAIN", 0.0):
                    for spread in SPREADS:
                        add(setting, f"{spread}/255, no passes", psnr(fit(r, spread=spread / 255, rounds=0), truth))
    columns = ["refined", *(f"{s}/255, no passes" for s in SPREADS), "fit, noise fixed", "0.19: one round of 8 passes",
               "shipped fit"]
    print(f"\nmean PSNR (dB) over {args.photos} training crops of 512x384\n")
    print("| setting | " + " | ".join(columns) + " |\n|---|" + "---:|" * len(columns))
    for setting, row in scores.items():
        print(f"| {setting} | " + " | ".join(f"{np.mean(row[c]):.2f}" if c in row else "-" for c in columns) + " |")


if __name__ == "__main__":
    main()
