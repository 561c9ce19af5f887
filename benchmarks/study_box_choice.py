"""Can a band of known pixels tell, per image, whether latent MAP's inpainting of the 128-px box
or the ablation's (scikit-image's biharmonic fill, then the same last step) is the better one?

    python benchmarks/study_box_choice.py evalsets/packages [--limit N]

For each image: both outputs for the benchmark's box (`bench_restore.masks`), then both again on
a crop around the box with a 16-px band of known pixels around it hidden too; the mean squared
error of each on that band chooses. Prints the mean PSNR of latent MAP, the ablation, the choice,
an average of the two weighted by the inverse band errors, and the best of the two per image
(an oracle). Measured in 0.23 (not shipped; docs/restore-history.md, "Status of 0.23"): packages 29.30 / 27.76 /
29.27 / 29.09 / 29.69 dB, the first 24 training photos 32.04 / 30.67 / 31.61 / 31.93 / 32.44,
the validation photos 31.33 / 30.79 / 30.55 / 31.44 / 32.08.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage
from skimage.restoration import inpaint_biharmonic
from tqdm import tqdm

from vqpress import restore
from vqpress.codec.imageio import image_paths, open_image, to_rgb8
from vqpress.measure.metrics import psnr
from vqpress.restore import local_wiener

sys.path.insert(0, str(Path(__file__).parent))
from bench_restore import as8, masks, tensor  # noqa: E402

BAND = 16  # px of known pixels around the hole, hidden to choose
CONTEXT = 64  # px of the image around them that the choice's reruns see


def ablation(damaged: np.ndarray, missing: np.ndarray) -> np.ndarray:
    pilot = tensor(inpaint_biharmonic(damaged, missing, channel_axis=-1))
    known = torch.from_numpy(~missing)[None, None].float()
    return as8(local_wiener.inpaint(tensor(damaged), known, pilot)[0].permute(1, 2, 0).numpy())


def latent_map(damaged: np.ndarray, missing: np.ndarray) -> np.ndarray:
    return np.asarray(restore.inpaint(damaged, missing, device="cpu"))


def band_errors(rgb: np.ndarray, missing: np.ndarray) -> tuple[float, float]:
    """Mean squared errors of latent MAP and of the ablation on the hidden band."""
    grown = ndimage.binary_dilation(missing, iterations=BAND)
    ys, xs = np.nonzero(grown)
    y0, x0 = max(0, ys.min() - CONTEXT), max(0, xs.min() - CONTEXT)
    y1, x1 = min(rgb.shape[0], ys.max() + 1 + CONTEXT), min(rgb.shape[1], xs.max() + 1 + CONTEXT)
    crop, hidden = rgb[y0:y1, x0:x1], grown[y0:y1, x0:x1]
    band = hidden & ~missing[y0:y1, x0:x1]
    damaged = np.where(hidden[..., None], 255, crop).astype(np.uint8)
    return tuple(float(np.mean((method(damaged, hidden)[band].astype(float) - crop[band]) ** 2))
                 for method in (latent_map, ablation))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    parser.add_argument("--limit", type=int, default=0, help="only the first N images")
    args = parser.parse_args()
    torch.set_num_threads(1)
    scores = {k: [] for k in ("latent MAP", "ablation", "band's choice", "band-weighted average", "best of the two")}
    for k, path in enumerate(tqdm(image_paths(args.folder)[: args.limit or None], desc="images")):
        rgb = to_rgb8(open_image(path))[0]
        missing = masks(rgb.shape[:2], k)["box 128"]
        damaged = np.where(missing[..., None], 255, rgb).astype(np.uint8)
        ours, theirs = latent_map(damaged, missing), ablation(damaged, missing)
        e_ours, e_theirs = band_errors(rgb, missing)
        w = e_theirs / (e_ours + e_theirs)  # latent MAP's weight: the other's share of the error
        mixed = as8((w * ours.astype(float) + (1 - w) * theirs) / 255)
        for key, out in zip(scores, (ours, theirs, ours if e_ours <= e_theirs else theirs, mixed)):
            scores[key].append(psnr(rgb, out))
        scores["best of the two"].append(max(scores["latent MAP"][-1], scores["ablation"][-1]))
    for key, values in scores.items():
        print(f"{key}: {np.mean(values):.2f} dB")


if __name__ == "__main__":
    main()
