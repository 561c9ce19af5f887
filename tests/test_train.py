"""The training commands end to end on a few tiny images: train, resume, export, reload."""

import hashlib
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from safetensors.torch import load_file

from vqpress.cli.main import main
from vqpress.codec.errors import VQPressError
from vqpress.codec.ladder import DEFAULT_MODEL


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    from skimage import data

    d = tmp_path_factory.mktemp("train")
    for k, im in enumerate([data.astronaut(), data.chelsea(), data.coffee()]):
        Image.fromarray(np.ascontiguousarray(im[:96, :128])).save(d / f"{k}.png")
    return d


def invoke(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_codec_training_resumes_and_exports(folder, tmp_path):
    from vqpress.codec.model import load_codec_file

    vq, pr, out = tmp_path / "vq", tmp_path / "pr", tmp_path / "weights"
    tiny = ["--channels", 16, "--latent-dim", 8, "--codes", 16, "--stages", 2, "--crop", 32,
            "--batch", 2, "--threads", 1, "--device", "cpu"]
    invoke("train", "vqvae", "--data", folder, "--valid", folder, "--run", vq, "--steps", 2, *tiny)
    text = invoke("train", "vqvae", "--data", folder, "--valid", folder, "--run", vq, "--steps", 4,
                  "--validate-every", 4, *tiny)
    assert "resuming" in text
    ckpt = torch.load(vq / "ckpt.pt", weights_only=False)
    assert ckpt["step"] == 4 and set(ckpt["history"][-1]) >= {"psnr@1", "psnr@2"}

    invoke("train", "prior", "--data", folder, "--valid", folder, "--run", pr, "--vqvae-run", vq,
           "--steps", 2, "--crop", 4, "--batch", 2, "--channels", 8, "--blocks", 1,
           "--validate-every", 2, "--threads", 1, "--device", "cpu")
    invoke("train", "export", "--vqvae-run", vq, "--prior-run", pr, "--model-id", "tiny", "--out", out)

    path = out / "tiny.safetensors"
    assert f"{sha256(path)}  tiny.safetensors" in (out / "SHA256SUMS").read_text()
    card = json.loads((out / "tiny.json").read_text())
    assert card["vqvae"]["steps"] == 4 and card["prior"]["steps"] == 2
    # the resumed run was extended from 2 to 4 steps: its card says so
    assert card["vqvae"]["schedules"] == [{"from_step": 0, "steps": 2}, {"from_step": 2, "steps": 4}]
    text = (out / "tiny.md").read_text()
    assert "## vqvae" in text and "from step 2 that of a 4-step run" in text
    assert len(card["vqvae"]["commands"]) == 2 and text.count("- command: `") == 3  # two vqvae runs, one prior
    saved = torch.from_numpy(load_codec_file(path).vqvae_state["decoder.0.weight"].astype(np.float32))
    trained = ckpt["model"]["decoder.0.weight"]
    assert torch.allclose(saved, trained, atol=1e-3)


def test_peer_training_from_a_base_run_exports_fp16_with_its_budget(folder, tmp_path, photo):
    from vqpress.measure import baselines

    base, peer, out = tmp_path / "base", tmp_path / "peer", tmp_path / "weights"
    out.mkdir()
    common = ["--arch", "bmshj2018-factorized", "--data", folder, "--widths", 8, 8, "--crop", 64,
              "--batch", 2, "--threads", 1, "--device", "cpu"]
    invoke("train", "compressai", *common, "--lmbda", 0.0067, "--run", base, "--steps", 3)
    invoke("train", "compressai", *common, "--lmbda", 0.013, "--run", peer, "--steps", 2,
           "--init", base)
    invoke("train", "export-peer", "--run", peer, "--name", "bmshj2018-factorized-l0.013", "--out", out)

    path = out / "bmshj2018-factorized-l0.013.safetensors"
    state = load_file(str(path))
    assert all(v.dtype == torch.float16 for v in state.values() if v.is_floating_point())
    card = json.loads((out / "bmshj2018-factorized-l0.013.json").read_text())["peer"]
    assert card["steps"] == 2 and card["init"]["steps"] == 3 and card["init"]["lmbda"] == 0.0067
    assert "started from" in (out / "bmshj2018-factorized-l0.013.md").read_text()
    assert f"{sha256(path)}  {path.name}" in (out / "SHA256SUMS").read_text()

    codec = baselines.get(f"compressai:bmshj2018-factorized:{path}")
    assert codec.decode(codec.encode(photo, 0)).shape == photo.shape


@pytest.mark.parametrize("arch", ["bmshj2018-factorized", "bmshj2018-hyperprior"])
def test_shipped_peers_round_trip_with_rate_rising_by_lambda(arch):
    """The peers in weights/ load (checksums verified), round-trip, and spend more bytes at a
    higher lambda."""
    from skimage import data

    from vqpress.measure import baselines
    from vqpress import weights

    assert len(weights.peers(arch)) >= 4
    codec = baselines.get(f"compressai:{arch}")
    rgb = np.ascontiguousarray(data.astronaut()[:128, :192])
    sizes = []
    for q in codec.qualities:
        data_bytes = codec.encode(rgb, q)
        assert codec.decode(data_bytes).shape == rgb.shape
        sizes.append(len(data_bytes))
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]


def test_vae_training_exports_weights_with_spectra(folder, tmp_path):
    from safetensors.numpy import load_file as load_np

    from vqpress.restore.vae import VAE, VAEConfig

    run, out = tmp_path / "vae", tmp_path / "weights"
    invoke("train", "vae", "--data", folder, "--valid", folder, "--run", run, "--steps", 3,
           "--channels", 16, "--latent-dim", 4, "--crop", 32, "--batch", 2, "--validate-every", 3,
           "--threads", 1, "--device", "cpu")
    ckpt = torch.load(run / "ckpt.pt", weights_only=False)
    assert ckpt["step"] == 3 and set(ckpt["history"][-1]) >= {"psnr", "kl_bpp"}
    invoke("train", "export-vae", "--run", run, "--model-id", "tiny-vae", "--out", out)
    path = out / "tiny-vae.safetensors"
    assert f"{sha256(path)}  tiny-vae.safetensors" in (out / "SHA256SUMS").read_text()
    tensors = load_np(str(path))
    assert all(v.dtype == np.float16 for v in tensors.values())
    vae = VAE(VAEConfig(16, 4))
    vae.load_state_dict({k: torch.from_numpy(v.astype(np.float32)) for k, v in tensors.items()})
    # the spectra were measured: finite, and the photos' power falls with frequency
    assert torch.isfinite(vae.log_image_power).all() and torch.isfinite(vae.log_residual_power).all()
    assert vae.log_image_power[1] > vae.log_image_power[-1] + 1
    assert json.loads((out / "tiny-vae.json").read_text())["vae"]["steps"] == 3
    assert "spectra" in (out / "tiny-vae.md").read_text()


