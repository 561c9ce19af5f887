"""Hostile and unusual input: no lost originals, no undecodable files, no hangs, no tracebacks."""

import struct
import time
import zlib

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from vqpress import codec
from vqpress.cli.main import main
from vqpress.codec import container, limits
from vqpress.measure.metrics import psnr


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def one_line_error(r, text, code=1):
    assert r.exit_code == code, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and text in lines[0], r.output
    assert "Traceback" not in r.output


# -- outputs -------------------------------------------------------------------------------------
def test_default_output_never_replaces_an_existing_file(tmp_path, photo):
    src = tmp_path / "photo.png"
    Image.fromarray(photo).save(src)
    original = src.read_bytes()
    assert run("compress", src).exit_code == 0  # writes photo.vqp beside it
    one_line_error(run("decompress", tmp_path / "photo.vqp"), "photo.png exists")
    assert src.read_bytes() == original
    one_line_error(run("compress", src), "photo.vqp exists")
    assert run("decompress", tmp_path / "photo.vqp", "--force").exit_code == 0
    assert Image.open(src).size == (photo.shape[1], photo.shape[0])


def test_outputs_get_the_permissions_of_a_plain_new_file(tmp_path, photo):
    """Written through a private temporary file (mkstemp's 0o600), but not left private."""
    import os

    src = tmp_path / "photo.png"
    Image.fromarray(photo).save(src)
    umask = os.umask(0)
    os.umask(umask)
    assert run("compress", src).exit_code == 0
    assert run("decompress", tmp_path / "photo.vqp", "-o", tmp_path / "back.png").exit_code == 0
    for out in (tmp_path / "photo.vqp", tmp_path / "back.png"):
        assert out.stat().st_mode & 0o777 == 0o666 & ~umask == (src.stat().st_mode & 0o777)


def test_temporary_files_follow_no_links_and_bad_outputs_fail_first(tmp_path, photo):
    src = tmp_path / "photo.png"
    Image.fromarray(photo).save(src)
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    (tmp_path / ".out.vqp.part").symlink_to(victim)  # the old fixed temporary name
    assert run("compress", src, "-o", tmp_path / "out.vqp").exit_code == 0
    assert victim.read_text() == "keep me"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part") and not p.is_symlink()]
    (tmp_path / "folder.png").mkdir()  # an existing folder: the output goes into it
    assert run("decompress", tmp_path / "out.vqp", "-o", tmp_path / "folder.png").exit_code == 0
    assert (tmp_path / "folder.png" / "out.png").is_file()
    one_line_error(run("decompress", tmp_path / "out.vqp", "-o", tmp_path / "x.xyz"),
                   "cannot write images with the extension .xyz")


def test_a_file_that_appears_while_the_output_is_written_is_kept_without_force(tmp_path, photo, monkeypatch):
    """The existing-output check runs before the work; a file that appears at the output path
    during the work (another program, a second vqpress) is kept too, unless --force."""
    from vqpress.codec import api, imageio

    src = tmp_path / "photo.png"
    Image.fromarray(photo).save(src)
    target = tmp_path / "photo.vqp"
    compress = api.Codec.compress

    def meanwhile(self, *args, **kwargs):  # another program writes the output during the encode
        data = compress(self, *args, **kwargs)
        target.write_bytes(b"theirs")
        return data

    monkeypatch.setattr(api.Codec, "compress", meanwhile)
    one_line_error(run("compress", src), "photo.vqp exists: not replaced")
    assert target.read_bytes() == b"theirs"
    assert run("compress", src, "--force").exit_code == 0 and target.read_bytes()[:4] == b"\x89VQP"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]

    def appear(f):  # the same for images, through the library
        f.write(b"ours")
        (tmp_path / "out.png").write_bytes(b"theirs")

    with pytest.raises(codec.VQPressError, match="out.png exists: not replaced"):
        imageio.write_atomically(tmp_path / "out.png", appear, replace=False)
    assert (tmp_path / "out.png").read_bytes() == b"theirs"
    imageio.write_atomically(tmp_path / "out.png", appear)  # replace: the caller's choice
    assert (tmp_path / "out.png").read_bytes() == b"ours"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]


# -- files that must decode ------------------------------------------------------------------------
@pytest.mark.parametrize("width, height", [(8, 16), (16, 16), (1, 48), (16, 600), (1, 1), (2, 2), (17, 3)])
def test_narrow_and_tiny_images_round_trip(model, width, height):
    image = np.random.default_rng(width * 1000 + height).integers(0, 256, (height, width, 3), np.uint8)
    for q in (1, 2, model.qualities[-1]):
        assert model.decompress(model.compress(image, q)).size == (width, height)


