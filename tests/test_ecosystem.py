"""Fitting the ecosystem: the Pillow plugin, folders of files, size targets, alpha and metadata."""

import io

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, ImageCms

from vqpress import codec
from vqpress.cli.main import main


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture
def rgba(photo):
    alpha = np.zeros(photo.shape[:2], np.uint8)
    alpha[10:60, 20:80] = 255
    alpha[30:40] = 100  # a half-transparent band across
    return Image.fromarray(np.dstack([photo, alpha]), "RGBA")


def test_pillow_opens_without_decoding_and_round_trips(tmp_path, photo):
    import vqpress.pillow  # noqa: F401  (registers the format)

    assert Image.registered_extensions()[".vqp"] == "VQP"
    Image.fromarray(photo).save(tmp_path / "a.vqp", quality=4)
    with Image.open(tmp_path / "a.vqp") as im:
        assert (im.format, im.size, im.mode) == ("VQP", (photo.shape[1], photo.shape[0]), "RGB")
        assert im._data is not None  # the header only, so far
        im.thumbnail((40, 40))
        assert max(im.size) == 40
    direct = codec.decompress((tmp_path / "a.vqp").read_bytes())
    assert np.array_equal(np.asarray(Image.open(tmp_path / "a.vqp")), np.asarray(direct))
    Image.fromarray(photo).save(tmp_path / "small.vqp", max_bytes=600)
    assert (tmp_path / "small.vqp").stat().st_size <= 600


def test_alpha_is_lossless_and_a_flat_one_costs_next_to_nothing(rgba, photo):
    out = codec.decompress(codec.compress(rgba, 5))
    assert out.mode == "RGBA" and np.array_equal(np.asarray(out)[..., 3], np.asarray(rgba)[..., 3])
    la = Image.fromarray(np.dstack([photo[..., 0], np.asarray(rgba)[..., 3]]), "LA")
    back = codec.decompress(codec.compress(la, 5))
    assert back.mode == "LA" and np.array_equal(np.asarray(back)[..., 1], np.asarray(la)[..., 1])
    opaque = Image.fromarray(photo).convert("RGBA")
    assert len(codec.compress(opaque, 5)) - len(codec.compress(photo, 5)) <= 16


def test_icc_profile_and_exif_travel_byte_for_byte_unless_stripped(tmp_path, photo):
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x010F] = "vqpress test camera"
    buf = io.BytesIO()
    Image.fromarray(photo).save(buf, "PNG", icc_profile=icc, exif=exif.tobytes())
    (tmp_path / "in.png").write_bytes(buf.getvalue())
    assert run("compress", tmp_path / "in.png", "-o", tmp_path / "a.vqp").exit_code == 0
    r = run("info", tmp_path / "a.vqp")
    assert f"ICC profile {len(icc)} bytes" in r.output and "EXIF" in r.output
    assert run("decompress", tmp_path / "a.vqp", "-o", tmp_path / "out.png").exit_code == 0
    with Image.open(tmp_path / "out.png") as out:
        assert out.info["icc_profile"] == icc
        assert out.getexif()[0x010F] == "vqpress test camera"
    assert run("compress", tmp_path / "in.png", "-o", tmp_path / "s.vqp", "--strip").exit_code == 0
    assert "extras:   none" in run("info", tmp_path / "s.vqp").output


def test_folders_in_two_processes_go_on_past_a_bad_file(tmp_path, photo):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    Image.fromarray(photo).save(src / "a.png")
    Image.fromarray(photo[::-1].copy()).save(src / "sub" / "b.jpg")
    (src / "broken.png").write_text("not an image")
    r = CliRunner().invoke(main, ["compress", str(src), "-o", str(tmp_path / "out"), "--jobs", "2"])
    assert r.exit_code == 1  # one file failed
    assert "2 of 3 files done, 1 failed" in r.stdout and "broken.png" in r.stderr
    assert (tmp_path / "out" / "a.vqp").is_file() and (tmp_path / "out" / "sub" / "b.vqp").is_file()
    r = run("decompress", tmp_path / "out", "-o", tmp_path / "back", "--jobs", "2")
    assert r.exit_code == 0 and "2 of 2 files done, 0 failed" in r.output
    assert Image.open(tmp_path / "back" / "sub" / "b.png").size == (photo.shape[1], photo.shape[0])


def test_size_and_quality_targets_pick_the_best_setting(tmp_path, photo):
    model = codec.load(device="cpu")
    sizes = [len(model.compress(photo, q)) for q in model.qualities]
    budget = (sizes[3] + sizes[4]) // 2  # between two levels: the lower one is the best that fits
    data, quality = model.compress_to_target(photo, max_bytes=budget)
    assert quality == 4 and len(data) <= budget
    Image.fromarray(photo).save(tmp_path / "p.png")
    r = run("compress", tmp_path / "p.png", "--max-bytes", budget, "-o", tmp_path / "p.vqp")
    assert r.exit_code == 0 and "quality 4" in r.output and (tmp_path / "p.vqp").stat().st_size <= budget
    data, quality = model.compress_to_target(photo, psnr=30.0)
    from vqpress.measure.metrics import psnr

    assert psnr(photo, np.asarray(model.decompress(data))) >= 30.0
    if quality > 1:  # the level below misses the target
        assert psnr(photo, np.asarray(model.decompress(model.compress(photo, quality - 1)))) < 30.0
    r = run("compress", tmp_path / "p.png", "--max-bytes", 40, "-o", tmp_path / "x.vqp")
    assert r.exit_code == 1 and "no quality of" in r.output
