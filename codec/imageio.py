"""Reading images as people have them, and writing them by file extension.

Every input becomes 8-bit RGB for the codec: EXIF orientation is applied; grayscale is
replicated to three channels (and restored on decode); 16-bit and float images are scaled to
8 bits; alpha is not coded: the image is composited on white, as a viewer would show it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import VQPressError

# Source modes the container remembers, so grayscale comes back as grayscale.
MODE_RGB, MODE_GRAY, MODE_RGBA, MODE_GRAY16 = 0, 1, 2, 3
MODE_NAMES = {MODE_RGB: "RGB", MODE_GRAY: "L", MODE_RGBA: "RGBA (alpha dropped)",
              MODE_GRAY16: "16-bit gray"}


class ImageError(VQPressError):
    """An input image that cannot be read."""


def open_image(path: str | os.PathLike) -> Image.Image:
    try:
        with Image.open(path) as im:
            im.load()
            return ImageOps.exif_transpose(im)
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise ImageError(f"{path}: not an image Pillow can read ({e})") from None


def to_rgb8(image: Image.Image | np.ndarray) -> tuple[np.ndarray, int]:
    """(H, W, 3) uint8 array and the source mode code of a PIL image or an array."""
    if isinstance(image, np.ndarray):
        return _array_to_rgb8(image)
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        a = np.asarray(image).astype(np.float64)
        peak = 65535.0 if mode.startswith("I;16") or a.max() > 255 else 255.0
        gray = np.clip(np.round(a / peak * 255), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2), MODE_GRAY16
    if mode in ("L", "1"):
        gray = np.asarray(image.convert("L"))
        return np.repeat(gray[..., None], 3, axis=2), MODE_GRAY
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, rgba).convert("RGB")), MODE_RGBA
    return np.asarray(image.convert("RGB")), MODE_RGB


def _array_to_rgb8(a: np.ndarray) -> tuple[np.ndarray, int]:
    if a.ndim == 2:
        rgb, mode = np.repeat(a[..., None], 3, axis=2), MODE_GRAY
    elif a.ndim == 3 and a.shape[2] in (3, 4):
        rgb, mode = a[..., :3], MODE_RGB if a.shape[2] == 3 else MODE_RGBA
    else:
        raise ImageError(f"expected an HxW or HxWx3 array, got shape {a.shape}")
    if rgb.dtype == np.uint16:
        rgb = np.round(rgb / 257.0)
    elif rgb.dtype.kind == "f":
        rgb = np.round(np.clip(rgb, 0, 1) * 255)
    elif rgb.dtype != np.uint8:
        raise ImageError(f"unsupported array dtype {a.dtype}")
    return np.ascontiguousarray(rgb.astype(np.uint8)), mode


def from_rgb8(rgb: np.ndarray, source_mode: int) -> Image.Image:
    image = Image.fromarray(rgb, "RGB")
    return image.convert("L") if source_mode in (MODE_GRAY, MODE_GRAY16) else image


def save_image(image: Image.Image, path: str | os.PathLike) -> None:
    """Write by the path's extension (PNG when it has none), atomically: no partial files."""
    path = Path(path)
    fmt = None if path.suffix else "PNG"
    if path.suffix.lower() in (".jpg", ".jpeg") and image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    tmp = path.with_name(f".{path.name}.part")
    try:
        image.save(tmp, format=fmt or Image.registered_extensions().get(path.suffix.lower()))
        os.replace(tmp, path)
    except (KeyError, ValueError, OSError) as e:
        tmp.unlink(missing_ok=True)
        raise ImageError(f"{path}: cannot write this image format ({e})") from None
