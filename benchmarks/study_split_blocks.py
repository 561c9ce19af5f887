"""Would four 4x4 DCTs, chosen per 8x8 block, code the detail layer in fewer bits? For
isolated detail (stars, thin lines, noise) an 8x8 DCT spreads the energy over many
coefficients.

    python benchmarks/study_split_blocks.py ../shared/corpus/train --photos 24

The 4x4 coefficients fill the block's 64 slots interleaved (coefficient (u, v) of sub-block
(a, b) at (2u + a, 2v + b)), so they meet the 8x8 tables' band groups at about the same
frequency. Per block the encoder takes the transform with the lower D + lambda R (the modes'
rate estimate, `modes.rd_cost`). Rate: static tables with the shipped contexts, fitted on
half the photos and measured on the others, the split flag as one more context, plus the flags'
own bits; against the 8x8-only coder at equal PSNR (interpolated over three steps).
--margin m splits only where the split's cost is below m times the 8x8 one.

Measured with rvq-dct-v9 (24 photos, qualities 5 / 9 / 11): margin 1 split 24% / 12% / 5% of
the blocks and cost +7.05% / +1.06% / +0.30% (the rate estimate favours the split more than
the tables do); margin 0.8: -0.23% / -0.19% / -0.16% (1% of the blocks); margin 0.6: no
block split. Not worth a format change.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from tqdm import tqdm

from vqpress.codec import detail, modes as block_modes
from vqpress.codec.api import ECVQ_LAMBDA, Codec
from vqpress.codec.blocks import COLOR, dct_matrix
from vqpress.codec.imageio import open_image, to_rgb8
from vqpress.training.data import evenly_spread, image_paths


def block_transform(side: int) -> np.ndarray:
    """(192, 192): a block's pixels (8, 8, 3) flattened -> the coefficients (3, 64) of its
    (8 / side)^2 sub-blocks' side x side DCTs, interleaved (side 8: the codec's own transform)."""
    dct = dct_matrix(side)
    n = 8 // side
    t = np.zeros((8, 8, 3, 3, 8, 8))
    for a in range(n):
        for b in range(n):
            t[side * a:side * (a + 1), side * b:side * (b + 1), :, :, a::n, b::n] = \
                np.einsum("uy,vx,dc->yxcduv", dct, dct, COLOR)
    return t.reshape(192, 192)


EIGHT_TO_SPLIT = block_transform(8).T @ block_transform(4)  # 8x8 coefficients -> split coefficients


def block_cost(c: np.ndarray, q: np.ndarray, step: float, offset: float) -> np.ndarray:
    error = np.square(c - detail.dequantise(q, step, offset)).sum((-1, -2))
    a = np.abs(q)
    bits = (2 * np.log2(a + 1) + 4 * (a > 0)).sum((-1, -2))
    return error, bits


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data", type=Path)
    ap.add_argument("--photos", type=int, default=24)
    ap.add_argument("--qualities", default="5,9,11")
    ap.add_argument("--margin", type=float, default=1.0, help="split where J4 < margin x J8")
    args = ap.parse_args()
    codec = Codec("rvq-dct-v9")
    qualities = [int(q) for q in args.qualities.split(",")]
    scales = (0.87, 1.0, 1.15)
    samples = []  # per photo: {(q, scale, variant): (levels, flags, sse, pixels)}
    for path in tqdm(evenly_spread(image_paths(args.data), args.photos)):
        rgb, _ = to_rgb8(open_image(path))
        h, w = rgb.shape[:2]
        symbols = codec.symbols(rgb, 2, lam=ECVQ_LAMBDA)
        bases = {s: codec.pixels(symbols[:s], h, w) for s in (1, 2)}
        out = {}
        for q in qualities:
            rung = codec.ladder[q - 1]
            for scale in scales:
                step = rung.step * scale
                base = bases[rung.stages]
                residuals = block_modes.candidates(rgb, base, codec.model.predictors(q))
                modes = block_modes.modes_for(block_modes.costs_of(residuals, step, rung.offset), step)
                c8 = block_modes.picked(residuals, modes, rgb, base)
                bh, bw = c8.shape[:2]
                c4 = (c8.reshape(bh * bw, 192).astype(np.float64) @ EIGHT_TO_SPLIT).astype(np.float32).reshape(c8.shape)
                q8, q4 = detail.quantise(c8, step), detail.quantise(c4, step)
                e8, b8 = block_cost(c8, q8, step, rung.offset)
                e4, b4 = block_cost(c4, q4, step, rung.offset)
                lam = block_modes.LAMBDA * step * step
                split = (e4 + lam * b4) < args.margin * (e8 + lam * b8)
                mixed = np.where(split[..., None, None], q4, q8)
                out[q, scale, "8x8"] = (q8, np.zeros_like(split), e8.sum(), h * w)
                out[q, scale, "split"] = (mixed, split, np.where(split, e4, e8).sum(), h * w)
        samples.append(out)
    fit, held = samples[0::2], samples[1::2]
    n_cells = 3 * detail.GROUPS * detail.CONTEXTS * 2 * detail.SYMBOLS

    def cells(levels, flags):
        bh, bw = levels.shape[:2]
        rows, cols = (a.ravel() for a in np.indices((bh, bw)))
        ctx = detail.contexts(detail.padded_magnitudes(levels), rows, cols)
        first = (np.arange(3)[:, None] * detail.GROUPS + detail.BAND_GROUP[None, :]) * detail.CONTEXTS
        symbols = np.clip(levels.reshape(bh * bw, 3, 64), -detail.LIMIT, detail.LIMIT) + detail.LIMIT
        return ((((first + ctx) * 2 + flags.ravel()[:, None, None]) * detail.SYMBOLS) + symbols).ravel()

    def table(counts):
        counts = counts.reshape(3, detail.GROUPS, detail.CONTEXTS, 2, detail.SYMBOLS)
        parent = detail.table_from_counts(counts.sum(3)).astype(np.float64)
        parent /= parent.sum(-1, keepdims=True)
        p = (counts + 16 * parent[:, :, :, None]) / (counts.sum(-1, keepdims=True) + 16)
        return np.log2(p).ravel()

    def flag_bits(flags):
        n, k = flags.size, int(flags.sum())
        return 0.0 if k in (0, n) else -(k * np.log2(k / n) + (n - k) * np.log2(1 - k / n))

    for q in qualities:
        curve = {}
        for variant in ("8x8", "split"):
            for scale in scales:
                counts = sum(np.bincount(cells(*s[q, scale, variant][:2]), minlength=n_cells) for s in fit)
                logp = table(counts.astype(np.float64))
                bits = sum(-logp[cells(*s[q, scale, variant][:2])].sum() for s in held)
                if variant == "split":
                    bits += sum(flag_bits(s[q, scale, variant][1]) for s in held)
                sse = sum(s[q, scale, variant][2] for s in held)
                pixels = sum(s[q, scale, variant][3] for s in held)
                psnr = 10 * np.log10(255**2 / (sse / (3 * pixels)))
                curve[variant, scale] = (bits / pixels, psnr)
        ref = np.array([curve["8x8", s] for s in scales])
        test = curve["split", 1.0]
        order = np.argsort(ref[:, 1])
        rate_at = np.exp(np.interp(test[1], ref[order, 1], np.log(ref[order, 0])))
        share = np.mean([s[q, 1.0, "split"][1].mean() for s in held])
        print(f"quality {q}: 8x8 {ref[1, 0]:.4f} bpp {ref[1, 1]:.2f} dB (residual only), split {test[0]:.4f} bpp "
              f"{test[1]:.2f} dB; {100 * share:.1f}% of blocks split; rate at equal PSNR {100 * (test[0] / rate_at - 1):+.2f}%")


if __name__ == "__main__":
    main()
