"""8-bit graphs for a codec model (ONNX Runtime's static quantisation, QDQ form: uint8 inputs,
7-bit weights per output channel).

The analysis transform: its encoder as an ONNX graph whose heaviest convolutions run on
integers. The encoder writes down the symbols it picks, so any latent decodes, and a latent a
little off (under 1% RMS) mostly picks the same or an equally good code. (The synthesis makes
the pixels the detail layer is added to, so its errors would be the decoded image's.) The graph
holds the model's own weights (those of INT8_LAYERS as 7-bit integers, per output channel; the
rest in float32), so it belongs to one model file: `<model id>.<its sha256 prefix>.analysis-int8.onnx`.

The reconstruction filter: one graph per quality, every convolution in 8 bits, held by the codec
file itself (`postfilter.int8_q<n>`); encoder and decoder run the same graph (the encoder chooses
the filter's strengths from its output). About 1.6 times as fast as the float filter on this
AVX2 CPU; it costs PSNR (`docs/results/ablation.md`), so a model uses it where the rate-distortion
margins allow.

x86 CPUs without VNNI (this one) sum pairs of uint8 x int8 products in 16 bits, which 8-bit weights
can saturate; the weights are therefore quantised to 7 bits (`reduce_range`): with 8 bits the
filter lost 0.17 dB at quality 3.
"""

from __future__ import annotations

import copy
import io
import json
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from vqpress import weights
from vqpress.codec import container
from vqpress.codec.api import Codec
from vqpress.codec.errors import VQPressError
from vqpress.codec.imageio import image_paths, open_image, to_rgb8
from vqpress.codec.model import CodecModel, codec_file, load_codec_file
from vqpress.codec.postfilter import INT8_PREFIX, float_weights
from vqpress.codec.transforms import GRAPH_INPUT, GRAPH_OUTPUT, int8_analysis_graph
from vqpress.nets.postfilter import PostFilter, PostFilterConfig

from .cards import CODEC_INTRO, codec_sections, release_codec
from .codec_models import vqvae_of
from .data import center_crops, evenly_spread
from .detail import codec_path
from .loop import command_line
from .release import render_card

CROP = 256  # calibration crops' side, at most
# The convolutions that run in 8 bits, named as the ONNX export names the layers of
# `nets.transforms.analysis_transform`: the second 5x5 stride-2 one (56% of the transform's
# products) and the residual block's two (whose errors the block's skip path dilutes). On 16
# held-out training photos (10 qualities from 1 to 13) the analysis takes 68 instead of 108 ms at 768x512
# and costs +0.09% BD-rate; the second only, 74 ms, +0.06%; it and the third, 68 ms, +0.23%;
# every convolution, 54 ms, +0.48% (the GDNs' then run between 8-bit islands).
INT8_LAYERS = ("/2/Conv", "/6/conv1/Conv", "/6/conv2/Conv")


def float_graph(module: torch.nn.Module) -> bytes:
    """`module` (an image in, an image-shaped tensor out) as an ONNX graph with its weights
    inside (float32), any height and width."""
    buf = io.BytesIO()
    torch.onnx.export(module.eval(), (torch.zeros(1, 3, 64, 64),), buf, input_names=[GRAPH_INPUT],
                      output_names=[GRAPH_OUTPUT], opset_version=17, dynamo=False,
                      dynamic_axes={GRAPH_INPUT: {2: "height", 3: "width"}, GRAPH_OUTPUT: {2: "height", 3: "width"}})
    return buf.getvalue()


def static_int8(graph: bytes, calibration: list[np.ndarray], **which) -> bytes:
    """`graph` quantised by ONNX Runtime (static, QDQ form): the convolutions `which` names
    (`nodes_to_quantize` or `op_types_to_quantize`) on uint8 inputs and 7-bit weights per output
    channel (`reduce_range`: x86 CPUs without VNNI sum pairs of uint8 x int8 products in 16 bits,
    which 8-bit weights can saturate), the ranges min-max over the `calibration` images ((H, W,
    3) uint8, any sizes)."""
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)

    class Images(CalibrationDataReader):
        def __init__(self):
            self.inputs = iter({GRAPH_INPUT: image.transpose(2, 0, 1)[None].astype(np.float32) / 255}
                               for image in calibration)

        def get_next(self):
            return next(self.inputs, None)

    with tempfile.TemporaryDirectory() as tmp:
        source, target = Path(tmp) / "float.onnx", Path(tmp) / "int8.onnx"
        source.write_bytes(graph)
        quantize_static(source, target, Images(), quant_format=QuantFormat.QDQ, per_channel=True, reduce_range=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax, **which)
        return target.read_bytes()


def quantised_analysis(model: CodecModel, calibration: list[torch.Tensor], layers=INT8_LAYERS) -> bytes:
    """The 8-bit analysis graph: the `layers`' weights per output channel in int8 (7-bit
    values), their inputs in uint8 over the range the calibration images ((3, H, W) uint8, any
    sizes: min-max calibration) take there. (On a VNNI CPU the 7-bit weights cost nothing
    measurable: latent error 0.99% against 0.98% on 4 training photos, 69 ms either way.)"""
    import onnx

    graph = float_graph(vqvae_of(model).encoder)
    missing = set(layers) - {node.name for node in onnx.load_from_string(graph).graph.node}
    if missing:  # the exporter named the layers differently
        raise RuntimeError(f"the analysis graph has no layers {sorted(missing)}")
    return static_int8(graph, [c.permute(1, 2, 0).numpy() for c in calibration], nodes_to_quantize=list(layers))


