"""The codec's model card: one section per part a codec file holds (VQ-VAE, prior, fine-tuned
decoder, detail layer, reconstruction filter), rendered from the card's facts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

from vqpress.codec.ladder import Rung, ladder_from_metadata

from .release import release, training_lines

CODEC_INTRO = [
    ("VQ-VAE (fp16 weights) + PixelCNN prior (int32 fixed-point tables) of the vqpress codec. "
     "Trained from scratch by `vqpress train`; no pretrained weights were used."),
    ("Validation numbers: the VQ-VAE's mean PSNR on 256x256 centre crops of the validation "
     "photos for each number of stages (psnr@k), and the float prior's bits per pixel of the "
     "whole validation photos at each quality (bpp@k)."),
]


def release_codec(out: Path, model_id: str, tensors: dict[str, np.ndarray], metadata: dict, card: dict) -> Path:
    """`release` a codec file of `tensors`, its metadata (values as objects, stored as JSON)
    with `card` as its card, and the card rendered from the codec's sections."""
    def write(path):
        save_file(tensors, str(path), metadata={k: json.dumps(v) for k, v in {**metadata, "card": card}.items()})

    ladder = ladder_from_metadata(metadata) if "detail" in card else None
    return release(out, model_id, write, card, CODEC_INTRO, codec_sections(card, ladder))


def codec_sections(card: dict, ladder: list[Rung] | None = None) -> list[tuple[str, list[str]]]:
    """A section for every trained part of a codec card (`ladder`: the file's quality
    ladder, when it has a detail layer)."""
    sections = [("vqvae", training_lines(card["vqvae"]))]
    for part, intro in (("prior", prior_intro), ("decoder", decoder_intro)):
        if part in card:
            sections.append((part, intro(card[part]) + training_lines(card[part])))
    if "detail" in card:
        sections.append(("detail layer", detail_lines(card["detail"], ladder)))
    if "postfilter" in card:
        sections.append(("reconstruction filter", filter_lines(card["postfilter"])))
    if "int8_analysis" in card:
        sections.append(("8-bit analysis graph", int8_analysis_lines(card["int8_analysis"])))
    if "repacked" in card:
        sections.append(("file", repacked_lines(card["repacked"])))
    return sections


def prior_intro(c: dict) -> list[str]:
    init = (c.get("init") or {}).get("codec")
    text = (f"Trained on the symbols of `{init}`'s VQ-VAE (its encoder and codebooks, which this "
            "file keeps)") if init else ""
    if c.get("qualities"):
        text += (", " if text else "Trained ") + f"for the stage counts the ladder codes only: {c['qualities']}"
    return [text + ".", ""] if text else []


def decoder_intro(c: dict) -> list[str]:
    return [f"Fine-tuned from `{c['init']['codec']}`'s decoder with its encoder and codebooks frozen "
            "(the symbols are unchanged), on the stage counts the ladder uses.", ""]


def detail_lines(d: dict, ladder: list[Rung]) -> list[str]:
    """The model card's section on a detail layer."""
    rungs = ", ".join(f"{q}: {r.stages} stage{'s' * (r.stages > 1)}"
                      + (f" + detail step {r.step:g}" if r.step else "") for q, r in enumerate(ladder, 1))
    offsets = sorted({r.offset for r in ladder if r.step is not None})
    lines = [(f"Fitted over `{d['base_model']}`'s VQ base. The qualities with a step add the "
              "detail layer (`codec/detail.py`): the residual between the photo and the VQ base, in an "
              "orthonormal colour transform and 8x8 DCT, quantised with one step size (dead zone "
              f"{d['deadzone']}, levels reconstructed at |q| + {', '.join(f'{o:g}' for o in offsets)}) and "
              "range-coded with integer context tables"
              + _layout_text(d.get("layout"))
              + (", which adapt to each image as it is coded" if d.get("adaptive") else "")
              + ("; per 8x8 block the encoder predicts from the VQ base or its block mean"
                 + (f", and from quality {d['soft_from']} up also from the base softened" if d.get("soft_from") else "")
                 + " (`codec/modes.py`)." if d.get("block_modes") else ".")),
             "", f"- qualities: {rungs}",
             (f"- tables fitted (counted, no gradient descent) on `{d['data']}` "
              f"({d['train_images']} images) in {d['fit_seconds'] / 60:.0f} min on {d['hardware']}")]
    if d.get("encoded"):
        lines.append(f"- counted on what `{d['base_model']}`'s own encoder codes over entropy-constrained "
                     "symbols (its modes chosen on its tables' bits, its RD-optimised levels; the symbols "
                     "chosen once for the most stages the ladder uses, and cut for rungs with fewer)")
    if d.get("command"):
        lines.append(f"- command: `{d['command']}`")
    if d.get("dc_signs_by"):
        by = d["dc_signs_by"]
        lines.append(f"- then the DC levels' signs coded in context (`detail.DcSigns`; the same tables and "
                     f"levels as `{by['base_model']}`, fewer bits): `{by['command']}`")
    if "validation" in d:
        lines.append(f"- validation on whole photos of `{d['valid']}` (detail-layer bits per pixel "
                     "from the tables' cross-entropy, on top of the base's): "
                     f"`{json.dumps(d['validation'])}`")
    return lines


