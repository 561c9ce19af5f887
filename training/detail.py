"""Fit the detail layer's tables on a folder of photos and release a codec that uses them.

No gradient descent: a table row is the (shrunk) frequency of each quantised level in its
context, counted over the residuals of the training photos against a codec's VQ base, for each
rung of the ladder (its number of VQ stages and its step).
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from vqpress import weights
from vqpress.codec import detail, modes
from vqpress.codec.api import ECVQ_LAMBDA, Codec
from vqpress.codec.entropy import new_encoder
from vqpress.codec.errors import VQPressError
from vqpress.codec.imageio import open_image, to_rgb8
from vqpress.codec.ladder import Rung
from vqpress.codec.model import codec_file
from vqpress.measure.metrics import psnr

from .cards import release_codec
from .data import evenly_spread, image_paths
from .loop import command_line, hardware

# The ladder of rvq-dct-v6: one VQ stage under the detail layer up to quality 3, two from
# quality 4. With rvq-dct-v5's prior (the second stage costs less than under v4's), 14 random
# training photos (768x512 crops, no filter) gave 27.33 dB at 0.165 bpp with 2 stages + detail
# step 200 where 1 stage + step 140 gave 27.24, and 28.76 dB at 0.236 bpp with 2 + 120 where
# 1 + 105 gave 28.59; quality 4 is now 2 stages + step 150, between the two. (rvq-dct-v4's
# ladder, "1+105" at quality 4, was chosen under v4's prior, where 1 stage led up to 0.29 bpp.)
# Levels are reconstructed 0.15 step beyond |q| (held-out training photos: -1.7% BD-rate).
# rvq-dct-v7 adds qualities 12 and 13 (steps 11 and 8: 45.5 and 48.2 dB on the validation
# photos), for people who want more than v6's best, 42.9 dB.
LADDER = ("1 1+200@0.15 1+140@0.15 2+150@0.15 2+80@0.15 2+60@0.15 2+45@0.15 2+34@0.15 "
          "2+26@0.15 2+20@0.15 2+15@0.15 2+11@0.15 2+8@0.15")


def parse_ladder(text: str, max_stages: int) -> list[Rung]:
    try:
        ladder = [Rung.parse(item) for item in text.replace(",", " ").split()]
    except ValueError:
        raise VQPressError(f"--ladder {text!r}: use rungs like 1 1+200 2+60@0.15 (stages[+step[@offset]])") from None
    bad = [r.spec() for r in ladder if not 1 <= r.stages <= max_stages or (r.step is not None and not 0.5 <= r.step < 1e6)]
    if not ladder or bad:
        raise VQPressError(f"--ladder {text!r}: each rung needs 1 to {max_stages} VQ stages and a step "
                           f"of at least 0.5 ({', '.join(bad) or 'no rungs'})")
    return ladder


LAYOUTS = {"neighbours": detail.NEIGHBOURS, "modes+passes": detail.MODES_PASSES}


def _bases(codec: Codec, path: Path, stage_counts: set[int], lam: float = 0.0) -> tuple[np.ndarray, dict]:
    """The photo, and its VQ base for each number of stages (nearest codes, or the
    entropy-constrained choice at lam)."""
    rgb, _ = to_rgb8(open_image(path))
    h, w = rgb.shape[:2]
    symbols = codec.symbols(rgb, max(stage_counts), lam=lam)
    return rgb, {stages: codec.pixels(symbols[:stages], h, w) for stages in stage_counts}


def fit_tables(codec: Codec, paths: list[Path], ladder: list[Rung], predictors: list[int],
               layout: detail.Layout = detail.NEIGHBOURS, encoded: bool = False) -> np.ndarray:
    """Tables (rungs with a step, ...) of the levels coded for the photos, each block's
    predictor chosen among predictors[quality - 1]: int32 weights (3, GROUPS, CONTEXTS,
    SYMBOLS) in the neighbours-only layout, else uint8 codes (rows, LIMIT + 1). encoded: the
    levels and modes the codec's own encoder codes over entropy-constrained symbols (its modes
    chosen on its tables' bits, its RD-optimised levels; the symbols are chosen once for the
    most stages and cut, where the encoder chooses them for each stage count); else the
    quantised residuals against each block's cheapest predictor by `modes.choose`'s estimate."""
    rungs = [(q, r) for q, r in enumerate(ladder) if r.step is not None]
    counts = np.zeros((len(rungs), layout.rows, detail.SYMBOLS))
    for path in tqdm(paths, desc="counting detail levels"):
        rgb, bases = _bases(codec, path, {r.stages for _, r in rungs}, ECVQ_LAMBDA if encoded else 0.0)
        for k, (q, rung) in enumerate(rungs):
            if encoded:
                levels, chosen = codec.detail_levels(rgb, bases[rung.stages], q + 1)
            else:
                levels, chosen = modes.levels_for(rgb, bases[rung.stages], rung.step, rung.offset, predictors[q])
            detail.count(levels, counts[k], layout, chosen)
    if layout is detail.NEIGHBOURS:
        return np.stack([detail.table_from_counts(c.reshape(3, detail.GROUPS, detail.CONTEXTS, -1)) for c in counts])
    return np.stack([detail.codes_from_counts(c, layout) for c in counts])


def validate(codec: Codec, paths: list[Path], ladder: list[Rung], tables, adaptive: bool,
             predictors: list[int], layout: detail.Layout = detail.NEIGHBOURS) -> dict:
    """Mean detail-layer bits per pixel (the coded cross-entropy, modes included) and mean PSNR
    of base plus detail over whole photos, per rung with a step."""
    rungs = [(q, r) for q, r in enumerate(ladder) if r.step is not None]
    bpp, quality = np.zeros(len(rungs)), np.zeros(len(rungs))
    model = replace(codec.model, ladder=ladder, detail_tables=tables, detail_layout=layout)
    for path in tqdm(paths, desc="validating"):
        rgb, bases = _bases(codec, path, {r.stages for _, r in rungs})
        h, w = rgb.shape[:2]
        for k, (q, rung) in enumerate(rungs):
            base = bases[rung.stages]
            levels, chosen = modes.levels_for(rgb, base, rung.step, rung.offset, predictors[q])
            bits = detail.encode(new_encoder(), levels, model.detail_table(q + 1), chosen, adaptive=adaptive)
            bits += modes.encode(new_encoder(), chosen, predictors[q]) if predictors[q] else 0
            bpp[k] += bits / (h * w) / len(paths)
            out = detail.add_detail(modes.predictor(base, chosen), levels, rung.step, rung.offset)
            quality[k] += psnr(out, rgb) / len(paths)
    return {rung.spec(): {"detail_bpp": round(float(b), 4), "psnr": round(float(p), 3)}
            for (_, rung), b, p in zip(rungs, bpp, quality)}


def codec_path(model: str) -> Path:
    """A codec given as a shipped model id (verified) or a codec file's path."""
    return Path(model) if model.endswith(".safetensors") else weights.verified(model)[0]


