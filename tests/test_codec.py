"""The codec end to end with the shipped weights: round trips, sizes, rates and exactness."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

from vqpress import codec
from vqpress.codec import strength
from vqpress.codec.container import unpack
from vqpress.measure.metrics import psnr


def test_round_trip_every_quality(model, photo):
    sizes, quality_psnr = [], []
    for q in model.qualities:
        data = model.compress(photo, q)
        out = model.decompress(data)
        assert out.size == (photo.shape[1], photo.shape[0]) and out.mode == "RGB"
        sizes.append(len(data))
        quality_psnr.append(psnr(out, photo))
    assert sizes == sorted(sizes)  # more stages, more bits
    assert quality_psnr[-1] > quality_psnr[0] + 1  # and better pictures
    assert quality_psnr[0] > 18


def test_payload_is_within_one_percent_of_cross_entropy(model):
    from skimage import data as skdata

    image = skdata.coffee()[:256, :384]
    for q in (1, 2, 4, model.qualities[-1]):
        result = model.compress_detailed(image, q)
        _, payload = unpack(result.data)
        assert len(payload) * 8 <= result.cross_entropy_bits * 1.01 + 64


def test_encoding_is_deterministic(model, photo):
    assert model.compress(photo, 5) == model.compress(photo, 5)


def test_module_api_accepts_pil_and_array(photo):
    data = codec.compress(Image.fromarray(photo), quality=2, device="cpu")
    assert data == codec.compress(photo, quality=2, device="cpu")
    assert isinstance(codec.decompress(data, device="cpu"), Image.Image)


def test_quality_out_of_range_is_an_error(model, photo):
    top = model.qualities[-1]
    for q in (0, top + 1, -1):
        with pytest.raises(codec.VQPressError, match=f"quality must be an integer from 1 to {top}"):
            model.compress(photo, q)


@pytest.mark.parametrize("threads", [-1, 1.5, "2", True])
def test_a_bad_thread_count_is_a_clear_error(threads):
    with pytest.raises(codec.VQPressError, match="threads must be a whole number"):
        codec.load(device="cpu", threads=threads)


def test_the_default_pool_has_a_thread_per_available_cpu_up_to_a_ceiling():
    from vqpress.codec import parallel

    assert 1 <= parallel.workers(0) <= parallel.MAX_WORKERS
    assert parallel.workers(3) == 3


def test_file_from_other_weights_is_rejected(model, photo):
    from vqpress.codec import container

    header, payload = unpack(model.compress(photo, 1))
    foreign = container.pack(container.Header("rvq8-v1", b"\0\0\0\0", header.width, header.height,
                                              header.mode, header.quality), payload)
    with pytest.raises(codec.VQPressError, match="made with model rvq8-v1 .weights 00000000"):
        model.decompress(foreign)
    # the module-level decoder picks the model the file names, and says so when it is not shipped
    assert codec.decompress(model.compress(photo, 1)).size == (photo.shape[1], photo.shape[0])
    for earlier in ("rvq-dct-v15", "rvq-dct-v13", "rvq-dct-v12", "rvq-dct-v11", "rvq-dct-v9"):  # the earlier defaults: their files still decode
        old = codec.load(earlier, device="cpu")
        assert old.model_id != model.model_id
        data = old.compress(photo, 9)
        with pytest.raises(codec.VQPressError, match=f"made with model {earlier}"):
            model.decompress(data)
        assert np.array_equal(np.asarray(codec.decompress(data, device="cpu")), np.asarray(old.decompress(data)))
    for gone in ("rvq-dct-v8", "rvq-dct-v7", "rvq-dct-v6", "rvq9-x"):  # pruned from weights/, or never shipped
        unknown = container.pack(container.Header(gone, header.weights_hash, header.width,
                                                  header.height, header.mode, header.quality), payload)
        with pytest.raises(codec.VQPressError, match=f"made with model {gone}, which this vqpress does not ship"):
            codec.decompress(unknown)


# Files written by vqpress 0.14.0 (the test photo), and a digest of what their payloads decode
# to: symbol maps, detail levels, block modes, filter strengths. Those are integers computed
# exactly on any machine, so a change to the prior or the detail layer's arithmetic that would
# stop earlier files from decoding fails here even where encoder and decoder changed together.
GOLDEN = [("astronaut-rvq-dct-v9-q2.vqp", "cadd3474004cef6399b738749cdbbb85"),
          ("astronaut-rvq-dct-v9-q8.vqp", "86eb976f147c0eedc303bb48dfb53e3c"),
          ("astronaut-rvq-dct-v15-q3.vqp", "f24655fa5fd3f1421bb56b39ec16caa1"),
          ("astronaut-rvq-dct-v15-q9.vqp", "93227969f2b7864cfebe0c839c87d36a")]


@pytest.mark.parametrize("name, digest", GOLDEN)
def test_files_of_an_earlier_version_decode_to_the_same_integers(name, digest):
    import hashlib
    from pathlib import Path

    header, payload = unpack((Path(__file__).parent / "data" / name).read_bytes())
    decoded = codec.load(header.model_id, device="cpu").decode_payload(header.quality, payload, header.height,
                                                                       header.width)
    h = hashlib.sha256()
    for part in decoded:
        h.update(b"-" if part is None else np.ascontiguousarray(part).astype(np.int64).tobytes())
    assert h.hexdigest()[:32] == digest


ENCODE = """
import sys, numpy as np
from skimage import data
from vqpress import codec
img = data.chelsea()[:120, :200]
sys.stdout.buffer.write(codec.load(device="cpu", threads={threads}).compress(img, quality=9))
"""

DECODE = """
import sys, numpy as np
from vqpress import codec
from vqpress.codec.container import unpack
data = sys.stdin.buffer.read()
m = codec.load(device="cpu", threads={threads})
h, payload = unpack(data)
indices, levels, modes, strengths = m.decode_payload(h.quality, payload, h.height, h.width)
np.savez(sys.stdout.buffer, indices=indices, levels=levels, modes=np.zeros(0) if modes is None else modes,
         strengths=np.zeros(0) if strengths is None else strengths)
