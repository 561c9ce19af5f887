"""The .vqp container (format version 1).

All integers little-endian. Layout:

    offset  size  field
    0       4     magic b"\\x89VQP"
    4       1     format version (1)
    5       1     n = length of the model id
    6       n     model id: 1-64 characters of a-z, 0-9, '.', '_', '-' (the weights file's
                  stem, e.g. "rvq8-v1")
    6+n     4     first 4 bytes of the sha256 of the weights file
    10+n    4     image width in pixels
    14+n    4     image height in pixels
    18+n    1     source mode (0 RGB, 1 gray, 2 RGBA with alpha dropped, 3 16-bit gray)
    19+n    1     quality level (the model's ladder says how many VQ stages it codes and
                  whether, with which step, the detail layer follows them)
    20+n    4     payload length in bytes
    24+n    P     payload: the range-coded symbols (32-bit little-endian words)
    24+n+P  4     CRC32 of every byte before it

A file of any other length, magic, version or CRC, or with a model id that is not a model
name, is rejected before decoding starts; the decoder then checks the size against
`codec.limits`.
"""

from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass

from .errors import VQPressError
from .imageio import MODE_NAMES

MAGIC = b"\x89VQP"
VERSION = 1
MODEL_ID = re.compile(rb"[a-z0-9][a-z0-9._-]{0,63}")
_FIXED = struct.Struct("<4sIIBBI")  # hash, width, height, mode, quality, payload length


class FormatError(VQPressError):
    """Not a readable .vqp file."""


@dataclass(frozen=True)
class Header:
    model_id: str
    weights_hash: bytes
    width: int
    height: int
    mode: int
    quality: int
    payload_length: int = 0


def pack(header: Header, payload: bytes) -> bytes:
    model = header.model_id.encode("ascii")
    if not MODEL_ID.fullmatch(model):
        raise ValueError(f"model id {header.model_id!r} is not a model name")
    body = (MAGIC + bytes([VERSION, len(model)]) + model
            + _FIXED.pack(header.weights_hash, header.width, header.height, header.mode,
                          header.quality, len(payload)) + payload)
    return body + struct.pack("<I", zlib.crc32(body))


def unpack(data: bytes) -> tuple[Header, bytes]:
    """Parse and check a .vqp file. Raises FormatError with a one-line reason."""
    if len(data) < 6 or data[:4] != MAGIC:
        raise FormatError("not a .vqp file (bad magic bytes)")
    if data[4] != VERSION:
        raise FormatError(f"unsupported .vqp format version {data[4]} (this vqpress reads {VERSION})")
    n = data[5]
    start = 6 + n + _FIXED.size
    if len(data) < start + 4:
        raise FormatError("truncated .vqp file (header incomplete)")
    weights_hash, width, height, mode, quality, length = _FIXED.unpack_from(data, 6 + n)
    if len(data) < start + length + 4:
        raise FormatError(f"truncated .vqp file ({len(data)} bytes, header says {start + length + 4})")
    if len(data) > start + length + 4:
        raise FormatError("corrupted .vqp file (trailing bytes after the checksum)")
    (crc,) = struct.unpack_from("<I", data, start + length)
    if zlib.crc32(data[:start + length]) != crc:
        raise FormatError("corrupted .vqp file (CRC32 mismatch)")
    if not MODEL_ID.fullmatch(data[6:6 + n]):  # it is printed: no control characters
        raise FormatError("corrupted .vqp file (the model id is not a model name)")
    if mode not in MODE_NAMES:
        raise FormatError(f"corrupted .vqp file (unknown source mode {mode})")
    if width < 1 or height < 1:
        raise FormatError(f"corrupted .vqp file (image size {width}x{height})")
    header = Header(data[6:6 + n].decode("ascii"), weights_hash, width, height, mode, quality, length)
    return header, data[start:start + length]