def test_one_pixel_and_image_edges_keep_their_colour(model):
    pixel = np.array([[[200, 30, 90]]], np.uint8)
    best = model.qualities[-1]
    out = np.asarray(model.decompress(model.compress(pixel, best))).astype(int)
    assert np.abs(out - pixel).max() <= 4
    from skimage import data

    image = data.astronaut()[:193, :257]  # one pixel into a new block each way
    out = np.asarray(model.decompress(model.compress(image, 7)))
    inner = psnr(out[:-1, :-1], image[:-1, :-1])
    assert psnr(out[:, -1], image[:, -1]) > inner - 1.5
    assert psnr(out[-1], image[-1]) > inner - 1.5


def test_flat_colours_come_back_within_a_few_levels_at_the_best_quality(model):
    """Block modes predict a flat block from the base block's mean, not from VQ texture that
    is not there (before them, a flat colour came back up to 23 levels off)."""
    best = model.qualities[-1]
    for colour in [(200, 30, 90), (128, 128, 128), (10, 200, 250), (255, 255, 255), (0, 0, 0), (90, 160, 40)]:
        image = np.zeros((64, 96, 3), np.uint8) + np.array(colour, np.uint8)
        out = np.asarray(model.decompress(model.compress(image, best))).astype(int)
        assert np.abs(out - image).max() <= 3, colour


# -- forged and damaged files ------------------------------------------------------------------------
def forged(model, width, height, payload=b"\0\0\0\0", quality=5, model_id=None, mode=0):
    header = container.Header(model_id or model.model_id, model.weights_hash, width, height, mode, quality)
    body = container.pack(header, payload)
    return body


@pytest.mark.parametrize("width, height", [(16384, 16384), (8000, 8000), (16384, 1), (1, 16384), (4096, 2048)])
def test_decoding_work_is_set_by_the_payload_not_the_header(model, width, height):
    start = time.perf_counter()
    with pytest.raises(codec.VQPressError):
        model.decompress(forged(model, width, height))
    assert time.perf_counter() - start < 2


def test_sizes_over_the_limits_are_refused_both_ways(model, monkeypatch):
    with pytest.raises(limits.LimitError, match="over vqpress's limit"):
        model.decompress(forged(model, 2**28, 1))
    monkeypatch.setattr(limits, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(limits.LimitError, match="over vqpress's limit of 0.001 MP"):
        model.compress(np.zeros((40, 30, 3), np.uint8), 1)
    monkeypatch.setattr(limits, "MAX_IMAGE_PIXELS", None)
    assert model.decompress(model.compress(np.zeros((40, 30, 3), np.uint8), 1)).size == (30, 40)


def test_a_model_that_is_not_a_codec_is_a_clear_error(model, photo):
    _, payload = container.unpack(model.compress(photo, 1))
    for name in ("vae-v3", "bmshj2018-hyperprior-l0.0018"):
        with pytest.raises(codec.VQPressError, match=f"model {name} is not a codec model"):
            codec.decompress(forged(model, photo.shape[1], photo.shape[0], payload, 1, name))


def test_header_bytes_are_never_echoed(tmp_path, model):
    data = bytearray(forged(model, 8, 8, model_id="a" * len(model.model_id)))
    data[6:6 + len(model.model_id)] = (b"x\n\x1b[2J" + b"y" * 64)[:len(model.model_id)]
    body = bytes(data[:-4])
    (tmp_path / "evil.vqp").write_bytes(body + struct.pack("<I", zlib.crc32(body)))
    r = run("info", tmp_path / "evil.vqp")
    one_line_error(r, "the model id is not a model name")
    assert "\x1b" not in r.output


def test_image_bombs_are_one_line_errors(tmp_path):
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0))
                     + chunk(b"IEND", b""))
    one_line_error(run("compress", bomb), "over vqpress's limit")
    one_line_error(run("restore", bomb, "--task", "denoise", "-o", tmp_path / "x.png"), "over vqpress's limit")
    assert not (tmp_path / "bomb.vqp").exists()


