"""Codecs to measure against, behind one interface: bytes out of an 8-bit RGB array and back.

Classical codecs go through Pillow (libjpeg-turbo, libwebp, libavif, OpenJPEG; JPEG XL through
the optional pillow-jxl-plugin). Learned peers are compressai models loaded from a checkpoint
and run with compressai's own entropy coder, so their sizes are real bitstreams too.
"""

from __future__ import annotations

import io
import math
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, features

from vqpress import weights
from vqpress.codec.errors import VQPressError


@dataclass
class RDCodec:
    name: str
    description: str
    qualities: list  # the default grid, worst to best
    encode: Callable[[np.ndarray, object], bytes]
    decode: Callable[[bytes], np.ndarray]
    levels_only: bool = False  # True: only the default grid's levels exist (learned models)
    quality_range: tuple[float, float, bool] | None = None  # (lowest, highest, whole numbers only)

    def accepts(self, quality) -> bool:
        """Whether `quality` is a setting the codec takes (one of its levels, or in its range)."""
        if self.levels_only:
            return quality in self.qualities
        if self.quality_range is None:
            return True
        lo, hi, whole = self.quality_range
        return math.isfinite(quality) and lo <= quality <= hi and (not whole or float(quality).is_integer())


def _pillow(fmt: str, **fixed) -> tuple[Callable, Callable]:
    def encode(rgb: np.ndarray, quality) -> bytes:
        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, format=fmt, **fixed, **_pillow_quality(fmt, quality))
        return buf.getvalue()

    def decode(data: bytes) -> np.ndarray:
        return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))

    return encode, decode


def _pillow_quality(fmt: str, quality) -> dict:
    if fmt == "JPEG2000":  # quality = compression ratio (rate mode)
        return {"quality_mode": "rates", "quality_layers": [quality]}
    return {"quality": quality}


def jpeg() -> RDCodec:
    return RDCodec("JPEG", f"Pillow JPEG (libjpeg {features.version('jpg')}), default settings (4:2:0)",
                   [2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 15, 20, 30, 40, 50, 60, 70, 80, 90, 95],
                   *_pillow("JPEG"), quality_range=(0, 100, True))


def webp() -> RDCodec:
    return RDCodec("WebP", f"Pillow WebP (libwebp {features.version('webp')}), lossy, method 6 (its best)",
                   [0, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 4, 5, 7, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95],
                   *_pillow("WEBP", method=6), quality_range=(0, 100, False))


def avif() -> RDCodec:
    if not features.check("avif"):
        raise VQPressError("this Pillow has no AVIF support")
    return RDCodec("AVIF", f"Pillow AVIF (libavif {features.version('avif')}), speed 4, 4:2:0",
                   [0, 3, 6, 8, 10, 12, 14, 16, 18, 20, 25, 30, 40, 50, 60, 70, 80, 90],
                   *_pillow("AVIF", speed=4), quality_range=(0, 100, True))


def jpeg2000() -> RDCodec:
    return RDCodec("JPEG 2000", f"Pillow JPEG 2000 (OpenJPEG {features.version('jpg_2000')}), "
                   "rate mode (quality = compression ratio)",
                   [1000, 800, 600, 500, 400, 320, 250, 200, 160, 130, 100, 70, 50, 35, 25, 16, 10],
                   *_pillow("JPEG2000"), quality_range=(1, 1e6, False))


def jxl() -> RDCodec:
    try:
        import pillow_jxl  # noqa: F401  (registers the JXL format with Pillow)
    except ImportError:
        raise VQPressError("JPEG XL needs the optional pillow-jxl-plugin "
                           "(pip install 'vqpress[jxl]')") from None
    return RDCodec("JPEG XL", "pillow-jxl-plugin, lossy",
                   [0, 1, 2, 3, 4, 5, 7, 10, 15, 20, 30, 40, 50, 60, 70, 80, 90], *_pillow("JXL"),
                   quality_range=(0, 100, False))


def vqpress(device: str = "cpu", model_id: str | None = None) -> RDCodec:
    """The default model as "vqpress"; another shipped one (e.g. rvq-dct-v4), or a codec file's
    path (training's work in progress), as "vqpress-<id>"."""
    from vqpress import __version__
    from vqpress.codec import api, detail, modes as block_modes
    from vqpress.codec.ladder import DEFAULT_MODEL

    if model_id is not None and model_id.endswith(".safetensors"):
        model = api.Codec(device=device, path=model_id)
    else:
        model = api.load(model_id or DEFAULT_MODEL, device=device)

    def decode(data: bytes) -> np.ndarray:
        return np.asarray(model.decompress(data).convert("RGB"))

    name = "vqpress" if model_id is None else f"vqpress-{model_id}"
    graph = model.transforms.int8_analysis  # named with its own checksum: a new graph never reuses old rows
    analysis = f"8-bit analysis {weights.checksums()[graph][:8]}" if graph else "float analysis"
    settings = (f"encoder: dead zone {detail.DEADZONE:g}, RDO lambda {api.RDO_LAMBDA:g}, tilt {api.RDO_TILT:g}, "
                f"ECVQ lambda {api.ECVQ_LAMBDA:g}, modes on the table's bits at lambda "
                f"{block_modes.RATE_LAMBDA:g}, {analysis}")
    # the weights' hash too: a retrained model under the same id must not reuse old rows
    return RDCodec(name, f"vqpress {__version__} {model.model_id} (weights {model.weights_hash.hex()}; "
                         f"VQ-VAE + PixelCNN prior; {settings}), .vqp with header",
                   list(model.qualities), lambda rgb, q: model.compress(rgb, q), decode,
                   levels_only=True)


