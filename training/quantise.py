"""An 8-bit analysis transform for a codec model: its encoder as an ONNX graph whose
heaviest convolutions run on integers: 8-bit inputs, 7-bit weights (ONNX Runtime's static
quantisation, QDQ form).

Why the analysis only: the encoder writes down the symbols it picks, so any latent decodes,
and a latent a little off (under 1% RMS) mostly picks the same or an equally good code. The
synthesis makes the pixels the detail layer is added to, so its errors would be the decoded
image's.

The graph holds the model's own weights (those of INT8_LAYERS as 7-bit integers, per output channel;
the rest in float32), so it belongs to one model file: `<model id>.<its sha256 prefix>.analysis-int8.onnx`.

Measured on an x86 CPU with AVX-512 VNNI. ONNX Runtime warns that its uint8 x int8 kernels for
x86 CPUs without VNNI can saturate; the weights are therefore quantised to 7 bits
(`reduce_range`), which rules that out at no measurable cost here. Speed on such CPUs: not
measured.
"""

from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path

import numpy as np
import torch

from vqpress import weights
from vqpress.codec.model import CodecModel, load_codec_file
from vqpress.codec.transforms import GRAPH_INPUT, GRAPH_OUTPUT, int8_analysis_graph

from .cards import CODEC_INTRO, codec_sections
from .codec_models import vqvae_of
from .data import center_crops
from .release import render_card

CROP = 256  # calibration crops' side, at most
# The convolutions that run in 8 bits, named as the ONNX export names the layers of
# `nets.transforms.analysis_transform`: the second 5x5 stride-2 one (56% of the transform's
# products) and the residual block's two (whose errors the block's skip path dilutes). On 16
# held-out training photos (10 qualities from 1 to 13) the analysis takes 68 instead of 108 ms at 768x512
# and costs +0.09% BD-rate; the second only, 74 ms, +0.06%; it and the third, 68 ms, +0.23%;
# every convolution, 54 ms, +0.48% (the GDNs' then run between 8-bit islands).
INT8_LAYERS = ("/2/Conv", "/6/conv1/Conv", "/6/conv2/Conv")


def float_analysis(model: CodecModel) -> bytes:
    """The model's encoder as an ONNX graph with its weights inside (float32)."""
    buf = io.BytesIO()
    torch.onnx.export(vqvae_of(model).encoder, (torch.zeros(1, 3, 64, 64),), buf, input_names=[GRAPH_INPUT],
                      output_names=[GRAPH_OUTPUT], opset_version=17, dynamo=False,
                      dynamic_axes={GRAPH_INPUT: {2: "height", 3: "width"}, GRAPH_OUTPUT: {2: "height", 3: "width"}})
    return buf.getvalue()


def quantised_analysis(model: CodecModel, calibration: list[torch.Tensor], layers=INT8_LAYERS) -> bytes:
    """The 8-bit analysis graph: the `layers`' weights per output channel in int8 (7-bit
    values), their inputs in uint8 over the range the calibration images ((3, H, W) uint8, any
    sizes: min-max calibration) take there."""
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)

    class Crops(CalibrationDataReader):
        def __init__(self):
            self.inputs = iter({GRAPH_INPUT: c[None].numpy().astype(np.float32) / 255} for c in calibration)

        def get_next(self):
            return next(self.inputs, None)

    import onnx

    graph = float_analysis(model)
    missing = set(layers) - {node.name for node in onnx.load_from_string(graph).graph.node}
    if missing:  # the exporter named the layers differently
        raise RuntimeError(f"the analysis graph has no layers {sorted(missing)}")
    with tempfile.TemporaryDirectory() as tmp:
        source, target = Path(tmp) / "float.onnx", Path(tmp) / "int8.onnx"
        source.write_bytes(graph)
        # reduce_range: 7-bit weights, so that the uint8 x int8 products of x86 CPUs without VNNI
        # (pairs summed in 16 bits) cannot saturate. On this VNNI CPU it cost nothing measurable
        # (latent error 0.99% against 0.98% on 4 training photos, 69 ms either way).
        quantize_static(source, target, Crops(), quant_format=QuantFormat.QDQ, per_channel=True, reduce_range=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        nodes_to_quantize=list(layers), calibrate_method=CalibrationMethod.MinMax)
        return target.read_bytes()


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
