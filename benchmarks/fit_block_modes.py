"""Choose the block modes' lambda (`codec.modes.LAMBDA`), or their predictors, on training photos.

    python benchmarks/fit_block_modes.py ../shared/corpus/train [--photos 40] [--lambdas 0.05,0.1,0.2]
    python benchmarks/fit_block_modes.py ../shared/corpus/train --photos 24 --study-predictors

Over every other training photo larger than 400 px (the small food photos left out: they
would dominate by number), for the two-stage rungs of the ladder: tables are counted on half
of the photos, and the other half is coded with them (static tables' cross-entropy, the modes
at an estimated 0.3 bit per block). Prints the BD-rate of each lambda against no modes.

--study-predictors (the odd-numbered photos instead, the modes at their empirical entropy, steps
from 200 to 11) compares third predictors, each a gain per DCT coefficient of the base (the
softened base of `codec.modes` among them), with the two predictors BASE and MEAN, chosen
without pricing the modes' bits; then the choice with the modes priced (`codec.modes.MODE_PRICE`)
for two and three predictors. Prints the BD-rate of the detail layer's bits against the first.
"""

from __future__ import annotations

import argparse

import numpy as np

from vqpress.codec import detail, modes
from vqpress.codec.api import Codec
from vqpress.codec.blocks import ZIGZAG, to_coefficients, to_pixels
from vqpress.codec.imageio import image_paths, open_image, to_rgb8
from vqpress.measure.metrics import bd_rate, psnr

STEPS = (80, 60, 45, 34, 26, 20)
OFFSET = 0.15


def table_costs(pairs, step, lam) -> np.ndarray:
    counts = np.zeros((3, detail.GROUPS, detail.CONTEXTS, detail.SYMBOLS))
    for rgb, base in pairs:
        detail.count(_levels(rgb, base, step, lam)[0], counts)
    table = detail.table_from_counts(counts).astype(np.float64)
    return -np.log2(table / table.sum(-1, keepdims=True))


def _levels(rgb, base, step, lam):
    if lam is None:
        return modes.levels_for(rgb, base, step, OFFSET, 0)
    modes.LAMBDA = lam
    return modes.levels_for(rgb, base, step, OFFSET, 2)


def curve(fit, test, lam) -> tuple[list[float], list[float]]:
    rates, quality = [], []
    for step in STEPS:
        cost = table_costs(fit, step, lam)
        bits = pixels = score = 0.0
        for rgb, base in test:
            levels, chosen = _levels(rgb, base, step, lam)
            mags = detail.padded_magnitudes(levels)
            bh, bw = levels.shape[:2]
            rows, cols = (a.ravel() for a in np.indices((bh, bw)))
            ctx = detail.contexts(mags, rows, cols)
            sym = np.clip(levels[rows, cols], -detail.LIMIT, detail.LIMIT) + detail.LIMIT
            bits += cost[np.arange(3)[:, None], detail.BAND_GROUP[None, :], ctx, sym].sum()
            bits += 0.3 * chosen.size if chosen is not None else 0
            out = detail.add_detail(modes.predictor(base, chosen), levels, step, OFFSET)
            pixels += rgb.shape[0] * rgb.shape[1]
            score += psnr(out, rgb)
        rates.append(bits / pixels)
        quality.append(score / len(test))
    return rates, quality


def gains(ac: float, keep: int = 1) -> np.ndarray:
    """(3, 64) gains on the base's coefficients: 1 for the first `keep` in zig-zag order, `ac` past them."""
    g = np.full(64, ac, np.float32)
    g[ZIGZAG[:keep]] = 1
    return np.broadcast_to(g, (3, 64))


PREDICTOR_SETS = {  # BASE and MEAN, then the third (and fourth) predictors
    "+ keep 4, zero the rest": [gains(0, 4)],
    "+ keep 6, zero the rest": [gains(0, 6)],
    "+ keep 10, zero the rest": [gains(0, 10)],
    "+ halve all but the DC": [gains(0.5)],
    "+ keep 6, halve the rest (codec.modes.SOFT)": [modes.SOFT_GAINS],
    "+ keep 3 / keep 10, zero the rest (4 predictors)": [gains(0, 3), gains(0, 10)],
}


STUDY_STEPS = (200, 150, 80, 60, 45, 34, 26, 20, 11)