def _layout_text(layout: dict | None) -> str:
    """How the detail tables' rows are picked, where more than the neighbours pick them."""
    if not layout or (layout["modes"] == 1 and not layout["splits"]):
        return ""
    passes = [0, *layout["splits"], 64]
    spans = ", ".join(f"{a}-{b - 1}" for a, b in zip(passes, passes[1:]))
    return (" (a level's row: its channel and band, its neighbours' levels, its block's predictor and, "
            f"in {len(passes) - 1} passes per block and channel over zig-zag positions {spans}, the "
            f"block's own levels in the earlier passes, {layout['classes']} classes; stored as "
            "probabilities in eighths of a bit, one per magnitude)")


def filter_lines(c: dict) -> list[str]:
    lines = ["A reconstruction filter (`nets/postfilter.py`) runs on the decoder's output: trained "
             "with MSE on pairs of (this codec's decoding of a training photo at a random quality, "
             "the photo). Validation: its mean PSNR gain per quality on the whole validation photos.",
             "", *training_lines(c)]
    start = c.get("started_from")
    if start:
        size = {k: start[k] for k in ("qualities", "channels", "layers")}
        grown = size != {k: c["model_config"][k] for k in size}
        lines.append(f"- started from the filter of `{start['file']}` ({start['channels']} channels, "
                     f"{start['layers']} layers, {start['qualities']} qualities)"
                     + (", grown to this size as the same function" if grown else ""))
    kept, top = c.get("kept_by"), c.get("max_quality")
    if top:
        lines.append(f"- trained and validated at qualities 1-{top} on the shipped encoder's real files, decoded")
    trained = [q for q in c.get("skip", []) if (not kept or q <= kept["qualities"]) and (not top or q <= top)]
    if trained:
        lines.append(f"- not applied at qualities {', '.join(map(str, trained))}: no gain in the last validation")
    if top and top < c["model_config"]["qualities"]:
        lines.append(f"- not applied above quality {top}, where it was neither trained nor validated")
    if kept:
        lines.append(f"- kept from `{kept['model']}` (`train detail --keep-filter`), which has {kept['qualities']} "
                     "qualities; it is not applied at the qualities added after them, where it was "
                     "neither trained nor validated")
    if "strength_tile" in c:
        by = c["strengths_by"]
        lines.append(f"- scaled per {c['strength_tile']}x{c['strength_tile']} tile by a strength the encoder "
                     f"chooses and codes (`codec/strength.py`; `{by['command']}`, from `{by['base_model']}`)")
    if "int8" in c:
        q = c["int8"]
        lines.append(f"- at qualities {', '.join(map(str, q['qualities']))} it runs as an 8-bit graph per quality "
                     f"(`training/quantise.py`: the quality's bias folded into the first convolution, 7-bit "
                     f"weights per channel, 8-bit activations over the ranges of {q['photos']} training photos "
                     f"({q['crop']}-pixel centre crops) decoded at that quality; `{q['command']}`, "
                     f"from `{q['base_model']}`)")
    return lines


def int8_analysis_lines(c: dict) -> list[str]:
    return [f"The encoder's analysis transform with these weights as an ONNX graph, `{c['file']}` (sha256 "
            f"`{c['sha256']}`), its heaviest convolutions on integers (`training/quantise.py`): "
            "what the CPU encoder runs (`Codec(int8_analysis=False)` runs the float graph). Decoding "
            "never runs it.",
            "",
            f"- on integers (weights 7-bit per output channel, inputs uint8): {', '.join(f'`{n}`' for n in c['layers'])}",
            f"- input ranges (min-max) from the centre squares (at most {c['crop']} px a side) of {c['images']} "
            f"images of `{c['data']}`",
            f"- command: `{c['command']}`",
            "- 7-bit weights (`reduce_range`) because ONNX Runtime's 8-bit kernels for x86 CPUs without VNNI "
            "can saturate on 8-bit ones; speed and rate measured on a CPU with AVX-512 VNNI"]


def repacked_lines(c: dict) -> list[str]:
    lines = [f"This file holds the model's metadata and only the parts that differ ({', '.join(c['parts'])}) from "
             f"`{c['base']}` (sha256 `{c['base_sha256']}`), which must be shipped beside it; vqpress reads "
             "the rest from that file (`training/repack.py`).", ""]
    if "shipped_sha256" in c:
        lines.append(f"- first shipped whole, with sha256 `{c['shipped_sha256']}`: its .vqp files carry that "
                     "file's first 4 bytes, and still decode")
    return [*lines, f"- command: `{c['command']}`"]