def _load_compressai(arch: str, checkpoint: str):
    import torch
    from compressai.zoo.image import model_architectures

    if arch not in model_architectures:
        raise VQPressError(f"unknown compressai architecture {arch!r}")
    try:
        if checkpoint.endswith(".safetensors"):
            from safetensors.torch import load_file

            state = load_file(checkpoint)
        else:
            state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError) as e:
        raise VQPressError(f"{checkpoint}: cannot load ({e})") from None
    net = model_architectures[arch].from_state_dict(state.get("state_dict", state)).eval()
    net.update(force=True)
    return net


def compressai_model(arch: str, checkpoints: str) -> RDCodec:
    """compressai models of one architecture, one checkpoint per rate (comma-separated, lowest
    rate first); quality k is the k-th checkpoint. Bitstreams come from compressai's coder."""
    import torch

    from vqpress.nets.device import to_uint8

    nets = [_load_compressai(arch, c) for c in checkpoints.split(",")]

    def encode(rgb: np.ndarray, quality: int) -> bytes:
        h, w = rgb.shape[:2]
        p = 64  # compressai's hyperprior models need sides divisible by 64
        x = torch.from_numpy(np.pad(rgb, ((0, -h % p), (0, -w % p), (0, 0)), mode="edge"))
        with torch.no_grad():
            out = nets[quality].compress(x.permute(2, 0, 1)[None].float() / 255)
        parts = [s[0] for s in out["strings"]]
        sh, sw = out["shape"]
        header = struct.pack("<BHHHHB", quality, w, h, sh, sw, len(parts))
        return header + b"".join(struct.pack("<I", len(s)) for s in parts) + b"".join(parts)

    def decode(data: bytes) -> np.ndarray:
        quality, w, h, sh, sw, n = struct.unpack_from("<BHHHHB", data)
        lengths = struct.unpack_from(f"<{n}I", data, 10)
        pos, parts = 10 + 4 * n, []
        for length in lengths:
            parts.append([data[pos:pos + length]])
            pos += length
        with torch.no_grad():
            x = nets[quality].decompress(parts, (sh, sw))["x_hat"]
        return to_uint8(x[0])[:h, :w]

    names = ", ".join(Path(c).name for c in checkpoints.split(","))  # no machine paths in results
    return RDCodec(arch, f"compressai {arch} ({names})",
                   list(range(len(nets))), encode, decode, levels_only=True)


BUILTIN = {"vqpress": vqpress, "jpeg": jpeg, "webp": webp, "avif": avif, "jpeg2000": jpeg2000,
           "jxl": jxl}
PEERS = ["bmshj2018-factorized", "bmshj2018-hyperprior"]


def default_set() -> list[str]:
    """vqpress, the classical codecs Pillow has, and the shipped learned peers."""
    return (["vqpress", "jpeg", "webp", "avif", "jpeg2000"]
            + [f"compressai:{arch}" for arch in PEERS if weights.peers(arch)])


def get(spec: str, device: str = "cpu") -> RDCodec:
    """A codec by name, `vqpress:MODEL` (a shipped codec model other than the default), or
    `compressai:ARCH[:CHECKPOINT,...]` (without checkpoints: the shipped peers of ARCH)."""
    if spec.startswith("vqpress:"):
        return vqpress(device, spec.split(":", 1)[1])
    if spec.startswith("compressai:"):
        _, arch, *checkpoints = spec.split(":", 2)
        if not checkpoints:
            shipped = weights.peers(arch)
            if not shipped:
                raise VQPressError(f"no shipped compressai:{arch} peers; use "
                                   "--codec compressai:ARCH:CHECKPOINT[,CHECKPOINT...]")
            checkpoints = [",".join(str(p) for p in shipped)]
        return compressai_model(arch, checkpoints[0])
    if spec not in BUILTIN:
        raise VQPressError(f"unknown codec {spec!r} (choose from {', '.join(BUILTIN)}, "
                           "vqpress:MODEL or compressai:ARCH[:CHECKPOINT,...])")
    return BUILTIN[spec](device) if spec == "vqpress" else BUILTIN[spec]()