def kept_filter(model, ladder: list[Rung], block_modes: bool) -> tuple[dict[str, np.ndarray], dict]:
    """(tensors, config) of a codec model's reconstruction filter for a ladder that continues
    the model's own: each added quality gets the last quality's bias and is skipped, since the
    filter was neither trained nor validated there. A third predictor may be added: v8's filter
    retrained on rvq-dct-v9's output gained nothing measurable (`docs/results/ablation.md`)."""
    old = model.ladder
    if model.postfilter_config is None:
        raise VQPressError("--keep-filter: the base codec has no reconstruction filter")
    if block_modes != bool(model.block_modes):  # the base's qualities would decode to other pixels
        raise VQPressError("--keep-filter: block modes must be as in the base codec "
                           f"({'--block-modes' if model.block_modes else '--no-block-modes'})")
    if ladder[:len(old)] != old:
        raise VQPressError(f"--keep-filter: the ladder must start with the base's {len(old)} rungs "
                           f"({' '.join(r.spec() for r in old)})")
    state = dict(model.postfilter_state)
    bias = state["quality_bias"]
    state["quality_bias"] = np.concatenate([bias, np.repeat(bias[-1:], len(ladder) - len(old), axis=0)])
    skip = sorted(set(model.postfilter_config.get("skip", [])) | set(range(len(old) + 1, len(ladder) + 1)))
    return state, {**model.postfilter_config, "qualities": len(ladder), "skip": skip}


