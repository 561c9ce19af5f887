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
neighbours); within a step, channel by channel; within a channel, pass by pass (one pass of all
64 coefficients up to rvq-dct-v9; see `Layout`), and within a pass block by block, the pass's
coefficients in raster order; from rvq-dct-v14, the signs of the step's nonzero DC levels
then follow (`DcSigns`). Magnitudes of LIMIT or more are coded as an escape symbol, and their
excess (an Exp-Golomb code) after all blocks.

A model's `Layout` says which row codes a coefficient. Up to rvq-dct-v9: its channel, band
group and neighbours (`contexts`). From rvq-dct-v10 also its block's predictor (`codec.modes`)
and how large its block's own coefficients before it are: each channel of a block is coded in
four passes (zig-zag positions 0-5, 6-14, 15-27, 28-63), a later pass in the context of the
earlier ones' magnitudes. Those tables have 17 times the rows, so they are stored as
`Table.from_codes` reads them: each row's probabilities in eighths of a bit, one sign's (the
two are equally likely).
"""

from __future__ import annotations

from functools import cached_property

import numpy as np

from .blocks import BLOCK, ZIGZAG, to_coefficients, to_pixels
from .entropy import CATEGORICAL, UNIFORM
from .parallel import run_all

LIMIT = 15  # symbols code q in -LIMIT..LIMIT; the two end symbols mean "this far or further"
SYMBOLS = 2 * LIMIT + 1
DEADZONE = 0.15  # the encoder rounds |c| / step - DEADZONE: small coefficients become zero
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
_TAIL_WEIGHTS = 2.0 ** (TAIL_BITS - np.arange(TAIL_BITS))  # P(k extra bits) halves with k
_ZIGZAG_POSITION = np.argsort(ZIGZAG)  # of each coefficient in raster order
CODE_UNIT = 8  # a table code k means -log2 p = k / CODE_UNIT
# round(2**20 * 2**(-j / 8)), j = 0..7, written out so that no machine's pow() decides a weight
_MANTISSAS = np.array([1048576, 961548, 881744, 808563, 741455, 679917, 623487, 571740], dtype=np.int64)


MAX_CLASSES = (64 * LIMIT).bit_length() + 1  # a block channel's magnitudes sum to 960 at most


def _bit_lengths(n: int) -> np.ndarray:
    return np.array([k.bit_length() for k in range(n)], dtype=np.int64)


class Layout:
    """Which table row codes each coefficient. Rows run over channel, band group, neighbours'
    context (`contexts`), then, in a layout with modes > 1, the block's mode, and, in a layout
    with splits (zig-zag positions), the class of the block's own magnitudes in the passes
    before a coefficient's (`own_classes`: `classes` of them). Each channel of a block is coded
    in passes: zig-zag positions up to the first split, then up to the next, and so on. Splits
    fall between band groups, so each group's rows belong to one pass."""

    def __init__(self, modes: int = 1, splits: tuple[int, ...] = (), classes: int = 1, dc_signs: bool = False):
        splits = tuple(splits)
        whole = all(isinstance(x, int) and not isinstance(x, bool) for x in (modes, classes, *splits))
        if not whole or not 1 <= modes <= 3 or not 1 <= classes <= MAX_CLASSES or not isinstance(dc_signs, bool):
            raise ValueError(f"a layout needs 1 to 3 modes, 1 to {MAX_CLASSES} classes and dc_signs true or "
                             f"false, got {modes!r}, {classes!r} and {dc_signs!r}")
        self.modes, self.splits, self.classes, self.dc_signs = modes, splits, classes, dc_signs
        edges = [0, *self.splits, 64]
        self.passes = [np.flatnonzero((_ZIGZAG_POSITION >= a) & (_ZIGZAG_POSITION < b)) for a, b in zip(edges, edges[1:])]
        if len(self.passes) == 1:
            self.passes = [slice(None)]  # one pass: views, not copies
        self.earlier = [_ZIGZAG_POSITION < a for a in edges[:-1]]  # (64,) what each pass's class sums
        group_edges = {z for z in range(1, 64) if BAND_GROUP[ZIGZAG[z]] != BAND_GROUP[ZIGZAG[z - 1]]}
        if sorted(set(edges)) != edges or not set(self.splits) <= group_edges:
            raise ValueError(f"splits {self.splits} must rise and fall between band groups")
        later = _ZIGZAG_POSITION >= edges[1] if self.splits else np.zeros(64, bool)  # rows with a class
        group_classes = np.array([classes if later[BAND_GROUP == g].any() else 1 for g in range(GROUPS)])
        rows_per_group = np.tile(CONTEXTS * modes * group_classes, 3)
        first = np.concatenate([[0], np.cumsum(rows_per_group)[:-1]]).reshape(3, GROUPS)
        self.first_row = first[:, BAND_GROUP]  # (3, 64)
        self.stride = group_classes[BAND_GROUP]  # (64,)
        self.rows = int(rows_per_group.sum())
        # each row's row in the neighbours-only layout (channel, band group, context)
        self.parent = np.repeat(np.arange(3 * GROUPS * CONTEXTS), np.repeat(rows_per_group // CONTEXTS, CONTEXTS))
        self._classes_of_sums = np.minimum(_bit_lengths(64 * LIMIT + 1), classes - 1)
        self.dc_rows = np.repeat(np.arange(3 * GROUPS) % GROUPS == BAND_GROUP[0], rows_per_group)  # (rows,)

    def spec(self) -> dict:
        spec = {"modes": self.modes, "splits": list(self.splits), "classes": self.classes}
        return {**spec, "dc_signs": True} if self.dc_signs else spec

    def own_classes(self, magnitudes: np.ndarray, k: int) -> np.ndarray:
        """(...) class of pass k of blocks' channels from their magnitudes (..., 64)."""
        return self.class_of((magnitudes * self.earlier[k]).sum(-1))

    def class_of(self, sums: np.ndarray) -> np.ndarray:
        """The class of a pass from the sum of the magnitudes before it in its block's channel:
        the sum's bit length, at most classes - 1."""
        return self._classes_of_sums[sums]

    def own_rows(self, magnitudes: np.ndarray) -> np.ndarray:
        """(..., 64) what each coefficient's own class adds to its row, from its block's
        magnitudes (..., 64)."""
        out = np.zeros(magnitudes.shape, np.int64)
        for k, positions in enumerate(self.passes[1:], 1):
            out[..., positions] = self.own_classes(magnitudes, k)[..., None]
        return out

    def table_rows(self, channel, context: np.ndarray, modes, own) -> np.ndarray:
        """Rows (n, 64) of coefficients of one channel (or (n, 3, 64) of all three, channel
        slice(None)) from their contexts, their blocks' modes (n, 1) or None and what their
        own classes add (`own_rows`, or 0)."""
        mode = 0 if modes is None or self.modes == 1 else modes
        return self.first_row[channel] + (context * self.modes + mode) * self.stride + own


NEIGHBOURS = Layout()  # rvq-dct-v9 and before
MODES_PASSES = Layout(modes=3, splits=(6, 15, 28), classes=9)  # rvq-dct-v10 to v13
MODES_PASSES_SIGNS = Layout(modes=3, splits=(6, 15, 28), classes=9, dc_signs=True)  # rvq-dct-v14


class Table:
    """One quality's probabilities: integer weights (rows, SYMBOLS), all >= 1, and the layout
    that picks a coefficient's row."""

    def __init__(self, weights: np.ndarray, layout: Layout = NEIGHBOURS):
        if weights.shape != (layout.rows, SYMBOLS):
            raise ValueError(f"a table of {weights.shape} does not fit its layout's {layout.rows} rows")
        self.weights, self.layout = weights, layout

    @classmethod
    def from_codes(cls, codes: np.ndarray, layout: Layout) -> Table:
        """From codes (rows, LIMIT + 1) uint8: -log2 p of the levels 0..LIMIT (each sign's) in
        eighths of a bit. Weight 2**(20 - k / 8), in integers (`_MANTISSAS`), at least 1."""
        k = codes.astype(np.int64)
        w = np.maximum(_MANTISSAS[k % CODE_UNIT] >> (k // CODE_UNIT), 1).astype(np.int32)
        return cls(np.concatenate([w[:, :0:-1], w], axis=1), layout)

    @cached_property
    def float_weights(self) -> np.ndarray:
        """The weights in float64 (what constriction takes; exact: integers below 2^53)."""
        return self.weights.astype(np.float64)

    @cached_property
    def float_sums(self) -> np.ndarray:
        return self.float_weights.sum(-1)

    @cached_property
    def bits(self) -> np.ndarray:
        """(rows, SYMBOLS) float32: what each level costs in each row, in bits (static; the sign
        of a level counts one bit, also where `DcSigns` codes it)."""
        return -np.log2(self.float_weights / self.float_sums[:, None]).astype(np.float32)

    @cached_property
    def coding_weights(self) -> np.ndarray:
        """The float64 weights the levels are coded with: `float_weights`, except, in a layout
        with DC signs, the DC rows folded onto magnitudes (level m > 0 weighs w(m) + w(-m) at
        symbol LIMIT + m, and the negative symbols, never coded, weigh 1): `DcSigns` codes the
        signs."""
        if not self.layout.dc_signs:
            return self.float_weights
        weights = self.float_weights.copy()
        dc = weights[self.layout.dc_rows]
        dc[:, LIMIT + 1:] += dc[:, LIMIT - 1::-1]
        dc[:, :LIMIT] = 1
        weights[self.layout.dc_rows] = dc
        return weights

    @cached_property
    def coding_sums(self) -> np.ndarray:
        return self.coding_weights.sum(-1)


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
                table: Table, lam: float, modes: np.ndarray | None = None, chunk: int = 16,
                map=map, weights: np.ndarray | None = None) -> np.ndarray:
    """Levels with each nonzero magnitude lowered by one where that lowers D + lam step^2 R,
    R being the bits under the static `table` in the rows of the first quantisation (an
    estimate: lowering a level changes its neighbours' rows, and adaptive tables drift from
    the static one). `weights` (64,) scale each coefficient's squared error (`tilted_weights`).
    Encoder only: any levels decode. Chunks of block rows are independent (they read the first
    quantisation's rows), so they run through `map` (a thread pool's)."""
    bits = table.bits
    magnitudes = padded_magnitudes(levels)
    out = levels.copy()
    price = np.float32(lam * step * step)

    def lower_where_it_pays(r0: int) -> None:  # block rows r0..r0 + chunk: small temporaries
        block_rows = out[r0:r0 + chunk]  # a view: q below too, written in place
        rows, cols = (a.ravel() for a in np.indices(block_rows.shape[:2]))
        q = block_rows.reshape(-1, 3, 64)
        nonzero = np.nonzero(q)  # only nonzero levels can be lowered
        table_rows = all_rows(table.layout, magnitudes, rows + r0, cols, modes)[nonzero]
        q_nonzero = q[nonzero]
        lower = q_nonzero - np.sign(q_nonzero)
        rate = (bits[table_rows, np.clip(q_nonzero, -LIMIT, LIMIT) + LIMIT]
                - bits[table_rows, np.clip(lower, -LIMIT, LIMIT) + LIMIT])
        c = coefficients[r0:r0 + chunk].reshape(-1, 3, 64)[nonzero]
        added = np.square(c - dequantise(lower, step, offset)) - np.square(c - dequantise(q_nonzero, step, offset))
        if weights is not None:
            added *= weights[nonzero[-1]]
        q[nonzero] = np.where(added < price * rate, lower, q_nonzero)

    run_all(map, lower_where_it_pays, range(0, len(levels), chunk))
    return out


def tilted_weights(tilt: float) -> np.ndarray:
    """(64,) weights of the squared error of a block's coefficients (raster order): (1 + tilt)
    at the DC falling geometrically to 1 / (1 + tilt) at the highest frequency. Errors at high
    frequencies barely move MS-SSIM, whose coarser scales never see them."""
    u, v = np.divmod(np.arange(BLOCK * BLOCK), BLOCK)
    return ((1 + tilt) ** (1 - (u + v) / (BLOCK - 1))).astype(np.float32)


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
    return with_cross(spatial_contexts(magnitudes, rows, cols), magnitudes[rows + 1, cols + 1])


def with_cross(spatial: np.ndarray, own: np.ndarray) -> np.ndarray:
    """`spatial_contexts` (n, 3, 64) completed, in place, by the CROSS factor of blocks whose own
    magnitudes are `own` (n, 3, 64)."""
    spatial[:, 1] += np.minimum(own[:, 0], CROSS - 1)
    spatial[:, 2] += np.minimum(own[:, 0] + own[:, 1], CROSS - 1)
    return spatial


def rows_of(layout: Layout, spatial: np.ndarray, own: np.ndarray, modes: np.ndarray | None) -> np.ndarray:
    """Table rows (n, 3, 64) of blocks whose magnitudes `own` (n, 3, 64) are known, from their
    `spatial_contexts` (completed in place) and their modes (n,) or None."""
    own_rows = layout.own_rows(own) if layout.splits else 0
    mode = None if modes is None else modes.astype(np.int64)[:, None, None]
    return layout.table_rows(slice(None), with_cross(spatial, own), mode, own_rows)


def all_rows(layout: Layout, magnitudes: np.ndarray, rows: np.ndarray, cols: np.ndarray,
             modes: np.ndarray | None) -> np.ndarray:
    """Table rows (n, 3, 64) of every coefficient of blocks (rows, cols), whose levels are all
    known (`magnitudes` as `contexts` reads them; modes (bh, bw) or None)."""
    return rows_of(layout, spatial_contexts(magnitudes, rows, cols), magnitudes[rows + 1, cols + 1],
                   None if modes is None else modes[rows, cols])


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
    """The weights each coefficient is coded with: its row of the static table, sharpened, in
    an adaptive model, by the levels coded so far in that row: p(s) proportional to n(s) +
    ADAPT_PRIOR p_static(s), with n(s) the row's counts. In integers, n(s) T + ADAPT_PRIOR w(s)
    (w the static weights, T their row sum): below 2^47, so float64 holds them exactly and
    encoder and decoder use identical weights."""

    def __init__(self, table: Table, adaptive: bool):
        self.adaptive = adaptive
        self.total = table.coding_sums
        # kept up to date in place, with their row sums (summing rows costs more)
        self.weights = table.coding_weights * ADAPT_PRIOR if adaptive else table.coding_weights
        self.row_sums = self.total * ADAPT_PRIOR if adaptive else self.total

    def rows(self, rows: np.ndarray) -> np.ndarray:
        """The weights (n, SYMBOLS) of table rows (n,)."""
        return np.take(self.weights, rows, axis=0)

    def update(self, rows: np.ndarray, symbols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Count coded symbols in their table rows (adaptive models only). Returns the weights
        they were coded with and their rows' sums. The coder counts a diagonal's symbols once
        all are coded: the decoder's calls for it (one per channel and pass) read disjoint
        rows, so counting after each call would give the same weights."""
        cells = rows * SYMBOLS + symbols
        coded = self.weights.reshape(-1)[cells], self.row_sums[rows]
        if self.adaptive:
            added = self.total[rows]
            np.add.at(self.weights.reshape(-1), cells, added)  # 1-d: numpy's fast path
            np.add.at(self.row_sums, rows, added)
        return coded


class DcSigns:
    """The signs of the nonzero DC levels, in a layout with DC signs: coded after each
    anti-diagonal's levels, one binary symbol each, with counts per channel and context (the
    signs of the left and upper blocks' DC levels, summed: 5 contexts) that adapt as the image
    is coded (integers: encoder and decoder compute the same weights). The VQ base's errors in
    a block's mean colour persist over regions, so its neighbours' residual DC signs predict a
    block's. Measured on 32 training photos (the shipped encoder's levels at qualities 2, 3, 5
    and 8): 54% of those sign bits saved at quality 3 against one bit each, and files at
    qualities 2, 3, 5 and 8 0.94%, 1.44%, 0.35% and 0.62% smaller than with the signs in the
    level's symbol, whose adaptive rows already learn some of a sign's bias. The encoder's
    estimates (`bits`) still count a sign as one bit: counting 0.6 or 0.35 moved the BD-rate by
    +0.01% / +0.02% on 16 training photos."""

    def __init__(self):
        self.counts = np.ones((3, 5, 2))  # +2 per sign: the Krichevsky-Trofimov estimate

    @staticmethod
    def _nonzero(levels: np.ndarray, rows: np.ndarray, cols: np.ndarray):
        """(DC levels (n, 3), block, channel, context) of blocks (rows, cols) and their nonzero
        DC levels, with those of every earlier anti-diagonal already in `levels` (bh, bw, 3, 64)."""
        left = np.where((cols > 0)[:, None], np.sign(levels[rows, cols - 1, :, 0]), 0)
        up = np.where((rows > 0)[:, None], np.sign(levels[rows - 1, cols, :, 0]), 0)
        dc = levels[rows, cols, :, 0]
        block, channel = np.nonzero(dc)
        return dc, block, channel, (left + up + 2)[block, channel]

    def encode(self, encoder, levels: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> float:
        dc, block, channel, context = self._nonzero(levels, rows, cols)
        if not len(block):
            return 0.0
        positive = (dc[block, channel] > 0).astype(np.int32)
        weights = self.counts[channel, context]
        encoder.encode(positive, CATEGORICAL, weights)
        np.add.at(self.counts, (channel, context, positive), 2)
        return float(-np.log2(weights[np.arange(len(positive)), positive] / weights.sum(1)).sum())

    def decode(self, decoder, levels: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> None:
        """Negate, in `levels`, the DC levels of blocks (rows, cols) whose sign is negative;
        those levels hold their magnitudes."""
        dc, block, channel, context = self._nonzero(levels, rows, cols)
        if not len(block):
            return
        positive = decoder.categorical(self.counts[channel, context])
        np.add.at(self.counts, (channel, context, positive), 2)
        dc[block, channel] *= 2 * positive - 1
        levels[rows, cols, :, 0] = dc


def encode(encoder, levels: np.ndarray, table: Table, modes: np.ndarray | None = None, bar=None,
           adaptive: bool = False) -> float:
    """Append levels (bh, bw, 3, 64) to a constriction queue encoder, with one quality's
    `table` and the blocks' modes (bh, bw; what the layout reads, if it reads them). Returns
    the coded cross-entropy in bits."""
    bh, bw = levels.shape[:2]
    symbols = (np.clip(levels, -LIMIT, LIMIT) + LIMIT).astype(np.int32)
    magnitudes = padded_magnitudes(levels)
    signs = DcSigns() if table.layout.dc_signs else None
    if signs is not None:
        symbols[..., 0] = magnitudes[1:, 1:, :, 0] + LIMIT
    model = Probabilities(table, adaptive)
    chosen, sums = [], []  # each coded symbol's weight and its row's sum, for the cross-entropy
    sign_bits = 0.0
    slots = [channel * 64 + np.arange(64)[positions] for channel in range(3) for positions in table.layout.passes]
    for rows, cols in diagonals(bh, bw):
        # the decoder's order: channel by channel, pass by pass, block by block. Its calls read
        # weights that no call of the same diagonal has changed, so one call codes them all.
        order = np.concatenate([(np.arange(len(rows))[:, None] * 192 + slot).ravel() for slot in slots])
        flat = symbols[rows, cols].reshape(-1)[order]
        flat_rows = all_rows(table.layout, magnitudes, rows, cols, modes).reshape(-1)[order]
        encoder.encode(flat, CATEGORICAL, model.rows(flat_rows))
        weights, row_sums = model.update(flat_rows, flat)
        chosen.append(weights)
        sums.append(row_sums)
        if signs is not None:
            sign_bits += signs.encode(encoder, levels, rows, cols)
        if bar is not None:
            bar.update(3 * len(rows))
    bits = float(np.log2(np.concatenate(sums)).sum() - np.log2(np.concatenate(chosen)).sum()) + sign_bits
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


def decode(decoder, table: Table, bh: int, bw: int, modes: np.ndarray | None = None, bar=None,
           adaptive: bool = False) -> np.ndarray:
    """Inverse of encode: levels (bh, bw, 3, 64) from a `vqpress.codec.entropy.PayloadDecoder`."""
    layout = table.layout
    levels = np.zeros((bh, bw, 3, 64), dtype=np.int32)
    magnitudes = np.zeros((bh + 1, bw + 1, 3, 64), dtype=np.int32)
    model = Probabilities(table, adaptive)
    signs = DcSigns() if layout.dc_signs else None
    for rows, cols in diagonals(bh, bw):
        spatial = spatial_contexts(magnitudes, rows, cols)
        mode = None if modes is None else modes[rows, cols].astype(np.int64)[:, None]
        decoded = np.empty((len(rows), 3, 64), dtype=np.int32)
        used, counted = [], []
        earlier = 0  # the magnitudes of the block's channels decoded so far, summed
        for channel in range(3):
            context = spatial[:, channel] + np.minimum(earlier, CROSS - 1)
            without_own = layout.table_rows(channel, context, mode, 0)
            before = 0  # the magnitudes of the passes decoded so far, summed per block
            for k, positions in enumerate(layout.passes):  # a later pass reads the earlier ones' magnitudes
                table_rows = without_own[:, positions]
                if k:
                    table_rows = table_rows + layout.class_of(before)[:, None]
                table_rows = table_rows.reshape(-1)
                symbols = decoder.categorical_on_account(model.rows(table_rows))
                used.append(table_rows)
                counted.append(symbols)
                decoded[:, channel, positions] = symbols.reshape(len(rows), -1)
                if layout.splits:
                    before = before + np.abs(decoded[:, channel, positions] - LIMIT).sum(1)
            if channel < 2:
                earlier = earlier + np.abs(decoded[:, channel] - LIMIT)
        decoder.charge(*model.update(np.concatenate(used), np.concatenate(counted)))
        decoded -= LIMIT
        levels[rows, cols] = decoded
        magnitudes[rows + 1, cols + 1] = np.abs(decoded)
        if signs is not None:
            signs.decode(decoder, levels, rows, cols)
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
def count(levels: np.ndarray, counts: np.ndarray, layout: Layout = NEIGHBOURS,
          modes: np.ndarray | None = None) -> None:
    """Add the (table row, symbol) counts of levels (bh, bw, 3, 64) to `counts` (rows,
    SYMBOLS): the statistics the tables are fitted to."""
    bh, bw = levels.shape[:2]
    rows, cols = (a.ravel() for a in np.indices((bh, bw)))
    table_rows = all_rows(layout, padded_magnitudes(levels), rows, cols, modes)
    cells = table_rows * SYMBOLS + np.clip(levels[rows, cols], -LIMIT, LIMIT) + LIMIT
    counts += np.bincount(cells.ravel(), minlength=counts.size).reshape(counts.shape)


def table_from_counts(counts: np.ndarray, prior_weight: float = 16.0) -> np.ndarray:
    """Integer weights (each >= 1) from counts (3, GROUPS, CONTEXTS, SYMBOLS): each context's
    frequencies, shrunk towards its band group's pooled frequencies so that rare contexts are
    not overfitted. (The tables of the neighbours-only layout.)"""
    pooled = counts.sum(2, keepdims=True) + 1.0
    pooled /= pooled.sum(-1, keepdims=True)
    p = (counts + prior_weight * pooled) / (counts.sum(-1, keepdims=True) + prior_weight)
    return (1 + np.round(p * 2**20)).astype(np.int32)


def codes_from_counts(counts: np.ndarray, layout: Layout, prior_weight: float = 16.0) -> np.ndarray:
    """Codes (rows, LIMIT + 1) uint8 (`Table.from_codes`) from counts (rows, SYMBOLS): each
    row's frequencies shrunk towards its parent row in the neighbours-only layout (fitted as
    `table_from_counts` fits it), the two signs of a level pooled."""
    parent_counts = np.zeros((3 * GROUPS * CONTEXTS, SYMBOLS))
    np.add.at(parent_counts, layout.parent, counts)
    parent = table_from_counts(parent_counts.reshape(3, GROUPS, CONTEXTS, SYMBOLS)).reshape(-1, SYMBOLS)
    parent = parent / parent.sum(-1, keepdims=True)
    p = (counts + prior_weight * parent[layout.parent]) / (counts.sum(-1, keepdims=True) + prior_weight)
    one_sign = (p[:, LIMIT:] + p[:, LIMIT::-1]) / 2
    one_sign[:, 0] = p[:, LIMIT]
    return np.clip(np.round(-CODE_UNIT * np.log2(one_sign)), 0, 255).astype(np.uint8)
