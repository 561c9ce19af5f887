"""The detail layer's predictor, chosen per 8x8 block: the VQ base, the base block's mean, or
(in models with three predictors) the base softened: its 8x8 DCT coefficients past the first
six in zig-zag order halved.

Where the VQ base paints texture the photo does not have (flat colour, sky, and textures it
gets wrong), the residual against it costs more than the photo's own detail, and what the coarse
steps leave of that texture shows (a flat colour came back 20 levels off at the best quality).
The encoder picks, per block, the predictor with the lower D + lambda R (R estimated from the
quantised levels) and codes its choice: one symbol per block, row by row, in the context of how
many of the three blocks above did not take the base, with counts that adapt as the image is
coded (integers: encoder and decoder compute the same probabilities). The mean and the
softened block are computed from the decoder's own base pixels.

The softened base is for texture the base gets roughly right but too strong or too busy. On 12
held-out training photos (steps 200 to 11), as a third predictor it saved 0.67% of the detail
layer's bits at equal PSNR (keeping 4, 6 or 10 coefficients and zeroing the rest: 0.48%, 0.59%,
0.11%; halving all but the DC: -0.18%), and 2.34% with the modes priced (MODE_PRICE 2; the
first two predictors alone, priced: 0.97%; prices 1, 1.5 and 3: 2.17%, 2.30%, 2.15%).
`python benchmarks/fit_block_modes.py ../shared/corpus/train --photos 24 --study-predictors`
"""

from __future__ import annotations

import numpy as np

from . import detail
from .blocks import BLOCK, COLOR, ZIGZAG, low_pass, padded_blocks, to_coefficients
from .entropy import CATEGORICAL

# lambda = LAMBDA step^2 per estimated bit; the estimate is 4 bits per nonzero level plus 2 per
# doubling of its magnitude. On 15 held-out training photos the modes saved 5.30% of the detail
# layer's bits at equal PSNR with 0.1, 4.95% with 0.05 and 4.89% with 0.2
# (python benchmarks/fit_block_modes.py ../shared/corpus/train --photos 30).
LAMBDA = 0.1
TIE = 1e-4  # relative cost difference below which the modes count as equal
# The choice also prices each block's mode at -log2 of its frequency in the image (from the
# choice without it, then again), times MODE_PRICE: the modes' bits are real bits, where the
# levels' are a rough estimate (see the module's docstring for the measurements).
MODE_PRICE, MODE_PASSES = 2.0, 2
BASE, MEAN, SOFT = 0, 1, 2  # the predictors, in the order of their mode numbers
# The choice is then made again with each block's bits counted under the quality's static
# table (`table_costs`), in the neighbours' contexts of the first choice, at this lambda per
# bit. With rvq-dct-v9 on 16 training photos: -0.40% BD-rate (`python benchmarks/fit_encoder.py
# ../shared/corpus/train --photos 16 --model rvq-dct-v9 --variants
# deadzone=0.25+rdo=0.1+tilt=0+rate=0,deadzone=0.25+rdo=0.1+tilt=0`, in the script's present
# syntax); a prototype of it on 12 of them: -0.30% / -0.44% / -0.34% at 0.1 / 0.15 / 0.2,
# +0.23% at 0.07.
# 0 skips it.
RATE_LAMBDA = 0.15


def _soft_gains() -> np.ndarray:
    """(3, 64) gains of the softened base's coefficients (raster order): 1 for the first six
    in zig-zag order, 0.5 past them."""
    gains = np.full(BLOCK * BLOCK, 0.5, np.float32)
    gains[ZIGZAG[:6]] = 1
    return np.broadcast_to(gains, (3, BLOCK * BLOCK)).copy()


SOFT_GAINS = _soft_gains()


def block_means(base: np.ndarray) -> np.ndarray:
    """(bh, bw, 3) float32: the mean of each 8x8 block of the base (partial edge blocks:
    filled by repeating the last row and column, then averaged)."""
    return _means(padded_blocks(base))


def _means(blocks: np.ndarray) -> np.ndarray:
    return blocks.sum(1).sum(2) * np.float32(1 / BLOCK**2)  # 7x faster than .mean((1, 3))


def predictor(base: np.ndarray, modes: np.ndarray | None) -> np.ndarray:
    """The image the detail layer adds to: the base, with blocks whose mode is MEAN flattened
    to their `block_means` and those whose mode is SOFT softened."""
    if modes is None or not modes.any():
        return base.astype(np.float32)
    h, w = base.shape[:2]
    blocks = padded_blocks(base)
    soft = modes == SOFT
    if soft.any():
        by_block = blocks.transpose(0, 2, 1, 3, 4)  # (bh, bw, 8, 8, 3), a view
        by_block[soft] = low_pass(by_block[soft], SOFT_GAINS)
    np.copyto(blocks, _means(blocks)[:, None, :, None], where=(modes == MEAN)[:, None, :, None, None])
    return blocks.reshape(len(blocks) * BLOCK, -1, 3)[:h, :w]


