"""The codec: image -> symbol maps -> range-coded .vqp bytes, and back."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from . import container, detail, limits
from .entropy import CorruptStream, PayloadDecoder, decode_symbols, encode_symbols, new_encoder
from .errors import VQPressError
from .imageio import MODE_GRAY, MODE_GRAY16, as_image, from_rgb8, to_rgb8
from .vqvae import DOWNSCALE
from .zoo import DEFAULT_MODEL, load_codec_file, model_is_shipped, weights_file

PROGRESS_DELAY = 1.0  # seconds before a progress bar shows: quick runs stay quiet
TILE = 128  # symbols per tile side for the transforms (1024 px): bounds memory on big photos
HALO = 8  # symbols of overlap on each side of a tile, cropped away after the transform


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise VQPressError("--device cuda asked for, but torch sees no CUDA GPU")
    if device not in ("cpu", "cuda"):
        raise VQPressError(f"unknown device {device!r} (use auto, cpu or cuda)")
    return torch.device(device)


@dataclass
class CompressResult:
    data: bytes
    cross_entropy_bits: float  # what the prior says the symbols cost; the payload is close to it


def _tiles(gh: int, gw: int):
    """Tiles of a gh x gw symbol grid: (core, halo) pairs of (y0, y1, x0, x1) boxes, the halo
    box being the core grown by HALO symbols on each side (clipped to the grid)."""
    for y0 in range(0, gh, TILE):
        for x0 in range(0, gw, TILE):
            y1, x1 = min(y0 + TILE, gh), min(x0 + TILE, gw)
            yield (y0, y1, x0, x1), (max(0, y0 - HALO), min(gh, y1 + HALO),
                                     max(0, x0 - HALO), min(gw, x1 + HALO))


class Codec:
    """A loaded model. `compress` and `decompress` are safe to call repeatedly."""

    def __init__(self, model_id: str = DEFAULT_MODEL, device: str = "auto"):
        path, digest = weights_file(model_id)
        self.model_id, self.weights_hash = model_id, bytes.fromhex(digest)[:4]
        self.device = resolve_device(device)
        self.model = load_codec_file(path)
        self.vqvae, self.prior, self.ladder = self.model.vqvae, self.model.prior, self.model.ladder
        self.vqvae.to(self.device)

    @property
    def qualities(self) -> range:
        return range(1, len(self.ladder) + 1)

    def check_quality(self, quality) -> int:
        """The quality as an int; a whole float or a numeric string is taken, anything else is
        a VQPressError."""
        try:
            number = float(quality) if not isinstance(quality, bool) else math.nan
        except (TypeError, ValueError):
            number = math.nan
        if not number.is_integer() or int(number) not in self.qualities:
            raise VQPressError(f"quality must be an integer from {self.qualities[0]} to "
                               f"{self.qualities[-1]}, got {quality!r}")
        return int(number)

    # -- transforms, tiled with overlap so memory stays bounded ---------------------------------
    @torch.no_grad()
    def symbols(self, rgb: np.ndarray, stages: int, bar=None) -> np.ndarray:
        """Symbol maps (stages, ceil(H/8), ceil(W/8)) of an (H, W, 3) uint8 image."""
        h, w = rgb.shape[:2]
        gh, gw = -(-h // DOWNSCALE), -(-w // DOWNSCALE)
        padded = np.pad(rgb, ((0, gh * DOWNSCALE - h), (0, gw * DOWNSCALE - w), (0, 0)), mode="edge")
        out = np.empty((stages, gh, gw), dtype=np.int64)
        s = DOWNSCALE
        for (y0, y1, x0, x1), (ya, yb, xa, xb) in _tiles(gh, gw):
            tile = np.ascontiguousarray(padded[ya * s:yb * s, xa * s:xb * s])
            x = torch.from_numpy(tile).to(self.device).permute(2, 0, 1)[None].float() / 255
            idx = self.vqvae.encode(x, stages)[0].cpu().numpy()
            out[:, y0:y1, x0:x1] = idx[:, y0 - ya:y1 - ya, x0 - xa:x1 - xa]
            _advance(bar, (y1 - y0) * (x1 - x0))
        return out

    @torch.no_grad()
    def pixels(self, indices: np.ndarray, height: int, width: int, bar=None) -> np.ndarray:
        """(H, W, 3) uint8 image of symbol maps (stages, gh, gw)."""
        _, gh, gw = indices.shape
        s = DOWNSCALE
        out = np.empty((gh * s, gw * s, 3), dtype=np.uint8)
        for (y0, y1, x0, x1), (ya, yb, xa, xb) in _tiles(gh, gw):
            idx = torch.from_numpy(indices[:, ya:yb, xa:xb])[None].to(self.device)
            y = self.vqvae.decode(idx)[0].clamp(0, 1).mul(255).round().byte()
            y = y.permute(1, 2, 0).cpu().numpy()
            out[y0 * s:y1 * s, x0 * s:x1 * s] = y[(y0 - ya) * s:(y1 - ya) * s, (x0 - xa) * s:(x1 - xa) * s]
            _advance(bar, (y1 - y0) * (x1 - x0))
        return out[:height, :width]

    # -- payloads -----------------------------------------------------------------------------
    def encode_payload(self, quality: int, indices: np.ndarray,
                       levels: np.ndarray | None = None, bar=None) -> tuple[bytes, float]:
        """Range-code the symbol maps and, where the quality has one, the detail layer's levels.
        Returns (payload, the models' cross-entropy in bits)."""
        encoder = new_encoder()
        bits = encode_symbols(self.prior, indices, encoder, bar)
        if self.ladder[quality - 1].step is not None:
            bits += detail.encode(encoder, levels, self.model.detail_table(quality), bar)
        return encoder.get_compressed().astype("<u4").tobytes(), bits

    def decode_payload(self, quality: int, payload: bytes, height: int,
                       width: int, bar=None) -> tuple[np.ndarray, np.ndarray | None]:
        """Inverse of encode_payload: (symbol maps, detail levels or None)."""
        rung = self.ladder[quality - 1]
        decoder = PayloadDecoder(payload)
        try:
            indices = decode_symbols(self.prior, decoder, rung.stages, -(-height // DOWNSCALE),
                                     -(-width // DOWNSCALE), bar)
            levels = None if rung.step is None else detail.decode(
                decoder, self.model.detail_table(quality), -(-height // detail.BLOCK),
                -(-width // detail.BLOCK), bar)
        except VQPressError:
            raise
        except (ValueError, RuntimeError, AssertionError) as e:  # how constriction reports a bad stream
            raise CorruptStream(f"corrupted payload ({e})") from None
        return indices, levels

    def reconstruct(self, quality: int, indices: np.ndarray, levels: np.ndarray | None,
                    height: int, width: int, bar=None) -> np.ndarray:
        """(H, W, 3) uint8 image: the VQ base plus the detail layer."""
        base = self.pixels(indices, height, width, bar)
        if levels is None:
            return base
        return detail.add_detail(base, levels, self.ladder[quality - 1].step)

    # -- bytes --------------------------------------------------------------------------------
    def compress_detailed(self, image, quality: int, progress: bool = False) -> CompressResult:
        """image: a PIL image, an array (HxW or HxWx3/4; uint8, uint16, or float in 0..1) or a
        path. EXIF orientation is applied. progress: a bar on stderr if it takes over a second."""
        quality = self.check_quality(quality)
        rgb, mode = to_rgb8(as_image(image))
        h, w = rgb.shape[:2]
        limits.check_size(w, h)
        rung = self.ladder[quality - 1]
        has_detail = rung.step is not None
        with _bar(progress, "compress", h, w, rung.stages + 1 + 4 * has_detail) as bar:
            indices = self.symbols(rgb, rung.stages, bar)
            levels = None
            if has_detail:
                base = self.pixels(indices, h, w, bar)
                levels = detail.quantise(detail.residual_coefficients(rgb, base), rung.step)
                if mode in (MODE_GRAY, MODE_GRAY16):  # decoded as gray: the colour differences are not kept
                    levels[:, :, 1:] = 0
            payload, bits = self.encode_payload(quality, indices, levels, bar)
        header = container.Header(self.model_id, self.weights_hash, w, h, mode, quality)
        return CompressResult(container.pack(header, payload), bits)

    def compress(self, image, quality: int, progress: bool = False) -> bytes:
        return self.compress_detailed(image, quality, progress).data

    def decompress(self, data: bytes, progress: bool = False) -> Image.Image:
        return self.decode(*container.unpack(data), progress=progress)

    def decode(self, header: container.Header, payload: bytes, progress: bool = False) -> Image.Image:
        """The image of an unpacked file."""
        if header.model_id != self.model_id or header.weights_hash != self.weights_hash:
            raise VQPressError(
                f"file was made with model {header.model_id} (weights {header.weights_hash.hex()}), "
                f"this vqpress has {self.model_id} (weights {self.weights_hash.hex()})")
        if header.quality not in self.qualities:
            raise container.FormatError(f"corrupted .vqp file (quality {header.quality} is not "
                                        f"one of {self.model_id}'s)")
        h, w = header.height, header.width
        limits.check_size(w, h, "the file's image")
        rung = self.ladder[header.quality - 1]
        with _bar(progress, "decompress", h, w, rung.stages + 1 + 3 * (rung.step is not None)) as bar:
            indices, levels = self.decode_payload(header.quality, payload, h, w, bar)
            rgb = self.reconstruct(header.quality, indices, levels, h, w, bar)
        return from_rgb8(rgb, header.mode)


@lru_cache(maxsize=4)
def load(model_id: str = DEFAULT_MODEL, device: str = "auto") -> Codec:
    """A cached Codec."""
    return Codec(model_id, device)


def _bar(progress: bool, desc: str, height: int, width: int, passes: int) -> tqdm:
    """A progress bar in 8x8 blocks, `passes` over the image (transforms, each VQ stage and
    each colour channel of the detail layer count one); shown only after a second."""
    blocks = -(-height // DOWNSCALE) * -(-width // DOWNSCALE)
    return tqdm(total=blocks * passes, desc=desc, unit="block", unit_scale=True, delay=PROGRESS_DELAY,
                disable=not progress, leave=False)


def _advance(bar, n: int) -> None:
    if bar is not None:
        bar.update(n)


def compress(image, quality: int = 5, device: str = "auto") -> bytes:
    """Compress a PIL image, an array (HxW or HxWx3, uint8) or an image file's path to .vqp bytes."""
    return load(device=device).compress(image, quality)


def decompress(data: bytes, device: str = "auto", progress: bool = False) -> Image.Image:
    """Decode .vqp bytes to a PIL image (grayscale sources come back grayscale), with the
    shipped model the file names, so files made by earlier weights still decode."""
    header, payload = container.unpack(data)
    if not model_is_shipped(header.model_id):
        raise VQPressError(f"file was made with model {header.model_id}, "
                           "which this vqpress does not ship")
    return load(header.model_id, device).decode(header, payload, progress)
