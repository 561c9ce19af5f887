import numpy as np
import pytest
from PIL import Image

from vqpress.codec.imageio import (
    MODE_GRAY,
    MODE_GRAY16,
    MODE_RGB,
    MODE_COMPOSITED,
    ImageError,
    from_rgb8,
    open_image,
    save_image,
    to_rgb8,
)


def test_modes_become_rgb8(photo):
    rgb = Image.fromarray(photo)
    gray = rgb.convert("L")
    cases = {
        "RGB": (rgb, MODE_RGB),
        "L": (gray, MODE_GRAY),
        "P": (rgb.convert("P"), MODE_RGB),
        "RGBA": (rgb.convert("RGBA"), MODE_COMPOSITED),
        "I;16": (Image.fromarray(np.asarray(gray).astype(np.uint16) * 257), MODE_GRAY16),
    }
    for name, (image, mode) in cases.items():
        out, got = to_rgb8(image)
        assert out.dtype == np.uint8 and out.shape == photo.shape, name
        assert got == mode, name
    assert np.array_equal(to_rgb8(cases["I;16"][0])[0][..., 0], np.asarray(gray))


def test_alpha_is_composited_on_white():
    rgba = np.zeros((4, 4, 4), np.uint8)  # fully transparent black
    out, mode = to_rgb8(Image.fromarray(rgba, "RGBA"))
    assert mode == MODE_COMPOSITED and (out == 255).all()


def test_exif_orientation_is_applied(tmp_path):
    image = Image.new("RGB", (40, 20), "red")
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    path = tmp_path / "rotated.jpg"
    image.save(path, exif=exif)
    assert open_image(path).size == (20, 40)


def test_grayscale_comes_back_grayscale(photo):
    assert from_rgb8(photo, MODE_GRAY).mode == "L"
    assert from_rgb8(photo, MODE_RGB).mode == "RGB"


def test_unreadable_inputs(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"this is not a png")
    with pytest.raises(ImageError, match="not an image"):
        open_image(bad)
    with pytest.raises(ImageError, match="no such file"):
        open_image(tmp_path / "missing.png")
    with pytest.raises(ImageError, match="HxW or HxWx3"):
        to_rgb8(np.zeros((2, 2, 2), np.uint8))


def test_save_by_extension_and_no_partial_file(tmp_path, photo):
    image = Image.fromarray(photo)
    for ext, fmt in [(".png", "PNG"), (".jpg", "JPEG"), (".webp", "WEBP"), (".bmp", "BMP")]:
        save_image(image, tmp_path / f"out{ext}")
        assert Image.open(tmp_path / f"out{ext}").format == fmt
    with pytest.raises(ImageError, match="cannot write"):
        save_image(image, tmp_path / "out.notaformat")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bmp", "out.jpg", "out.png", "out.webp"]


def test_float_images_in_0_to_1_are_scaled_like_float_arrays():
    ramp = np.linspace(0, 1, 64 * 64, dtype=np.float32).reshape(64, 64)
    rgb, _ = to_rgb8(Image.fromarray(ramp, "F"))
    assert rgb[0, 0, 0] == 0 and rgb[-1, -1, 0] == 255 and abs(rgb.mean() - 127.5) < 0.5
    assert to_rgb8(Image.fromarray(ramp * 255, "F"))[0][-1, -1, 0] == 255  # 0..255 stays as it is
    ramp[3, 3] = np.nan
    with pytest.raises(ImageError, match="not numbers"):
        to_rgb8(Image.fromarray(ramp, "F"))
