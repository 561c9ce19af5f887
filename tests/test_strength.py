"""The reconstruction filter's strength per tile (`codec.strength`): its errors, choice,
coding, and what a codec with strengths does end to end."""

import json

import numpy as np
import pytest

from vqpress.codec import strength
from vqpress.codec.entropy import PayloadDecoder, new_encoder


def _photo_decoded_correction(seed=0, shape=(70, 100, 3)):
    rng = np.random.default_rng(seed)
    photo = rng.integers(0, 256, shape).astype(np.uint8)
    decoded = np.clip(photo + rng.normal(0, 12, shape), 0, 255).astype(np.uint8)
    correction = ((photo.astype(np.float32) - decoded) * rng.uniform(0.2, 1.8, (1, 1, 3))).astype(np.float32)
    return photo, decoded, correction


def test_tile_errors_are_each_strengths_squared_error_per_tile():
    photo, decoded, correction = _photo_decoded_correction()
    errors = strength.tile_errors(photo, decoded, correction, 32)
    assert errors.shape == (3, 4, len(strength.STRENGTHS))  # 70 x 100 pixels: partial tiles count
    for (i, j, k) in [(0, 0, 0), (2, 3, 4), (1, 2, 8)]:
        rows, cols = slice(32 * i, 32 * i + 32), slice(32 * j, 32 * j + 32)
        scaled = decoded[rows, cols] + strength.STRENGTHS[k] * correction[rows, cols].astype(np.float64)
        assert np.isclose(errors[i, j, k], np.square(photo[rows, cols] - scaled).sum(), rtol=1e-5)


def test_choices_without_a_price_are_the_best_strength_and_a_price_pulls_them_together():
    photo, decoded, _ = _photo_decoded_correction(shape=(256, 256, 3))
    wanted = np.random.default_rng(2).choice([2, 4, 6, 8], (8, 8))  # each tile's best strength
    scale = np.kron(strength.STRENGTHS[wanted], np.ones((32, 32)))[..., None]
    correction = (photo.astype(np.float32) - decoded) / scale  # strength s puts it right
    errors = strength.tile_errors(photo, decoded, correction, 32)
    free = strength.choose(errors, 0.0)
    assert np.array_equal(free, wanted)
    priced = strength.choose(errors, 1e9)  # bits dominate: the first choice is repeated
    assert len(np.unique(priced)) == 1


def test_choices_round_trip_exactly_and_cost_less_when_they_repeat():
    rng = np.random.default_rng(1)
    varied = rng.integers(0, len(strength.STRENGTHS), (6, 9)).astype(np.int32)
    same = np.full((6, 9), strength.NEUTRAL, np.int32)
    bits = {}
    for name, choices in (("varied", varied), ("same", same)):
        encoder = new_encoder()
        bits[name] = strength.encode(encoder, choices)
        payload = encoder.get_compressed().astype("<u4").tobytes()
        assert np.array_equal(strength.decode(PayloadDecoder(payload), 6, 9), choices)
    assert bits["same"] < 0.2 * bits["varied"]


def test_per_pixel_strengths_follow_the_tiles():
    choices = np.array([[0, 8], [4, 2]], np.int32)
    pixels = strength.per_pixel(choices, 64, slice(60, 70), slice(0, 128))
    assert pixels.shape == (10, 128, 1)
    assert pixels[0, 0, 0] == 0 and pixels[0, 64, 0] == 2 and pixels[9, 0, 0] == 1 and pixels[9, 100, 0] == 0.5


@pytest.fixture(scope="module")
def codec_with_strengths():
    from vqpress.codec.api import Codec
    from vqpress.codec.ladder import DEFAULT_MODEL

    model = Codec(DEFAULT_MODEL, device="cpu", threads=1)
    assert model.model.strength_tile(3) == 64  # the shipped default chooses them
    return model


def test_the_decoder_scales_the_filters_correction_as_the_encoder_chose(codec_with_strengths):
    from skimage import data

    from vqpress.codec.container import unpack

    model = codec_with_strengths
    photo = data.astronaut()[:200, :260]
    encoded = model.compress(photo, 3)
    header, payload = unpack(encoded)
    chosen = model.decode_payload(3, payload, header.height, header.width)[3]
    assert chosen.shape == (4, 5) and (chosen != strength.NEUTRAL).any()
    unfiltered, decoded_choices = model.decode_image(3, payload, header.height, header.width)
    assert np.array_equal(decoded_choices, chosen)
    correction = model.postfilter.correction(unfiltered, 3)
    scale = strength.per_pixel(chosen, 64, slice(0, 200), slice(0, 260))
    expected = np.clip(np.round(unfiltered + scale * correction), 0, 255)
    assert np.abs(np.asarray(model.decompress(encoded)).astype(int) - expected).max() <= 1
    # strength 1 everywhere is the filter as trained
    assert np.array_equal(model.postfilter(unfiltered, 3, None, np.full((4, 5), strength.NEUTRAL)),
                          model.postfilter(unfiltered, 3))


def test_the_encoders_choices_lower_the_error_of_the_filtered_image(codec_with_strengths):
    from skimage import data

    from vqpress.codec.container import unpack
    from vqpress.measure.metrics import psnr

    model = codec_with_strengths
    photo = data.astronaut()[:256, :256]
    _, payload = unpack(model.compress(photo, 5))
    unfiltered, chosen = model.decode_image(5, payload, 256, 256)
    as_trained = model.postfilter(unfiltered, 5)
    assert psnr(model.postfilter(unfiltered, 5, None, chosen), photo) > psnr(as_trained, photo)


def test_a_model_with_unknown_strength_tiles_is_refused(tmp_path):
    from safetensors import safe_open
    from safetensors.numpy import save_file

    from vqpress import weights
    from vqpress.codec.model import codec_file, load_codec_file
    from vqpress.training.detail import codec_path

    meta, tensors = codec_file(codec_path("rvq-dct-v15"))
    meta["postfilter_config"] = {**meta["postfilter_config"], "strength_tile": 48}
    path = tmp_path / "odd.safetensors"
    save_file(tensors, str(path), metadata={k: json.dumps(v) for k, v in meta.items()})
    with safe_open(str(path), "np") as f:
        assert "strength_tile" in f.metadata()["postfilter_config"]
    with pytest.raises(weights.WeightsError, match="strength tiles of 48 pixels"):
        load_codec_file(path)


def test_export_refuses_unknown_tiles(tmp_path):
    from vqpress.codec.errors import VQPressError
    from vqpress.training.postfilter import export_filter_strengths

    with pytest.raises(VQPressError, match="not known"):
        export_filter_strengths("rvq-dct-v14", "x", tmp_path, 100)
