"""The reconstruction filter's strength per tile, from rvq-dct-v15: the encoder, which has the
photo, scales the filter's correction in each tile (`tile` pixels square) by one of STRENGTHS,
choosing by squared error plus the choice's bits, and codes the choices at the end of the
payload; the decoder scales the correction the same way.

Why: the filter is trained for the average photo, and on a given tile it often corrects too
much or too little. Measured on 8 training photos (rvq-dct-v14, 64-pixel tiles): +0.028 /
+0.036 / +0.039 dB of PSNR at qualities 3 / 5 / 8 for 0.32% / 0.20% / 0.09% of the file, and
only 26-42% of the tiles keep strength 1.

The choices are coded in raster order with counts that adapt as the image is coded (integers:
encoder and decoder compute the same weights). The filter itself is not bit-exact, so neither
are the scaled pixels; the choices are.
"""

from __future__ import annotations

import numpy as np

from .entropy import CATEGORICAL

STRENGTHS = np.arange(9, dtype=np.float32) / 4  # 0 (no filter) to 2 in quarters
NEUTRAL = 4  # strength 1: the filter as trained
TILES = (32, 64, 128)  # the tile sizes a model may choose
SLOPE = 4.0  # dB of PSNR per unit of log rate near the middle qualities: prices a bit in squared error


def grid(height: int, width: int, tile: int) -> tuple[int, int]:
    """How many tiles down and across an image has."""
    return -(-height // tile), -(-width // tile)


def tile_errors(photo: np.ndarray, decoded: np.ndarray, correction: np.ndarray, tile: int) -> np.ndarray:
    """(tiles down, across, len(STRENGTHS)) squared error of each tile of the decoded image
    (H, W, 3) plus each strength times the filter's correction (float, pixel units) against the
    photo (H, W, 3). A row of tiles at a time: the float temporaries stay small."""
    th, tw = grid(*photo.shape[:2], tile)
    sums = np.zeros((3, th, tw))  # per tile: residual^2, residual x correction, correction^2
    for i in range(th):
        rows = slice(i * tile, (i + 1) * tile)
        pad = ((0, tile - len(photo[rows])), (0, tw * tile - photo.shape[1]), (0, 0))
        r = np.pad(photo[rows].astype(np.float32) - decoded[rows], pad).reshape(tile, tw, tile, 3)
        c = np.pad(correction[rows].astype(np.float32, copy=False), pad).reshape(tile, tw, tile, 3)
        for k, (a, b) in enumerate(((r, r), (r, c), (c, c))):
            sums[k, i] = (a * b).sum((0, 2, 3), dtype=np.float64)
    s = STRENGTHS.astype(np.float64)
    return sums[0, ..., None] - 2 * s * sums[1, ..., None] + s * s * sums[2, ..., None]


def price_per_bit(errors: np.ndarray, bits: float) -> float:
    """What a bit is worth in squared error, for a file of `bits` whose filtered image has the
    squared errors of strength 1 (`errors`): on an RD curve of SLOPE dB per unit of log rate,
    a change of E in squared error and b in bits keeps PSNR per rate where E + price b = 0."""
    return float(np.log(10) / 10 * SLOPE * errors[..., NEUTRAL].sum() / max(bits, 1.0))


class Counts:
    """Adaptive weights of the choices: each starts at 1 and grows by 2 when chosen (the
    Krichevsky-Trofimov estimate), in integers."""

    def __init__(self):
        self.counts = np.ones(len(STRENGTHS))

    def bits(self) -> np.ndarray:
        return np.log2(self.counts.sum() / self.counts)

    def add(self, choice: int) -> None:
        self.counts[choice] += 2


def choose(errors: np.ndarray, price: float) -> np.ndarray:
    """(tiles down, across) strength indices minimising squared error + price x bits, tile by
    tile in coding order, each priced by the counts of the choices before it."""
    counts = Counts()
    out = np.empty(errors.shape[:2], dtype=np.int32)
    for index in np.ndindex(*out.shape):
        out[index] = choice = int(np.argmin(errors[index] + price * counts.bits()))
        counts.add(choice)
    return out


def encode(encoder, choices: np.ndarray) -> float:
    """Append the strength indices (tiles down, across) to a constriction queue encoder.
    Returns their bits."""
    counts, bits = Counts(), 0.0
    for choice in choices.ravel():
        encoder.encode(np.array([choice], np.int32), CATEGORICAL, counts.counts[None])
        bits += counts.bits()[choice]
        counts.add(int(choice))
    return bits


def decode(decoder, tiles_down: int, tiles_across: int) -> np.ndarray:
    """Inverse of encode, from a `vqpress.codec.entropy.PayloadDecoder`."""
    counts = Counts()
    out = np.empty((tiles_down, tiles_across), dtype=np.int32)
    for index in np.ndindex(*out.shape):
        out[index] = choice = int(decoder.categorical(counts.counts[None])[0])
        counts.add(choice)
    return out


def per_pixel(choices: np.ndarray, tile: int, rows: slice, cols: slice) -> np.ndarray:
    """(h, w, 1) float32 strengths of the pixels rows x cols (slices with a start and stop)."""
    first_row, first_col = rows.start // tile, cols.start // tile
    tiles = STRENGTHS[choices[first_row:-(-rows.stop // tile), first_col:-(-cols.stop // tile)]]
    pixels = np.repeat(np.repeat(tiles, tile, axis=0), tile, axis=1)
    top, left = rows.start - first_row * tile, cols.start - first_col * tile
    return pixels[top:top + rows.stop - rows.start, left:left + cols.stop - cols.start, None]