"""


def _run(script, threads, stdin=None):
    env_threads = {"OMP_NUM_THREADS": str(threads), "OPENBLAS_NUM_THREADS": str(threads),
                   "MKL_NUM_THREADS": str(threads)}
    import os
    env = {**os.environ, **env_threads}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(script.format(threads=threads))],
                          input=stdin, capture_output=True, check=True, env=env).stdout


def test_bit_exact_across_processes_and_thread_counts(model):
    """Encode with 1 thread in one process, decode with 2 in another: identical symbols, block
    modes and detail levels, and the same bytes as a 2-thread encoder."""
    import io

    one = _run(ENCODE, 1)
    assert one == _run(ENCODE, 2)
    header, payload = unpack(one)
    assert model.ladder[header.quality - 1].step is not None  # the detail layer is in the test
    decoded = np.load(io.BytesIO(_run(DECODE, 2, stdin=one)))
    # re-encoding what was decoded must give the very payload: nothing was decoded wrongly
    modes = decoded["modes"] if decoded["modes"].size else None
    assert model.model.predictors(header.quality) < 3 or (modes == 2).any()  # all three predictors in the test
    strengths = decoded["strengths"] if decoded["strengths"].size else None
    assert model.model.strength_tile(header.quality) is None or (strengths != strength.NEUTRAL).any()
    again, _ = model.encode_payload(header.quality, decoded["indices"], decoded["levels"], modes=modes,
                                    strengths=strengths)
    assert again == payload


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA GPU")
def test_encoded_on_gpu_decodes_on_cpu(photo):
    """The networks may run on a GPU; the symbols it chose decode exactly on the CPU."""
    gpu, cpu = codec.load(device="cuda"), codec.load(device="cpu")
    top = gpu.qualities[-1]
    data = gpu.compress(photo, top)
    header, payload = unpack(data)
    from vqpress.codec.api import ECVQ_LAMBDA

    symbols = gpu.symbols(photo, gpu.ladder[top - 1].stages, lam=ECVQ_LAMBDA)  # as compress chose them
    indices, levels, modes, strengths = cpu.decode_payload(top, payload, header.height, header.width)
    assert np.array_equal(indices, symbols)
    assert cpu.encode_payload(top, indices, levels, modes=modes, strengths=strengths)[0] == payload
    assert cpu.decompress(data).size == gpu.decompress(data).size


def test_tiled_transforms_cover_the_whole_image(model, photo, monkeypatch):
    """Big photos go through the networks in overlapping tiles; every symbol and pixel is
    filled, and the file still decodes to the original size."""
    from vqpress.codec import transforms

    monkeypatch.setattr(transforms, "TILE_SYMBOLS", 4)  # 13x9 symbols -> 4x3 tiles
    data = model.compress(photo, 4)
    out = model.decompress(data)
    assert out.size == (photo.shape[1], photo.shape[0])
    assert psnr(out, photo) > 18


def test_entropy_constrained_symbols_trade_latent_error_for_bits(model, photo):
    """With lam 0 the choice is the nearest codes; with lam > 0 some codes change, the prior
    codes the maps in fewer bits and the latent error grows, and the file still decodes."""
    from vqpress.codec import ecvq, entropy

    z = model.transforms.latents(photo)
    nearest = model.transforms.quantise(z, 2)
    codebooks = model.transforms.codebooks
    assert np.array_equal(ecvq.choose(z, nearest, codebooks, model.prior, 0.0), nearest)
    chosen = ecvq.choose(z, nearest, codebooks, model.prior, 1.0)

    def bits_and_error(indices):
        bits = entropy.encode_symbols(model.prior, indices, entropy.new_encoder())
        error = np.square(z - model.transforms.latent(indices)).sum()
        return bits, error

    (bits_near, error_near), (bits_chosen, error_chosen) = bits_and_error(nearest), bits_and_error(chosen)
    assert (chosen != nearest).any()
    assert bits_chosen < bits_near and error_chosen > error_near
    data, _ = model.encode_payload(1, chosen[:1])  # quality 1: one stage, no detail layer
    assert np.array_equal(model.decode_payload(1, data, *photo.shape[:2])[0], chosen[:1])


def test_the_encoders_prior_work_in_a_thread_pool_gives_what_one_thread_gives(model, photo):
    """ECVQ and the whole map's prior features run in chunks through a thread pool: small
    chunks on two threads choose the same symbols, from the same features, as one pass."""
    from concurrent.futures import ThreadPoolExecutor

    from vqpress.codec import ecvq

    z = model.transforms.latents(photo)
    nearest = model.transforms.quantise(z, 2)
    tokens = model.prior.token_map(nearest)
    alone = ecvq.choose(z, nearest, model.transforms.codebooks, model.prior, 1.0, chunk=z[0].size)
    with ThreadPoolExecutor(2) as pool:
        assert np.array_equal(model.prior.all_features(tokens, chunk=7, map=pool.map),
                              model.prior.all_features(tokens, chunk=tokens.size))
        pooled = ecvq.choose(z, nearest, model.transforms.codebooks, model.prior, 1.0, chunk=7, map=pool.map)
    assert np.array_equal(pooled, alone) and (alone != nearest).any()


def test_the_detail_layer_in_bands_gives_the_same_bytes_and_pixels(model, photo, monkeypatch):
    """Big photos get their detail layer chosen and added in bands of block rows, so its float
    temporaries stay small; bands change neither the file nor the image."""
    from vqpress.codec import api

    top = model.qualities[-1]
    whole = model.compress(photo, top)
    image = np.asarray(model.decompress(whole))
    monkeypatch.setattr(api, "BAND_BLOCKS", 3)  # the photo's 9 block rows -> 3 bands
    assert model.compress(photo, top) == whole
    assert np.array_equal(np.asarray(model.decompress(whole)), image)
    monkeypatch.setattr(api, "KEPT_BLOCKS", 3)  # and each band's candidates computed twice
    assert model.compress(photo, top) == whole
    from concurrent.futures import ThreadPoolExecutor

    indices = model.decode_payload(top, unpack(whole)[1], *photo.shape[:2])[0]
    base = model.pixels(indices, *photo.shape[:2])
    levels, modes = model.detail_levels(photo, base, top)  # one band after the other
    with ThreadPoolExecutor(2) as pool:  # the bands on two threads, whatever the machine has
        pooled_levels, pooled_modes = model.detail_levels(photo, base, top, pool.map)
        assert np.array_equal(pooled_levels, levels) and np.array_equal(pooled_modes, modes)
        assert np.array_equal(model.with_detail(top, base, levels, modes, pool.map),
                              model.with_detail(top, base, levels, modes))


@pytest.mark.parametrize("junk", [b"\xff" * 64, bytes(range(256)) * 4, b"\x00" * 8])
def test_payload_junk_behind_a_valid_crc_is_a_clear_error_or_an_image(model, photo, junk):
    """A file can pass the CRC and still carry a payload no encoder wrote (a crafted file):
    decoding gives a VQPressError or some image of the right size, never another exception."""
    from vqpress.codec import container

    header, _ = unpack(model.compress(photo, model.qualities[-1]))
    forged = container.pack(header, junk)
    try:
        out = model.decompress(forged)
    except codec.VQPressError as e:
        assert "corrupted payload" in str(e)
    else:
        assert out.size == (photo.shape[1], photo.shape[0])


def test_gray_sources_spend_no_bits_on_colour(model, photo):
    gray = Image.fromarray(photo).convert("L")
    q = model.qualities[-1]
    as_gray, as_rgb = model.compress(gray, q), model.compress(gray.convert("RGB"), q)
    assert len(as_gray) < len(as_rgb)
    out = model.decompress(as_gray)
    assert out.mode == "L" and psnr(out, np.asarray(gray)) > 30


def test_onnx_runtime_transforms_match_the_torch_networks(model, tmp_path):
    """The run time's graphs (shipped, and freshly exported) compute what the torch modules do."""
    from vqpress.codec.transforms import TorchTransforms, graph_id
    from vqpress.training.graphs import export_graphs

    reference = TorchTransforms(model.model.vqvae_config, model.model.vqvae_state, "cpu")
    x = np.random.default_rng(0).random((1, 3, 48, 64), dtype=np.float32)
    z = reference.analysis(x)
    float_analysis = codec.Codec(device="cpu", int8_analysis=False).transforms
    assert float_analysis.int8_analysis is None
    assert np.abs(float_analysis.analysis(x) - z).max() < 1e-4
    y = reference.synthesis(z)
    assert np.abs(model.transforms.synthesis(z) - y).max() < 1e-4
    exported = export_graphs(model.model.vqvae_config, tmp_path)
    assert [p.name for p in exported] == [f"{graph_id(model.model.vqvae_config)}.{part}.onnx"
                                          for part in ("analysis", "synthesis")]
    import onnxruntime as ort

    state = model.model.vqvae_state
    for graph, prefix, inputs, outputs in ((exported[0], "encoder.", x, z), (exported[1], "decoder.", z, y)):
        names = [k[len(prefix):] for k in state if k.startswith(prefix)]
        values = [ort.OrtValue.ortvalue_from_numpy(state[prefix + n].astype(np.float32)) for n in names]
        options = ort.SessionOptions()
        options.add_external_initializers(names, values)
        session = ort.InferenceSession(graph.read_bytes(), options)
        assert np.abs(session.run(None, {"x": inputs})[0] - outputs).max() < 1e-4


