"""Fit the local Wiener step of denoising (`restore.local_wiener`: TAU and ITERATIONS) on
training photos, so the validation benchmark stays a held-out measurement.

    python benchmarks/fit_local_wiener.py ../shared/corpus/train [--photos 8] [--crop 512]

Takes `--photos` photos spread over the folder, centre-cropped, adds noise of std 15/25/50
(seeded), denoises them by latent MAP with the local step switched off (the pilot), then runs
the step for every TAU and iteration count and prints the mean PSNR per setting.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from tqdm import tqdm

from vqpress import restore
from vqpress.codec.imageio import image_paths, open_image, to_rgb8
from vqpress.measure.metrics import psnr
from vqpress.nets.device import to_uint8
from vqpress.restore import local_wiener

SIGMAS = (15, 25, 50)
TAUS = (6, 8, 10, 12, 15, 20, 30)
MAX_ITERATIONS = 8


def tensor(rgb: np.ndarray) -> torch.Tensor:
    return torch.tensor(rgb / 255, dtype=torch.float32).permute(2, 0, 1)[None]


def as8(x: torch.Tensor) -> np.ndarray:
    return to_uint8(x[0])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    parser.add_argument("--photos", type=int, default=8)
    parser.add_argument("--crop", type=int, default=512)
    args = parser.parse_args()
    paths = image_paths(args.folder)
    paths = [paths[i] for i in np.linspace(0, len(paths) - 1, args.photos).round().astype(int)]
    scores = {}  # (sigma, tau, iterations) -> PSNRs
    # restore.restore without its last step gives latent MAP alone: the pilot (rounded to
    # 8 bits, where restore.restore's own pilot is float: a difference far below TAU)
    for k, path in enumerate(tqdm(paths, desc="photos")):
        rgb = to_rgb8(open_image(path))[0]
        h, w = rgb.shape[:2]
        c = min(args.crop, h, w)
        rgb = rgb[(h - c) // 2:(h - c) // 2 + c, (w - c) // 2:(w - c) // 2 + c]
        for sigma in SIGMAS:
            noise = np.random.default_rng(1000 + k).normal(0, sigma, rgb.shape)
            noisy = np.clip(np.round(rgb + noise), 0, 255).astype(np.uint8)
            pilot = np.asarray(restore.restore(noisy, "denoise", sigma=sigma, device="cpu", last_step=False))
            scores.setdefault((sigma, None, 0), []).append(psnr(rgb, pilot))
            for tau in TAUS:
                x = tensor(pilot)
                for n in range(1, MAX_ITERATIONS + 1):
                    x = local_wiener.denoise(tensor(noisy), x, sigma / 255, iterations=1, tau=tau / 255)
                    scores.setdefault((sigma, tau, n), []).append(psnr(rgb, as8(x)))
    print(f"mean PSNR (dB) over {len(paths)} training crops of {args.crop} px\n")
    print("| TAU (8-bit) | iterations | " + " | ".join(f"sigma {s}" for s in SIGMAS) + " | mean |")
    print("|---|---|" + "---:|" * (len(SIGMAS) + 1))
    settings = sorted({(t, n) for _, t, n in scores}, key=lambda tn: (tn[0] or 0, tn[1]))
    best = max(settings, key=lambda tn: np.mean([np.mean(scores[(s, *tn)]) for s in SIGMAS]))
    for tau, n in settings:
        means = [np.mean(scores[s, tau, n]) for s in SIGMAS]
        mark = " (best)" if (tau, n) == best else ""
        print(f"| {tau or 'pilot'} | {n}{mark} | " + " | ".join(f"{m:.2f}" for m in means)
              + f" | {np.mean(means):.2f} |")


if __name__ == "__main__":
    main()
