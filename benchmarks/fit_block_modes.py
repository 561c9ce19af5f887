"""Choose the block modes' lambda (`codec.modes.LAMBDA`) on training photos.

    python benchmarks/fit_block_modes.py ../shared/corpus/train [--photos 40] [--lambdas 0.05,0.1,0.2]

Over every other training photo larger than 400 px (the small food photos left out: they
would dominate by number), for the two-stage rungs of the ladder: tables are counted on half
of the photos, and the other half is coded with them (static tables' cross-entropy, the modes
at an estimated 0.3 bit per block). Prints the BD-rate of each lambda against no modes.
"""

from __future__ import annotations

import argparse

import numpy as np

from vqpress.codec import detail, modes
from vqpress.codec.api import Codec
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
        return modes.levels_for(rgb, base, step, OFFSET, False)
    modes.LAMBDA = lam
    return modes.levels_for(rgb, base, step, OFFSET, True)


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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    parser.add_argument("--photos", type=int, default=40)
    parser.add_argument("--lambdas", default="0.05,0.1,0.2")
    args = parser.parse_args()
    codec = Codec("rvq-dct-v7", device="cpu")
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