# -- the Python API ----------------------------------------------------------------------------------
def test_api_takes_paths_orientation_and_numeric_qualities(tmp_path, model, photo):
    rotated = Image.fromarray(photo)
    exif = rotated.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to view
    path = tmp_path / "r.jpg"
    rotated.save(path, exif=exif, quality=95)
    expected = (photo.shape[0], photo.shape[1])  # width and height swap
    assert model.decompress(model.compress(Image.open(path), 2)).size == expected
    assert model.decompress(model.compress(str(path), 2)).size == expected
    assert model.compress(photo, 5.0) == model.compress(photo, "5") == model.compress(photo, 5)
    for bad in (5.5, "five", None, True):
        with pytest.raises(codec.VQPressError, match="quality must be an integer"):
            model.compress(photo, bad)
    with pytest.raises(codec.VQPressError, match="float array must hold values in 0..1"):
        model.compress(photo.astype(np.float32), 5)
    assert model.compress(photo.astype(np.float32) / 255, 5) == model.compress(photo, 5)


# -- the command line --------------------------------------------------------------------------------
def test_usage_errors_are_one_line(tmp_path, photo):
    src = tmp_path / "photo.png"
    Image.fromarray(photo).save(src)
    one_line_error(run("compress", src, "--quality", "5.5"), "is not a valid integer", code=2)
    one_line_error(run("compress", src, "--colour", "red"), "No such option", code=2)


def test_long_runs_show_progress(model, photo, capsys, monkeypatch):
    from vqpress.codec import api as codec_module

    monkeypatch.setattr(codec_module, "PROGRESS_DELAY", 0)
    data = model.compress(photo, model.qualities[-1], progress=True)
    model.decompress(data, progress=True)
    err = capsys.readouterr().err
    assert "compress" in err and "decompress" in err and "block" in err


def test_animated_images_say_only_the_first_frame_is_used(tmp_path, photo):
    frames = [Image.fromarray(photo), Image.fromarray(photo[::-1].copy())]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    r = CliRunner().invoke(main, ["compress", str(tmp_path / "anim.gif")])
    assert r.exit_code == 0 and "only the first of the image's 2 frames is used" in r.output


# -- restoration keeps what it does not restore ------------------------------------------------------
def test_restoration_keeps_alpha_and_gray(photo):
    from vqpress import restore

    rgba = np.dstack([photo, np.linspace(0, 255, photo.shape[1]).astype(np.uint8)[None].repeat(photo.shape[0], 0)])
    image = Image.fromarray(rgba, "RGBA")
    missing = np.zeros(photo.shape[:2], bool)
    missing[20:30, 30:50] = True
    out = restore.inpaint(image, missing, device="cpu")
    assert out.mode == "RGBA" and np.array_equal(np.asarray(out)[~missing], rgba[~missing])
    gray = Image.fromarray(photo).convert("L")
    assert restore.restore(gray, task="sr", scale=2, device="cpu").mode == "L"
    up = restore.restore(image, task="sr", scale=2, device="cpu")
    assert up.mode == "RGBA" and up.size == (2 * photo.shape[1], 2 * photo.shape[0])


# -- found by a hostile-input review (2026-12-04) --------------------------------------------------
def jpeg_with_exif(path, exif: bytes) -> None:
    Image.fromarray(np.full((16, 24, 3), 120, np.uint8)).save(path, "JPEG", exif=exif)


def test_a_damaged_exif_block_is_left_out_not_a_crash(tmp_path, model):
    """Pillow opens such JPEGs; its EXIF reader then failed on a copy (garbage after the header)
    or its writer on a tag of the wrong type (orientation as text)."""
    orientation_text = (b"II*\x00" + struct.pack("<IH", 8, 1) + struct.pack("<HHI4s", 0x0112, 2, 4, b"abc\x00")
                        + struct.pack("<I", 0))
    for name, exif in [("garbage.jpg", b"Exif\x00\x00U\x8b" + bytes(range(40, 68))),
                       ("text.jpg", b"Exif\x00\x00" + orientation_text)]:
        src = tmp_path / name
        jpeg_with_exif(src, exif)
        r = run("compress", src)
        assert r.exit_code == 0 and "EXIF block is damaged and is left out" in r.output, r.output
        assert "EXIF" not in container.unpack(src.with_suffix(".vqp").read_bytes())[0].extensions
        assert run("decompress", src.with_suffix(".vqp"), "-o", tmp_path / f"{name}.tif").exit_code == 0
        assert model.decompress(model.compress(src, 3)).size == (24, 16)
    good = Image.Exif()
    good[0x0112] = 6  # rotated: still applied
    jpeg_with_exif(tmp_path / "good.jpg", good.tobytes())
    r = run("compress", tmp_path / "good.jpg")
    assert r.exit_code == 0 and "EXIF" not in r.output
    assert model.decompress((tmp_path / "good.vqp").read_bytes()).size == (16, 24)