def test_the_8_bit_analysis_picks_nearly_the_float_analysis_codes(model):
    """The shipped 8-bit analysis graph (the CPU encoder's default), and one made afresh by
    `training.quantise` from two calibration crops, stay within a few percent of the float
    latent and pick mostly the same first-stage codes."""
    from skimage import data as skdata

    from vqpress.codec.transforms import int8_analysis_graph
    from vqpress.training.data import center_crops
    from vqpress.training.quantise import CROP, quantised_analysis

    assert model.transforms.int8_analysis == int8_analysis_graph(model.model.vqvae_state)
    rgb = skdata.coffee()[:256, :384]
    float_codec = codec.Codec(device="cpu", int8_analysis=False)
    assert float_codec.transforms.int8_analysis is None
    z = float_codec.transforms.latents(rgb)
    import onnxruntime as ort

    fresh = ort.InferenceSession(quantised_analysis(model.model, center_crops([skdata.astronaut(), skdata.chelsea()], CROP)))
    x = np.ascontiguousarray(rgb.transpose(2, 0, 1)[None], np.float32) / 255  # one tile: 256x384
    for latent in (model.transforms.latents(rgb), fresh.run(None, {"x": x})[0][0]):
        assert np.sqrt(np.mean((latent - z) ** 2) / np.mean(z**2)) < 0.05
        same = model.transforms.quantise(latent, 1) == float_codec.transforms.quantise(z, 1)
        assert same.mean() > 0.9


