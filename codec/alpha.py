"""The alpha plane, coded losslessly beside the lossy colour (the container's ALPH extension).

Method 0: each row's differences from the row above (mod 256), deflated with zlib: masks and
soft edges are mostly runs of zeros. Method 1: one byte, the value of a constant plane (an
all-opaque alpha costs two bytes).
"""

from __future__ import annotations

import zlib

import numpy as np


def encode(alpha: np.ndarray) -> bytes:
    """Bytes of an (H, W) uint8 alpha plane."""
    if (alpha == alpha.flat[0]).all():
        return bytes([1, int(alpha.flat[0])])
    rows = np.diff(alpha, axis=0, prepend=np.zeros((1, alpha.shape[1]), np.uint8))
    return bytes([0]) + zlib.compress(rows.astype(np.uint8).tobytes(), 9)


def decode(data: bytes, height: int, width: int) -> np.ndarray:
    """Inverse of encode; a FormatError if the data does not make an (H, W) plane."""
    from .container import FormatError

    if data[:1] == b"\x01" and len(data) == 2:
        return np.full((height, width), data[1], np.uint8)
    if data[:1] != b"\x00":
        raise FormatError("corrupted .vqp file (unknown alpha method)")
    inflate = zlib.decompressobj()
    try:  # never inflate more than one plane, whatever the stream claims
        raw = inflate.decompress(data[1:], height * width + 1)
    except zlib.error:
        raise FormatError("corrupted .vqp file (alpha plane does not inflate)") from None
    if len(raw) != height * width or not inflate.eof:
        raise FormatError("corrupted .vqp file (alpha plane of the wrong size)")
    rows = np.frombuffer(raw, np.uint8).reshape(height, width)
    return np.cumsum(rows, axis=0, dtype=np.uint8)
