import subprocess
import sys

import pytest
from click.testing import CliRunner
from PIL import Image

from vqpress.cli.main import main


@pytest.fixture
def files(tmp_path, photo):
    src = tmp_path / "photo.png"
    Image.fromarray(photo).save(src)
    return tmp_path, src


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_compress_info_decompress(files):
    tmp, src = files
    vqp, out = tmp / "photo.vqp", tmp / "back.jpg"
    r = run("compress", src, "-o", vqp, "--quality", 5, "--device", "cpu")
    assert r.exit_code == 0, r.output
    assert "quality 5" in r.output
    r = run("info", vqp)
    assert r.exit_code == 0 and "97x71" in r.output and "quality:  5" in r.output
    r = run("decompress", vqp, "-o", out)
    assert r.exit_code == 0, r.output
    assert Image.open(out).format == "JPEG" and Image.open(out).size == (97, 71)


def test_grayscale_and_rgba_inputs(files, photo):
    tmp, _ = files
    Image.fromarray(photo).convert("L").save(tmp / "g.png")
    Image.fromarray(photo).convert("RGBA").save(tmp / "a.png")
    assert run("compress", tmp / "g.png", "-o", tmp / "g.vqp").exit_code == 0
    assert run("decompress", tmp / "g.vqp", "-o", tmp / "g2.png").exit_code == 0
    assert Image.open(tmp / "g2.png").mode == "L"
    r = run("compress", tmp / "a.png", "-o", tmp / "a.vqp")
    assert r.exit_code == 0 and run("decompress", tmp / "a.vqp", "-o", tmp / "a2.png").exit_code == 0
    assert Image.open(tmp / "a2.png").mode == "RGBA"


def _one_line_error(r, text):
    assert r.exit_code == 1
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and text in lines[0], r.output
    assert "Traceback" not in r.output


def test_errors_are_one_line_and_write_nothing(files):
    tmp, src = files
    (tmp / "notes.txt").write_text("hello")
    good = tmp / "good.vqp"
    assert run("compress", src, "-o", good).exit_code == 0
    data = good.read_bytes()
    (tmp / "trunc.vqp").write_bytes(data[:-10])
    (tmp / "flip.vqp").write_bytes(data[:40] + bytes([data[40] ^ 1]) + data[41:])
    before = set(tmp.iterdir())
    _one_line_error(run("compress", tmp / "missing.png", "-o", tmp / "x.vqp"), "no such file")
    _one_line_error(run("compress", tmp / "notes.txt", "-o", tmp / "x.vqp"), "not an image")
    _one_line_error(run("compress", src, "-o", tmp / "x.vqp", "-q", 14), "quality must be")
    _one_line_error(run("decompress", tmp / "notes.txt", "-o", tmp / "x.png"), "not a .vqp file")
    _one_line_error(run("decompress", tmp / "trunc.vqp", "-o", tmp / "x.png"), "truncated")
    _one_line_error(run("decompress", tmp / "flip.vqp", "-o", tmp / "x.png"), "CRC32 mismatch")
    _one_line_error(run("decompress", good, "-o", good), "refusing to overwrite the input")
    _one_line_error(run("decompress", good, "-o", tmp / "nofolder" / "x.png"), "no such folder")
    _one_line_error(run("info", tmp / "trunc.vqp"), "truncated")
    assert set(tmp.iterdir()) == before  # no output, no partial file, original intact
    assert good.read_bytes() == data


def test_console_script_runs():
    r = subprocess.run([sys.executable, "-m", "vqpress.cli.main", "info", "/nonexistent.vqp"],
                       capture_output=True, text=True, check=False)
    assert r.returncode == 1
    assert r.stderr.strip() == "Error: /nonexistent.vqp: no such file"