def test_an_8_bit_analysis_belongs_to_its_analysis_weights(tmp_path):
    """The graph is named by the sha256 of the analysis weights it was made from (other
    weights, another name) and added to the model file's card; a codec file passed by path
    (not shipped) never runs a shipped graph."""
    import json
    import shutil

    from skimage import data as skdata

    from vqpress import weights
    from vqpress.training.quantise import export_quantised_analysis

    from vqpress.codec.model import load_codec_file
    from vqpress.codec.transforms import int8_analysis_graph

    shipped, _ = weights.verified("rvq-dct-v9")
    for suffix in (".safetensors", ".json"):
        shutil.copy(shipped.with_suffix(suffix), tmp_path)
    graph, carded = export_quantised_analysis(tmp_path / "rvq-dct-v9.safetensors", [skdata.astronaut()], tmp_path)
    state = load_codec_file(shipped).vqvae_state
    assert graph.name == int8_analysis_graph(state) == "analysis-2b24f372.int8.onnx" and carded
    other = dict(state, **{"encoder.2.weight": state["encoder.2.weight"] * np.float16(0.5)})
    assert int8_analysis_graph(other) != graph.name
    assert int8_analysis_graph(dict(state, **{"decoder.3.weight": other["encoder.2.weight"]})) == graph.name
    card = json.loads((tmp_path / "rvq-dct-v9.json").read_text())
    assert card["int8_analysis"]["sha256"] == weights.sha256_file(graph)
    assert f"`{graph.name}`" in (tmp_path / "rvq-dct-v9.md").read_text()
    assert weights.checksums(tmp_path / weights.CHECKSUMS) == {graph.name: weights.sha256_file(graph)}
    assert codec.Codec(device="cpu", path=tmp_path / "rvq-dct-v9.safetensors").transforms.int8_analysis is None
    with pytest.raises(ValueError, match="8x8"):  # no calibration image big enough
        export_quantised_analysis(tmp_path / "rvq-dct-v9.safetensors", [skdata.astronaut()[:7]], tmp_path / "x")


