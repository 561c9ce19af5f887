import csv
import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from vqpress.cli.main import main


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def rd_run(tmp_path_factory, photo):
    folder = tmp_path_factory.mktemp("imgs")
    Image.fromarray(photo).save(folder / "a.png")
    Image.fromarray(np.ascontiguousarray(photo[::-1, :80])).save(folder / "b.png")
    out = tmp_path_factory.mktemp("rd")
    args = ["rd", str(folder), "-o", str(out), "--codec", "vqpress", "--codec", "jpeg",
            "--codec", "webp", "--quality", "jpeg=10,30,50,70,90", "--quality", "webp=0.5,10,30,50,90",
            "--quality", "vqpress=1,2,4,6,8", "--device", "cpu"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return folder, out, result.output


def test_outputs_exist_in_compressai_layout(rd_run):
    _, out, text = rd_run
    for name in ("vqpress", "jpeg", "webp"):
        doc = json.loads((out / f"{name}.json").read_text())
        assert set(doc) == {"name", "description", "results"}
        results = doc["results"]
        for key in ("bpp", "psnr-rgb", "ms-ssim-rgb", "encoding_time", "decoding_time"):
            assert len(results[key]) == 5
        assert results["bpp"] == sorted(results["bpp"])
        assert all(0 < v <= 1 for v in results["ms-ssim-rgb"])
    assert (out / "rd.png").stat().st_size > 10_000 and (out / "crops.png").stat().st_size > 10_000
    assert "| vqpress | JPEG |" in text


def test_per_image_rows_and_bpp_from_real_bytes(rd_run):
    _, out, _ = rd_run
    rows = read_csv(out / "per_image.csv")
    assert len(rows) == 3 * 5 * 2
    for r in rows:
        assert float(r["bpp"]) == pytest.approx(int(r["bytes"]) * 8 / (int(r["width"]) * int(r["height"])))
    assert {r["quality"] for r in rows if r["codec"] == "WebP"} >= {"0.5", "10"}  # WebP takes floats
    table = read_csv(out / "bd_rate.csv")
    assert len(table) == 6  # every ordered pair of 3 codecs
    for r in table:
        assert 0 <= int(r["points_test"]) <= 5 and 0 <= int(r["points_ref"]) <= 5


def test_same_numbers_twice(rd_run):
    folder, out, _ = rd_run
    from vqpress.measure import baselines, rd

    rows = rd.measure([baselines.jpeg()], {"JPEG": [10, 30, 50, 70, 90]}, folder)
    first = {(r["image"], r["quality"]): (r["bytes"], round(r["psnr"], 9)) for r in rows}
    saved = {(r["image"], int(r["quality"])): (int(r["bytes"]), round(float(r["psnr"]), 9))
             for r in read_csv(out / "per_image.csv") if r["codec"] == "JPEG"}
    assert first == saved


def test_an_earlier_run_is_reused_for_the_same_codecs_only(rd_run, tmp_path):
    folder, out, _ = rd_run
    from dataclasses import replace

    from vqpress.measure import baselines, rd

    def refuse(rgb, quality):
        raise AssertionError("a reused measurement was encoded again")

    webp = replace(baselines.webp(), encode=refuse)
    rows = rd.measure([webp], {"WebP": [0.5, 10, 30, 50, 90]}, folder, rd.reusable(out))
    saved = [r for r in read_csv(out / "per_image.csv") if r["codec"] == "WebP"]
    assert [(r["image"], r["bytes"]) for r in rows] == [(r["image"], int(r["bytes"])) for r in saved]
    other = replace(baselines.webp(), description="WebP with other settings")
    assert len(rd.measure([other], {"WebP": [50]}, folder, rd.reusable(out))) == 2  # measured anew
    bad = CliRunner().invoke(main, ["rd", str(folder), "-o", str(tmp_path / "o"), "--codec", "jpeg",
                                    "--reuse", str(tmp_path)])
    assert bad.exit_code == 1 and "--reuse" in bad.output and len(bad.output.strip().splitlines()) == 1


def test_unknown_codec_is_a_clear_error(tmp_path):
    r = CliRunner().invoke(main, ["rd", str(tmp_path), "-o", str(tmp_path / "o"), "--codec", "gif"])
    assert r.exit_code == 1 and "unknown codec 'gif'" in r.output


@pytest.mark.parametrize("grid, message", [("vqpress=2.5", "vqpress has the levels 1, 2"),
                                           ("jpeg=ten", "qualities must be numbers")])
def test_bad_quality_grid_is_a_clear_error(tmp_path, grid, message):
    r = CliRunner().invoke(main, ["rd", str(tmp_path), "-o", str(tmp_path / "o"), "--codec", "vqpress",
                                  "--codec", "jpeg", "--quality", grid])
    assert r.exit_code == 1 and message in r.output and not (tmp_path / "o").exists()


def test_compressai_peer_round_trip(tmp_path, photo):
    """A compressai checkpoint is measured through its own entropy coder."""
    import torch
    from compressai.zoo import image_models
    from safetensors.torch import save_file

    from vqpress.measure import baselines

    torch.manual_seed(0)
    net = image_models["bmshj2018-factorized"](quality=1, pretrained=False)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp_path / "f.safetensors"))
    peer = baselines.get(f"compressai:bmshj2018-factorized:{tmp_path / 'f.safetensors'}")
    data = peer.encode(photo, 0)
    assert peer.decode(data).shape == photo.shape
    assert len(data) > 10


def test_an_older_shipped_model_is_measured_under_its_own_name(photo):
    from vqpress.codec import api
    from vqpress.measure import baselines

    old = baselines.get("vqpress:rvq-dct-v9")
    assert old.name == "vqpress-rvq-dct-v9" and old.qualities == list(range(1, 14))
    assert f"weights {api.load('rvq-dct-v9').weights_hash.hex()};" in old.description  # retrained: not reused
    assert old.decode(old.encode(photo, 2)).shape == photo.shape
    assert baselines.get("vqpress").name == "vqpress"
