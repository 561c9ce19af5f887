import pytest

from vqpress.codec import container
from vqpress.codec.container import FormatError, Header

HEADER = Header("rvq8-v1", b"\x01\x02\x03\x04", 640, 480, 0, 3)


def test_round_trip():
    data = container.pack(HEADER, b"payload!")
    header, payload = container.unpack(data)
    assert payload == b"payload!"
    assert header == Header("rvq8-v1", b"\x01\x02\x03\x04", 640, 480, 0, 3, 8)
    assert len(data) == 35 + 8


@pytest.mark.parametrize("mangle, message", [
    (lambda d: b"GIF89a" + d[6:], "not a .vqp file"),
    (lambda d: b"", "not a .vqp file"),
    (lambda d: d[:4] + bytes([9]) + d[5:], "unsupported .vqp format version 9"),
    (lambda d: d[:20], "truncated"),
    (lambda d: d[:-1], "truncated"),
    (lambda d: d + b"\x00", "trailing bytes"),
    (lambda d: d[:-6] + bytes([d[-6] ^ 1]) + d[-5:], "CRC32 mismatch"),
    (lambda d: d[:12] + bytes([d[12] ^ 0x40]) + d[13:], "CRC32 mismatch"),
])
def test_bad_files_are_rejected(mangle, message):
    data = container.pack(HEADER, b"payload!")
    with pytest.raises(FormatError, match=message):
        container.unpack(mangle(data))


def test_extensions_round_trip_and_make_version_2():
    header = Header("rvq8-v1", b"\x01\x02\x03\x04", 640, 480, 4, 3, 8, {"ALPH": b"\x00abc", "ICCP": b"icc!"})
    data = container.pack(header, b"payload!")
    assert data[4] == 2
    assert container.unpack(data) == (header, b"payload!")
    assert container.pack(HEADER, b"payload!")[4] == 1  # no extensions: files older vqpress reads


@pytest.mark.parametrize("cut", [1, 5, 9])
def test_damaged_extensions_are_rejected_even_with_a_valid_crc(cut):
    import struct
    import zlib

    header = Header("rvq8-v1", b"\x01\x02\x03\x04", 640, 480, 4, 3, 8, {"ALPH": b"\x00abcdefgh"})
    body = container.pack(header, b"payload!")[:-4 - cut]
    with pytest.raises(FormatError, match="corrupted .vqp file"):
        container.unpack(body + struct.pack("<I", zlib.crc32(body)))
