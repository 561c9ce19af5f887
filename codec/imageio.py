"""Reading images as people have them, and writing them by file extension.

Every input becomes 8-bit RGB for the codec: EXIF orientation is applied; grayscale is
replicated to three channels (and restored on decode); 16-bit and float images are scaled to
8 bits; alpha is not coded: the image is composited on white, as a viewer would show it.
"""

from __future__ import annotations

import errno
import os
import struct
import tempfile
import threading
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from . import limits
from .container import (GRAY_MODES, MODE_COMPOSITED, MODE_GRAY, MODE_GRAY16, MODE_LA, MODE_RGB,
                        MODE_RGBA)
from .errors import VQPressError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".ppm", ".gif"}
ORIENTATION = 0x0112  # the EXIF tag
# What Pillow raises on an EXIF block it cannot parse or write back (files with such blocks
# exist, and Pillow opens them without complaint)
EXIF_ERRORS = (SyntaxError, ValueError, TypeError, KeyError, IndexError, struct.error, OSError)


class ImageError(VQPressError):
    """An input image that cannot be read."""


def image_paths(folder: str | os.PathLike) -> list[Path]:
    """The image files below a folder (by extension), sorted."""
    paths = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise ImageError(f"{folder}: no images found")
    return paths


def open_image(path: str | os.PathLike) -> Image.Image:
    """The first frame of an image file, upright (`upright`). Its size is checked against
    `codec.limits` before any pixel is decoded; `frames` in its info says how many it had."""
    try:
        with _own_size_limits(), Image.open(path) as im:
            limits.check_size(*im.size, f"{path}")
            frames = getattr(im, "n_frames", 1)
            im.load()
            image = upright(im)
            if image is im:  # closing the file would free its pixels
                image = im.copy()
    except limits.LimitError:
        raise
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ImageError(f"{path}: is a folder, not an image") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ImageError(f"{path}: not an image Pillow can read ({e})") from None
    image.info["frames"] = frames
    return image


_PILLOW_LIMIT = threading.Lock()


@contextmanager
def _own_size_limits():
    """Pillow's decompression-bomb check off while a file is opened: `codec.limits` apply
    instead, before any pixel is decoded, with a message that says how to raise them. Pillow's
    warnings about damaged metadata it skips are not shown either (`upright` drops an EXIF
    block it cannot use)."""
    with _PILLOW_LIMIT, warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        warnings.simplefilter("ignore", UserWarning)
        saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def upright(image: Image.Image) -> Image.Image:
    """The image with its EXIF orientation applied (itself if there is none). A damaged EXIF
    block, one Pillow cannot parse or write back, is left out of a copy instead, which says so
    in its info (`exif_dropped`): the pixels are what matter."""
    try:
        with warnings.catch_warnings():  # Pillow warns of each damaged tag it skips
            warnings.simplefilter("ignore", UserWarning)
            exif = image.getexif()
            exif.tobytes()
            if image.info.get("exif"):  # a JPEG file's reader forgives what a copy would not parse
                Image.Exif().load(image.info["exif"])
            return ImageOps.exif_transpose(image) if exif.get(ORIENTATION, 1) != 1 else image
    except EXIF_ERRORS:
        clean = image.copy()  # a new object: Pillow keeps the parsed EXIF on the old one
        clean.info.pop("exif", None)
        clean.info["exif_dropped"] = True
        return clean


def exif_bytes(image: Image.Image) -> bytes:
    """The image's EXIF block as Pillow writes it (b"" if none); for an image from `upright`,
    whose EXIF Pillow can write back."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        exif = image.getexif()
        return exif.tobytes() if len(exif) else b""


def as_image(image) -> Image.Image | np.ndarray:
    """What the APIs take as an image: a PIL image (`upright`), an array, or a path to a file
    (opened with `open_image`)."""
    if isinstance(image, (str, os.PathLike)):
        return open_image(image)
    if isinstance(image, Image.Image):
        return upright(image)
    if isinstance(image, np.ndarray):
        return image
    raise ImageError(f"expected a PIL image, an array or a path, got {type(image).__name__}")


def to_rgb8(image: Image.Image | np.ndarray) -> tuple[np.ndarray, int]:
    """(H, W, 3) uint8 array and the source mode code of a PIL image or an array."""
    if isinstance(image, np.ndarray):
        return _array_to_rgb8(image)
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        a = np.asarray(image).astype(np.float64)
        if not np.isfinite(a).all():
            raise ImageError("the image has pixels that are not numbers (NaN or infinite)")
        # float images in 0..1 are scaled as float arrays are; wider ones as 8 or 16 bits
        peak = 65535.0 if mode.startswith("I;16") or a.max() > 255 else 1.0 if mode == "F" and a.max() <= 1 else 255.0
        gray = np.clip(np.round(a / peak * 255), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2), MODE_GRAY16
    if mode in ("L", "1"):
        gray = np.asarray(image.convert("L"))
        return np.repeat(gray[..., None], 3, axis=2), MODE_GRAY
    if has_alpha(image):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, rgba).convert("RGB")), MODE_COMPOSITED
    return np.asarray(image.convert("RGB")), MODE_RGB


def to_planes(image: Image.Image | np.ndarray) -> tuple[np.ndarray, int, np.ndarray | None]:
    """(8-bit RGB, source mode, alpha plane or None) for the codec: unlike `to_rgb8`, an image
    with alpha keeps its colour as it is (not composited) and its alpha beside it."""
    if isinstance(image, np.ndarray):
        if image.ndim == 3 and image.shape[2] == 4:
            rgb, _ = _array_to_rgb8(image[..., :3])
            return rgb, MODE_RGBA, _array_to_rgb8(image[..., 3])[0][..., 0]
        return (*_array_to_rgb8(image), None)
    if not has_alpha(image):
        return (*to_rgb8(image), None)
    rgba = np.asarray(image.convert("RGBA"))
    if image.mode in ("LA", "La"):
        return np.ascontiguousarray(rgba[..., :3]), MODE_LA, rgba[..., 3].copy()
    return np.ascontiguousarray(rgba[..., :3]), MODE_RGBA, rgba[..., 3].copy()


def has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info


def _array_to_rgb8(a: np.ndarray) -> tuple[np.ndarray, int]:
    if a.ndim == 2:
        rgb, mode = np.repeat(a[..., None], 3, axis=2), MODE_GRAY
    elif a.ndim == 3 and a.shape[2] in (3, 4):
        rgb, mode = a[..., :3], MODE_RGB if a.shape[2] == 3 else MODE_COMPOSITED
    else:
        raise ImageError(f"expected an HxW or HxWx3 array, got shape {a.shape}")
    if rgb.dtype == np.uint16:
        rgb = np.round(rgb / 257.0)
    elif rgb.dtype.kind == "f":
        if rgb.size and not (np.isfinite(rgb).all() and rgb.min() >= 0 and rgb.max() <= 1):
            raise ImageError("a float array must hold values in 0..1 (for 0..255 pass uint8)")
        rgb = np.round(rgb * 255)
    elif rgb.dtype != np.uint8:
        raise ImageError(f"unsupported array dtype {a.dtype}")
    return np.ascontiguousarray(rgb.astype(np.uint8)), mode


def from_rgb8(rgb: np.ndarray, source_mode: int, alpha: np.ndarray | None = None) -> Image.Image:
    """The decoded image in the source's mode: RGB, L, or with alpha RGBA or LA."""
    image = Image.fromarray(rgb, "RGB")
    if source_mode in GRAY_MODES:
        image = image.convert("L")
    if alpha is not None:
        image.putalpha(Image.fromarray(alpha, "L"))
    return image