def test_files_of_the_8_bit_analysis_are_as_good_as_the_float_ones(model):
    from skimage import data as skdata

    rgb = skdata.coffee()[:256, :384]
    float_codec = codec.Codec(device="cpu", int8_analysis=False)
    for q in (2, 9):
        fast, exact = model.compress(rgb, q), float_codec.compress(rgb, q)
        assert fast != exact  # the analysis did change
        assert abs(len(fast) / len(exact) - 1) < 0.03
        assert abs(psnr(rgb, np.asarray(model.decompress(fast))) - psnr(rgb, np.asarray(model.decompress(exact)))) < 0.1


@pytest.mark.parametrize("channels, layers", [(32, 5), (48, 6)])  # the shipped graphs
def test_reconstruction_filter_runs_the_same_on_onnx_runtime_as_in_torch(channels, layers):
    """Random weights, so the graph is tested as a function, not the shipped filter's quality;
    tiles with their halo give the whole-image result."""
    import torch

    from vqpress.codec import postfilter as runtime
    from vqpress.nets.postfilter import PostFilter, PostFilterConfig
    from vqpress.training.postfilter import apply

    torch.manual_seed(0)
    net = PostFilter(PostFilterConfig(qualities=3, channels=channels, layers=layers)).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn_like(p) * 0.05)
    state = {k: v.numpy() for k, v in net.state_dict().items()}
    onnx = runtime.OnnxPostFilter(net.config.to_dict(), state)
    image = np.random.default_rng(1).integers(0, 256, (75, 131, 3), np.uint8)
    expected = apply(net, image, 2)
    assert np.abs(onnx(image, 2).astype(int) - expected).max() <= 1
    tiles = runtime.TILE_PIXELS
    runtime.TILE_PIXELS = 32  # 3x5 tiles, each with its halo
    try:
        assert np.abs(onnx(image, 2).astype(int) - expected).max() <= 1
    finally:
        runtime.TILE_PIXELS = tiles
    assert not np.array_equal(onnx(image, 1), onnx(image, 2))  # the quality's bias matters


