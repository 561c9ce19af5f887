"""Property-based round trips: every size from 1x1 to 64x64 and every input mode."""

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

GRAY = {"L", "1", "I;16", "I", "F"}
WITH_ALPHA = {"RGBA": "RGBA", "PA": "RGBA", "LA": "LA"}  # source mode -> decoded mode
MODES = ["RGB", "L", "RGBA", "LA", "P", "PA", "1", "I;16", "I", "F", "CMYK", "YCbCr", "RGBX", "LAB", "HSV"]


def image_of(mode: str, width: int, height: int, seed: int) -> Image.Image:
    rgb = np.random.default_rng(seed).integers(0, 256, (height, width, 3), np.uint8)
    image = Image.fromarray(rgb)
    if mode == "PA":
        return image.convert("P").convert("PA")
    if mode in ("I;16", "I", "F"):
        wide = Image.fromarray(rgb[..., 0].astype(np.uint16) * 257)  # a 16-bit gray image
        return wide if mode == "I;16" else wide.convert(mode)
    image = image.convert(mode)
    if mode in ("RGBA", "LA"):  # a varied alpha plane, not all-opaque
        image.putalpha(Image.fromarray(np.roll(rgb[..., 1], 1, axis=1)))
    return image


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(width=st.integers(1, 64), height=st.integers(1, 64), mode=st.sampled_from(MODES),
       quality=st.integers(1, 9), seed=st.integers(0, 2**16))
def test_every_size_and_mode_round_trips(model, width, height, mode, quality, seed):
    image = image_of(mode, width, height, seed)
    out = model.decompress(model.compress(image, quality))
    assert out.size == (width, height)
    assert out.mode == WITH_ALPHA.get(mode, "L" if mode in GRAY else "RGB")
    if mode in WITH_ALPHA:  # alpha is lossless
        assert np.array_equal(np.asarray(out.getchannel("A")), np.asarray(image.getchannel("A")))