def test_inputs_over_the_size_limit_say_so(tmp_path, monkeypatch):
    for name in ("MAX_IMAGE_PIXELS", "MAX_SIDE"):  # --max-pixels sets them for the process
        monkeypatch.setattr(limits, name, getattr(limits, name))
    Image.new("RGB", (40, 30)).save(tmp_path / "a.png")
    r = run("compress", tmp_path / "a.png", "--max-pixels", 100)
    one_line_error(r, "over vqpress's limit")
    assert "not an image Pillow can read" not in r.output


def test_inpainting_never_overwrites_its_mask(tmp_path, photo):
    Image.fromarray(photo).save(tmp_path / "p.png")
    mask = np.zeros(photo.shape[:2], np.uint8)
    mask[10:20, 10:20] = 255
    Image.fromarray(mask).save(tmp_path / "m.png")
    before = (tmp_path / "m.png").read_bytes()
    one_line_error(run("inpaint", tmp_path / "p.png", "--mask", tmp_path / "m.png", "-o", tmp_path / "m.png",
                       "--force"), "refusing to overwrite the mask file")
    assert (tmp_path / "m.png").read_bytes() == before


def test_deblurring_with_a_blur_wider_than_the_image_is_a_one_line_error(tmp_path):
    Image.new("RGB", (64, 8), (90, 120, 30)).save(tmp_path / "thin.png")
    one_line_error(run("restore", tmp_path / "thin.png", "--task", "deblur", "--blur-sigma", 3,
                       "-o", tmp_path / "o.png"), "--blur-sigma 3 is too wide for this image")
    assert not (tmp_path / "o.png").exists()


def test_rd_checks_peer_qualities_reused_tables_and_its_output_folder(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    Image.new("RGB", (16, 16)).save(images / "a.png")
    out = tmp_path / "out"
    for grid, text in [("jpeg=nan", "jpeg takes whole numbers from 0 to 100"),
                       ("jpeg=-5,50", "jpeg takes whole numbers from 0 to 100"),
                       ("jpeg=50.5", "jpeg takes whole numbers from 0 to 100"),
                       ("webp=200", "webp takes numbers from 0 to 100")]:
        one_line_error(run("rd", images, "--codec", "jpeg", "--codec", "webp", "--quality", grid, "-o", out), text)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "per_image.csv").write_text("foo,bar\n1,2\n")
    one_line_error(run("rd", images, "--codec", "jpeg", "--reuse", bad, "-o", out), "is not a vqpress rd table")
    one_line_error(run("rd", images, "--codec", "jpeg", "-o", images / "rd"), "must not be inside the image folder")
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    one_line_error(run("rd", images, "--codec", "jpeg", "-o", out), "holds files already")
    (out / "old.json").write_text('{"name": "X", "description": "", "results": {}}')
    r = run("rd", images, "--codec", "jpeg", "--quality", "jpeg=10,50,90", "-o", out, "--force")
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in out.iterdir()) == ["bd_rate.csv", "bd_rate.md", "crops.png", "jpeg.json",
                                                     "notes.txt", "per_image.csv", "rd.png"]


def test_api_arguments_get_clear_errors(tmp_path, model, photo):
    from vqpress import restore

    with pytest.raises(codec.VQPressError, match="bpp must be a positive number"):
        model.compress_to_target(photo, bpp=0)
    with pytest.raises(codec.VQPressError, match="max_bytes must be a positive number"):
        model.compress_to_target(photo, max_bytes=-1)
    data = model.compress(photo, 2)
    assert codec.decompress(memoryview(data)).size == codec.decompress(bytearray(data)).size
    with pytest.raises(codec.VQPressError, match="not its path"):
        codec.decompress(str(tmp_path / "photo.vqp"))
    with pytest.raises(codec.VQPressError, match="takes bytes, got ndarray"):
        codec.decompress(np.frombuffer(data, np.uint8))
    for mask, text in [(None, "expected the mask as a PIL image"), (np.ones(5, bool), "expected an HxW mask")]:
        with pytest.raises(codec.VQPressError, match=text):
            restore.inpaint(photo, mask)
    with pytest.raises(codec.VQPressError, match="scale must be an integer"):
        restore.restore(photo, "sr", scale=2.0)
    with pytest.raises(codec.VQPressError, match="steps must be a whole number"):
        restore.restore(photo, "denoise", steps=-1)


def test_restore_without_a_task_is_one_line(tmp_path, photo):
    Image.fromarray(photo).save(tmp_path / "p.png")
    one_line_error(run("restore", tmp_path / "p.png", "-o", tmp_path / "o.png"), "give --task: denoise, sr or deblur")


