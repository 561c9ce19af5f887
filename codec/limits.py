"""Size limits that bound the work and memory of a compress or a decompress.

Like Pillow's `Image.MAX_IMAGE_PIXELS`, they are module attributes a program may change
(`None` switches a limit off), and the command line has `--max-pixels`. The encoder refuses
what the decoder would refuse, so every file vqpress writes decodes with the same limits.
"""

from __future__ import annotations

from .errors import VQPressError

MAX_IMAGE_PIXELS: int | None = 64_000_000  # a 64-megapixel photo decodes in about 3 GB
MAX_SIDE: int | None = 16_384  # as WebP: a one-symbol-high strip decodes position by position


class LimitError(VQPressError):
    """An image over the size limits."""


def check_size(width: int, height: int, what: str = "image") -> None:
    """Raise LimitError if width x height is empty or over a limit."""
    if width < 1 or height < 1:
        raise LimitError(f"{what} has no pixels ({width}x{height})")
    if MAX_SIDE is not None and max(width, height) > MAX_SIDE:
        raise LimitError(f"{what} is {width}x{height}: a side over vqpress's limit of {MAX_SIDE} px "
                         "(raise codec.limits.MAX_SIDE, or --max-pixels 0 on the command line)")
    if MAX_IMAGE_PIXELS is not None and width * height > MAX_IMAGE_PIXELS:
        raise LimitError(f"{what} is {width}x{height} ({width * height / 1e6:.1f} MP): over vqpress's "
                         f"limit of {MAX_IMAGE_PIXELS / 1e6:g} MP (raise codec.limits.MAX_IMAGE_PIXELS "
                         "or use --max-pixels)")
