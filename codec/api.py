"""The codec: image -> symbol maps -> range-coded .vqp bytes, and back."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from PIL import Image
from tqdm import tqdm

from vqpress import weights

from . import container, detail, limits, payload
from .blocks import DOWNSCALE
from .errors import VQPressError
from .imageio import MODE_GRAY, MODE_GRAY16, as_image, from_rgb8, to_rgb8
from .model import DEFAULT_MODEL, load_codec_file
from .postfilter import OnnxPostFilter
from .transforms import OnnxTransforms, TorchTransforms

PROGRESS_DELAY = 1.0  # seconds before a progress bar shows: quick runs stay quiet


@dataclass
class CompressResult:
    data: bytes
    cross_entropy_bits: float  # what the prior says the symbols cost; the payload is close to it


class Codec:
    """A loaded model. `compress` and `decompress` are safe to call repeatedly."""

    def __init__(self, model_id: str = DEFAULT_MODEL, device: str = "auto", threads: int = 0,
                 path=None):
        """device: "auto" or "cpu" runs the transforms with ONNX Runtime on the CPU (no torch
        import), "cuda" with torch on a CUDA GPU. threads: ONNX Runtime's (0: its default, the
        physical cores). path: a codec file that is not shipped (training's work in progress);
        its model id is its file name's stem."""
        if device not in ("auto", "cpu", "cuda"):
            raise VQPressError(f"unknown device {device!r} (use auto, cpu or cuda)")
        if path is None:
            path, digest = weights.verified(model_id)
        else:
            path, digest = Path(path), weights.sha256_file(path)
            model_id = path.stem
        self.model_id, self.weights_hash = model_id, bytes.fromhex(digest)[:4]
        self.model = load_codec_file(path)
        self.prior, self.ladder = self.model.prior, self.model.ladder
        config, state = self.model.vqvae_config, self.model.vqvae_state
        self.transforms = (TorchTransforms(config, state, device) if device == "cuda"
                           else OnnxTransforms(config, state, threads))
        self.postfilter = None
        if self.model.postfilter_config is not None:
            self.postfilter = OnnxPostFilter(self.model.postfilter_config, self.model.postfilter_state, threads)

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

    # -- the layers, for tests and tools ----------------------------------------------------------
    def symbols(self, rgb, stages: int, bar=None):
        return self.transforms.symbols(rgb, stages, bar)

    def pixels(self, indices, height: int, width: int, bar=None):
        return self.transforms.pixels(indices, height, width, bar)

    def encode_payload(self, quality: int, indices, levels=None, bar=None) -> tuple[bytes, float]:
        return payload.encode(self.model, quality, indices, levels, bar)

    def decode_payload(self, quality: int, data: bytes, height: int, width: int, bar=None):
        return payload.decode(self.model, quality, data, height, width, bar)

    def reconstruct(self, quality: int, indices, levels, height: int, width: int, bar=None):
        """(H, W, 3) uint8 image: the VQ base plus the detail layer."""
        base = self.pixels(indices, height, width, bar)
        rung = self.ladder[quality - 1]
        return base if levels is None else detail.add_detail(base, levels, rung.step, rung.offset)

    # -- bytes ------------------------------------------------------------------------------------
    def compress_detailed(self, image, quality: int, progress: bool = False) -> CompressResult:
        """image: a PIL image, an array (HxW or HxWx3/4; uint8, uint16, or float in 0..1) or a
        path. EXIF orientation is applied. progress: a bar on stderr if it takes over a second."""
        quality = self.check_quality(quality)
        rgb, mode = to_rgb8(as_image(image))
        h, w = rgb.shape[:2]
        limits.check_size(w, h)
        rung = self.ladder[quality - 1]
        has_detail = rung.step is not None
        with progress_bar(progress, "compress", h, w, rung.stages + 1 + 4 * has_detail) as bar:
            indices = self.symbols(rgb, rung.stages, bar)
            levels = None
            if has_detail:
                base = self.pixels(indices, h, w, bar)
                levels = detail.quantise(detail.residual_coefficients(rgb, base), rung.step)
                if mode in (MODE_GRAY, MODE_GRAY16):  # decoded as gray: the colour differences are not kept
                    levels[:, :, 1:] = 0
            data, bits = self.encode_payload(quality, indices, levels, bar)
        header = container.Header(self.model_id, self.weights_hash, w, h, mode, quality)
        return CompressResult(container.pack(header, data), bits)

    def compress(self, image, quality: int, progress: bool = False) -> bytes:
        return self.compress_detailed(image, quality, progress).data

    def decompress(self, data: bytes, progress: bool = False) -> Image.Image:
        return self.decode(*container.unpack(data), progress=progress)

    def decode(self, header: container.Header, data: bytes, progress: bool = False) -> Image.Image:
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
        passes = rung.stages + 1 + 3 * (rung.step is not None) + (self.postfilter is not None)
        with progress_bar(progress, "decompress", h, w, passes) as bar:
            indices, levels = self.decode_payload(header.quality, data, h, w, bar)
            rgb = self.reconstruct(header.quality, indices, levels, h, w, bar)
            if self.postfilter is not None:
                rgb = self.postfilter(rgb, header.quality, bar)
        return from_rgb8(rgb, header.mode)


def progress_bar(progress: bool, desc: str, height: int, width: int, passes: int) -> tqdm:
    """A progress bar in 8x8 blocks, `passes` over the image (transforms, each VQ stage and
    each colour channel of the detail layer count one); shown only after PROGRESS_DELAY."""
    blocks = -(-height // DOWNSCALE) * -(-width // DOWNSCALE)
    return tqdm(total=blocks * passes, desc=desc, unit="block", unit_scale=True, delay=PROGRESS_DELAY,
                disable=not progress, leave=False)


@lru_cache(maxsize=4)
def load(model_id: str = DEFAULT_MODEL, device: str = "auto", threads: int = 0) -> Codec:
    """A cached Codec."""
    return Codec(model_id, device, threads)


def compress(image, quality: int = 5, device: str = "auto") -> bytes:
    """Compress a PIL image, an array (HxW or HxWx3, uint8) or an image file's path to .vqp bytes."""
    return load(device=device).compress(image, quality)


def decompress(data: bytes, device: str = "auto", progress: bool = False) -> Image.Image:
    """Decode .vqp bytes to a PIL image (grayscale sources come back grayscale), with the
    shipped model the file names, so files made by earlier weights still decode."""
    header, data_ = container.unpack(data)
    if not weights.is_shipped(header.model_id):
        raise VQPressError(f"file was made with model {header.model_id}, "
                           "which this vqpress does not ship")
    return load(header.model_id, device).decode(header, data_, progress)
