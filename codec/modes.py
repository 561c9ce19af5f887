"""The detail layer's predictor, chosen per 8x8 block: the VQ base, or the base block's mean.

Where the VQ base paints texture the photo does not have (flat colour, sky, and textures it
gets wrong), the residual against it costs more than the photo's own detail, and what the coarse
steps leave of that texture shows (a flat colour came back 20 levels off at the best quality).
The encoder picks, per block, the predictor with the lower D + lambda R (R estimated from the
quantised levels) and codes its choice: one binary symbol per block, row by row, in the context
of the three blocks above, with counts that adapt as the image is coded (integers: encoder and
decoder compute the same probabilities). The mean is of the decoder's own base pixels.
"""

from __future__ import annotations

import numpy as np

from . import detail
from .blocks import BLOCK, COLOR, padded_blocks, to_coefficients
from .entropy import CATEGORICAL

# lambda = LAMBDA step^2 per estimated bit; the estimate is 4 bits per nonzero level plus 2 per
# doubling of its magnitude. On 15 held-out training photos the modes saved 5.30% of the detail
# layer's bits at equal PSNR with 0.1, 4.95% with 0.05 and 4.89% with 0.2
# (python benchmarks/fit_block_modes.py ../shared/corpus/train --photos 30).
LAMBDA = 0.1
TIE = 1e-4  # relative cost difference below which the modes count as equal


def block_means(base: np.ndarray) -> np.ndarray:
    """(bh, bw, 3) float32: the mean of each 8x8 block of the base (partial edge blocks:
    filled by repeating the last row and column, then averaged)."""
    return _means(padded_blocks(base))


def _means(blocks: np.ndarray) -> np.ndarray:
    return blocks.sum(1).sum(2) * np.float32(1 / BLOCK**2)  # 7x faster than .mean((1, 3))


def predictor(base: np.ndarray, modes: np.ndarray | None) -> np.ndarray:
    """The image the detail layer adds to: the base, with blocks whose mode is 1 flattened to
    their `block_means`."""
    if modes is None or not modes.any():
        return base.astype(np.float32)
    h, w = base.shape[:2]
    blocks = padded_blocks(base)
    np.copyto(blocks, _means(blocks)[:, None, :, None], where=modes.astype(bool)[:, None, :, None, None])
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


def choose(rgb: np.ndarray, base: np.ndarray, step: float, offset: float) -> tuple[np.ndarray, np.ndarray]:
    """(modes (bh, bw) uint8, the residual's coefficients against the chosen predictors)."""
    coefficients = to_coefficients(rgb)
    on_base = coefficients - to_coefficients(base)
    # minus a flat block's coefficients: its mean, in the DC coefficients only (in place)
    coefficients[..., 0] -= BLOCK * block_means(base) @ COLOR.T.astype(np.float32)
    on_mean = coefficients
    # Where the base block is flat already, both costs are equal but for rounding: keep the base
    # (mode 0) unless the mean is clearly cheaper, so that ties do not scatter ones in the modes.
    cheaper = rd_cost(on_mean, step, offset) < rd_cost(on_base, step, offset) * np.float32(1 - TIE)
    modes = cheaper.astype(np.uint8)
    return modes, np.where(modes[..., None, None] == 1, on_mean, on_base)


def _contexts(above: np.ndarray) -> np.ndarray:
    """Context 0..3 of each block of a row: how many of the three blocks above it are 1."""
    padded = np.pad(above.astype(np.int64), 1)
    return padded[:-2] + padded[1:-1] + padded[2:]


def encode(encoder, modes: np.ndarray) -> float:
    """Append modes (bh, bw) to a constriction queue encoder; returns their cost in bits."""
    counts = np.ones((4, 2))
    above, bits = np.zeros(modes.shape[1], np.uint8), 0.0
    for row in modes:
        weights = counts[_contexts(above)]
        encoder.encode(row.astype(np.int32), CATEGORICAL, weights)
        bits -= np.log2(weights[np.arange(len(row)), row] / weights.sum(1)).sum()
        np.add.at(counts, (_contexts(above), row), 1)
        above = row
    return float(bits)


def decode(decoder, bh: int, bw: int) -> np.ndarray:
    """Inverse of encode, from a `vqpress.codec.entropy.PayloadDecoder`."""
    counts = np.ones((4, 2))
    modes = np.zeros((bh, bw), np.uint8)
    above = modes[0]
    for i in range(bh):
        context = _contexts(above)
        modes[i] = decoder.categorical(counts[context])
        np.add.at(counts, (context, modes[i]), 1)
        above = modes[i]
    return modes


def coefficients_for(rgb: np.ndarray, base: np.ndarray, step: float, offset: float,
                     block_modes: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """The coefficients (bh, bw, 3, 64) of what an encoder codes for an image over its VQ base,
    and the blocks' modes (None in models without them)."""
    if not block_modes:
        return detail.residual_coefficients(rgb, base), None
    chosen, coefficients = choose(rgb, base, step, offset)
    return coefficients, chosen


def levels_for(rgb: np.ndarray, base: np.ndarray, step: float, offset: float,
               block_modes: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """The detail levels (bh, bw, 3, 64) quantised from `coefficients_for`, and the modes."""
    coefficients, chosen = coefficients_for(rgb, base, step, offset, block_modes)
    return detail.quantise(coefficients, step), chosen
