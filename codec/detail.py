"""The detail layer: the residual between a photo and its VQ base, coded as quantised 8x8 DCT
coefficients with probability tables fitted on the training photos.

Why: past the second stage, residual-VQ stages buy little (on the validation photos stage 3 adds
0.1 bpp for 1.1 dB and stage 8 0.1 bpp for 0.04 dB); a scalar-quantised transform of the
residual keeps paying at every rate. The colour transform and the DCT are orthonormal, so the
coefficients' squared error is the RGB pixels' squared error, and one step size for all of them
is the MSE-optimal choice.

Bit-exactness: a coefficient's probabilities are a row of an integer table, picked by integers
computed from coefficients decoded before it (never from the VQ decoder's floating-point
pixels), so encoder and decoder use the same row on any machine.

Order: 8x8 blocks by anti-diagonals (block (i, j) at step i + j, after its left and upper
neighbours); within a step, channel by channel; within a channel, block by block, the 64
coefficients in raster order. Magnitudes of LIMIT or more are coded as an escape symbol, and
their excess (an Exp-Golomb code) after all blocks.
"""

from __future__ import annotations

import numpy as np

from .blocks import BLOCK, ZIGZAG, to_coefficients, to_pixels
from .entropy import CATEGORICAL, UNIFORM
from .parallel import run_all

LIMIT = 15  # symbols code q in -LIMIT..LIMIT; the two end symbols mean "this far or further"
SYMBOLS = 2 * LIMIT + 1
DEADZONE = 0.25  # the encoder rounds |c| / step - DEADZONE: small coefficients become zero
NEAR, ACTIVITY, CROSS = 5, 8, 3  # context factors, see `contexts`
CONTEXTS = NEAR * ACTIVITY * CROSS
TAIL_BITS = 24  # excess magnitudes below 2**24 - 1: far beyond any 8-bit residual
ADAPT_PRIOR = 32  # in an adaptive model, the static table counts as this many levels per row


def _band_groups() -> np.ndarray:
    """Group of each coefficient (raster order in the block): zig-zag position, binned."""
    position = np.empty(64, dtype=np.int64)
    position[ZIGZAG] = np.arange(64)
    return np.searchsorted([1, 2, 3, 4, 6, 10, 15, 21, 28, 36, 49], position, side="right")


BAND_GROUP = _band_groups()
GROUPS = int(BAND_GROUP.max()) + 1
# ACTIVITY factor of a left plus upper block magnitude sum: floor(log2(1 + sum)), at most 7
_ACTIVITY = np.minimum(np.log2(1 + np.arange(2 * 64 * LIMIT + 1)).astype(np.int64), ACTIVITY - 1)
# The table row (channel, band group, context 0) of each channel's coefficients, in a table
# reshaped to (3 * GROUPS * CONTEXTS, SYMBOLS)
_FIRST_ROW = (np.arange(3)[:, None] * GROUPS + BAND_GROUP[None, :]) * CONTEXTS
_TAIL_WEIGHTS = 2.0 ** (TAIL_BITS - np.arange(TAIL_BITS))  # P(k extra bits) halves with k


