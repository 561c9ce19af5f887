"""Three measured ideas for the detail layer, on training photos (not the validation set).

    python benchmarks/study_detail_coding.py ../shared/corpus/train --photos 12

For each quality with a detail layer (2, 3, 4, 6, 9 by default), with the encoder's own levels:
- offsets: the squared error of the nonzero coefficients (per pixel and channel) with the fixed
  reconstruction offset, and with offsets fitted per (channel, band group, |q| bucket) or per
  (channel, band group, context, |q| bucket) on a second set of photos (shrunk towards the fixed
  one): what fitted reconstruction points would buy;
- dc: the empirical conditional entropy of the DC levels given their coder context, alone and
  after subtracting a prediction from the decoded left and upper DC levels (their median with
  left + up - upper-left, or their rounded mean): what DC prediction would buy;
- zeros: the share of block-channels whose 64 levels are all zero, and the share of the adaptive
  coder's bits they take: what a coded "all zero" flag could at most save.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np

from vqpress.codec import api, detail, modes
from vqpress.codec.imageio import image_paths
from vqpress.training.data import evenly_spread

from fit_encoder import photo

BUCKETS = 4  # |q| = 1, 2, 3, 4+
SHRINK = 20  # coefficients' weight of the fixed offset in a fitted cell


def encoder_levels(codec, rgb, qualities):
    """(quality, rung, coefficients, levels) as the encoder makes them."""
    h, w = rgb.shape[:2]
    bases = {}
    for q in qualities:
        rung = codec.ladder[q - 1]
        if rung.stages not in bases:
            bases[rung.stages] = codec.pixels(codec.symbols(rgb, rung.stages, lam=api.ECVQ_LAMBDA), h, w)
        base = bases[rung.stages]
        coefficients, _ = modes.coefficients_for(rgb, base, rung.step, rung.offset, codec.model.predictors(q))
        levels, _ = codec.detail_levels(rgb, base, q)
        yield q, rung, coefficients, levels


def grid_contexts(levels):
    bh, bw = levels.shape[:2]
    rows, cols = (a.ravel() for a in np.indices((bh, bw)))
    return detail.contexts(detail.padded_magnitudes(levels), rows, cols).reshape(levels.shape)


def offset_cells(levels, contexts):
    """Per nonzero level: its |q| excess index and its (band, context) cells."""
    nonzero = levels != 0
    bucket = np.minimum(np.abs(levels[nonzero]), BUCKETS) - 1
    band = (np.broadcast_to(np.arange(3)[:, None], levels.shape[2:]) * detail.GROUPS + detail.BAND_GROUP)
    band = np.broadcast_to(band, levels.shape)[nonzero]
    return nonzero, band * BUCKETS + bucket, (band * detail.CONTEXTS + contexts[nonzero]) * BUCKETS + bucket


def study_offsets(codec, fit, test, qualities):
    sums = defaultdict(lambda: [0.0, 0.0])  # (q, kind) -> [sum of excess, count] arrays
    for rgb in fit:
        for q, rung, c, levels in encoder_levels(codec, rgb, qualities):
            nonzero, band, cell = offset_cells(levels, grid_contexts(levels))
            excess = np.abs(c[nonzero]) / rung.step - np.abs(levels[nonzero])
            for kind, index, size in (("band", band, 3 * detail.GROUPS * BUCKETS),
                                      ("context", cell, 3 * detail.GROUPS * detail.CONTEXTS * BUCKETS)):
                s = sums[q, kind]
                s[0] = s[0] + np.bincount(index, excess, size)
                s[1] = s[1] + np.bincount(index, minlength=size)
    errors = defaultdict(float)
    for rgb in test:
        for q, rung, c, levels in encoder_levels(codec, rgb, qualities):
            nonzero, band, cell = offset_cells(levels, grid_contexts(levels))
            excess = np.abs(c[nonzero]) / rung.step - np.abs(levels[nonzero])
            by_band = (sums[q, "band"][0] + SHRINK * rung.offset) / (sums[q, "band"][1] + SHRINK)
            by_context = (sums[q, "context"][0][cell] + SHRINK * by_band[band]) / (sums[q, "context"][1][cell] + SHRINK)
            scale = rung.step**2 / (3 * rgb.shape[0] * rgb.shape[1] * len(test))
            errors[q, "fixed"] += np.square(excess - rung.offset).sum() * scale
            errors[q, "band"] += np.square(excess - by_band[band]).sum() * scale
            errors[q, "context"] += np.square(excess - by_context).sum() * scale
    print("\nsquared error of the nonzero coefficients per pixel and channel (the whole image's MSE is "
          "255^2 / 10^(PSNR / 10))\n\n| quality | fixed offset | fitted per band | fitted per band and context |")
    print("|---:|---:|---:|---:|")
    for q in qualities:
        print(f"| {q} | {errors[q, 'fixed']:.3f} | {errors[q, 'band']:.3f} | {errors[q, 'context']:.3f} |")


def entropy(values, given):
    """Empirical conditional entropy H(values | given), bits per value."""
    _, joint = np.unique(given.astype(np.int64) * 2**20 + values + 2**19, return_counts=True)
    _, marginal = np.unique(given, return_counts=True)
    return ((marginal * np.log2(marginal)).sum() - (joint * np.log2(joint)).sum()) / len(values)


def study_dc(codec, photos, qualities):
    data = defaultdict(list)
    for rgb in photos:
        for q, _, _, levels in encoder_levels(codec, rgb, qualities):
            dc = levels[..., 0]
            padded = np.pad(dc, ((1, 0), (1, 0), (0, 0)))
            left, up, corner = padded[1:, :-1], padded[:-1, 1:], padded[:-1, :-1]
            median = np.median(np.stack([left, up, left + up - corner]), 0).astype(np.int64)
            data[q].append(np.stack([dc, grid_contexts(levels)[..., 0], median,
                                     np.round((left + up) / 2).astype(np.int64)]).reshape(4, -1, 3))
    print("\nDC levels, bits per block and channel (luma / colour differences)\n")
    print("| quality | given the context | minus the median prediction | minus the mean prediction |")
    print("|---:|---|---|---|")
    for q in qualities:
        dc, context, median, mean = np.concatenate(data[q], axis=1)
        cells = [" / ".join(f"{entropy(v[:, ch], context[:, ch]):.3f}" for ch in range(3))
                 for v in (dc, dc - median, dc - mean)]
        print(f"| {q} | " + " | ".join(cells) + " |")


class CostRecorder:
    """Stands in for the range encoder: records -log2 p of each symbol `detail.encode` codes."""

    def __init__(self):
        self.calls = []

    def encode(self, symbols, model, weights):
        if weights.ndim == 2:  # categorical over rows of weights (not the escapes' uniform part)
            chosen = weights[np.arange(len(symbols)), symbols]
            self.calls.append(-np.log2(chosen / weights.sum(1)))


def coded_bits(codec, q, levels):
    """The adaptive coder's -log2 p of every level (bh, bw, 3, 64), from `detail.encode`'s own
    coding: its calls go diagonal by diagonal, channel by channel."""
    recorder = CostRecorder()
    detail.encode(recorder, levels, codec.model.detail_table(q), adaptive=codec.model.adaptive_detail)
    bits = np.zeros(levels.shape)
    calls = iter(recorder.calls)
    for rows, cols in detail.diagonals(*levels.shape[:2]):
        for channel in range(3):
            bits[rows, cols, channel] = next(calls).reshape(len(rows), 64)
    return bits


def study_zeros(codec, photos, qualities):
    totals = defaultdict(lambda: np.zeros(4))
    for rgb in photos:
        for q, _, _, levels in encoder_levels(codec, rgb, qualities):
            bits = coded_bits(codec, q, levels)
            zero = (levels == 0).all(-1)
            totals[q] += [bits.sum(), bits[zero].sum(), zero.sum(), zero.size]
    print("\nall-zero block-channels\n\n| quality | share of block-channels | share of the detail bits | bits each |")
    print("|---:|---:|---:|---:|")
    for q in qualities:
        bits, zero_bits, zeros, count = totals[q]
        print(f"| {q} | {zeros / count:.1%} | {zero_bits / bits:.1%} | {zero_bits / max(zeros, 1):.3f} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--photos", type=int, default=12)
    parser.add_argument("--qualities", default="2,3,4,6,9")
    args = parser.parse_args()
    codec = api.Codec(device="cpu", threads=2)
    qualities = [int(q) for q in args.qualities.split(",")]
    paths = evenly_spread(image_paths(args.folder), 2 * args.photos)
    test = [photo(p) for p in paths[1::2]]
    print(f"{len(test)} photos of {args.folder} (and {len(paths[0::2])} others to fit the offsets)")
    study_offsets(codec, [photo(p) for p in paths[0::2]], test, qualities)
    study_dc(codec, test, qualities)
    study_zeros(codec, test, qualities)


if __name__ == "__main__":
    main()