def export_quantised_analysis(model_path: Path, images: list[np.ndarray], out: Path, data: str = "",
                              command: str = "") -> tuple[Path, bool]:
    """Write the 8-bit analysis graph of the codec file `model_path` to <out> (named by the
    sha256 of its analysis weights: `int8_analysis_graph`), calibrated on the images' centre
    crops (from the folder `data`), and its SHA256SUMS line. Where <out> holds that very file and its card,
    add the graph to the card (with `command`). Returns (the graph's path, whether the card
    was updated)."""
    crops = [c for c in center_crops(images, CROP) if c.shape[-1]]  # at most CROP a side, multiples of 8
    if not crops:
        raise ValueError("no calibration image is 8x8 or larger")
    model_id, model_digest, model = model_path.stem, weights.sha256_file(model_path), load_codec_file(model_path)
    path = out / int8_analysis_graph(model.vqvae_state)
    out.mkdir(parents=True, exist_ok=True)
    path.write_bytes(quantised_analysis(model, crops))
    digest = weights.sha256_file(path)
    weights.record_checksum(out / weights.CHECKSUMS, path.name, digest)
    card_path, released = out / f"{model_id}.json", out / f"{model_id}.safetensors"
    if not (card_path.is_file() and released.is_file() and weights.sha256_file(released) == model_digest):
        return path, False
    card = json.loads(card_path.read_text())
    card["int8_analysis"] = {"file": path.name, "sha256": digest, "layers": list(INT8_LAYERS), "crop": CROP,
                             "images": len(crops), "data": data, "command": command}
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    sections = codec_sections(card, model.ladder if "detail" in card else None)
    (out / f"{model_id}.md").write_text(render_card(model_id, model_digest, CODEC_INTRO, sections))
    return path, True


# -- the reconstruction filter ------------------------------------------------------------------
FILTER_CROP = 256  # calibration crops' side
FILTER_PHOTOS = 16  # calibration photos, evenly spread over the training folder


class FilterAtQuality(torch.nn.Module):
    """`nets.postfilter.PostFilter` at one quality, the quality's bias added to the first
    convolution's own, so that no sum is quantised before the bias (an 8-bit graph that keeps
    the bias as an input quantises the first convolution's output before adding it: on held-out
    training photos that alone cost 0.014 dB at quality 3, every other quantisation together 0.009)."""

    def __init__(self, net: PostFilter, quality: int):
        super().__init__()
        self.convs = copy.deepcopy(net.convs)
        with torch.no_grad():
            self.convs[0].bias += net.quality_bias[quality - 1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.pixel_unshuffle(x, 2)
        for conv in self.convs[:-1]:
            h = F.relu(conv(h))
        return x + F.pixel_shuffle(self.convs[-1](h), 2)


def quantised_filter(net: PostFilter, quality: int, calibration: list[np.ndarray]) -> bytes:
    """The filter's 8-bit graph at a quality: every convolution in 8 bits, the ReLUs folded into
    the ranges, calibrated on `calibration`: (H, W, 3) uint8 images, even sides, as the decoder
    makes them at that quality before the filter."""
    return static_int8(float_graph(FilterAtQuality(net, quality)), calibration, op_types_to_quantize=["Conv", "Relu"])


def export_int8_filter(base_model: str, model_id: str, data: Path, qualities: list[int], out: Path) -> Path:
    """Release <out>/<model_id>.safetensors: `base_model` (a shipped codec, or a codec file's
    path, with a reconstruction filter) whose filter runs as an 8-bit graph at `qualities`,
    calibrated on FILTER_PHOTOS photos of `data` decoded by the base. Everything else is the base's."""
    base_path = codec_path(base_model)
    meta, tensors = codec_file(base_path)
    config = meta.get("postfilter_config")
    if config is None:
        raise VQPressError(f"{base_path.stem} has no reconstruction filter")
    unfiltered = sorted((set(qualities) & set(config.get("skip", [])))
                        | (set(qualities) - set(range(1, config["qualities"] + 1))))
    if unfiltered:
        raise VQPressError(f"{base_path.stem} does not filter qualities {', '.join(map(str, unfiltered))}")
    net = PostFilter(PostFilterConfig(**{k: config[k] for k in ("qualities", "channels", "layers")}))
    state = float_weights({k[len("postfilter."):]: v for k, v in tensors.items() if k.startswith("postfilter.")})
    net.load_state_dict({k: torch.from_numpy(v.astype(np.float32)) for k, v in state.items()})
    codec = Codec(device="cpu", threads=1, path=base_path)
    photos = [to_rgb8(open_image(p))[0] for p in evenly_spread(image_paths(data), FILTER_PHOTOS)]
    crops = [c.permute(1, 2, 0).numpy() for c in center_crops(photos, FILTER_CROP) if c.shape[-1]]
    decoded = {q: [] for q in qualities}
    for crop in tqdm(crops, desc="decoding calibration photos"):
        for q in qualities:
            _, payload = container.unpack(codec.compress(crop, q))
            decoded[q].append(codec.decode_image(q, payload, *crop.shape[:2])[0])
    tensors = {k: v for k, v in tensors.items() if not k.startswith(f"postfilter.{INT8_PREFIX}")}
    for q in tqdm(sorted(qualities), desc="quantising"):
        tensors[f"postfilter.{INT8_PREFIX}{q}"] = np.frombuffer(quantised_filter(net, q, decoded[q]), np.uint8).copy()
    card = {**meta["card"], "model_id": model_id}
    card["postfilter"] = {**card["postfilter"], "int8": {
        "qualities": sorted(qualities), "photos": len(crops), "crop": FILTER_CROP, "data": str(data),
        "base_model": base_path.stem, "command": command_line()}}
    return release_codec(out, model_id, tensors, {**meta, "postfilter_config": {**config, "int8": sorted(qualities)}}, card)