def test_an_output_with_a_trailing_slash_is_a_folder(tmp_path, photo):
    Image.fromarray(photo).save(tmp_path / "p.png")
    one_line_error(run("compress", tmp_path / "p.png", "-o", f"{tmp_path / 'new'}/"), "no such folder", code=2)
    assert not (tmp_path / "new").exists()
    (tmp_path / "new").mkdir()
    assert run("compress", tmp_path / "p.png", "-o", f"{tmp_path / 'new'}/").exit_code == 0
    assert (tmp_path / "new" / "p.vqp").is_file()


def test_second_review_rd_reuse_and_batch_outputs(tmp_path, photo):
    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(photo).save(images / "a.png")
    first = tmp_path / "first"
    assert run("rd", images, "--codec", "jpeg", "--quality", "jpeg=20,50,80", "-o", first).exit_code == 0
    kept = (first / "per_image.csv").read_bytes()
    one_line_error(run("rd", images, "--codec", "jpeg", "--quality", "jpeg=20,50,80", "--reuse", first,
                       "-o", first, "--force"), "--reuse and -o must be different folders")
    assert (first / "per_image.csv").read_bytes() == kept and (first / "jpeg.json").is_file()
    (first / "jpeg.json").write_text("{bad")
    one_line_error(run("rd", images, "--codec", "jpeg", "--reuse", first, "-o", tmp_path / "second"),
                   "is not a vqpress rd result")
    # a file where an output subfolder must go: that file fails on one line, the others are written
    (images / "sub").mkdir()
    Image.fromarray(photo).save(images / "sub" / "b.png")
    out = tmp_path / "out"
    out.mkdir()
    (out / "sub").write_text("in the way")
    r = run("compress", images, "-o", out, "-q", 1)
    assert r.exit_code == 1 and "cannot create the folder" in r.output and "Traceback" not in r.output
    assert "1 of 2 files done, 1 failed" in r.output and (out / "a.vqp").is_file()
    # one output file spelled two ways
    one_line_error(run("compress", images / "a.png", tmp_path / "images" / ".." / "images" / "a.png", "-o", out),
                   "two inputs would write the same output file")


def test_size_limits_reach_worker_processes(tmp_path, photo, monkeypatch):
    for name in ("MAX_IMAGE_PIXELS", "MAX_SIDE"):
        monkeypatch.setattr(limits, name, getattr(limits, name))
    for k in range(2):
        Image.fromarray(photo).save(tmp_path / f"{k}.png")
    r = run("compress", tmp_path / "0.png", tmp_path / "1.png", "-o", tmp_path / "out", "-j", 2, "--max-pixels", 100)
    assert r.exit_code == 1 and "0 of 2 files done, 2 failed" in r.output, r.output
    assert r.output.count("over vqpress's limit") == 2


def test_second_review_api_arguments(model, photo):
    from vqpress import restore

    data, quality = model.compress_to_target(photo, max_bytes=10**30)  # beyond float64: still a size
    assert quality == model.qualities[-1] and model.decompress(data).size == (photo.shape[1], photo.shape[0])
    for kwargs, text in [(dict(task="denoise", sigma="25"), "sigma must be a number"),
                         (dict(task="deblur", blur_sigma=None), "blur_sigma must be a number"),
                         (dict(task=["sr"]), "unknown task")]:
        with pytest.raises(codec.VQPressError, match=text):
            restore.restore(photo, **kwargs)


def test_options_that_would_be_ignored_are_refused(tmp_path, photo):
    src = tmp_path / "p.png"
    Image.fromarray(photo).save(src)
    one_line_error(run("compress", src, "-q", 3, "--max-bytes", 5000), "give -q or a target")
    one_line_error(run("restore", src, "--task", "sr", "--sigma", 5, "-o", tmp_path / "o.png"),
                   "--sigma is for --task denoise, not sr")
    one_line_error(run("info", src), f"{src}: not a .vqp file")
    one_line_error(run("decompress", src, "-o", tmp_path / "x.png"), f"{src}: not a .vqp file")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.png"]


def test_reading_a_file_stops_at_a_bound(tmp_path, monkeypatch):
    """`vqpress info /dev/zero` read until memory ran out."""
    from vqpress.cli import main as cli_main

    monkeypatch.setattr(cli_main, "MAX_FILE_BYTES", 1000)
    (tmp_path / "big.vqp").write_bytes(bytes(2000))
    one_line_error(run("info", tmp_path / "big.vqp"), "larger than any .vqp within the size limits")