def export_detail(base_model: str, data: Path, valid: Path | None, model_id: str, out: Path,
                  ladder_text: str = LADDER, limit: int | None = None, device: str = "cpu",
                  adaptive: bool = True, block_modes: bool = True, soft_from: int | None = None,
                  keep_filter: bool = False, contexts: str = "neighbours", encoded: bool = False) -> Path:
    """Release <out>/<model_id>.safetensors: the networks and prior of `base_model` (a shipped
    codec, or a codec file's path), with the ladder and detail tables fitted for it, its
    encoder choosing each block's predictor (with block_modes: the base or its mean, and from
    quality soft_from up the softened base too); with keep_filter, also the base's
    reconstruction filter (`kept_filter`). contexts: the tables' layout (`LAYOUTS`); encoded:
    count what the base's own encoder codes (`fit_tables`), which needs the base's ladder,
    block modes and layout."""
    base_path = codec_path(base_model)
    codec = Codec(device=device, path=base_path)
    ladder = parse_ladder(ladder_text, codec.model.vqvae_config["num_stages"])
    if soft_from is not None and not (block_modes and 1 <= soft_from <= len(ladder)):
        raise VQPressError(f"--soft-from {soft_from}: needs block modes and a quality from 1 to {len(ladder)}")
    predictors = [(3 if soft_from is not None and q >= soft_from else 2) * block_modes for q in range(1, len(ladder) + 1)]
    filter_state, filter_config = kept_filter(codec.model, ladder, block_modes) if keep_filter else ({}, None)
    train_paths = evenly_spread(image_paths(data), limit)
    start = time.time()
    layout = LAYOUTS[contexts]
    if encoded and (codec.ladder != ladder or (list(codec.model.block_modes) or [0] * len(ladder)) != predictors
                    or codec.model.detail_layout.spec() != layout.spec()):
        raise VQPressError("--encoded: the ladder, block modes and contexts must be the base codec's")
    tables = fit_tables(codec, train_paths, ladder, predictors, layout, encoded)
    base_card = weights.metadata(base_path)["card"]
    card = {"model_id": model_id, **{k: v for k, v in base_card.items() if k not in ("model_id", "detail", "postfilter")},
            "detail": {"base_model": base_path.stem, "data": str(data), "valid": str(valid) if valid else None,
                       "train_images": len(train_paths), "ladder": [r.spec() for r in ladder],
                       "deadzone": detail.DEADZONE, "adaptive": adaptive, "block_modes": block_modes, "soft_from": soft_from,
                       "contexts": contexts, "layout": layout.spec(), "encoded": encoded,
                       "fit_seconds": round(time.time() - start), "command": command_line(),
                       "hardware": hardware(device)}}
    if keep_filter:
        section = base_card.get("postfilter", {})  # kept twice: the qualities it was trained for stay
        kept_by = section.get("kept_by") or {"model": base_path.stem, "qualities": len(codec.model.ladder)}
        card["postfilter"] = {**section, "skip": filter_config["skip"], "kept_by": kept_by}
    if valid is not None:
        card["detail"]["validation"] = validate(codec, evenly_spread(image_paths(valid), limit), ladder, tables, adaptive,
                                                predictors, layout)

    tensors = {k: v for k, v in codec_file(base_path)[1].items() if not k.startswith(("detail.", "postfilter."))}
    tensors["detail.tables" if layout is detail.NEIGHBOURS else "detail.codes"] = np.ascontiguousarray(tables)
    tensors.update({f"postfilter.{k}": v for k, v in filter_state.items()})
    metadata = {"vqvae_config": codec.model.vqvae_config, "ladder": [[r.stages, r.step, r.offset] for r in ladder],
                "adaptive_detail": adaptive, "block_modes": predictors if soft_from is not None else block_modes}
    if layout is not detail.NEIGHBOURS:
        metadata["detail_layout"] = layout.spec()
    if filter_config is not None:
        metadata["postfilter_config"] = filter_config
    return release_codec(out, model_id, tensors, metadata, card)


def export_dc_signs(base_model: str, model_id: str, out: Path) -> Path:
    """Release <out>/<model_id>.safetensors: `base_model` (a shipped codec, or a codec file's
    path, with tables stored as codes) whose detail layer codes the DC levels' signs in context
    (`detail.DcSigns`). The tables, networks and filter are the base's, and so are the levels
    an encoder chooses and the pixels they decode to: only the bits change. Nothing is fitted."""
    base_path = codec_path(base_model)
    meta, tensors = codec_file(base_path)
    if "detail.codes" not in tensors:
        raise VQPressError(f"{base_path.stem} has no detail tables stored as codes (rvq-dct-v10 and later)")
    layout = detail.Layout(**{**meta["detail_layout"], "dc_signs": True})
    base_card = meta["card"]
    card = {**base_card, "model_id": model_id,
            "detail": {**base_card["detail"], "layout": layout.spec(),
                       "dc_signs_by": {"base_model": base_path.stem, "command": command_line()}}}

    return release_codec(out, model_id, tensors, {**meta, "detail_layout": layout.spec()}, card)
