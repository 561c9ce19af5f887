"""The VQ-VAE's transforms at run time: image -> symbol maps and symbol maps -> image, tiled
with overlap so memory stays bounded on big photos.

The symbols are whatever this machine's float arithmetic picks: the encoder writes them down,
so decoding never depends on it. The decoder's pixels may differ by a rounding step between
machines (the detail layer's contexts never read them).
"""

from __future__ import annotations

import numpy as np

from .blocks import DOWNSCALE

TILE_SYMBOLS = 128  # symbols per tile side (1024 px)
HALO_SYMBOLS = 8  # symbols of overlap on each side of a tile, cropped away after the transform


def tiles(gh: int, gw: int):
    """Tiles of a gh x gw symbol grid: (core, halo) pairs of (y0, y1, x0, x1) boxes, the halo
    box being the core grown by HALO_SYMBOLS on each side (clipped to the grid)."""
    tile = TILE_SYMBOLS
    for y0 in range(0, gh, tile):
        for x0 in range(0, gw, tile):
            y1, x1 = min(y0 + tile, gh), min(x0 + tile, gw)
            yield (y0, y1, x0, x1), (max(0, y0 - HALO_SYMBOLS), min(gh, y1 + HALO_SYMBOLS),
                                     max(0, x0 - HALO_SYMBOLS), min(gw, x1 + HALO_SYMBOLS))


def grid(height: int, width: int) -> tuple[int, int]:
    """The symbol map's size for an image."""
    return -(-height // DOWNSCALE), -(-width // DOWNSCALE)


class TorchTransforms:
    """The transforms on torch (CPU or a CUDA GPU), from a codec file's VQ-VAE tensors."""

    def __init__(self, config: dict, state: dict[str, np.ndarray], device: str = "auto"):
        import torch

        from vqpress.nets.device import resolve_device
        from vqpress.nets.vqvae import VQVAE, VQVAEConfig

        self.torch = torch
        self.device = resolve_device(device)
        self.vqvae = VQVAE(VQVAEConfig(**config))
        self.vqvae.load_state_dict({k: torch.from_numpy(v.astype(np.float32) if v.dtype == np.float16 else v)
                                    for k, v in state.items()})
        self.vqvae.eval().to(self.device)

    def symbols(self, rgb: np.ndarray, stages: int, bar=None) -> np.ndarray:
        """Symbol maps (stages, ceil(H/8), ceil(W/8)) of an (H, W, 3) uint8 image."""
        h, w = rgb.shape[:2]
        gh, gw = grid(h, w)
        padded = np.pad(rgb, ((0, gh * DOWNSCALE - h), (0, gw * DOWNSCALE - w), (0, 0)), mode="edge")
        out = np.empty((stages, gh, gw), dtype=np.int64)
        s = DOWNSCALE
        for (y0, y1, x0, x1), (ya, yb, xa, xb) in tiles(gh, gw):
            tile = np.ascontiguousarray(padded[ya * s:yb * s, xa * s:xb * s])
            x = self.torch.from_numpy(tile).to(self.device).permute(2, 0, 1)[None].float() / 255
            with self.torch.no_grad():
                idx = self.vqvae.encode(x, stages)[0].cpu().numpy()
            out[:, y0:y1, x0:x1] = idx[:, y0 - ya:y1 - ya, x0 - xa:x1 - xa]
            advance(bar, (y1 - y0) * (x1 - x0))
        return out

    def pixels(self, indices: np.ndarray, height: int, width: int, bar=None) -> np.ndarray:
        """(H, W, 3) uint8 image of symbol maps (stages, gh, gw)."""
        from vqpress.nets.device import to_uint8

        _, gh, gw = indices.shape
        s = DOWNSCALE
        out = np.empty((gh * s, gw * s, 3), dtype=np.uint8)
        for (y0, y1, x0, x1), (ya, yb, xa, xb) in tiles(gh, gw):
            idx = self.torch.from_numpy(indices[:, ya:yb, xa:xb])[None].to(self.device)
            with self.torch.no_grad():
                y = to_uint8(self.vqvae.decode(idx)[0])
            out[y0 * s:y1 * s, x0 * s:x1 * s] = y[(y0 - ya) * s:(y1 - ya) * s, (x0 - xa) * s:(x1 - xa) * s]
            advance(bar, (y1 - y0) * (x1 - x0))
        return out[:height, :width]


def advance(bar, n: int) -> None:
    """Move a progress bar (or nothing) on by n."""
    if bar is not None:
        bar.update(n)