def study_curve(fit, test, predictors, price: float = 0.0) -> tuple[list[float], list[float]]:
    """Rates (detail bits per pixel, the modes at their empirical entropy) and PSNRs of
    predictors [(3, 64) gains on the base's coefficients], chosen as `codec.modes.choose`
    does with MODE_PRICE `price`, quantised as the encoder does."""
    def choose(photo, base, step):
        residuals = [photo - base * g for g in predictors]
        chosen = modes.modes_for(modes.costs_of(residuals, step, OFFSET), step, price)
        return chosen, np.take_along_axis(np.stack(residuals), chosen[None, ..., None, None], 0)[0]

    rates, quality = [], []
    for step in STUDY_STEPS:
        counts = np.zeros((3, detail.GROUPS, detail.CONTEXTS, detail.SYMBOLS))
        for photo, base, _ in fit:
            detail.count(detail.quantise(choose(photo, base, step)[1], step), counts)
        table = detail.table_from_counts(counts).astype(np.float64)
        cost = -np.log2(table / table.sum(-1, keepdims=True))
        bits = pixels = score = 0.0
        for photo, base, rgb in test:
            chosen, residual = choose(photo, base, step)
            levels = detail.quantise(residual, step)
            bh, bw = levels.shape[:2]
            rows, cols = (a.ravel() for a in np.indices((bh, bw)))
            ctx = detail.contexts(detail.padded_magnitudes(levels), rows, cols)
            symbols = np.clip(levels[rows, cols], -detail.LIMIT, detail.LIMIT) + detail.LIMIT
            bits += cost[np.arange(3)[:, None], detail.BAND_GROUP[None, :], ctx, symbols].sum()
            p = np.bincount(chosen.ravel(), minlength=len(predictors)) + 0.5
            bits -= np.log2(p / p.sum())[chosen].sum()
            coefficients = base * np.stack(predictors)[chosen] + detail.dequantise(levels, step, OFFSET)
            out = np.clip(np.round(to_pixels(coefficients, *rgb.shape[:2])), 0, 255).astype(np.uint8)
            pixels += rgb.shape[0] * rgb.shape[1]
            score += psnr(out, rgb)
        rates.append(bits / pixels)
        quality.append(score / len(test))
    return rates, quality


def study_predictors(codec: Codec, folder: str, photos: int) -> None:
    pairs = []
    for path in image_paths(folder)[1::2]:
        rgb, _ = to_rgb8(open_image(path))
        if min(rgb.shape[:2]) > 400 and len(pairs) < photos:
            base = codec.pixels(codec.symbols(rgb, 2), *rgb.shape[:2])
            pairs.append((to_coefficients(rgb), to_coefficients(base), rgb))
    fit, test = pairs[::2], pairs[1::2]
    two = [gains(1, 64), gains(0)]  # BASE, MEAN
    reference = study_curve(fit, test, two)
    print(f"{len(test)} held-out training photos; base or mean: "
          + " ".join(f"{r:.3f}/{q:.2f}" for r, q in zip(*reference)))
    for name, extra in PREDICTOR_SETS.items():
        result = study_curve(fit, test, two + extra)
        print(f"{name}: BD-rate {bd_rate(*reference, *result):+.2f}% against base or mean")
    for price in (1.0, 1.5, 2.0, 3.0):
        for name, predictors in (("base or mean", two), ("and softened", two + [modes.SOFT_GAINS])):
            result = study_curve(fit, test, predictors, price)
            print(f"{name}, modes priced x{price:g}: BD-rate {bd_rate(*reference, *result):+.2f}% against base or mean")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    parser.add_argument("--photos", type=int, default=40)
    parser.add_argument("--lambdas", default="0.05,0.1,0.2")
    parser.add_argument("--study-predictors", action="store_true")
    args = parser.parse_args()
    codec = Codec("rvq-dct-v9", device="cpu")  # the VQ base (v4's VQ-VAE, shared by v9); its measurements were made with v7's, the same networks
    if args.study_predictors:
        return study_predictors(codec, args.folder, args.photos)
    pairs = []
    for path in image_paths(args.folder)[::2]:
        rgb, _ = to_rgb8(open_image(path))
        if min(rgb.shape[:2]) > 400 and len(pairs) < args.photos:
            base = codec.pixels(codec.symbols(rgb, 2), *rgb.shape[:2])
            pairs.append((rgb, base))
    fit, test = pairs[::2], pairs[1::2]
    reference = curve(fit, test, None)
    print(f"{len(test)} held-out training photos; no modes: "
          + " ".join(f"{r:.3f}/{q:.2f}" for r, q in zip(*reference)))
    for lam in (float(v) for v in args.lambdas.split(",")):
        result = curve(fit, test, lam)
        print(f"lambda {lam}: BD-rate {bd_rate(*reference, *result):+.2f}% against no modes")


if __name__ == "__main__":
    main()