# -- the residual ---------------------------------------------------------------------------
def block_grid(height: int, width: int) -> tuple[int, int]:
    """How many blocks down and across an image has (one per VQ symbol)."""
    return -(-height // BLOCK), -(-width // BLOCK)


def residual_coefficients(rgb: np.ndarray, base: np.ndarray) -> np.ndarray:
    """DCT coefficients of what an (H, W, 3) uint8 image has beyond its VQ base pixels."""
    return to_coefficients(rgb.astype(np.float32) - base.astype(np.float32))


def dequantise(levels: np.ndarray, step: float, offset: float = 0.0) -> np.ndarray:
    """The coefficients the decoder puts back: sign(q) (|q| + offset) step for q != 0. With
    the encoder's dead zone, a level's coefficients lie mostly above |q| step, so a small
    positive offset is nearer their mean."""
    magnitude = np.abs(levels).astype(np.float32)
    return np.sign(levels).astype(np.float32) * (magnitude + np.float32(offset)) * np.float32(step)


def add_detail(base: np.ndarray, levels: np.ndarray, step: float, offset: float = 0.0) -> np.ndarray:
    """(H, W, 3) uint8 image: the base pixels plus the decoded detail levels."""
    out = to_pixels(dequantise(levels, step, offset), *base.shape[:2])
    out += base
    return np.clip(np.round(out, out=out), 0, 255, out=out).astype(np.uint8)


def quantise(coefficients: np.ndarray, step: float) -> np.ndarray:
    """Integer levels; the decoder's coefficient is level * step."""
    magnitude = np.floor(np.abs(coefficients) / step + (0.5 - DEADZONE))
    return (np.sign(coefficients) * np.maximum(magnitude, 0)).astype(np.int32)


def rd_optimise(levels: np.ndarray, coefficients: np.ndarray, step: float, offset: float,
                weights: np.ndarray, lam: float, chunk: int = 16, map=map) -> np.ndarray:
    """Levels with each nonzero magnitude lowered by one where that lowers D + lam step^2 R,
    R being the bits under the static table `weights` (3, GROUPS, CONTEXTS, SYMBOLS) in the
    contexts of the first quantisation (an estimate: lowering a level changes its neighbours'
    contexts, and adaptive tables drift from the static one). Encoder only: any levels decode.
    Chunks of block rows are independent (they read the first quantisation's contexts), so they
    run through `map` (a thread pool's)."""
    bits = -np.log2(weights / weights.sum(-1, keepdims=True)).astype(np.float32).reshape(-1, SYMBOLS)
    magnitudes = padded_magnitudes(levels)
    out = levels.copy()
    price = np.float32(lam * step * step)

    def lower_where_it_pays(r0: int) -> None:  # block rows r0..r0 + chunk: small temporaries
        block_rows = out[r0:r0 + chunk]  # a view: q below too, written in place
        rows, cols = (a.ravel() for a in np.indices(block_rows.shape[:2]))
        q = block_rows.reshape(-1, 3, 64)
        nonzero = np.nonzero(q)  # only nonzero levels can be lowered
        table_rows = (_FIRST_ROW + contexts(magnitudes, rows + r0, cols))[nonzero]
        q_nonzero = q[nonzero]
        lower = q_nonzero - np.sign(q_nonzero)
        rate = (bits[table_rows, np.clip(q_nonzero, -LIMIT, LIMIT) + LIMIT]
                - bits[table_rows, np.clip(lower, -LIMIT, LIMIT) + LIMIT])
        c = coefficients[r0:r0 + chunk].reshape(-1, 3, 64)[nonzero]
        added = np.square(c - dequantise(lower, step, offset)) - np.square(c - dequantise(q_nonzero, step, offset))
        q[nonzero] = np.where(added < price * rate, lower, q_nonzero)

    run_all(map, lower_where_it_pays, range(0, len(levels), chunk))
    return out


# -- contexts ---------------------------------------------------------------------------------
def spatial_contexts(magnitudes: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """The part (n, 3, 64) of the contexts of blocks (rows, cols) that their left and upper
    blocks decide: the NEAR and ACTIVITY factors, times CROSS (see `contexts`)."""
    left = magnitudes[rows + 1, cols]
    up = magnitudes[rows, cols + 1]
    near = np.minimum(left, 2) + np.minimum(up, 2)
    activity = _ACTIVITY[left.sum(-1, keepdims=True) + up.sum(-1, keepdims=True)]
    return (near * ACTIVITY + activity) * CROSS


def contexts(magnitudes: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Context (n, 3, 64) of each coefficient of blocks (rows, cols).

    `magnitudes` is min(|q|, LIMIT) with one zero row and column in front (shape
    (bh + 1, bw + 1, 3, 64)); only the left and upper blocks and the earlier channels of the same
    block are read, which the decoder has when it gets to these coefficients. Factors: the same
    coefficient in the left and upper blocks (NEAR), the log2 of their whole blocks' magnitudes
    (ACTIVITY), the same coefficient in the earlier channels (CROSS).
    """
    own = magnitudes[rows + 1, cols + 1]
    out = spatial_contexts(magnitudes, rows, cols)
    out[:, 1] += np.minimum(own[:, 0], CROSS - 1)
    out[:, 2] += np.minimum(own[:, 0] + own[:, 1], CROSS - 1)
    return out


def diagonals(bh: int, bw: int):
    for t in range(bh + bw - 1):
        rows = np.arange(max(0, t - bw + 1), min(bh - 1, t) + 1)
        yield rows, t - rows


def padded_magnitudes(levels: np.ndarray) -> np.ndarray:
    """min(|levels|, LIMIT) with a zero row and column in front: what `contexts` reads."""
    return np.pad(np.abs(np.clip(levels, -LIMIT, LIMIT)), ((1, 0), (1, 0), (0, 0), (0, 0)))


def _tail_weights(n: int) -> np.ndarray:
    return np.broadcast_to(_TAIL_WEIGHTS, (n, TAIL_BITS)).copy()


# -- coding -----------------------------------------------------------------------------------
class Probabilities:
    """The weights each coefficient is coded with: a row of the static table picked by its
    channel, band group and context, sharpened, in an adaptive model, by the levels coded so far
    in that row: p(s) proportional to n(s) + ADAPT_PRIOR p_static(s), with n(s) the row's counts.
    In integers, n(s) T + ADAPT_PRIOR w(s) (w the static weights, T their row sum): below 2^47,
    so float64 holds them exactly and encoder and decoder use identical weights."""

    def __init__(self, weights: np.ndarray, adaptive: bool):
        table = weights.astype(np.float64).reshape(-1, SYMBOLS)  # constriction takes float weights
        self.adaptive = adaptive
        self.weights = table * ADAPT_PRIOR if adaptive else table  # kept up to date in place
        self.total = table.sum(-1)
        self.row_sums = self.weights.sum(-1)  # kept with the weights: summing rows costs more

    def rows(self, channel: int, contexts_: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(the table row of each coefficient of `channel` (n * 64), their weights
        (n * 64, SYMBOLS) and the weights' row sums) for contexts (n, 64)."""
        rows = (_FIRST_ROW[channel] + contexts_).reshape(-1)
        return rows, np.take(self.weights, rows, axis=0), self.row_sums[rows]

    def update(self, rows: np.ndarray, symbols: np.ndarray) -> None:
        """Count coded symbols in their table rows (adaptive models only)."""
        if self.adaptive:
            added = self.total[rows]
            np.add.at(self.weights.reshape(-1), rows * SYMBOLS + symbols, added)  # 1-d: numpy's fast path
            np.add.at(self.row_sums, rows, added)


def encode(encoder, levels: np.ndarray, weights: np.ndarray, bar=None, adaptive: bool = False) -> float:
    """Append levels (bh, bw, 3, 64) to a constriction queue encoder, with one quality's table
    `weights` (3, GROUPS, CONTEXTS, SYMBOLS). Returns the coded cross-entropy in bits."""
    bh, bw = levels.shape[:2]
    symbols = (np.clip(levels, -LIMIT, LIMIT) + LIMIT).astype(np.int32)
    magnitudes = padded_magnitudes(levels)
    model = Probabilities(weights, adaptive)
    chosen, sums = [], []  # each coded symbol's weight and its row's sum, for the cross-entropy
    for rows, cols in diagonals(bh, bw):
        context = contexts(magnitudes, rows, cols)
        coded = symbols[rows, cols]
        for channel in range(3):
            flat = coded[:, channel].reshape(-1)
            table_rows, probs, row_sums = model.rows(channel, context[:, channel])
            encoder.encode(flat, CATEGORICAL, probs)
            chosen.append(probs[np.arange(len(flat)), flat])
            sums.append(row_sums)
            model.update(table_rows, flat)
        if bar is not None:
            bar.update(3 * len(rows))
    bits = float(np.log2(np.concatenate(sums)).sum() - np.log2(np.concatenate(chosen)).sum())
    excess = np.abs(levels[np.abs(levels) >= LIMIT]).astype(np.int64) - LIMIT
    return bits + _encode_tails(encoder, excess)


def _encode_tails(encoder, excess: np.ndarray) -> float:
    """Exp-Golomb: k = floor(log2(excess + 1)) from a fixed table, then k plain bits."""
    if not len(excess):
        return 0.0
    if excess.max() >= 2**TAIL_BITS - 1:
        raise ValueError("a detail level is too large to code (is the step size tiny?)")
    k = np.searchsorted(2 ** np.arange(TAIL_BITS), excess + 1, side="right") - 1
    encoder.encode(k.astype(np.int32), CATEGORICAL, _tail_weights(len(k)))
    wide = k > 0
    encoder.encode((excess[wide] + 1 - 2 ** k[wide]).astype(np.int32), UNIFORM,
                   (2 ** k[wide]).astype(np.int32))
    return float((-np.log2(_TAIL_WEIGHTS / _TAIL_WEIGHTS.sum())[k]).sum() + k.sum())


def decode(decoder, weights: np.ndarray, bh: int, bw: int, bar=None, adaptive: bool = False) -> np.ndarray:
    """Inverse of encode: levels (bh, bw, 3, 64) from a `vqpress.codec.entropy.PayloadDecoder`."""
    levels = np.zeros((bh, bw, 3, 64), dtype=np.int32)
    magnitudes = np.zeros((bh + 1, bw + 1, 3, 64), dtype=np.int32)
    model = Probabilities(weights, adaptive)
    for rows, cols in diagonals(bh, bw):
        spatial = spatial_contexts(magnitudes, rows, cols)
        decoded = np.empty((len(rows), 3, 64), dtype=np.int32)
        earlier = 0  # the magnitudes of the block's channels decoded so far, summed
        for channel in range(3):
            context = spatial[:, channel] + np.minimum(earlier, CROSS - 1)
            table_rows, probs, sums = model.rows(channel, context)
            symbols = decoder.categorical(probs, sums)
            model.update(table_rows, symbols)
            decoded[:, channel] = symbols.reshape(len(rows), 64)
            if channel < 2:
                earlier = earlier + np.abs(decoded[:, channel] - LIMIT)
        decoded -= LIMIT
        levels[rows, cols] = decoded
        magnitudes[rows + 1, cols + 1] = np.abs(decoded)
        if bar is not None:
            bar.update(3 * len(rows))
    escaped = np.abs(levels) >= LIMIT
    if escaped.any():
        k = decoder.categorical(_tail_weights(int(escaped.sum())))
        excess = 2 ** k.astype(np.int64) - 1
        wide = k > 0
        excess[wide] += decoder.uniform((2 ** k[wide]).astype(np.int32))
        levels[escaped] = np.sign(levels[escaped]) * (LIMIT + excess)
    return levels


# -- fitting ----------------------------------------------------------------------------------
def count(levels: np.ndarray, counts: np.ndarray) -> None:
    """Add the (channel, band group, context, symbol) counts of levels (bh, bw, 3, 64) to
    `counts` (3, GROUPS, CONTEXTS, SYMBOLS): the statistics the tables are fitted to."""
    bh, bw = levels.shape[:2]
    rows, cols = (a.ravel() for a in np.indices((bh, bw)))
    table_rows = _FIRST_ROW + contexts(padded_magnitudes(levels), rows, cols)
    cells = table_rows * SYMBOLS + np.clip(levels[rows, cols], -LIMIT, LIMIT) + LIMIT
    counts += np.bincount(cells.ravel(), minlength=counts.size).reshape(counts.shape)


def table_from_counts(counts: np.ndarray, prior_weight: float = 16.0) -> np.ndarray:
    """Integer weights (each >= 1) from counts: each context's frequencies, shrunk towards its
    band group's pooled frequencies so that rare contexts are not overfitted."""
    pooled = counts.sum(2, keepdims=True) + 1.0
    pooled /= pooled.sum(-1, keepdims=True)
    p = (counts + prior_weight * pooled) / (counts.sum(-1, keepdims=True) + prior_weight)
    return (1 + np.round(p * 2**20)).astype(np.int32)
