"""The .vqp container: format version 1, and version 2 with extensions.

All integers little-endian. Layout:

    offset  size  field
    0       4     magic b"\\x89VQP"
    4       1     format version (1, or 2 when the file has extensions)
    5       1     n = length of the model id
    6       n     model id: 1-64 characters of a-z, 0-9, '.', '_', '-' (the weights file's
                  stem, e.g. "rvq8-v1")
    6+n     4     first 4 bytes of the sha256 of the weights file (of the file first
                  shipped, for a model repacked since: `codec.model.codec_file`)
    10+n    4     image width in pixels
    14+n    4     image height in pixels
    18+n    1     source mode (`MODE_NAMES`: 0 RGB, 1 gray, 2 RGBA with alpha dropped
                  (written by vqpress 0.1), 3 16-bit gray, 4 RGBA, 5 gray with alpha)
    19+n    1     quality level (the model's ladder says how many VQ stages it codes and
                  whether, with which step, the detail layer follows them)
    20+n    4     payload length in bytes
    24+n    P     payload: the range-coded symbols (32-bit little-endian words)
    version 2 only, after the payload:
            2     E = number of extensions, then E times:
            4       tag (ASCII)
            4       length L
            L       data
    end     4     CRC32 of every byte before it

Extensions (version 2):
    ALPH  the alpha plane, lossless: 1 byte method (0: zlib of the height x width bytes, row
          by row, each row's differences from the row above), then the data. Modes 4 and 5.
    ICCP  the source's ICC colour profile, byte for byte.
    EXIF  the source's EXIF block (with orientation 1: vqpress applies it before coding).
A tag this version does not know is kept in `Header.extensions` and otherwise ignored.

A file of any other length, magic, version or CRC, or with a model id that is not a model
name, is rejected before decoding starts; the decoder then checks the size against
`codec.limits`.
"""

from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass, field

from .errors import VQPressError

# The header's mode byte: the source image's mode, which decoding gives back (grayscale comes
# back as grayscale).
# MODE_COMPOSITED: vqpress 0.1 composited alpha on white and dropped it; its files decode as RGB.
MODE_RGB, MODE_GRAY, MODE_COMPOSITED, MODE_GRAY16, MODE_RGBA, MODE_LA = 0, 1, 2, 3, 4, 5
MODE_NAMES = {MODE_RGB: "RGB", MODE_GRAY: "L", MODE_COMPOSITED: "RGBA (alpha dropped)",
              MODE_GRAY16: "16-bit gray", MODE_RGBA: "RGBA", MODE_LA: "LA (gray with alpha)"}
GRAY_MODES = {MODE_GRAY, MODE_GRAY16, MODE_LA}

MAGIC = b"\x89VQP"
VERSIONS = (1, 2)
MODEL_ID = re.compile(rb"[a-z0-9][a-z0-9._-]{0,63}")
TAG = re.compile(rb"[A-Z0-9]{4}")
_FIXED = struct.Struct("<4sIIBBI")  # hash, width, height, mode, quality, payload length
_EXTENSION = struct.Struct("<4sI")


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
    extensions: dict[str, bytes] = field(default_factory=dict)  # tag -> data (version 2)


def pack(header: Header, payload: bytes) -> bytes:
    model = header.model_id.encode("ascii")
    if not MODEL_ID.fullmatch(model):
        raise ValueError(f"model id {header.model_id!r} is not a model name")
    version = 2 if header.extensions else 1
    body = (MAGIC + bytes([version, len(model)]) + model
            + _FIXED.pack(header.weights_hash, header.width, header.height, header.mode,
                          header.quality, len(payload)) + payload)
    if version == 2:
        body += struct.pack("<H", len(header.extensions)) + b"".join(
            _EXTENSION.pack(tag.encode("ascii"), len(data)) + data for tag, data in header.extensions.items())
    return body + struct.pack("<I", zlib.crc32(body))


def unpack(data: bytes) -> tuple[Header, bytes]:
    """Parse and check a .vqp file. Raises FormatError with a one-line reason."""
    if len(data) < 6 or data[:4] != MAGIC:
        raise FormatError("not a .vqp file (bad magic bytes)")
    if data[4] not in VERSIONS:
        raise FormatError(f"unsupported .vqp format version {data[4]} (this vqpress reads 1 and 2)")
    n = data[5]
    start = 6 + n + _FIXED.size
    if len(data) < start + 4:
        raise FormatError("truncated .vqp file (header incomplete)")
    weights_hash, width, height, mode, quality, length = _FIXED.unpack_from(data, 6 + n)
    end = start + length
    if len(data) < end + 4:
        raise FormatError(f"truncated .vqp file ({len(data)} bytes, header says {end + 4} or more)")
    if data[4] == 1 and len(data) > end + 4:
        raise FormatError("corrupted .vqp file (trailing bytes after the checksum)")
    (crc,) = struct.unpack_from("<I", data, len(data) - 4)
    if zlib.crc32(data[:-4]) != crc:
        raise FormatError("corrupted .vqp file (CRC32 mismatch)")
    extensions = _extensions(data, end) if data[4] == 2 else {}
    if not MODEL_ID.fullmatch(data[6:6 + n]):  # it is printed: no control characters
        raise FormatError("corrupted .vqp file (the model id is not a model name)")
    if mode not in MODE_NAMES:
        raise FormatError(f"corrupted .vqp file (unknown source mode {mode})")
    if width < 1 or height < 1:
        raise FormatError(f"corrupted .vqp file (image size {width}x{height})")
    header = Header(data[6:6 + n].decode("ascii"), weights_hash, width, height, mode, quality, length,
                    extensions)
    return header, data[start:end]


def _extensions(data: bytes, at: int) -> dict[str, bytes]:
    """The extensions of a version 2 file, from offset `at` (just after the payload)."""
    stop = len(data) - 4
    if at + 2 > stop:
        raise FormatError("corrupted .vqp file (extension count missing)")
    (count,) = struct.unpack_from("<H", data, at)
    at += 2
    out = {}
    for _ in range(count):
        if at + _EXTENSION.size > stop:
            raise FormatError("corrupted .vqp file (extension header cut short)")
        tag, length = _EXTENSION.unpack_from(data, at)
        at += _EXTENSION.size
        if not TAG.fullmatch(tag) or at + length > stop or tag.decode("ascii") in out:
            raise FormatError("corrupted .vqp file (an extension's tag or length is not valid)")
        out[tag.decode("ascii")] = data[at:at + length]
        at += length
    if at != stop:
        raise FormatError("corrupted .vqp file (trailing bytes after the extensions)")
    return out
