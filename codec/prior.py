"""The PixelCNN prior in exact integer arithmetic: the probabilities the coder uses.

`vqpress.training.fixedpoint` turns a trained float prior (`vqpress.nets.pixelcnn`) into the
integer tables this module evaluates.

Why this cannot diverge between machines: every weight, activation and table entry is an
integer. Sums of integer products are computed in float64 with every partial sum below 2**53,
so each one is exact whatever order a BLAS library, thread count or GPU adds them in. Rescaling
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

    # -- building blocks -------------------------------------------------------------------
    def _gate(self, pre: np.ndarray) -> np.ndarray:
        a, b = np.split(pre, 2, axis=-1)
        ta = self.tanh[(np.clip(a, -TANH_RANGE, TANH_RANGE) + TANH_RANGE).astype(np.int64)]
        sb = self.sigmoid[(np.clip(b, -SIGMOID_RANGE, SIGMOID_RANGE) + SIGMOID_RANGE).astype(np.int64)]
        return np.floor(ta * sb * 2.0**-ACT_BITS)

    @staticmethod
    def _conv(buffer: np.ndarray, rows: np.ndarray, cols: np.ndarray, layer) -> np.ndarray:
        """Masked convolution at the given positions of a zero-padded (pad 2) buffer."""
        weight, bias, shift, taps = layer
        dy = np.array([t[0] for t in taps]) + 2
        dx = np.array([t[1] for t in taps]) + 2
        patches = buffer[rows[:, None] + dy, cols[:, None] + dx]  # (n, taps, Cin)
        acc = patches.reshape(len(rows), -1) @ weight + bias
        return np.clip(np.floor(acc * 2.0**-shift), -ACT_CLIP, ACT_CLIP)

    def new_state(self, height: int, width: int) -> dict[str, np.ndarray]:
        cfg = self.config
        shape = (height + 2, width + 4)  # two rows above, two columns each side
        return {"input": np.zeros(shape + (cfg.num_stages * cfg.embed_dim,)),
                "hidden": [np.zeros(shape + (cfg.channels,)) for _ in range(len(self.layers))]}

    def trunk(self, state: dict, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Trunk features at the positions (rows, cols); reads only symbols before them."""
        for k in range(len(self.layers)):
            self._layer_at(state, k, rows, cols)
        return state["hidden"][-1][rows + 2, cols + 2]

    def set_symbols(self, state: dict, rows, cols, tokens: np.ndarray) -> None:
        """Record the tokens (n, S) (absent stages = num_codes) of decoded positions."""
        cfg = self.config
        emb = self.embed[np.arange(cfg.num_stages), tokens]  # (n, S, e)
        state["input"][rows + 2, cols + 2] = emb.reshape(len(rows), -1)

    def stage_weights(self, features: np.ndarray, earlier: np.ndarray, stage: int) -> np.ndarray:
        """Integer probability weights (n, K) of `stage` given trunk features and the sum of
        the earlier stages' same-position embeddings."""
        u = np.maximum(features + earlier, 0)
        acc = u @ self.head[stage] + self.head_bias[stage]
        logits = np.floor(acc * 2.0**-self.head_shift)
        gap = np.minimum(logits.max(1, keepdims=True) - logits, EXP_RANGE).astype(np.int64)
        return self.exp[gap]

    # -- whole maps (encoder side) -------------------------------------------------------------
    def all_features(self, tokens: np.ndarray, chunk: int = 4096) -> np.ndarray:
        """Trunk features (H, W, C) of a complete token map (H, W, S), layer by layer."""
        height, width, _ = tokens.shape
        state = self.new_state(height, width)
        rows, cols = (a.ravel() for a in np.indices((height, width)))
        self.set_symbols(state, rows, cols, tokens.reshape(-1, self.config.num_stages))
        for k in range(len(self.layers)):
            for start in range(0, len(rows), chunk):
                self._layer_at(state, k, rows[start:start + chunk], cols[start:start + chunk])
        return state["hidden"][-1][2:, 2:-2]

    def _layer_at(self, state: dict, k: int, rows, cols) -> None:
        x = state["input"] if k == 0 else state["hidden"][k - 1]
        g = self._gate(self._conv(x, rows, cols, self.layers[k]))
        if k > 0:
            g = np.clip(state["hidden"][k - 1][rows + 2, cols + 2] + g, -ACT_CLIP, ACT_CLIP)
        state["hidden"][k][rows + 2, cols + 2] = g


def wavefront(height: int, width: int):
    """Positions (rows, cols) of each decoding step, in order. Steps with no position (maps
    at most WAVEFRONT - 1 wide have them) are skipped."""
    for t in range(width + WAVEFRONT * (height - 1)):
        rows = np.arange(max(0, (t - width + 1 + WAVEFRONT - 1) // WAVEFRONT),
                         min(height - 1, t // WAVEFRONT) + 1)
        if len(rows):
            yield rows, t - WAVEFRONT * rows
