"""Training data: every image of a folder held in memory, served as random crops."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from vqpress.codec.blocks import DOWNSCALE
from vqpress.codec.imageio import ImageError, image_paths, open_image, to_rgb8


def evenly_spread(paths: list[Path], limit: int | None) -> list[Path]:
    """`limit` of the paths, evenly spaced, so that every source of a sorted corpus is in."""
    if limit is None or limit >= len(paths):
        return paths
    return [paths[i] for i in np.linspace(0, len(paths) - 1, limit).round().astype(int)]


def load_folder(folder: str | Path, min_side: int = 0) -> list[np.ndarray]:
    images = []
    for p in tqdm(image_paths(folder), desc=f"loading {folder}", leave=False):
        rgb, _ = to_rgb8(open_image(p))
        if min(rgb.shape[:2]) >= min_side:
            images.append(rgb)
    return images


class RandomCrops:
    """Batches of random crops (with random horizontal flips) as float tensors in [0, 1]."""

    def __init__(self, images: list[np.ndarray], crop: int, seed: int = 0):
        from .loop import world

        rank, size = world()  # data-parallel runs: each rank draws from its own shard
        self.images = [im for im in images[rank::size] if min(im.shape[:2]) >= crop]
        seed += 1_000_003 * rank
        if not self.images:
            raise ImageError(f"no training image is at least {crop}x{crop}")
        # Sample images in proportion to their area, so large photos are not under-used.
        areas = np.array([im.shape[0] * im.shape[1] for im in self.images], dtype=np.float64)
        self.weights = areas / areas.sum()
        self.crop = crop
        self.rng = np.random.default_rng(seed)

    def batch(self, size: int) -> torch.Tensor:
        out = np.empty((size, self.crop, self.crop, 3), dtype=np.uint8)
        for k, i in enumerate(self.rng.choice(len(self.images), size, p=self.weights)):
            im = self.images[i]
            y = self.rng.integers(0, im.shape[0] - self.crop + 1)
            x = self.rng.integers(0, im.shape[1] - self.crop + 1)
            patch = im[y:y + self.crop, x:x + self.crop]
            out[k] = patch[:, ::-1] if self.rng.random() < 0.5 else patch
        return torch.from_numpy(out).permute(0, 3, 1, 2).float().div_(255)


def center_crops(images: list[np.ndarray], size: int) -> list[torch.Tensor]:
    """The centre square of each image, at most `size` and a multiple of 8 a side, as (3, s, s)
    uint8 tensors."""
    crops = []
    for im in images:
        h, w = im.shape[:2]
        s = min(size, h, w) // DOWNSCALE * DOWNSCALE
        y, x = (h - s) // 2, (w - s) // 2
        crops.append(torch.from_numpy(np.ascontiguousarray(im[y:y + s, x:x + s])).permute(2, 0, 1))
    return crops
