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
