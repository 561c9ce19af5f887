"""Fit the detail layer's tables on a folder of photos and release a codec that uses them.

No gradient descent: a table row is the (shrunk) frequency of each quantised level in its
context, counted over the residuals of the training photos against a shipped VQ base.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file
from tqdm import tqdm

from vqpress import weights
from vqpress.codec import detail
from vqpress.codec.api import Codec
from vqpress.codec.entropy import new_encoder
from vqpress.codec.errors import VQPressError
from vqpress.codec.imageio import open_image, to_rgb8
from vqpress.codec.model import Rung
from vqpress.measure.metrics import psnr

from .codec_models import CODEC_INTRO, codec_sections
from .data import image_paths
from .loop import hardware
from .release import release

STEPS = (120.0, 85.0, 60.0, 45.0, 34.0, 26.0, 20.0)  # one quality each, in 8-bit pixel units


def _residual_coefficients(codec: Codec, path: Path, stages: int) -> tuple[np.ndarray, tuple]:
    rgb, _ = to_rgb8(open_image(path))
    h, w = rgb.shape[:2]
    base = codec.pixels(codec.symbols(rgb, stages), h, w)
    return detail.residual_coefficients(rgb, base), (rgb, base)


def fit_tables(codec: Codec, paths: list[Path], stages: int, steps: tuple[float, ...]) -> np.ndarray:
    """Integer tables (len(steps), 3, GROUPS, CONTEXTS, SYMBOLS) of the photos' residuals."""
    counts = np.zeros((len(steps), 3, detail.GROUPS, detail.CONTEXTS, detail.SYMBOLS))
    for path in tqdm(paths, desc="counting detail levels"):
        coefficients, _ = _residual_coefficients(codec, path, stages)
        for k, step in enumerate(steps):
            detail.count(detail.quantise(coefficients, step), counts[k])
    return np.stack([detail.table_from_counts(c) for c in counts])


def validate(codec: Codec, paths: list[Path], stages: int, steps, tables) -> dict:
    """Mean detail-layer bits per pixel (the tables' cross-entropy) and mean PSNR of base plus
    detail over whole photos, per step."""
    bpp, quality = np.zeros(len(steps)), np.zeros(len(steps))
    for path in tqdm(paths, desc="validating"):
        coefficients, (rgb, base) = _residual_coefficients(codec, path, stages)
        h, w = rgb.shape[:2]
        for k, step in enumerate(steps):
            levels = detail.quantise(coefficients, step)
            bits = detail.encode(new_encoder(), levels, tables[k])
            bpp[k] += bits / (h * w) / len(paths)
            quality[k] += psnr(detail.add_detail(base, levels, step), rgb) / len(paths)
    return {f"step{s:g}": {"detail_bpp": round(float(b), 4), "psnr": round(float(p), 3)}
            for s, b, p in zip(steps, bpp, quality)}


def export_detail(base_model: str, data: Path, valid: Path | None, model_id: str, out: Path,
                  stages: int = 2, steps: tuple[float, ...] = STEPS, limit: int | None = None,
                  device: str = "cpu") -> Path:
    """Release <out>/<model_id>.safetensors: `base_model`'s networks and prior, with the ladder
    1..stages VQ stages, then `stages` stages plus the detail layer at each step, largest first."""
    codec = Codec(base_model, device)
    top = codec.model.vqvae_config["num_stages"]
    if not 1 <= stages <= top:
        raise VQPressError(f"--stages {stages}: {base_model} has 1 to {top} VQ stages")
    train_paths = image_paths(data)[:limit]
    start = time.time()
    tables = fit_tables(codec, train_paths, stages, steps)
    base_path = weights.verified(base_model)[0]
    base_card = weights.metadata(base_path)["card"]
    card = {"model_id": model_id, **{k: v for k, v in base_card.items() if k != "model_id"},
            "detail": {"base_model": base_model, "data": str(data), "valid": str(valid) if valid else None,
                       "train_images": len(train_paths), "stages": stages, "steps": list(steps),
                       "deadzone": detail.DEADZONE, "fit_seconds": round(time.time() - start),
                       "hardware": hardware(device)}}
    if valid is not None:
        card["detail"]["validation"] = validate(codec, image_paths(valid)[:limit], stages, steps, tables)
    ladder = [Rung(k) for k in range(1, stages + 1)] + [Rung(stages, s) for s in steps]

    def write(path):
        tensors = {k: v for k, v in load_file(str(base_path)).items() if not k.startswith("detail.")}
        tensors["detail.tables"] = np.ascontiguousarray(tables, dtype=np.int32)
        metadata = {"vqvae_config": json.dumps(codec.model.vqvae_config), "card": json.dumps(card),
                    "ladder": json.dumps([[r.stages, r.step] for r in ladder])}
        save_file(tensors, str(path), metadata=metadata)

    return release(out, model_id, write, card, CODEC_INTRO,
                   codec_sections(card) + [("detail layer", detail_lines(card["detail"], ladder))])


def detail_lines(d: dict, ladder: list[Rung]) -> list[str]:
    """The model card's section on a detail layer."""
    rungs = ", ".join(f"{q}: {r.stages} stage{'s' * (r.stages > 1)}" + (f" + detail step {r.step:g}" if r.step else "")
                      for q, r in enumerate(ladder, 1))
    lines = [(f"The VQ-VAE and the prior are `{d['base_model']}`'s, unchanged. Past quality {d['stages']}, "
              "each quality adds the detail layer (`codec/detail.py`): the residual between the photo and "
              f"the {d['stages']}-stage VQ base, in an orthonormal colour transform and 8x8 DCT, quantised "
              f"with one step size (dead zone {d['deadzone']}) and range-coded with integer context tables."),
             "", f"- qualities: {rungs}",
             (f"- tables fitted (counted, no gradient descent) on `{d['data']}` "
              f"({d['train_images']} images) in {d['fit_seconds'] / 60:.0f} min on {d['hardware']}")]
    if "validation" in d:
        lines.append(f"- validation on whole photos of `{d['valid']}` (detail-layer bits per pixel "
                     "from the tables' cross-entropy, on top of the base's): "
                     f"`{json.dumps(d['validation'])}`")
    return lines
