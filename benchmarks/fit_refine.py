"""Choose how many conjugate-gradient iterations latent MAP's pixel step runs
(`restore.latent_map.REFINE_ITERATIONS`) on training photos, by inpainting, where that step
costs most (each tile's canvas is a 1024x1024 FFT per half iteration).

    python benchmarks/fit_refine.py ../shared/corpus/train [--photos 4] [--iterations 50,25,12]

Crops `--photos` training photos as fit_plug_and_play does (512x384), damages them with
bench_restore's thin strokes, 128 box and 50% random masks, inpaints them with the whole
pipeline (plug-and-play step included) at each iteration count and prints the mean PSNR of the
missing pixels and the mean seconds per image.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from vqpress import restore
from vqpress.restore import latent_map

sys.path.insert(0, str(Path(__file__).parent))
from bench_restore import masks  # noqa: E402
from fit_plug_and_play import INPAINT_SETTINGS, crops, psnr, tensor  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    parser.add_argument("--photos", type=int, default=4)
    parser.add_argument("--iterations", default="50,25,12")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cases = [(rgb, masks(rgb.shape[:2], k)[name]) for k, rgb in enumerate(crops(args.folder, args.photos))
             for name in INPAINT_SETTINGS]
    print("| iterations | PSNR of the missing pixels (dB) | seconds per image |\n|---:|---:|---:|")
    for iterations in (int(n) for n in args.iterations.split(",")):
        latent_map.REFINE_ITERATIONS = iterations
        scores, start = [], time.perf_counter()
        for rgb, missing in cases:
            out = restore.inpaint(rgb, missing, device="cpu")
            scores.append(psnr(tensor(np.asarray(out)), tensor(rgb), torch.from_numpy(missing)[None]))
        print(f"| {iterations} | {np.mean(scores):.3f} | {(time.perf_counter() - start) / len(cases):.2f} |", flush=True)


if __name__ == "__main__":
    main()
