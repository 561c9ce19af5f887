"""Would a reconstruction offset per colour channel, band group and magnitude (1, 2, 3+) beat
the ladder's single offset per quality? Detail levels' exact offsets (|c| / step - |q|), as
the shipped encoder makes them (modes and RD-optimised levels included), on training photos:
the centroids fitted on half of them, the squared error measured on the other half.

    python benchmarks/study_offsets.py ../shared/corpus/train --photos 80

Measured with rvq-dct-v9 (80 photos, before the reconstruction filter): +0.014, +0.011,
+0.001, +0.006, +0.035 and +0.181 dB at qualities 3, 5, 7, 9, 11 and 13. Only the best
quality gains visibly (RD-lowered levels pull its |q| = 1 centroids of high frequencies up to
0.4 step); not worth a new model file for the qualities the BD-rates are measured over.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from tqdm import tqdm

from vqpress.codec import detail, modes as block_modes
from vqpress.codec.api import ECVQ_LAMBDA, RDO_LAMBDA, Codec
from vqpress.codec.imageio import open_image, to_rgb8
from vqpress.training.data import evenly_spread, image_paths


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data", type=Path)
    ap.add_argument("--photos", type=int, default=80)
    ap.add_argument("--qualities", default="3,5,7,9,11,13")
    args = ap.parse_args()
    codec = Codec("rvq-dct-v9")
    qualities = [int(q) for q in args.qualities.split(",")]
    cells = 3 * detail.GROUPS * 3  # channel, band group, magnitude 1 / 2 / 3+
    # per quality and half: count, sum and sum of squares of the exact offsets; the whole SSE
    stats = {q: np.zeros((2, 3, cells)) for q in qualities}
    sse = {q: np.zeros(2) for q in qualities}
    for i, path in enumerate(tqdm(evenly_spread(image_paths(args.data), args.photos))):
        rgb, _ = to_rgb8(open_image(path))
        h, w = rgb.shape[:2]
        symbols = codec.symbols(rgb, 2, lam=ECVQ_LAMBDA)
        bases = {s: codec.pixels(symbols[:s], h, w) for s in (1, 2)}
        for q in qualities:
            rung, base = codec.ladder[q - 1], bases[codec.ladder[q - 1].stages]
            residuals = block_modes.candidates(rgb, base, codec.model.predictors(q))
            modes = block_modes.modes_for(block_modes.costs_of(residuals, rung.step, rung.offset), rung.step)
            c = block_modes.picked(residuals, modes, rgb, base)
            levels = detail.rd_optimise(detail.quantise(c, rung.step), c, rung.step, rung.offset,
                                        codec.model.detail_table(q), RDO_LAMBDA)
            magnitude = np.abs(levels)
            coded = magnitude > 0
            exact = (np.abs(c) / rung.step - magnitude)[coded]
            cell = ((np.arange(3)[:, None] * detail.GROUPS + detail.BAND_GROUP) * 3)[None, None]
            cell = np.broadcast_to(cell, levels.shape)[coded] + np.minimum(magnitude[coded], 3) - 1
            for k, v in enumerate((np.ones_like(exact), exact, exact * exact)):
                stats[q][i % 2, k] += np.bincount(cell, v, minlength=cells)
            sse[q][i % 2] += np.square(c - detail.dequantise(levels, rung.step, rung.offset)).sum()
    for q in qualities:
        step, offset = codec.ladder[q - 1].step, codec.ladder[q - 1].offset
        (n_fit, s_fit, _), (n, s, ss) = stats[q]
        centroid = np.where(n_fit > 50, s_fit / np.maximum(n_fit, 1), offset)
        saved = ((ss - 2 * offset * s + offset**2 * n) - (ss - 2 * centroid * s + centroid**2 * n)).sum() * step**2
        print(f"quality {q}: {10 * np.log10(sse[q][1] / (sse[q][1] - saved)):+.3f} dB on the held-out half")


if __name__ == "__main__":
    main()