def rd_cost(coefficients: np.ndarray, step: float, offset: float) -> np.ndarray:
    """D + lambda R of each block (bh, bw) if its coefficients are quantised at `step`
    (`detail.quantise` and `detail.dequantise`, on magnitudes; masks multiply, as np.where
    with a scalar is 25 times slower)."""
    magnitude = np.abs(coefficients)
    q = np.maximum(np.floor(magnitude / np.float32(step) + np.float32(0.5 - detail.DEADZONE)), 0)
    coded = q > 0
    error = magnitude - (q + np.float32(offset)) * np.float32(step) * coded
    bits = np.log2(q + 1, out=np.zeros_like(q), where=coded)  # log2 costs 10 ns a value: nonzero levels only
    cost = np.square(error) + np.float32(LAMBDA * step * step) * (2 * bits + np.float32(4) * coded)
    return cost.reshape(*cost.shape[:2], -1).sum(-1)


def candidates(rgb: np.ndarray, base: np.ndarray, predictors: int) -> list[np.ndarray]:
    """The coefficients (bh, bw, 3, 64) of an image's residual against each of the first
    `predictors` (2: BASE, MEAN; 3: and SOFT), in the order of their modes."""
    coefficients = to_coefficients(rgb)
    base_coefficients = to_coefficients(base)
    out = [coefficients - base_coefficients]
    if predictors > 2:
        out.append(coefficients - base_coefficients * SOFT_GAINS)
    # minus a flat block's coefficients: its mean, in the DC coefficients only (in place)
    coefficients[..., 0] -= BLOCK * block_means(base) @ COLOR.T.astype(np.float32)
    out.insert(MEAN, coefficients)
    return out


def costs_of(residuals: list[np.ndarray], step: float, offset: float) -> np.ndarray:
    """(predictors, bh, bw): each block's D + lambda R against each predictor (`rd_cost`)."""
    return np.stack([rd_cost(c, step, offset) for c in residuals])


def modes_for(costs: np.ndarray, step: float, price: float | None = None) -> np.ndarray:
    """Modes (bh, bw) uint8 from `costs_of` (of a whole image: the modes' prices depend on it),
    each mode priced at `price` (default MODE_PRICE; 0: not priced) times its bits."""
    price = MODE_PRICE if price is None else price
    # Where the base block is flat already, the costs are equal but for rounding: keep the base
    # (mode 0) unless another is clearly cheaper, so that ties do not scatter modes.
    costs = costs.copy()
    costs[BASE] *= np.float32(1 - TIE)
    modes = costs.argmin(0)
    for _ in range(MODE_PASSES):  # price each mode at what it costs in this image
        frequency = np.bincount(modes.ravel(), minlength=len(costs)) + 1.0
        bits = -np.log2(frequency / frequency.sum()).astype(np.float32)
        modes = (costs + np.float32(price * LAMBDA * step * step) * bits[:, None, None]).argmin(0)
    return modes.astype(np.uint8)


def table_costs(residuals: list[np.ndarray], magnitudes: np.ndarray, first_row: int, step: float,
                offset: float, table: detail.Table, lam: float | None = None,
                weights: np.ndarray | None = None) -> np.ndarray:
    """(predictors, n, bw): D + lam step^2 R of block rows first_row.. against each predictor,
    R the bits of its quantised levels under the static `table`, in the neighbours' contexts
    of `magnitudes` (`detail.padded_magnitudes` of a first choice's levels, whole image).
    lam: RATE_LAMBDA, read at the call (so that tools can set it). `weights` (64,) scale each
    coefficient's squared error, as in `detail.rd_optimise`."""
    lam = RATE_LAMBDA if lam is None else lam
    n, bw = residuals[0].shape[:2]
    rows, cols = (a.ravel() for a in np.indices((n, bw)))
    spatial = detail.spatial_contexts(magnitudes, rows + first_row, cols)
    out = np.empty((len(residuals), n, bw), np.float32)
    for mode, coefficients in enumerate(residuals):
        levels = detail.quantise(coefficients, step).reshape(n * bw, 3, 64)
        own = np.abs(np.clip(levels, -detail.LIMIT, detail.LIMIT))
        table_rows = detail.rows_of(table.layout, spatial.copy(), own, np.full(n * bw, mode))
        bits = table.bits[table_rows, levels.clip(-detail.LIMIT, detail.LIMIT) + detail.LIMIT].sum((1, 2))
        error = np.square(coefficients.reshape(n * bw, 3, 64) - detail.dequantise(levels, step, offset))
        if weights is not None:
            error *= weights
        out[mode] = (error.sum((1, 2)) + np.float32(lam * step * step) * bits).reshape(n, bw)
    return out


