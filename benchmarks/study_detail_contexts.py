"""Which block-level contexts would lower the detail layer's bits? Static-table cross-entropy of
the levels the encoder codes, tables fitted on some training photos and measured on others.

    python benchmarks/study_detail_contexts.py ../shared/corpus/train --photos 120

Collects (levels, modes, VQ symbols) of each photo at each quality with a detail layer, as the
shipped encoder makes them, into --cache; then fits tables on two thirds of the photos and
measures the others, for context schemes on top of the shipped one (neighbours' magnitudes,
their activity, earlier channels): each block's mode (`mode`), a class of its stage-1 or
stage-2 VQ code (`vq1x4`: 4 classes, by the mean activity of the blocks with that code), the
block's nonzero count per channel coded first (`nz`), the mode moving the activity factor
instead of adding rows (`shift1/0`: MEAN blocks one activity class up, SOFT ones not), the mode
in place of the earlier channels' factor (`cross_to_mode`: tables of the shipped size), or
two passes per block, the coefficients past the first K in zig-zag order coded in the context
of the first K's magnitudes (`lf10`: K = 10, 5 classes; `lf10x3`: 3 classes), optionally on
fewer shipped contexts (`coarse`: NEAR 0..2 and ACTIVITY halved, 36 of the 120).

Measured with rvq-dct-v9 (120 photos; detail bits against the shipped contexts): mode -0.64%,
vq1x4 -0.09%, vq1x8 +0.01%, vq2x4 -0.50%, mode+vq1x4 -0.69%, mode+vq1x4+vq2x2 -0.67%,
nz +0.78%, nz+mode +0.62%, shift1/1 +0.94%, shift1/0 +1.50%, shift2/1 +2.39%, cross_to_mode
-0.04%, lf3 -0.39%, lf6 -0.72%, lf10 -0.85%, mode+lf10 -1.41%, mode+vq2x4+lf10 -1.58%,
mode+lf10x3 -0.89%, coarse+mode+lf10 -0.33%. With the extra
rows shrunk towards the pooled band group (as `detail.table_from_counts` does) instead of
towards their shipped row, every scheme lost (mode +1.8% on 40 photos): the finer rows need
the coarser one as their prior.

Passes (`mode+passesS1.S2...xK`: the mode, and each channel of a block coded in passes split at
zig-zag positions S1, S2, ..., a later pass in the context of the bit length of the sum of the
block's own magnitudes before it, K classes; the two signs of a level pooled, as
`detail.codes_from_counts` does: `signs_alike` alone -0.01%), same 120 photos: passes10x5
-1.48%, passes10x7 -2.02%, passes10x9 -2.09%, passes3.10x7 -2.29%, passes6.21x9 -2.67%,
passes3.10.28x9 -2.99%, passes6.15.28x7 -2.73%, **passes6.15.28x9 -3.07%** (rvq-dct-v10's
layout, `detail.MODES_PASSES`), passes3.10.21.36x9 -3.25% (a fifth pass: one more range-coder
call per channel and diagonal for 0.2%). Stored as uint8 log-probabilities in eighths of a bit,
one per magnitude, the chosen layout's tables take 2.2 times the bytes of v9's int32 ones
(a throwaway check of that rounding: -1.47% against -1.48% unrounded for mode+lf10).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from tqdm import tqdm

from vqpress.codec import detail
from vqpress.codec.blocks import ZIGZAG
from vqpress.codec.api import ECVQ_LAMBDA, Codec
from vqpress.codec.imageio import open_image, to_rgb8
from vqpress.training.data import evenly_spread, image_paths


def collect(codec: Codec, paths: list[Path], cache: Path) -> list[Path]:
    cache.mkdir(parents=True, exist_ok=True)
    files = []
    for path in tqdm(paths, desc="collecting"):
        out = cache / f"{path.parent.name}-{path.stem}.npz"
        files.append(out)
        if out.exists():
            continue
        rgb, _ = to_rgb8(open_image(path))
        h, w = rgb.shape[:2]
        symbols = codec.symbols(rgb, 2, lam=ECVQ_LAMBDA)
        bases = {s: codec.pixels(symbols[:s], h, w) for s in (1, 2)}
        saved = {"symbols": symbols.astype(np.int16)}
        for q in codec.qualities:
            rung = codec.ladder[q - 1]
            if rung.step is None:
                continue
            levels, modes = codec.detail_levels(rgb, bases[rung.stages], q)
            saved[f"levels{q}"] = levels.astype(np.int16)
            saved[f"modes{q}"] = modes
        np.savez_compressed(out, **saved)
    return files


def code_classes(files: list[Path], q: int, stage: int, classes: int) -> np.ndarray:
    """(256,) class of each code of a VQ stage: quantile bin of the mean log-activity of the
    blocks that have it."""
    total, n = np.zeros(256), np.zeros(256)
    for f in files:
        d = np.load(f)
        levels = d[f"levels{q}"]
        act = np.log2(1 + np.abs(levels).sum((2, 3)))
        codes = d["symbols"][stage - 1][:levels.shape[0], :levels.shape[1]]
        np.add.at(total, codes.ravel(), act.ravel())
        np.add.at(n, codes.ravel(), 1)
    mean = np.where(n > 0, total / np.maximum(n, 1), np.median(total / np.maximum(n, 1)))
    edges = np.quantile(mean, np.linspace(0, 1, classes + 1)[1:-1])
    return np.searchsorted(edges, mean, side="right")


def cells(d, q: int, scheme: dict, classes: dict) -> tuple[np.ndarray, int]:
    """Flat (channel, band group, shipped context, extra context, symbol) cell of each level,
    and the number of extra contexts."""
    levels = d[f"levels{q}"].astype(np.int32)
    bh, bw = levels.shape[:2]
    rows, cols = (a.ravel() for a in np.indices((bh, bw)))
    ctx = detail.contexts(detail.padded_magnitudes(levels), rows, cols)
    extra, n = np.zeros((bh * bw, 1, 1), np.int64), 1
    if scheme.get("shift"):  # the mode moves the activity factor instead of splitting the rows
        activity = (ctx // detail.CROSS) % detail.ACTIVITY
        moved = np.minimum(activity + np.array((0, *scheme["shift"]))[d[f"modes{q}"].ravel()][:, None, None],
                           detail.ACTIVITY - 1)
        ctx = ctx + (moved - activity) * detail.CROSS
    if scheme.get("mode"):
        extra = extra + n * d[f"modes{q}"].ravel()[:, None, None].astype(np.int64)
        n *= 3
    for stage in (1, 2):
        k = scheme.get(f"vq{stage}")
        if k:
            codes = d["symbols"][stage - 1][:bh, :bw].ravel()
            extra = extra + n * classes[(q, stage, k)][codes][:, None, None]
            n *= k
    if scheme.get("coarse"):  # fewer shipped contexts: NEAR 0..2, ACTIVITY halved (36 of 120 rows)
        near, activity = ctx // (detail.ACTIVITY * detail.CROSS), (ctx // detail.CROSS) % detail.ACTIVITY
        ctx = (np.minimum(near, 2) * detail.ACTIVITY + activity // 2) * detail.CROSS + ctx % detail.CROSS
    if scheme.get("cross_to_mode"):  # same table size: the mode replaces the earlier channels
        ctx = ctx - ctx % detail.CROSS + d[f"modes{q}"].ravel()[:, None, None]
    if scheme.get("lf"):  # coded in two passes: the first K in zig-zag order, then the rest
        k = scheme["lf"]  # in the context of the block's own first K magnitudes (5 classes)
        first_k = np.isin(np.arange(64), ZIGZAG[:k])
        own = np.minimum(np.abs(levels.reshape(bh * bw, 3, 64))[..., first_k].sum(-1), 2**30)
        classes_ = scheme.get("lf_classes", 5)
        lf = np.minimum(np.ceil(np.log2(1 + own)).astype(np.int64), classes_ - 1)[:, :, None] * ~first_k
        extra = extra + n * lf
        n *= classes_
    if scheme.get("passes"):  # coded in passes split at these zig-zag positions, each later one in
        # the context of the block's own magnitudes in the earlier ones (`detail.Layout.own_rows`)
        classes_ = scheme["classes"]
        layout = detail.Layout(splits=scheme["passes"], classes=classes_)
        extra = extra + n * layout.own_rows(np.minimum(np.abs(levels.reshape(bh * bw, 3, 64)), detail.LIMIT))
        n *= classes_
    keep = np.ones(bh * bw * 3 * 64, bool)
    if scheme.get("nz"):  # the block's nonzero count per channel, coded first (`count_cells`)
        nonzero = (levels.reshape(bh * bw, 3, 64) != 0).sum(-1)
        extra = extra + n * count_bin(nonzero)[:, :, None]
        n *= 8
        keep = np.repeat(nonzero.ravel() > 0, 64)
    first = (np.arange(3)[:, None] * detail.GROUPS + detail.BAND_GROUP[None, :]) * detail.CONTEXTS
    symbols = np.clip(levels.reshape(bh * bw, 3, 64), -detail.LIMIT, detail.LIMIT) + detail.LIMIT
    return (((first + ctx) * n + extra) * detail.SYMBOLS + symbols).ravel()[keep], n


def count_bin(c: np.ndarray) -> np.ndarray:
    """0, 1, 2, 3-4, 5-8, 9-16, 17-32, 33-64 -> 0..7"""
    return np.where(c == 0, 0, np.ceil(np.log2(np.maximum(c, 1))).astype(np.int64) + 1).clip(0, 7)


def count_cells(d, q: int) -> np.ndarray:
    """Flat (channel, context, count) cell of each block's nonzero count per channel; context:
    the count bins of the left and upper blocks, summed (0..14), and for the colour channels
    whether the earlier channels have any (x2)."""
    levels = d[f"levels{q}"]
    bh, bw = levels.shape[:2]
    nonzero = (levels != 0).sum(-1)  # (bh, bw, 3)
    padded = np.pad(count_bin(nonzero), ((1, 0), (1, 0), (0, 0)))
    ctx = padded[1:, :-1] + padded[:-1, 1:]
    earlier = np.concatenate([np.zeros((bh, bw, 1), np.int64), np.cumsum(nonzero, -1)[..., :2] > 0], -1)
    ctx = ctx * 2 + earlier
    return ((np.arange(3) * 30 + ctx) * 65 + nonzero).ravel()


def table(counts: np.ndarray, prior_weight: float = 16.0, signs_alike: bool = False) -> np.ndarray:
    """log2 probabilities from counts (3, GROUPS, CONTEXTS, extra, SYMBOLS): the shipped rows
    as detail.table_from_counts makes them, each extra context's rows shrunk towards them
    (signs_alike: the counts of a level's two signs pooled, as `detail.codes_from_counts` does)."""
    if signs_alike:
        counts = (counts + counts[..., ::-1]) / 2
    parent = detail.table_from_counts(counts.sum(3)).astype(np.float64)
    parent /= parent.sum(-1, keepdims=True)
    p = (counts + prior_weight * parent[:, :, :, None]) / (counts.sum(-1, keepdims=True) + prior_weight)
    w = 1 + np.round(p * 2**20)
    return np.log2(w / w.sum(-1, keepdims=True))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data", type=Path)
    ap.add_argument("--photos", type=int, default=40)
    ap.add_argument("--cache", type=Path, default=Path("runs/context-study"))
    ap.add_argument("--model", default="rvq-dct-v9")
    ap.add_argument("--schemes", default="")
    args = ap.parse_args()
    codec = Codec(args.model)
    files = collect(codec, evenly_spread(image_paths(args.data), args.photos), args.cache)
    fit, held = [f for i, f in enumerate(files) if i % 3], files[0::3]
    qualities = [q for q in codec.qualities if codec.ladder[q - 1].step is not None]
    schemes = {"shipped": {}, "mode": {"mode": 1}, "vq1x4": {"vq1": 4}, "vq1x8": {"vq1": 8},
               "vq2x4": {"vq2": 4}, "mode+vq1x4": {"mode": 1, "vq1": 4},
               "mode+vq1x4+vq2x2": {"mode": 1, "vq1": 4, "vq2": 2}, "nz": {"nz": 1}, "nz+mode": {"nz": 1, "mode": 1},
               "shift1/1": {"shift": (1, 1)}, "shift2/1": {"shift": (2, 1)}, "shift1/0": {"shift": (1, 0)},
               "shift2/2": {"shift": (2, 2)}, "shift3/1": {"shift": (3, 1)},
               "lf1": {"lf": 1}, "lf3": {"lf": 3}, "lf6": {"lf": 6}, "lf10": {"lf": 10}, "lf15": {"lf": 15},
               "mode+lf10": {"mode": 1, "lf": 10}, "cross_to_mode": {"cross_to_mode": 1},
               "coarse+mode+lf10": {"coarse": 1, "mode": 1, "lf": 10}, "mode+lf10x3": {"mode": 1, "lf": 10, "lf_classes": 3}, "mode+vq2x4+lf10": {"mode": 1, "vq2": 4, "lf": 10},
               "signs_alike": {"signs_alike": 1}}
    for splits in ((10,), (3, 10), (6, 21), (3, 10, 28), (6, 15, 28), (3, 10, 21, 36)):
        for k in (5, 7, 9):
            schemes[f"mode+passes{'.'.join(map(str, splits))}x{k}"] = {
                "mode": 1, "passes": splits, "classes": k, "signs_alike": 1}
    classes = {}
    for q in qualities:
        for stage in (1, 2):
            for k in (2, 4, 8):
                classes[(q, stage, k)] = code_classes(fit, q, stage, k)
    pixels = sum(np.load(f)[f"levels{qualities[0]}"].shape[0] * np.load(f)[f"levels{qualities[0]}"].shape[1] * 64
                 for f in held)
    print("bits per pixel of the detail levels on the held-out photos (static tables)")
    print("scheme".ljust(20) + "".join(f"q{q}".rjust(8) for q in qualities) + "   total   vs shipped")
    reference = None
    only = set(args.schemes.split(",")) if args.schemes else set(schemes)
    for name, scheme in schemes.items():
        if name not in only and name != "shipped":
            continue
        row = []
        for q in qualities:
            counts = None
            for f in fit:
                c, n = cells(np.load(f), q, scheme, classes)
                b = np.bincount(c, minlength=3 * detail.GROUPS * detail.CONTEXTS * n * detail.SYMBOLS)
                counts = b if counts is None else counts + b
            logp = table(counts.reshape(3, detail.GROUPS, detail.CONTEXTS, n, detail.SYMBOLS).astype(np.float64),
                         signs_alike=bool(scheme.get("signs_alike"))).ravel()
            bits = sum(-logp[cells(np.load(f), q, scheme, classes)[0]].sum() for f in held)
            if scheme.get("nz"):
                cc = sum(np.bincount(count_cells(np.load(f), q), minlength=3 * 30 * 65) for f in fit)
                logc = table(cc.reshape(1, 1, 90, 1, 65).astype(np.float64)).ravel()
                bits += sum(-logc[count_cells(np.load(f), q)].sum() for f in held)
            row.append(bits / pixels)
        total = sum(row)
        reference = reference or total
        print(name.ljust(20) + "".join(f"{b:8.4f}" for b in row) + f"  {total:7.4f}  {100 * (total / reference - 1):+.2f}%")


if __name__ == "__main__":
    main()
