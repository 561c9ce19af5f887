"""Range coding of symbol maps with constriction, driven by the fixed-point prior.

A payload is one constriction queue (range) coder stream: the symbol maps, then, at the
qualities that have one, the detail layer (`vqpress.codec.detail`).

Symbols are coded in the decoder's order: wavefront step by step, and within a step stage by
stage over the step's positions. The encoder knows every symbol, so it computes the trunk
features of the whole map at once; the decoder computes them step by step. Both get the same
integers (see `vqpress.codec.prior`), hence the same probabilities.
"""

from __future__ import annotations

import constriction
import numpy as np

from .errors import VQPressError
from .prior import FixedPointPrior, wavefront

# The two constriction models every stream uses: categorical over integer weights (normalised
# by constriction's own deterministic fixed-point code), and uniform.
CATEGORICAL = constriction.stream.model.Categorical(perfect=False)
UNIFORM = constriction.stream.model.Uniform()


class CorruptStream(VQPressError):
    """A payload that does not decode."""


def encode_symbols(prior: FixedPointPrior, indices: np.ndarray, encoder, bar=None) -> float:
    """Append indices (stages, H, W) to a constriction queue encoder. Returns the prior's
    cross-entropy in bits."""
    q = indices.shape[0]
    tokens = prior.token_map(indices)
    feats = prior.all_features(tokens)
    bits = 0.0
    for rows, cols in wavefront(*indices.shape[1:]):
        f = feats[rows, cols]
        earlier = np.zeros_like(f)
        for s in range(q):
            weights = prior.stage_weights(f, earlier, s)
            symbols = tokens[rows, cols, s]
            encoder.encode(symbols.astype(np.int32), CATEGORICAL, weights)
            bits -= np.log2(weights[np.arange(len(rows)), symbols] / weights.sum(1)).sum()
            earlier = earlier + prior.same_position[s][symbols]
        if bar is not None:
            bar.update(len(rows) * q)
    return float(bits)


def new_encoder():
    return constriction.stream.queue.RangeEncoder()


class PayloadDecoder:
    """A constriction queue decoder that refuses to decode far past the end of its data.

    An encoder's output holds at least the information of its symbols (their -log2 probability
    under the model it coded them with; measured: always a few bits short of the payload), so
    once the decoded symbols hold more than the payload's bits plus a margin, the data has run
    out. A forged header cannot make a few bytes decode into a huge image: the work is bounded by
    the payload, not by the header. Constriction raises ValueError, RuntimeError or
    AssertionError on a malformed stream; `Codec.decode_payload` reports them as CorruptStream.
    """

    def __init__(self, payload: bytes):
        if len(payload) % 4:
            raise CorruptStream("corrupted payload (not a whole number of 32-bit words)")
        self._decoder = constriction.stream.queue.RangeDecoder(np.frombuffer(payload, dtype="<u4"))
        self.budget = 8 * len(payload) * 1.005 + 64

    def _spend(self, bits: float) -> None:
        self.budget -= bits
        if self.budget < 0:
            raise CorruptStream("corrupted payload (its data ends before the image does)")

    def categorical(self, weights: np.ndarray) -> np.ndarray:
        """One symbol per row of integer probability weights (n, K)."""
        symbols = self._decoder.decode(CATEGORICAL, weights)
        self.charge(weights[np.arange(len(symbols)), symbols], weights.sum(1))
        return symbols

    def categorical_on_account(self, weights: np.ndarray) -> np.ndarray:
        """As `categorical`, for a caller that charges the symbols' information itself
        (`charge`) before it decodes far more: it can charge many calls' symbols at once."""
        return self._decoder.decode(CATEGORICAL, weights)

    def charge(self, chosen: np.ndarray, sums: np.ndarray) -> None:
        """Count decoded symbols' information against the payload: their weights and their
        rows' sums."""
        self._spend(float(np.log2(sums).sum() - np.log2(chosen).sum()))

    def uniform(self, sizes: np.ndarray) -> np.ndarray:
        """One symbol in 0..size-1 per entry of sizes (int32)."""
        symbols = self._decoder.decode(UNIFORM, sizes)
        self._spend(float(np.log2(sizes).sum()))
        return symbols


def decode_symbols(prior: FixedPointPrior, decoder: PayloadDecoder, stages: int, height: int,
                   width: int, bar=None) -> np.ndarray:
    """Inverse of encode_symbols: indices (stages, H, W)."""
    cfg = prior.config
    state = prior.new_state(height, width, stages)
    out = np.zeros((stages, height, width), dtype=np.int64)  # pages are touched as rows decode
    tokens = np.full((0, cfg.num_stages), cfg.num_codes, dtype=np.int64)
    for rows, cols in wavefront(height, width):
        f = prior.trunk(state, rows, cols)
        earlier = np.zeros_like(f)
        if len(tokens) != len(rows):
            tokens = np.full((len(rows), cfg.num_stages), cfg.num_codes, dtype=np.int64)
        for s in range(stages):
            symbols = decoder.categorical(prior.stage_weights(f, earlier, s))
            out[s, rows, cols] = tokens[:, s] = symbols
            earlier = earlier + prior.same_position[s][symbols]
        prior.set_symbols(state, rows, cols, tokens)
        if bar is not None:
            bar.update(len(rows) * stages)
    return out