def against(residuals: list[np.ndarray], modes: np.ndarray) -> np.ndarray:
    """The coefficients (bh, bw, 3, 64) against each block's predictor, from the candidates
    of whole blocks (`picked` also redoes partial edge blocks that are SOFT)."""
    chosen = residuals[BASE]
    for mode in range(1, len(residuals)):
        chosen = np.where(modes[..., None, None] == mode, residuals[mode], chosen)
    return chosen


def picked(residuals: list[np.ndarray], modes: np.ndarray, rgb: np.ndarray, base: np.ndarray) -> np.ndarray:
    """The coefficients (bh, bw, 3, 64) against each block's chosen predictor."""
    chosen = against(residuals, modes)
    if (modes == SOFT).any():
        # a softened partial block, cropped and padded again, is not the softened padded block:
        # code what the decoder will add to in the last block row and column, where they are
        if rgb.shape[0] % BLOCK:
            r = (len(modes) - 1) * BLOCK
            chosen[-1:] = to_coefficients(rgb[r:] - predictor(base[r:], modes[-1:]))
        if rgb.shape[1] % BLOCK:
            c = (modes.shape[1] - 1) * BLOCK
            chosen[:, -1:] = to_coefficients(rgb[:, c:] - predictor(base[:, c:], modes[:, -1:]))
    return chosen


def choose(rgb: np.ndarray, base: np.ndarray, step: float, offset: float,
           predictors: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """(modes (bh, bw) uint8, the residual's coefficients against the chosen predictors), each
    block's mode the cheapest of the first `predictors` (2: BASE, MEAN; 3: and SOFT)."""
    residuals = candidates(rgb, base, predictors)
    modes = modes_for(costs_of(residuals, step, offset), step)
    return modes, picked(residuals, modes, rgb, base)


def _contexts(above: np.ndarray) -> np.ndarray:
    """Context 0..3 of each block of a row: how many of the three blocks above it are not BASE."""
    padded = np.pad((above != BASE).astype(np.int64), 1)
    return padded[:-2] + padded[1:-1] + padded[2:]


def encode(encoder, modes: np.ndarray, predictors: int = 2) -> float:
    """Append modes (bh, bw), each below `predictors`, to a constriction queue encoder; returns
    their cost in bits."""
    counts = np.ones((4, predictors))
    above, bits = np.zeros(modes.shape[1], np.uint8), 0.0
    for row in modes:
        weights = counts[_contexts(above)]
        encoder.encode(row.astype(np.int32), CATEGORICAL, weights)
        bits -= np.log2(weights[np.arange(len(row)), row] / weights.sum(1)).sum()
        np.add.at(counts, (_contexts(above), row), 1)
        above = row
    return float(bits)


def decode(decoder, bh: int, bw: int, predictors: int = 2) -> np.ndarray:
    """Inverse of encode, from a `vqpress.codec.entropy.PayloadDecoder`."""
    counts = np.ones((4, predictors))
    modes = np.zeros((bh, bw), np.uint8)
    above = modes[0]
    for i in range(bh):
        context = _contexts(above)
        modes[i] = decoder.categorical(counts[context])
        np.add.at(counts, (context, modes[i]), 1)
        above = modes[i]
    return modes


def coefficients_for(rgb: np.ndarray, base: np.ndarray, step: float, offset: float,
                     predictors: int) -> tuple[np.ndarray, np.ndarray | None]:
    """The coefficients (bh, bw, 3, 64) of what an encoder codes for an image over its VQ base,
    and the blocks' modes (None in models without them: `predictors` 0)."""
    if not predictors:
        return detail.residual_coefficients(rgb, base), None
    chosen, coefficients = choose(rgb, base, step, offset, predictors)
    return coefficients, chosen


def levels_for(rgb: np.ndarray, base: np.ndarray, step: float, offset: float,
               predictors: int) -> tuple[np.ndarray, np.ndarray | None]:
    """The detail levels (bh, bw, 3, 64) quantised from `coefficients_for`, and the modes."""
    coefficients, chosen = coefficients_for(rgb, base, step, offset, predictors)
    return detail.quantise(coefficients, step), chosen