@pytest.mark.parametrize("base, tasks", [("vae-v1", None), ("vae-v2", "denoise")])
def test_restorer_training_exports_a_vae_with_both_encoders(folder, tmp_path, base, tasks):
    """From a VAE (a restoration encoder is added) or from one that has one (training goes on)."""
    from safetensors.numpy import load_file as load_np

    run, out = tmp_path / "restorer", tmp_path / "weights"
    invoke("train", "restorer", "--data", folder, "--valid", folder, "--run", run, "--steps", 2,
           "--crop", 48, "--batch", 2, "--validate-every", 2, "--threads", 1, "--device", "cpu",
           "--from-vae", base, *(["--tasks", tasks] if tasks else []))
    ckpt = torch.load(run / "ckpt.pt", weights_only=False)
    assert set(ckpt["history"][-1]) >= {"psnr_inpaint", "psnr_denoise", "psnr_sr", "psnr_deblur"}
    invoke("train", "export-vae", "--run", run, "--model-id", "tiny-restorer", "--out", out)
    tensors = load_np(str(out / "tiny-restorer.safetensors"))
    assert any(k.startswith("restorer.") for k in tensors) and any(k.startswith("encoder.") for k in tensors)
    card = json.loads((out / "tiny-restorer.json").read_text())
    assert card["base"]["model_id"] == base and card["vae"]["model_config"]["restorer"]
    text = (out / "tiny-restorer.md").read_text()
    assert "restoration encoder" in text and "## vae-v1" in text  # the chain of cards, down to the VAE
    if tasks:
        assert card["vae"]["tasks"] == ["denoise"] and "only on denoise damage" in text


