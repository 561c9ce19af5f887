"""The PixelCNN prior in exact integer arithmetic: the probabilities the coder uses.

`vqpress.training.fixedpoint` turns a trained float prior (`vqpress.nets.pixelcnn`) into the
integer tables this module evaluates.

Why this cannot diverge between machines: every weight, activation and table entry is an
integer. Sums of integer products are computed in float64 with every partial sum below 2**53
(the first layer's table rows in int32, below 2**31), so each one is exact whatever order a BLAS
library, thread count or GPU adds them in. Rescaling
is a multiplication by a power of two followed by floor (exact); the nonlinearities (tanh,
sigmoid, exp) are integer lookup tables stored in the weights file, never recomputed by a
platform's libm. The coder is handed integer weights, which constriction normalises with its
own deterministic fixed-point code. Encoder and decoder therefore see bit-identical
probabilities on any IEEE-754 machine, with any number of threads.

The decoder evaluates the network incrementally on a wavefront: position (i, j) is decoded at
step j + 3 i, because no symbol depends on one more than two columns to its right in the rows
above (see `WAVEFRONT`), so all positions of one step can be decoded together.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .errors import VQPressError
from .parallel import run_all

ACT_BITS = 8  # activations are integers at scale 2**ACT_BITS
WEIGHT_MAX = 2**12  # largest integer weight magnitude
ACT_CLIP = 16 * 2**ACT_BITS  # activations are clipped to +-16.0 before the next layer
TANH_RANGE = 4 * 2**ACT_BITS
SIGMOID_RANGE = 8 * 2**ACT_BITS
EXP_RANGE = 24 * 2**ACT_BITS  # logits further than 24 nats below the maximum share one floor
EXP_BITS = 24
WAVEFRONT = 3  # decoding step of position (i, j) is j + WAVEFRONT * i


@dataclass(frozen=True)
class PriorConfig:
    """The shape of the PixelCNN prior (`vqpress.nets.pixelcnn` is its float form)."""
    num_codes: int = 256
    num_stages: int = 8
    embed_dim: int = 8
    channels: int = 64
    blocks: int = 2

    def to_dict(self) -> dict:
        return asdict(self)


def taps(kernel: int, mask_type: str) -> list[tuple[int, int]]:
    """(dy, dx) offsets a causal kernel reads, in raster order."""
    r = kernel // 2
    return [(dy, dx) for dy in range(-r, 1) for dx in range(-r, r + 1)
            if dy < 0 or dx < 0 or (dx == 0 and mask_type == "B")]


class FixedPointPrior:
    """Exact integer evaluation of the exported prior on a (quality, H, W) symbol map."""

    def __init__(self, tables: dict[str, np.ndarray]):
        t = {k: np.asarray(v).astype(np.float64) for k, v in tables.items()}
        k, s, e, c, blocks = (int(v) for v in t["config"])
        self.config = PriorConfig(k, s, e, c, blocks)
        self.embed, self.same_position = t["embed"], t["same_position"]
        self.layers = [(t[f"{n}.weight"], t[f"{n}.bias"], int(t[f"{n}.shift"][0]), taps(ks, m))
                       for n, ks, m in [("first", 5, "A")] + [(f"block{i}", 3, "B")
                                                             for i in range(blocks)]]
        self.head, self.head_bias = t["head.weight"], t["head.bias"]
        self.head_shift = int(t["head.shift"][0])
        self.tanh, self.sigmoid, self.exp = t["lut.tanh"], t["lut.sigmoid"], t["lut.exp"]
        if (len(self.tanh), len(self.sigmoid), len(self.exp)) != (2 * TANH_RANGE + 1, 2 * SIGMOID_RANGE + 1, EXP_RANGE + 1):
            raise VQPressError("the prior's lookup tables do not span their ranges")
        self.log2_exp = np.log2(self.exp)
        first = self._first_layer_table()
        # Its rows as int32, gathered by one flat index: a position's sum of up to taps x stages
        # rows stays below 2^31, so int32 sums are exact (and move half the bytes of float64)
        n_stages, n_taps, n_rows, _ = first.shape
        if np.abs(first).max() * n_taps * n_stages >= 2**31:
            raise VQPressError("the prior's first layer is too large for its integer sums")
        self.first_rows = first.reshape(n_stages * n_taps * n_rows, -1).astype(np.int32)
        self.first_row_of = (np.arange(n_stages)[None, :] * n_taps + np.arange(n_taps)[:, None]) * n_rows  # (taps, stages)
        # absent[k] (taps, 2C): what the stages from k on add where they are absent (a map of k stages)
        outside = first[:, :, self.config.num_codes]
        self.absent = np.concatenate([np.cumsum(outside[::-1], axis=0)[::-1], np.zeros_like(outside[:1])])
        # The run-time form of each layer, in three numpy calls instead of ten: floor(acc * 2^-shift)
        # plus the gate's table offsets, as (acc * 2^-shift + bias * 2^-shift + offsets). Scaling
        # integers by powers of two and adding these dyadic numbers is exact in float64, and
        # truncation equals floor wherever the index is >= 0 (the gate clips below 0 to row 0).
        # The clamp to +-ACT_CLIP before the gate is the tables' own clip (ACT_CLIP > both ranges).
        offsets = np.repeat([TANH_RANGE, SIGMOID_RANGE], self.config.channels).astype(np.float64)
        # (weight or None for the first layer, which sums table rows instead, bias, scale) per layer
        self.gate_inputs = [(weight * 2.0**-shift if k else None, bias * 2.0**-shift + offsets, 2.0**-shift)
                            for k, (weight, bias, shift, _) in enumerate(self.layers)]
        self.scaled_tanh = self.tanh * 2.0**-ACT_BITS  # exact: the gate's product then needs no rescale
        self.scaled_head = self.head * 2.0**-self.head_shift
        self.scaled_head_bias = self.head_bias * 2.0**-self.head_shift

    def _first_layer_table(self) -> np.ndarray:
        """(stages, taps, codes + 2, 2C): what each stage's token at each tap adds to the first
        layer's sum (embedding times weights, integers, exact in float64); the last row is the
        zero of a position outside the map."""
        weight, _, _, tp = self.layers[0]
        s, e = self.config.num_stages, self.config.embed_dim
        # per stage one (codes, e) x (e, taps 2C) product: exact in any summation order
        w = weight.reshape(len(tp), s, e, -1).transpose(1, 2, 0, 3).reshape(s, e, -1)
        table = np.matmul(self.embed, w).reshape(s, -1, len(tp), weight.shape[-1]).transpose(0, 2, 1, 3)
        return np.concatenate([table, np.zeros_like(table[:, :, :1])], axis=2)

    # -- building blocks -------------------------------------------------------------------
    def _gate(self, index: np.ndarray) -> np.ndarray:
        """tanh(a) sigmoid(b) from the lookup tables, at table rows `index` (n, 2C) int64 (a's,
        then b's); np.take's clip mode clamps them to the tables' ranges."""
        c = index.shape[-1] // 2
        return np.floor(np.take(self.scaled_tanh, index[:, :c], mode="clip")
                        * np.take(self.sigmoid, index[:, c:], mode="clip"))

    def new_state(self, height: int, width: int, stages: int) -> dict:
        """Buffers for a map of `stages` coded stages (the others are absent): tokens (outside
        the map: codes + 1) and each layer's activations (integers below 2^24: float32 holds
        them exactly), two rows above, two columns each side. Each is a flat (positions,
        channels) array, so that one np.take gathers a layer's taps."""
        cfg = self.config
        stride = width + 4
        positions = (height + 2) * stride
        tokens = np.full((height + 2, stride, cfg.num_stages), cfg.num_codes + 1, dtype=np.int16)
        inside = np.zeros((height + 2, stride), dtype=np.float64)
        inside[2:, 2:-2] = 1
        return {"tokens": tokens.reshape(positions, -1), "inside": inside.reshape(-1), "stages": stages,
                "absent": self.absent[stages], "stride": stride,
                "taps": [np.array([dy * stride + dx for dy, dx in tp]) for _, _, _, tp in self.layers],
                "hidden": [np.zeros((positions, cfg.channels), np.float32) for _ in range(len(self.layers))]}

    @staticmethod
    def _positions(state: dict, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Flat buffer positions of map positions (rows, cols)."""
        return (rows + 2) * state["stride"] + cols + 2

    def trunk(self, state: dict, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Trunk features at the positions (rows, cols); reads only symbols before them."""
        at = self._positions(state, rows, cols)
        for k in range(len(self.layers)):
            self._layer_at(state, k, at)
        return np.take(state["hidden"][-1], at, axis=0)

    def set_symbols(self, state: dict, rows, cols, tokens: np.ndarray) -> None:
        """Record the tokens (n, S) (absent stages = num_codes) of decoded positions."""
        state["tokens"][self._positions(state, rows, cols)] = tokens

    def stage_weights(self, features: np.ndarray, earlier: np.ndarray, stage: int) -> np.ndarray:
        """Integer probability weights (n, K) of `stage` given trunk features and the sum of
        the earlier stages' same-position embeddings."""
        return np.take(self.exp, self._gaps(features, earlier, stage), mode="clip")

    def stage_bits(self, features: np.ndarray, earlier: np.ndarray, stage: int) -> np.ndarray:
        """What each code of `stage` would cost, in bits (n, K): -log2 of its probability under
        `stage_weights` (an encoder's estimate; the coder normalises the weights itself)."""
        gaps = self._gaps(features, earlier, stage)
        return (np.log2(np.take(self.exp, gaps, mode="clip").sum(1, keepdims=True))
                - np.take(self.log2_exp, gaps, mode="clip"))

    def _gaps(self, features, earlier, stage) -> np.ndarray:
        """How far (int64, >= 0) each logit is below its row's largest; the tables clip those
        beyond EXP_RANGE to their last row."""
        u = np.maximum(features + earlier, 0)
        logits = np.floor(u @ self.scaled_head[stage] + self.scaled_head_bias[stage])
        return (logits.max(1, keepdims=True) - logits).astype(np.int64)

    # -- whole maps (encoder side) -------------------------------------------------------------
    def token_map(self, indices: np.ndarray) -> np.ndarray:
        """Tokens (H, W, num_stages) of symbol maps (stages, H, W): the stages not coded are
        absent (num_codes)."""
        q, h, w = indices.shape
        tokens = np.full((h, w, self.config.num_stages), self.config.num_codes, dtype=np.int64)
        tokens[..., :q] = indices.transpose(1, 2, 0)
        return tokens

    def all_features(self, tokens: np.ndarray, chunk: int = 512, map=map) -> np.ndarray:
        """Trunk features (H, W, C) of a complete token map (H, W, S), layer by layer, each
        layer's chunks of positions run through `map` (a thread pool's: numpy releases the GIL
        in the products; the chunks write disjoint rows)."""
        height, width, _ = tokens.shape
        state = self.new_state(height, width, int((tokens < self.config.num_codes).all((0, 1)).sum()))
        rows, cols = (a.ravel() for a in np.indices((height, width)))
        self.set_symbols(state, rows, cols, tokens.reshape(-1, self.config.num_stages))
        at = self._positions(state, rows, cols)
        for k in range(len(self.layers)):  # every chunk of layer k before layer k + 1
            run_all(map, lambda start: self._layer_at(state, k, at[start:start + chunk]), range(0, len(at), chunk))
        return state["hidden"][-1].reshape(height + 2, width + 4, -1)[2:, 2:-2]

    def _first_at(self, state: dict, at: np.ndarray) -> np.ndarray:
        """The first (type A) layer's gate table rows at flat positions `at`: its sums are the
        table rows of the coded stages' tokens, plus the absent stages' constant where a tap is
        inside the map."""
        _, bias, scale = self.gate_inputs[0]
        near = at[:, None] + state["taps"][0]  # (n, taps)
        coded = state["stages"]
        tokens = np.take(state["tokens"], near, axis=0)[:, :, :coded]  # (n, taps, coded)
        rows = (self.first_row_of[:, :coded] + tokens).reshape(len(at), -1)  # (n, taps x coded)
        acc = np.take(self.first_rows, rows, axis=0).sum(1, dtype=np.int32).astype(np.float64)
        acc += np.take(state["inside"], near) @ state["absent"]
        acc *= scale
        acc += bias
        return acc.astype(np.int64)

    def _layer_at(self, state: dict, k: int, at: np.ndarray) -> None:
        hidden = state["hidden"]
        if k == 0:
            hidden[0][at] = self._gate(self._first_at(state, at))
            return
        weight, bias, _ = self.gate_inputs[k]
        patches = np.take(hidden[k - 1], at[:, None] + state["taps"][k], axis=0)  # (n, taps, C)
        g = self._gate((patches.reshape(len(at), -1) @ weight + bias).astype(np.int64))
        hidden[k][at] = clamp(np.take(hidden[k - 1], at, axis=0) + g, -ACT_CLIP, ACT_CLIP)


def clamp(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """np.clip without its Python wrapper, which costs more than the work on the prior's small
    arrays (about 3,000 calls in a 768x512 decode)."""
    return np.minimum(np.maximum(x, lo), hi)


def wavefront(height: int, width: int):
    """Positions (rows, cols) of each decoding step, in order. Steps with no position (maps
    at most WAVEFRONT - 1 wide have them) are skipped."""
    for t in range(width + WAVEFRONT * (height - 1)):
        rows = np.arange(max(0, (t - width + 1 + WAVEFRONT - 1) // WAVEFRONT),
                         min(height - 1, t // WAVEFRONT) + 1)
        if len(rows):
            yield rows, t - WAVEFRONT * rows
