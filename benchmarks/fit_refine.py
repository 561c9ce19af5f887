"""Choose how many conjugate-gradient iterations latent MAP's pixel step runs
(`restore.latent_map.REFINE_ITERATIONS`) and the kriging first guess of inpainting runs
(`restore.damage.KRIGING_ITERATIONS`), on training photos. Each tile's canvas is a 1024x1024
FFT per half iteration, so on a 4000x3000 inpainting they are a third of the time.

    python benchmarks/fit_refine.py ../shared/corpus/train [--photos 4] [--iterations 25/25,12/25,12/12]

Crops `--photos` training photos as fit_plug_and_play does (512x384), damages them as
bench_restore does (thin strokes, 128 box and 50% random masks; a Gaussian blur of std 2;
bicubic downscaling by 4; noise of std 25), restores them with the whole pipeline (refiner
included) at each pair of counts (latent MAP / kriging) and prints the mean PSNR per setting
(inpainting: of the missing pixels) and the mean seconds per image.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from vqpress import restore
from vqpress.nets.device import to_uint8
from vqpress.restore import damage, latent_map
from vqpress.restore.operators import gaussian_blur

sys.path.insert(0, str(Path(__file__).parent))
from bench_restore import masks  # noqa: E402
from fit_plug_and_play import CROP, INPAINT_SETTINGS, crops, psnr, tensor  # noqa: E402


def cases(rgb: np.ndarray, seed: int):
    """(setting, restore function, missing mask or None) of one crop."""
    drawn = masks(rgb.shape[:2], seed)
    for name in INPAINT_SETTINGS:
        yield name, lambda m=drawn[name]: restore.inpaint(rgb, m, device="cpu"), drawn[name]
    blurred = to_uint8(damage.as_8bit(gaussian_blur(2.0)(tensor(rgb)))[0])
    yield "deblur", lambda: restore.restore(blurred, "deblur", device="cpu"), None
    small = Image.fromarray(rgb).resize((CROP[1] // 4, CROP[0] // 4), Image.BICUBIC)
    yield "sr x4", lambda: restore.restore(small, "sr", scale=4, device="cpu"), None
    noisy = np.clip(rgb + np.random.default_rng(seed).normal(0, 25, rgb.shape), 0, 255).round().astype(np.uint8)
    yield "denoise 25", lambda: restore.restore(noisy, "denoise", sigma=25, device="cpu"), None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    parser.add_argument("--photos", type=int, default=4)
    parser.add_argument("--iterations", default="25/25,12/25,12/12", help="latent MAP / kriging counts")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    photos = crops(args.folder, args.photos)
    settings = [name for name, _, _ in cases(photos[0], 0)]
    print("| iterations (latent MAP / kriging) | " + " | ".join(settings) + " | seconds per image |")
    print("|---|" + "---:|" * (len(settings) + 1))
    for pair in args.iterations.split(","):
        latent_map.REFINE_ITERATIONS, damage.KRIGING_ITERATIONS = (int(n) for n in pair.split("/"))
        scores, seconds = {}, []
        for k, rgb in enumerate(photos):
            for name, run, missing in cases(rgb, k):
                start = time.perf_counter()
                out = tensor(np.asarray(run()))
                seconds.append(time.perf_counter() - start)
                where = None if missing is None else torch.from_numpy(missing)[None]
                scores.setdefault(name, []).append(psnr(out, tensor(rgb), where))
        print(f"| {pair} | " + " | ".join(f"{np.mean(scores[s]):.3f}" for s in settings)
              + f" | {np.mean(seconds):.2f} |", flush=True)


if __name__ == "__main__":
    main()