def test_training_commands_fail_in_one_line(folder, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    for args in (["export-vae", "--run", empty, "--model-id", "x", "--out", tmp_path / "w"],
                 ["export", "--vqvae-run", empty, "--prior-run", empty, "--model-id", "x", "--out", tmp_path / "w"],
                 ["vae", "--data", folder, "--run", tmp_path / "r", "--steps", 1, "--from-codec", "nosuch"],
                 ["restorer", "--data", folder, "--run", tmp_path / "r", "--tasks", "denoise,paint"]):
        result = CliRunner().invoke(main, ["train", *map(str, args)])
        assert result.exit_code == 1, result.output
        assert result.output.count("\n") == 1 and result.output.startswith("Error: "), result.output
    assert not (tmp_path / "w").exists()


def test_detail_layer_is_fitted_over_a_shipped_base(folder, tmp_path):
    from vqpress.codec.ladder import Rung
    from vqpress.codec.model import load_codec_file

    out = tmp_path / "weights"
    invoke("train", "detail", "--data", folder, "--valid", folder, "--model-id", "tiny-d",
           "--ladder", "1 1+80@0.15 2+80 2+40@0.15", "--out", out)
    path = out / "tiny-d.safetensors"
    assert f"{sha256(path)}  tiny-d.safetensors" in (out / "SHA256SUMS").read_text()
    model = load_codec_file(path)
    assert model.ladder == [Rung(1), Rung(1, 80.0, 0.15), Rung(2, 80.0), Rung(2, 40.0, 0.15)]
    assert model.detail_tables.shape[0] == 3 and model.detail_tables.min() >= 1
    card = json.loads((out / "tiny-d.json").read_text())
    assert card["detail"]["train_images"] == 3 and card["detail"]["base_model"] == DEFAULT_MODEL
    validation = card["detail"]["validation"]
    coarse, fine, one_stage = validation["2+80"], validation["2+40@0.15"], validation["1+80@0.15"]
    assert fine["detail_bpp"] > coarse["detail_bpp"] and fine["psnr"] > coarse["psnr"]
    assert one_stage["detail_bpp"] > coarse["detail_bpp"]  # a poorer base leaves more to code
    assert "2 stages + detail step 40" in (out / "tiny-d.md").read_text()
    assert card["detail"]["command"] and "- command: `" in (out / "tiny-d.md").read_text()
    for ladder, message in (("1 2+abc", "use rungs like"), ("9+60", "1 to 8 VQ stages")):
        bad = CliRunner().invoke(main, ["train", "detail", "--data", str(folder), "--model-id", "x",
                                        "--ladder", ladder, "--out", str(tmp_path / "none")])
        assert bad.exit_code == 1 and bad.output.startswith("Error: --ladder") and message in bad.output, bad.output
    assert not (tmp_path / "none").exists()


def test_detail_tables_with_modes_and_passes_round_trip(folder, tmp_path):
    """`--contexts modes+passes` writes uint8 codes in the richer layout, named in the file's
    metadata and card; the codec reads them and its files decode exactly."""
    from vqpress import weights
    from vqpress.codec import detail
    from vqpress.codec.api import Codec
    from vqpress.codec.model import load_codec_file

    out = tmp_path / "weights"
    invoke("train", "detail", "--data", folder, "--model-id", "tiny-p", "--ladder", "1 1+80@0.15 2+40@0.15",
           "--soft-from", "3", "--contexts", "modes+passes", "--out", out)
    path = out / "tiny-p.safetensors"
    model = load_codec_file(path)
    assert model.detail_layout.spec() == detail.MODES_PASSES.spec() == weights.metadata(path)["detail_layout"]
    assert model.detail_tables.dtype == np.uint8 and model.detail_tables.shape == (2, detail.MODES_PASSES.rows, 16)
    assert "in 4 passes per block and channel" in (out / "tiny-p.md").read_text()
    codec = Codec(path=path)
    rgb = (np.indices((40, 56)).sum(0)[..., None] * [3, 5, 7] % 256).astype(np.uint8)
    for q in (2, 3):
        data = codec.compress(rgb, q)
        assert np.array_equal(np.asarray(codec.decompress(data)), np.asarray(Codec(path=path).decompress(data)))
        assert np.abs(np.asarray(codec.decompress(data), np.float32) - rgb).mean() < 12


def test_data_parallel_training_keeps_the_replicas_identical(folder, tmp_path):
    """Two CPU processes (gloo) train the VQ-VAE for a few steps on their own shards; every
    step averages their gradients and shares rank 0's codebooks, so the weights agree at the
    end (the loop checks it and says so), and rank 0's checkpoint resumes in one process."""
    import subprocess
    import sys

    run = tmp_path / "ddp"
    tiny = ["--channels", "8", "--latent-dim", "4", "--codes", "8", "--stages", "2", "--crop", "32",
            "--batch", "2", "--device", "cpu"]
    r = subprocess.run([sys.executable, "-m", "vqpress.cli.main", "train", "vqvae", "--data", str(folder),
                        "--run", str(run), "--steps", "4", "--nproc", "2", *tiny],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[:3000] + "\n...\n" + r.stderr[-1000:]  # a rank's own error comes first
    assert "replicas identical on 2 ranks" in r.stdout
    assert torch.load(run / "ckpt.pt", weights_only=False)["step"] == 4
    text = invoke("train", "vqvae", "--data", folder, "--run", run, "--steps", 6, "--threads", 1, *tiny)
    assert "resuming" in text and torch.load(run / "ckpt.pt", weights_only=False)["step"] == 6


def test_a_launched_run_leaves_no_process_group_behind(tmp_path, monkeypatch):
    """A gloo group left to the interpreter's exit can abort the process after a successful
    run (it did in CI), so launch closes the group the training function joined."""
    import torch.distributed as dist

    from vqpress.training.launch import launch

    monkeypatch.setenv("WORLD_SIZE", "1")  # as torchrun sets it: launch runs fn in this process
    monkeypatch.setenv("RANK", "0")
    seen = []

    def run():
        dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
        seen.append(dist.is_initialized())

    launch(run, nproc=2)
    assert seen == [True] and not dist.is_initialized()


def test_postfilter_training_exports_a_codec_that_decodes_with_its_filter(folder, tmp_path, photo):
    from vqpress import weights
    from vqpress.codec.api import Codec

    base, _ = weights.verified("rvq-dct-v9")
    run, out = tmp_path / "pf", tmp_path / "weights"
    invoke("train", "postfilter", "--base", base, "--data", folder, "--valid", folder, "--run", run,
           "--steps", 2, "--batch", 2, "--crop", 32, "--limit", 2,  # the shipped graph's width and depth
           "--validate-every", 2, "--threads", 1, "--device", "cpu")
    ckpt = torch.load(run / "ckpt.pt", weights_only=False)
    assert ckpt["step"] == 2 and ckpt["train_config"]["extra"]["train_images"] == 2
    assert set(ckpt["history"][-1]) == {"step", "seconds"} | {f"gain@{q}" for q in range(1, 14)}
    invoke("train", "export-postfilter", "--run", run, "--model-id", "tiny-pf", "--out", out)
    card = (out / "tiny-pf.md").read_text()
    assert "## reconstruction filter" in card
    assert card.split("## reconstruction filter")[1].split("\n## ")[0].count("- command: `") == 2  # train, export
    codec = Codec(path=out / "tiny-pf.safetensors")
    gains = ckpt["history"][-1]
    no_gain = [q for q in range(1, 14) if gains[f"gain@{q}"] <= 0]  # the filter is off where it lost
    assert json.loads((out / "tiny-pf.json").read_text())["postfilter"]["skip"] == no_gain
    assert [q for q in range(1, 14) if not codec.postfilter.applies(q)] == no_gain
    decoded = codec.decompress(codec.compress(photo, 5))
    assert decoded.size == (photo.shape[1], photo.shape[0])


def test_quantise_filter_writes_a_codec_whose_filter_runs_in_8_bits_where_asked(folder, tmp_path):
    import onnx
    from safetensors.numpy import save_file
    from skimage import data

    from vqpress import weights
    from vqpress.codec.api import Codec
    from vqpress.codec.model import codec_file, load_codec_file
    from vqpress.measure.metrics import psnr

    invoke("train", "quantise-filter", "--base", "rvq-dct-v15", "--model-id", "tiny-int8", "--data", folder,
           "--qualities", "4,5-5", "--out", tmp_path)
    path = tmp_path / "tiny-int8.safetensors"
    codec, base = Codec(path=path, device="cpu"), Codec("rvq-dct-v15", device="cpu")
    assert codec.model.postfilter_config["int8"] == [4, 5]
    assert "8-bit graph per quality" in (tmp_path / "tiny-int8.md").read_text()
    graph = onnx.load_from_string(codec.postfilter.int8[4].tobytes())
    assert sum(n.op_type == "QuantizeLinear" for n in graph.graph.node) >= 8  # every convolution's input
    photo = np.ascontiguousarray(data.astronaut()[:128, :192])
    for quality, eight_bit in ((3, False), (4, True), (5, True)):
        unfiltered = base.decode_image(quality, *_payload(base, photo, quality))[0]
        float_filter, int8_filter = base.postfilter(unfiltered, quality), codec.postfilter(unfiltered, quality)
        assert np.array_equal(float_filter, int8_filter) != eight_bit
        assert psnr(int8_filter, float_filter) > 40  # the same filter, within rounding
    # the encoder chooses the strengths from the graph the decoder runs: files round-trip
    assert np.asarray(codec.decompress(codec.compress(photo, 4))).shape == photo.shape
    # a file whose config lists a quality without its graph is refused
    meta, tensors = codec_file(path)
    del tensors["postfilter.int8_q5"]
    broken = tmp_path / "broken.safetensors"
    save_file(tensors, str(broken), metadata={k: json.dumps(v) for k, v in meta.items()})
    with pytest.raises(weights.WeightsError, match="8-bit graphs are not those of its qualities"):
        load_codec_file(broken)
    tensors["postfilter.int8_qx"] = tensors["postfilter.int8_q4"]
    save_file(tensors, str(broken), metadata={k: json.dumps(v) for k, v in meta.items()})
    with pytest.raises(weights.WeightsError, match="8-bit graphs are not those of its qualities"):
        load_codec_file(broken)
    for bad, message in (("11", "does not filter qualities 11"), ("x", "use numbers and ranges"),
                         ("5-4", "names no quality"), ("3,11-12", "does not filter qualities 11, 12")):
        result = CliRunner().invoke(main, ["train", "quantise-filter", "--base", "rvq-dct-v15", "--model-id", "y",
                                           "--data", str(folder), "--qualities", bad, "--out", str(tmp_path)])
        assert result.exit_code != 0 and message in result.output and "Traceback" not in result.output


def _payload(codec, photo, quality):
    from vqpress.codec.container import unpack

    header, payload = unpack(codec.compress(photo, quality))
    return payload, header.height, header.width


def test_postfilter_learns_from_the_files_the_encoder_really_makes(photo):
    """The training pairs are the shipped encoder's files decoded without the filter, not an
    approximation of them (the RD-optimised levels and mode choices change the artefacts)."""
    from vqpress.codec.api import Codec
    from vqpress.training.postfilter import decoded

    codec = Codec("rvq-dct-v9", device="cpu", threads=1)
    pairs = decoded(codec, photo, 4)
    codec.postfilter = None
    assert len(pairs) == 4
    for quality in (1, 4):
        assert np.array_equal(pairs[quality - 1], np.asarray(codec.decompress(codec.compress(photo, quality))))


def test_postfilter_cache_returns_the_decoded_photo_without_decoding_again(folder, tmp_path, monkeypatch):
    from vqpress.codec.api import Codec
    from vqpress.training import postfilter

    codec, path, cache = Codec("rvq-dct-v9", device="cpu", threads=1), sorted(folder.iterdir())[0], tmp_path / "c"
    rgb, outs = postfilter.decoded_photo(codec, path, 2, cache)
    assert len(list(cache.glob("*.npy"))) == 1 and not list(cache.glob("*.part"))

    def fail(*args):
        raise AssertionError("decoded again")

    monkeypatch.setattr(postfilter, "decoded", fail)
    again_rgb, again = postfilter.decoded_photo(codec, path, 2, cache)
    assert np.array_equal(again_rgb, rgb) and all(np.array_equal(a, b) for a, b in zip(again, outs, strict=True))
    with pytest.raises(AssertionError, match="decoded again"):  # another number of qualities: not the same entry
        postfilter.decoded_photo(codec, path, 3, cache)


def test_postfilter_trained_up_to_a_quality_is_off_above_it(folder, tmp_path):
    from vqpress import weights
    from vqpress.codec.api import Codec

    base, _ = weights.verified("rvq-dct-v9")
    run, out = tmp_path / "pf", tmp_path / "weights"
    invoke("train", "postfilter", "--base", base, "--data", folder, "--valid", folder, "--run", run,
           "--steps", 1, "--batch", 2, "--crop", 32, "--limit", 1, "--max-quality", 3, "--channels", 48,
           "--layers", 6, "--validate-every", 1, "--threads", 1, "--device", "cpu")
    ckpt = torch.load(run / "ckpt.pt", weights_only=False)
    assert set(ckpt["history"][-1]) == {"step", "seconds", "gain@1", "gain@2", "gain@3"}
    invoke("train", "export-postfilter", "--run", run, "--model-id", "tiny-pf3", "--out", out)
    codec = Codec(path=out / "tiny-pf3.safetensors")
    assert not any(codec.postfilter.applies(q) for q in range(4, 14))
    assert "not applied above quality 3" in (out / "tiny-pf3.md").read_text()
    result = CliRunner().invoke(main, ["train", "postfilter", "--base", str(base), "--data", str(folder),
                                       "--run", str(tmp_path / "x"), "--max-quality", "14"])
    assert result.exit_code != 0 and "has 13 qualities" in result.output


def test_postfilter_training_can_start_from_a_codec_files_filter(folder, tmp_path):
    """--init loads a shipped filter (at lr 0 it is kept as it was); a filter of another size is
    refused with a one-line error."""
    from vqpress import weights
    from vqpress.codec.model import load_codec_file

    base, _ = weights.verified("rvq-dct-v9")
    shipped = load_codec_file(base).postfilter_state
    run = tmp_path / "pf"
    common = ["--base", base, "--data", folder, "--run", run, "--steps", 1, "--batch", 2, "--crop", 32,
              "--limit", 1, "--threads", 1, "--device", "cpu", "--init", base, "--channels", 48, "--layers", 6]
    invoke("train", "postfilter", *common, "--lr", 0)
    ckpt = torch.load(run / "ckpt.pt", weights_only=False)
    assert ckpt["train_config"]["extra"]["init"]["filter"] == str(base)
    assert all(np.array_equal(ckpt["model"][k].numpy(), v.astype(np.float32)) for k, v in shipped.items())
    other = [str(a) for a in common[:5] + [tmp_path / "other"] + common[6:]]
    result = CliRunner().invoke(main, ["train", "postfilter", *other, "--channels", "8"])
    assert result.exit_code != 0 and "has no filter of at most 8 channels" in result.output


@pytest.mark.parametrize("small, big", [((3, 8, 2), (5, 12, 4)), ((3, 8, 3), (3, 8, 5)), ((2, 8, 3), (4, 8, 3)),
                                        ((3, 8, 3), (3, 16, 3))])
def test_growth_keeps_the_function_for_more_qualities_channels_and_layers(small, big):
    """(qualities, channels, layers): a grown filter gives the small one's output at its
    qualities, and the last one's at the added qualities."""
    from vqpress.nets.postfilter import PostFilter, PostFilterConfig
    from vqpress.training.postfilter import grown

    torch.manual_seed(0)
    net = PostFilter(PostFilterConfig(*small))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn_like(p) * 0.1)
    large = PostFilter(PostFilterConfig(*big))
    large.load_state_dict(grown(net.state_dict(), net.config, large.config, torch.Generator().manual_seed(1)))
    x = torch.rand(big[0], 3, 20, 24)
    quality = torch.arange(1, big[0] + 1)
    with torch.no_grad():
        assert torch.allclose(large(x, large.condition(quality)),
                              net(x, net.condition(quality.clamp(max=small[0]))), atol=1e-6)


def test_a_filter_grown_from_a_smaller_one_computes_the_same(folder, tmp_path):
    """--init with more channels and layers: the new net starts as the shipped filter's function,
    at every quality, and its new weights are not all zero (so they can learn)."""
    from vqpress import weights
    from vqpress.codec.model import load_codec_file
    from vqpress.nets.postfilter import PostFilter, PostFilterConfig

    base, _ = weights.verified("rvq-dct-v9")
    model = load_codec_file(base)
    small = PostFilter(PostFilterConfig(**{k: model.postfilter_config[k] for k in ("qualities", "channels", "layers")}))
    small.load_state_dict({k: torch.from_numpy(v.astype(np.float32)) for k, v in model.postfilter_state.items()})
    run = tmp_path / "grown"
    invoke("train", "postfilter", "--base", base, "--data", folder, "--run", run, "--steps", 1, "--batch", 2,
           "--crop", 32, "--limit", 1, "--threads", 1, "--device", "cpu", "--init", base, "--lr", 0,
           "--channels", 56, "--layers", 7)
    ckpt = torch.load(run / "ckpt.pt", weights_only=False)
    big = PostFilter(PostFilterConfig(**ckpt["model_config"]))
    big.load_state_dict(ckpt["model"])
    assert big.convs[0].weight.shape[0] == 56 and len(big.convs) == 7
    assert big.convs[0].weight[48:].abs().sum() > 0
    x = torch.rand(len(small.quality_bias), 3, 48, 64)
    quality = torch.arange(1, len(small.quality_bias) + 1)
    with torch.no_grad():
        assert torch.allclose(big(x, big.condition(quality)), small(x, small.condition(quality)), atol=1e-6)
    invoke("train", "postfilter", "--base", base, "--data", folder, "--run", run, "--steps", 2, "--batch", 2,
           "--crop", 32, "--limit", 1, "--threads", 1, "--device", "cpu", "--lr", 0, "--channels", 56, "--layers", 7)
    invoke("train", "export-postfilter", "--run", run, "--model-id", "tiny-grown", "--out", tmp_path / "out")
    card = (tmp_path / "out" / "tiny-grown.md").read_text()  # resumed without --init: still says so
    assert f"started from the filter of `{base}` (48 channels, 6 layers, 13 qualities), grown to this size" in card


def test_a_new_prior_and_decoder_replace_only_their_part_of_a_shipped_codec(folder, tmp_path, photo):
    """`train prior --base` and `train decoder` fit on a shipped codec's symbols; export-part puts
    each into a codec file that keeps the rest (the prior onto the decoder's file), and it codes."""
    from safetensors import safe_open
    from safetensors.numpy import load_file as load_numpy
    from safetensors.numpy import save_file as save_numpy

    from vqpress.codec.api import Codec
    from vqpress.codec.model import codec_file
    from vqpress.weights import verified

    pr, dec, out = tmp_path / "pr", tmp_path / "dec", tmp_path / "weights"
    invoke("train", "prior", "--data", folder, "--valid", folder, "--run", pr, "--base", "rvq-dct-v9",
           "--qualities", "1,2", "--steps", 2, "--crop", 4, "--batch", 2, "--channels", 8, "--blocks", 1,
           "--validate-every", 2, "--threads", 1, "--device", "cpu")
    assert set(torch.load(pr / "ckpt.pt", weights_only=False)["history"][-1]) == {"step", "seconds", "bpp@1", "bpp@2"}
    invoke("train", "decoder", "--data", folder, "--run", dec, "--base", "rvq-dct-v9", "--stages", "1",
           "--steps", 2, "--crop", 32, "--batch", 2, "--threads", 1, "--device", "cpu")
    invoke("train", "export-part", "--run", dec, "--model-id", "tiny-dec", "--out", out)
    invoke("train", "export-part", "--run", pr, "--model-id", "tiny-both", "--onto", out / "tiny-dec.safetensors",
           "--out", out)

    base, both = codec_file(verified("rvq-dct-v9")[0])[1], load_numpy(str(out / "tiny-both.safetensors"))
    changed = {k.split(".")[0] + ("." + k.split(".")[1] if k.startswith("vqvae.") else "")
               for k in base if k not in both or not np.array_equal(base[k], both[k])}
    assert changed == {"prior", "vqvae.decoder"}
    assert set(both) == set(base) - {k for k in base if k.startswith("prior.")} | {k for k in both if k.startswith("prior.")}
    card = json.loads((out / "tiny-both.json").read_text())
    assert card["prior"]["init"] == {"codec": "rvq-dct-v9"} and card["decoder"]["steps"] == 2
    assert len(card["prior"]["commands"]) == 2  # train, export-part
    text = (out / "tiny-both.md").read_text()
    assert "Trained on the symbols of `rvq-dct-v9`" in text
    assert all(f"## {part}" in text for part in ("prior", "decoder", "detail layer", "reconstruction filter"))

    new, old = Codec(path=out / "tiny-both.safetensors", device="cpu"), Codec("rvq-dct-v9", device="cpu")
    data = new.compress(photo, quality=2)
    assert data != old.compress(photo, quality=2)  # other probabilities, other bytes
    assert np.asarray(new.decompress(data)).shape == photo.shape

    with safe_open(str(verified("rvq-dct-v9")[0]), "np") as f:  # a codec with another encoder: other symbols
        save_numpy({**base, "vqvae.encoder.0.weight": base["vqvae.encoder.0.weight"] / 2},
                   str(tmp_path / "other.safetensors"), metadata=f.metadata())
    bad = CliRunner().invoke(main, ["train", "export-part", "--run", str(pr), "--model-id", "x",
                                    "--onto", str(tmp_path / "other.safetensors"), "--out", str(tmp_path / "none")])
    assert bad.exit_code == 1 and bad.output.startswith("Error: ") and "symbols" in bad.output, bad.output


def test_a_detail_fit_drops_the_base_codecs_filter(folder, tmp_path):
    """A filter learnt on another codec's pixels must not ride along into a refitted codec."""
    from vqpress.codec.model import load_codec_file

    out = tmp_path / "weights"
    invoke("train", "detail", "--data", folder, "--base", "rvq-dct-v9", "--model-id", "tiny-d6",
           "--ladder", "1 1+80@0.15", "--out", out)
    model = load_codec_file(out / "tiny-d6.safetensors")
    assert model.postfilter_state is None
    assert "postfilter" not in json.loads((out / "tiny-d6.json").read_text())


def test_keep_filter_carries_the_base_filter_onto_added_rungs(folder, tmp_path):
    """Rungs added after the base's get the filter's last bias and are skipped; the base's own
    qualities keep its filter as it was (also with a third predictor added); a ladder that does
    not continue the base's is refused."""
    from vqpress import weights
    from vqpress.codec.api import Codec
    from vqpress.codec.model import load_codec_file

    base = load_codec_file(weights.verified(DEFAULT_MODEL)[0])
    ladder = " ".join(r.spec() for r in base.ladder) + " 2+11@0.15"
    out = tmp_path / "weights"
    invoke("train", "detail", "--data", folder, "--model-id", "tiny-k", "--ladder", ladder, "--keep-filter",
           "--soft-from", "3", "--out", out)
    model = load_codec_file(out / "tiny-k.safetensors")
    n = len(base.ladder)
    assert model.block_modes == (2, 2) + (3,) * (n - 1)
    assert ", and from quality 3 up also from the base softened" in (out / "tiny-k.md").read_text()
    assert model.ladder[:n] == base.ladder and len(model.ladder) == n + 1
    bias, old_bias = model.postfilter_state["quality_bias"], base.postfilter_state["quality_bias"]
    assert np.array_equal(bias[:n], old_bias) and np.array_equal(bias[n], old_bias[-1])
    assert all(np.array_equal(v, model.postfilter_state[k]) for k, v in base.postfilter_state.items() if k != "quality_bias")
    assert model.postfilter_config["skip"] == sorted(set(base.postfilter_config["skip"]) | {n + 1})
    codec = Codec(path=out / "tiny-k.safetensors")
    assert codec.postfilter.applies(1) and not codec.postfilter.applies(n + 1)
    base_card = weights.metadata(weights.verified(DEFAULT_MODEL)[0])["card"]  # a kept filter's origin stays
    expected = base_card["postfilter"].get("kept_by") or {"model": DEFAULT_MODEL, "qualities": n}
    assert json.loads((out / "tiny-k.json").read_text())["postfilter"]["kept_by"] == expected
    assert f"kept from `{expected['model']}`" in (out / "tiny-k.md").read_text()
    for args, message in ((["--ladder", "1 2+60"], "must start with the base's"),
                          (["--ladder", ladder, "--no-block-modes"], "block modes must be as in the base"),
                          (["--ladder", ladder, "--soft-from", "99"], "--soft-from 99: needs block modes")):
        bad = CliRunner().invoke(main, ["train", "detail", "--data", str(folder), "--model-id", "x", *args,
                                        "--keep-filter", "--out", str(tmp_path / "none")])
        assert bad.exit_code == 1 and message in bad.output and bad.output.count("\n") == 1, bad.output
    assert not (tmp_path / "none").exists()


def _abort_on_rank_one() -> None:
    import os

    if os.environ["RANK"] == "1":
        os.abort()


def test_a_rank_that_dies_gives_a_one_line_error():
    """A rank killed by a signal (as gloo aborts on a broken connection) ends the launch with a
    VQPressError, which the command line prints as one line, not torch's traceback."""
    from vqpress.training.launch import launch

    with pytest.raises(VQPressError, match="a training process died: process 1 terminated with signal SIGABRT"):
        launch(_abort_on_rank_one, nproc=2)


def test_checksum_lines_are_replaced_and_sorted_by_file_name(tmp_path):
    from vqpress import weights

    sums = tmp_path / weights.CHECKSUMS
    sums.write_text("ff  a.onnx\n\n00  c.safetensors\n")  # a blank line, as an editor may leave
    weights.record_checksum(sums, "b.json", "11")
    weights.record_checksum(sums, "a.onnx", "22")
    assert sums.read_text() == "22  a.onnx\n11  b.json\n00  c.safetensors\n"


def test_a_repacked_codec_holds_only_its_changed_parts_and_codes_the_same(tmp_path, photo):
    """`train repack`: a codec file on a shipped base keeps the parts that differ; read back it
    is the whole model, and codes the same payloads to the same pixels."""
    from safetensors.numpy import save_file

    from vqpress import weights
    from vqpress.codec.api import Codec
    from vqpress.codec.container import unpack
    from vqpress.codec.model import codec_file

    meta, tensors = codec_file(weights.verified("rvq-dct-v11")[0])
    tensors = dict(tensors, **{"postfilter.convs.0.bias": tensors["postfilter.convs.0.bias"] + np.float16(0.01)})
    whole = tmp_path / "tiny-r.safetensors"
    save_file(tensors, str(whole), metadata={k: json.dumps(v) for k, v in meta.items()})
    result = CliRunner().invoke(main, ["train", "repack", str(whole), "--base", "rvq-dct-v11", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    packed = tmp_path / "out" / "tiny-r.safetensors"
    assert packed.stat().st_size < whole.stat().st_size / 50
    assert {k.split(".")[0] for k in load_file(str(packed))} == {"postfilter"}
    merged = codec_file(packed)[1]
    assert merged.keys() == tensors.keys() and all(np.array_equal(merged[k], tensors[k]) for k in tensors)
    a, b = Codec(path=whole, device="cpu"), Codec(path=packed, device="cpu")
    for quality in (2, 6):
        data_a, data_b = a.compress(photo, quality), b.compress(photo, quality)
        assert unpack(data_a)[1] == unpack(data_b)[1]
        assert np.array_equal(np.asarray(a.decompress(data_a)), np.asarray(b.decompress(data_b)))
    assert "- first shipped whole" not in (tmp_path / "out" / "tiny-r.md").read_text()  # never shipped: its own sha

    # a shipped model repacked again keeps the sha256 its files carry
    shipped = weights.verified("rvq-dct-v12")[0]
    assert "base_model" in weights.metadata(shipped)
    result = CliRunner().invoke(main, ["train", "repack", str(shipped), "--base", "rvq-dct-v11", "--out", str(tmp_path / "again")])
    assert result.exit_code == 0, result.output
    again = Codec(path=tmp_path / "again" / "rvq-dct-v12.safetensors", device="cpu")
    assert again.weights_hash == Codec("rvq-dct-v12", device="cpu").weights_hash != bytes.fromhex(weights.sha256_file(shipped))[:4]


def test_dc_signs_make_a_codec_with_the_same_pixels_in_fewer_bits(tmp_path):
    """`train dc-signs`: the base's tables, levels and pixels; the DC signs coded in context
    take fewer bits where the VQ base's colour errors hold over regions (a photo's sky here)."""
    from skimage import data

    from vqpress import weights
    from vqpress.codec.api import Codec
    from vqpress.codec.container import unpack

    result = CliRunner().invoke(main, ["train", "dc-signs", "--base", "rvq-dct-v13", "--model-id", "tiny-s",
                                       "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    path = tmp_path / "tiny-s.safetensors"
    assert weights.metadata(path)["detail_layout"]["dc_signs"] is True
    assert "DC levels' signs coded in context" in (tmp_path / "tiny-s.md").read_text()
    image = data.astronaut()[:256, :256]
    # a file not shipped runs the float analysis (`Codec`): so does the base here
    base, signed = Codec("rvq-dct-v13", device="cpu", int8_analysis=False), Codec(path=path, device="cpu")
    for quality in (3, 9):
        old, new = base.compress(image, quality), signed.compress(image, quality)
        assert len(unpack(new)[1]) < len(unpack(old)[1])
        assert np.array_equal(np.asarray(base.decompress(old)), np.asarray(signed.decompress(new)))
    result = CliRunner().invoke(main, ["train", "dc-signs", "--base", "rvq-dct-v9", "--model-id", "x", "--out", str(tmp_path)])
    assert result.exit_code != 0 and "no detail tables stored as codes" in result.output


def test_a_codec_file_on_a_base_it_was_not_made_on_is_refused(tmp_path):
    from safetensors.numpy import save_file

    from vqpress import weights
    from vqpress.codec.model import load_codec_file

    path = weights.verified("rvq-dct-v12")[0]
    meta = {k: json.dumps(v) for k, v in weights.metadata(path).items()}
    own = {k: v.numpy() for k, v in load_file(str(path)).items()}
    v12 = {"base_model": "rvq-dct-v12", "base_sha256": weights.sha256_file(path)}
    for n, (changes, message) in enumerate((({"base_sha256": "0" * 64}, "made on another file of its base model rvq-dct-v11"),
                                            ({"base_model": "rvq-dct-v8"}, "'rvq-dct-v8' is not shipped"),
                                            (v12, "names a base of its own"),
                                            ({"shipped_sha256": "12ab"}, "is not a sha256"))):
        forged = tmp_path / f"forged-{n}.safetensors"
        save_file(own, str(forged), metadata={**meta, **{k: json.dumps(v) for k, v in changes.items()}})
        with pytest.raises(weights.WeightsError, match=message) as e:
            load_codec_file(forged)
        assert "\n" not in str(e.value)
    result = CliRunner().invoke(main, ["train", "repack", str(path), "--base", "rvq-dct-v12", "--out", str(tmp_path)])
    assert result.exit_code != 0 and "names a base of its own" in result.output


def test_refiner_pairs_train_and_export(folder, tmp_path):
    """Pairs are the shipped restoration's real output on damaged crops; a short run validates
    per task and exports a refiner that loads."""
    from vqpress.cli.train import REFINER_TASKS
    from vqpress.restore.refine import TASK_ORDER, load_refiner
    from vqpress.training.refiner import RefinerPairs, make_pairs

    pairs, run, out = tmp_path / "pairs", tmp_path / "refiner", tmp_path / "weights"
    invoke("train", "refiner-pairs", "--data", folder, "--out", pairs, "--count", 6, "--side", 48, "--workers", 1)
    made = (pairs / "pairs-0000.npz").stat().st_mtime_ns
    make_pairs(str(folder), pairs, 6, side=48)  # shards already made are kept
    assert (pairs / "pairs-0000.npz").stat().st_mtime_ns == made
    with pytest.raises(VQPressError, match="no image is at least 200x200"):
        make_pairs(str(folder), tmp_path / "none", 6, side=200)
    assert [p.name for p in sorted(pairs.glob("*"))] == ["pairs-0000.npz", "pairs.json"]
    data = RefinerPairs(sorted(pairs.glob("*.npz")), 32)
    estimate, observed, known, cond, truth, keeps = data.batch(3)
    assert estimate.shape == observed.shape == truth.shape == (3, 3, 32, 32) and known.shape == (3, 1, 32, 32)
    assert cond.shape == (3, 7) and torch.all(cond[:, :4].sum(1) == 1)  # one task each
    for i, task in enumerate(data.tasks):  # inpainting's known pixels are the truth; others see all
        estimate, observed, known, _, truth, keeps = data.item(i)
        assert keeps == (task == "inpaint") and (known.all() or task == "inpaint")
        if task == "inpaint":
            assert torch.equal(estimate * known, truth * known)
            assert torch.allclose(observed * known, truth * known, atol=1e-3)  # held in fp16

    for extra in ("pairs-0001.npz", "pairs-0002.npz"):  # shards to validate on (the last two)
        (pairs / extra).write_bytes((pairs / "pairs-0000.npz").read_bytes())
    invoke("train", "refiner", "--data", pairs, "--run", run, "--steps", 2, "--crop", 32, "--batch", 2,
           "--channels", 8, "--layers", 3, "--validate-every", 2, "--threads", 1, "--device", "cpu")
    ckpt = torch.load(run / "ckpt.pt", weights_only=False)
    assert ckpt["step"] == 2 and any(k.startswith("gain_") for k in ckpt["history"][-1])
    assert ckpt["train_config"]["extra"]["train_images"] == 6
    invoke("train", "export-refiner", "--run", run, "--model-id", "tiny-refiner", "--out", out)
    assert f"{sha256(out / 'tiny-refiner.safetensors')}  tiny-refiner.safetensors" in (out / "SHA256SUMS").read_text()
    card = json.loads((out / "tiny-refiner.json").read_text())
    assert card["refiner"]["steps"] == 2 and card["estimates_from"]["vae"]
    assert card["pairs"] == json.loads((pairs / "pairs.json").read_text()) and card["pairs"]["command"]
    from safetensors import safe_open

    with safe_open(str(out / "tiny-refiner.safetensors"), "np") as f:
        config = json.loads(f.metadata()["refiner_config"])
    lost = [task for task in TASK_ORDER  # off where validation saw little gain, or no pair of it
            if ckpt["history"][-1].get(f"gain_{task}", 0) < 0.05]
    assert config["skip"] == lost and config["channels"] == 8
    with pytest.raises(Exception, match="not shipped"):
        load_refiner("tiny-refiner")  # only shipped weights load
    before = sha256(out / "tiny-refiner.safetensors")  # exporting again never replaces the file
    again = CliRunner().invoke(main, ["train", "export-refiner", "--run", str(run), "--model-id", "tiny-refiner",
                                      "--out", str(out)])
    assert again.exit_code == 1 and "exists" in again.output and len(again.output.strip().splitlines()) == 1
    assert sha256(out / "tiny-refiner.safetensors") == before

    left_out = data.tasks[0]  # --skip trains without a task's pairs, and the export skips it
    invoke("train", "refiner", "--data", pairs, "--run", tmp_path / "skipping", "--steps", 1, "--crop", 32,
           "--batch", 2, "--channels", 8, "--layers", 3, "--skip", left_out, "--threads", 1, "--device", "cpu")
    ckpt = torch.load(tmp_path / "skipping" / "ckpt.pt", weights_only=False)
    assert ckpt["train_config"]["extra"]["train_images"] == 6 - data.tasks.count(left_out)
    assert f"gain_{left_out}" not in ckpt["history"][-1]
    invoke("train", "export-refiner", "--run", tmp_path / "skipping", "--model-id", "skipping", "--out", out)
    assert left_out in json.loads((out / "skipping.json").read_text())["refiner"]["model_config"]["skip"]
    every = [a for task in TASK_ORDER for a in ("--skip", task)]
    result = CliRunner().invoke(main, ["train", "refiner", "--data", str(pairs), "--run", str(tmp_path / "none"),
                                       *every])
    assert result.exit_code == 1 and result.output.strip() == "Error: --skip leaves no task to train"
    assert REFINER_TASKS == TASK_ORDER  # the CLI's list, kept without importing torch


def test_refiner_pairs_of_one_task_and_a_run_from_a_shipped_refiner(folder, tmp_path):
    """--task makes pairs of that task only; --init starts a run from a shipped refiner's
    weights, refuses one of another size, and the card says where the weights came from."""
    from vqpress.restore.refine import load_refiner
    from vqpress.training.refiner import RefinerPairs

    pairs, run, out = tmp_path / "pairs", tmp_path / "refiner", tmp_path / "weights"
    invoke("train", "refiner-pairs", "--data", folder, "--out", pairs, "--count", 6, "--side", 48, "--workers", 1,
           "--task", "inpaint")
    assert RefinerPairs(sorted(pairs.glob("*.npz")), 32).tasks == ["inpaint"] * 6
    for extra in ("pairs-0001.npz", "pairs-0002.npz"):  # shards to validate on (the last two)
        (pairs / extra).write_bytes((pairs / "pairs-0000.npz").read_bytes())
    common = ["train", "refiner", "--data", str(pairs), "--steps", "1", "--crop", "32", "--batch", "2",
              "--threads", "1", "--device", "cpu", "--init", "refiner-v3"]
    wrong = CliRunner().invoke(main, [*common, "--run", str(tmp_path / "wrong"), "--channels", "8"])
    assert wrong.exit_code == 1 and len(wrong.output.strip().splitlines()) == 1
    assert "--init refiner-v3 has 64 channels and 8 layers" in wrong.output
    unknown = CliRunner().invoke(main, [*common[:-1], "nope", "--run", str(tmp_path / "unknown")])
    assert unknown.exit_code == 1 and "'nope' is not shipped" in unknown.output
    assert not (tmp_path / "wrong").exists() and not (tmp_path / "unknown").exists()  # no run folder left
    invoke(*common, "--run", run, "--lr", "1e-12")
    ckpt = torch.load(run / "ckpt.pt", weights_only=False)
    shipped = load_refiner("refiner-v3")[0].state_dict()
    assert ckpt["step"] == 1 and ckpt["train_config"]["extra"]["init"] == {"refiner": "refiner-v3"}
    assert all(torch.allclose(ckpt["model"][k], v, atol=1e-6) for k, v in shipped.items())
    invoke("train", "export-refiner", "--run", run, "--model-id", "tuned", "--out", out)
    assert "started from `refiner-v3`'s weights" in (out / "tuned.md").read_text()
    deeper = CliRunner().invoke(main, [*common, "--run", str(tmp_path / "deeper"), "--layers", "7"])
    assert deeper.exit_code == 1 and "--init refiner-v3 has 64 channels and 8 layers" in deeper.output


def test_refiner_pairs_of_shrunk_photos(folder, tmp_path):
    """--shrink crops photos shrunk by block means; photos too small for it are refused."""
    from vqpress.training.refiner import shrunk

    image = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    means = image[2:4, 4:6].reshape(4, 3).mean(0)  # 58.5, 59.5, 60.5: halves round up
    assert np.array_equal(shrunk(image, 2)[1, 2], np.floor(means + 0.5))
    assert shrunk(image, 1) is image
    pairs = tmp_path / "pairs"
    invoke("train", "refiner-pairs", "--data", folder, "--out", pairs, "--count", 3, "--side", 48, "--workers", 1,
           "--task", "sr", "--shrink", 2)
    sources = [shrunk(np.asarray(Image.open(p)), 2) for p in sorted(folder.glob("*.png"))]
    with np.load(pairs / "pairs-0000.npz") as data:
        for crop in data["truth"]:
            assert any(np.array_equal(crop, src[y:y + 48, x:x + 48]) for src in sources
                       for y in range(src.shape[0] - 47) for x in range(src.shape[1] - 47))
    result = CliRunner().invoke(main, ["train", "refiner-pairs", "--data", str(folder), "--out", str(tmp_path / "no"),
                                       "--side", "48", "--shrink", "3", "--workers", "1"])
    assert result.exit_code == 1 and "no image is at least 144x144" in result.output


def test_scattered_refiner_pairs_miss_random_pixels_and_follow_the_seed(folder, tmp_path):
    """--scattered makes inpainting pairs with 40-95% of the pixels missing at random only;
    --seed changes the draw, and the same seed gives the same pairs."""
    def pairs(name, seed):
        invoke("train", "refiner-pairs", "--data", folder, "--out", tmp_path / name, "--count", 4, "--side", 48,
               "--workers", 1, "--scattered", "--seed", seed)
        with np.load(tmp_path / name / "pairs-0000.npz") as data:
            settings = json.loads(str(data["settings"]))
            return settings, [data[f"missing{k}"] for k in range(len(settings))]

    settings, missing = pairs("a", 5)
    assert len(settings) == 4 and all(s == {"task": "inpaint"} for s in settings)
    assert all(0.3 < m.mean() < 0.99 for m in missing) and len({m.mean() for m in missing}) == 4
    assert all(np.array_equal(a, b) for a, b in zip(missing, pairs("b", 5)[1]))
    assert not any(np.array_equal(a, b) for a, b in zip(missing, pairs("c", 6)[1]))


def test_a_run_from_a_shallower_refiner_starts_from_what_it_computes(folder, tmp_path):
    """--init with more --layers inserts identity layers (`grown`): the grown net gives the
    shipped one's output, and the card says how it was grown."""
    from vqpress.nets.refiner import RefinerConfig
    from vqpress.restore.refine import load_refiner
    from vqpress.training.refiner import grown

    shipped = load_refiner("refiner-v3")[0]
    net = grown(shipped, RefinerConfig(64, 11))
    inputs = (torch.rand(2, 3, 24, 24), torch.rand(2, 3, 24, 24), torch.ones(2, 1, 24, 24), torch.rand(2, 7))
    with torch.no_grad():
        assert len(net.convs) == 11 and torch.allclose(net(*inputs), shipped(*inputs), atol=1e-6)
        assert not torch.allclose(net(*inputs), inputs[0])  # not trivially the identity
    pairs, run, out = tmp_path / "pairs", tmp_path / "refiner", tmp_path / "weights"
    invoke("train", "refiner-pairs", "--data", folder, "--out", pairs, "--count", 3, "--side", 48, "--workers", 1,
           "--task", "sr")
    for extra in ("pairs-0001.npz", "pairs-0002.npz"):
        (pairs / extra).write_bytes((pairs / "pairs-0000.npz").read_bytes())
    invoke("train", "refiner", "--data", pairs, "--run", run, "--steps", "1", "--crop", "32", "--batch", "2",
           "--threads", "1", "--device", "cpu", "--init", "refiner-v3", "--layers", "10", "--lr", "1e-12")
    ckpt = torch.load(run / "ckpt.pt", weights_only=False)
    assert ckpt["train_config"]["extra"]["init"] == {"refiner": "refiner-v3", "layers": 8}
    assert ckpt["model_config"]["layers"] == 10
    invoke("train", "export-refiner", "--run", run, "--model-id", "deeper", "--out", out)
    assert "grown from 8 to 10 layers" in (out / "deeper.md").read_text()


def test_refiner_validation_gain_is_finite_on_an_exact_estimate(folder, tmp_path):
    """A crop whose estimate is already exact (a flat crop: MSE 0, an infinite PSNR) counts as
    8-bit rounding's error, so it cannot make a task's mean gain minus infinity (and the export
    skip the task)."""
    from vqpress.nets.refiner import Refiner, RefinerConfig
    from vqpress.training.refiner import ROUNDING_MSE, RefinerPairs, gain_db, make_pairs, validate_refiner

    assert gain_db(0.0, 0.0) == 0 and gain_db(1e-3, 1e-4) == pytest.approx(10)
    assert gain_db(0.0, 100 * ROUNDING_MSE) == pytest.approx(-20)
    make_pairs(str(folder), tmp_path, 2, side=48)
    with np.load(tmp_path / "pairs-0000.npz") as shard:
        arrays = dict(shard)
    arrays["estimate"] = arrays["truth"].copy()  # both crops restored exactly
    np.savez(tmp_path / "pairs-0000.npz", **arrays)
    pairs = RefinerPairs([tmp_path / "pairs-0000.npz"], 32)
    gains = validate_refiner(Refiner(RefinerConfig(8, 3)), pairs)
    assert gains and all(np.isfinite(g) and g <= 0 for g in gains.values())