def test_a_codec_file_with_unknown_block_modes_is_refused(tmp_path):
    import json

    from safetensors.numpy import load_file, save_file

    from vqpress import weights
    from vqpress.codec.ladder import DEFAULT_MODEL
    from vqpress.codec.model import load_codec_file

    path = weights.verified(DEFAULT_MODEL)[0]
    meta = {k: json.dumps(v) for k, v in weights.metadata(path).items()}
    save_file(load_file(str(path)), str(tmp_path / "odd.safetensors"), metadata={**meta, "block_modes": "5"})
    with pytest.raises(weights.WeightsError, match="unknown block modes"):
        load_codec_file(tmp_path / "odd.safetensors")


def test_a_forged_detail_layout_is_refused(tmp_path):
    """A codec file whose detail layout does not fit its tables or block modes, or is not a
    layout at all, is a one-line WeightsError, never a traceback at decode time."""
    import json
    from pathlib import Path

    from safetensors.numpy import load_file, save_file

    from vqpress import weights
    from vqpress.codec.ladder import DEFAULT_MODEL
    from vqpress.codec.model import load_codec_file

    def forged(model_id: str, layout) -> Path:
        path = weights.verified(model_id)[0]
        meta = {k: v if isinstance(v, str) else json.dumps(v) for k, v in weights.metadata(path).items()}
        meta["detail_layout"] = json.dumps(layout)
        out = tmp_path / f"{model_id}-forged.safetensors"
        save_file(load_file(str(path)), str(out), metadata=meta)
        return out

    good = weights.metadata(weights.verified(DEFAULT_MODEL)[0])["detail_layout"]
    for layout in (dict(good, modes=2), dict(good, classes=0), dict(good, classes=12), dict(good, modes=10**30),
                   dict(good, splits=[5]), dict(good, modes=True), dict(good, extra=1), [3, 9]):
        with pytest.raises(weights.WeightsError, match="detail layout|does not fit") as e:
            load_codec_file(forged(DEFAULT_MODEL, layout))
        assert "\n" not in str(e.value)
    with pytest.raises(weights.WeightsError, match="without its tables"):
        load_codec_file(forged("rvq-dct-v9", good))
