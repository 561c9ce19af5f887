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
from .blocks import BLOCK, to_coefficients
from .entropy import CATEGORICAL

# lambda = LAMBDA step^2 per estimated bit; the estimate is 4 bits per nonzero level plus 2 per
# doubling of its magnitude. On 15 held-out training photos the modes saved 5.30% of the detail
# layer's bits at equal PSNR with 0.1, 4.95% with 0.05 and 4.89% with 0.2
# (python benchmarks/fit_block_modes.py ../shared/corpus/train --photos 30).
LAMBDA = 0.1


def block_means(base: np.ndarray) -> np.ndarray:
    """(H, W, 3) float32: each 8x8 block of the base replaced by its per-channel mean (partial
    edge blocks: the mean of their pixels inside the image)."""
    h, w = base.shape[:2]
    bh, bw = -(-h // BLOCK), -(-w // BLOCK)
    padded = np.pad(base.astype(np.float32), ((0, bh * BLOCK - h), (0, bw * BLOCK - w), (0, 0)), mode="edge")
    means = padded.reshape(bh, BLOCK, bw, BLOCK, 3).mean((1, 3), dtype=np.float32)
    return np.repeat(np.repeat(means, BLOCK, 0), BLOCK, 1)[:h, :w]


def predictor(base: np.ndarray, modes: np.ndarray | None) -> np.ndarray:
    """The image the detail layer adds to: the base, with blocks whose mode is 1 flattened."""
    if modes is None or not modes.any():
        return base.astype(np.float32)
    h, w = base.shape[:2]
    flat = np.repeat(np.repeat(modes, BLOCK, 0), BLOCK, 1)[:h, :w, None]
    return np.where(flat, block_means(base), base.astype(np.float32))


def _cost(coefficients: np.ndarray, step: float, offset: float) -> np.ndarray:
    """D + lambda R of each block (bh, bw) if its coefficients are quantised at `step`."""
    levels = detail.quantise(coefficients, step)
    distortion = np.square(coefficients - detail.dequantise(levels, step, offset)).sum((2, 3))
    bits = 4.0 * (levels != 0).sum((2, 3)) + 2.0 * np.log2(1 + np.abs(levels)).sum((2, 3))
    return distortion + LAMBDA * step * step * bits


def choose(rgb: np.ndarray, base: np.ndarray, step: float, offset: float) -> tuple[np.ndarray, np.ndarray]:
    """(modes (bh, bw) uint8, the residual's coefficients against the chosen predictors)."""
    image = rgb.astype(np.float32)
    on_base = to_coefficients(image - base.astype(np.float32))
    on_mean = to_coefficients(image - block_means(base))
    modes = (_cost(on_mean, step, offset) < _cost(on_base, step, offset)).astype(np.uint8)
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