def output_format(path: str | os.PathLike) -> str:
    """The Pillow format an output path's extension asks for (PNG when it has none)."""
    suffix = Path(path).suffix.lower()
    if not suffix:
        return "PNG"
    Image.preinit()  # the common formats; Image.init() loads every plugin (65 ms), so only if needed
    fmt = Image.EXTENSION.get(suffix)
    if fmt is None or fmt not in Image.SAVE:
        fmt = Image.registered_extensions().get(suffix)
    if fmt is None or fmt not in Image.SAVE:
        raise ImageError(f"{path}: cannot write images with the extension {suffix}")
    return fmt


def save_image(image: Image.Image, path: str | os.PathLike, replace: bool = True) -> None:
    """Write by the path's extension (PNG when it has none), atomically: no partial files
    (`write_atomically`, which keeps an existing file unless replace)."""
    fmt = output_format(path)
    if fmt == "JPEG" and has_alpha(image):  # no alpha in JPEG: as a viewer shows it, on white
        white = Image.new("RGBA", image.size, (255, 255, 255, 255))
        flat = Image.alpha_composite(white, image.convert("RGBA")).convert("RGB")
        flat.info = image.info
        image = flat
    options = {k: image.info[k] for k in ("icc_profile", "exif") if image.info.get(k)}
    if fmt == "PNG":  # zlib's fastest level, as OpenCV's default: 4x faster than Pillow's 6 on a
        options["compress_level"] = 1  # photo, for a file about 10% larger, still lossless

    def write(f):
        try:
            image.save(f, format=fmt, **options)
        except EXIF_ERRORS as e:  # OSError too: Pillow's "cannot write mode ..."
            raise ImageError(f"{path}: cannot write this image as {fmt} ({e})") from None

    write_atomically(path, write, replace)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


FILE_MODE = 0o666 & ~_umask()  # what open() would give a new file; mkstemp's is 0o600


def make_folder(folder: str | os.PathLike) -> None:
    """Create a folder and its parents if missing; a failure is a one-line VQPressError."""
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise VQPressError(f"{folder}: cannot create the folder ({e.strerror or e})") from None


def write_atomically(path: str | os.PathLike, write, replace: bool = True) -> None:
    """Call write(file) on a new temporary file beside `path` (a random name, created
    exclusively: no link is followed), then rename it to `path`; on failure nothing is left.
    The file gets the permissions a plain new file would. With replace False, a file at `path`
    is never replaced, not even one that appears while `write` runs (the finished file is
    linked to `path`, which fails if it exists): the call is then a VQPressError."""
    path = Path(path)
    if path.is_dir():
        raise VQPressError(f"{path}: is a folder")
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    except OSError as e:
        raise VQPressError(f"{path}: cannot write ({e.strerror})") from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            os.fchmod(f.fileno(), FILE_MODE)
        if replace:
            os.replace(tmp, path)
        else:
            _link_new(tmp, path)
    except OSError as e:
        raise VQPressError(f"{path}: cannot write ({e.strerror})") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _link_new(tmp: str, path: Path) -> None:
    """Give the finished file `tmp` the name `path` unless that name exists. Where the file
    system has no hard links, it checks and renames (a short window remains there)."""
    try:
        os.link(tmp, path)
        return
    except FileExistsError:
        raise VQPressError(f"{path} exists: not replaced") from None
    except OSError as e:
        if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
            raise
    if path.exists():
        raise VQPressError(f"{path} exists: not replaced")
    os.replace(tmp, path)
