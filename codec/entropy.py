"""Range coding of symbol maps with constriction, driven by the fixed-point prior.

A payload is one constriction queue (range) coder stream: the symbol maps, then, at the
qualities that have one, the detail layer (`codec.detail`).

Symbols are coded in the decoder's order: wavefront step by step, and within a step stage by
stage over the step's positions. The encoder knows every symbol, so it computes the trunk
features of the whole map at once; the decoder computes them step by step. Both get the same
integers (see `codec.fixedpoint`), hence the same probabilities.
"""

from __future__ import annotations

import constriction
import numpy as np

from .errors import VQPressError
from .fixedpoint import FixedPointPrior, wavefront

_MODEL = constriction.stream.model.Categorical(perfect=False)


class CorruptStream(VQPressError):
    """A payload that does not decode."""


def _tokens(indices: np.ndarray, num_stages: int, absent: int) -> np.ndarray:
    q, h, w = indices.shape
    tokens = np.full((h, w, num_stages), absent, dtype=np.int64)
    tokens[..., :q] = indices.transpose(1, 2, 0)
    return tokens


def encode_symbols(prior: FixedPointPrior, indices: np.ndarray, encoder) -> float:
    """Append indices (stages, H, W) to a constriction queue encoder. Returns the prior's
    cross-entropy in bits."""
    cfg = prior.config
    q = indices.shape[0]
    tokens = _tokens(indices, cfg.num_stages, cfg.num_codes)
    feats = prior.all_features(tokens)
    bits = 0.0
    for rows, cols in wavefront(*indices.shape[1:]):
        f = feats[rows, cols]
        earlier = np.zeros_like(f)
        for s in range(q):
            weights = prior.stage_weights(f, earlier, s)
            symbols = tokens[rows, cols, s]
            encoder.encode(symbols.astype(np.int32), _MODEL, weights)
            bits -= np.log2(weights[np.arange(len(rows)), symbols] / weights.sum(1)).sum()
            earlier = earlier + prior.same_position[s][symbols]
    return float(bits)


def new_encoder():
    return constriction.stream.queue.RangeEncoder()


def payload_decoder(payload: bytes):
    """A constriction queue decoder over a payload."""
    if len(payload) % 4:
        raise CorruptStream("payload length is not a whole number of 32-bit words")
    return constriction.stream.queue.RangeDecoder(np.frombuffer(payload, dtype=np.uint32))


def decode_symbols(prior: FixedPointPrior, decoder, stages: int, height: int, width: int) -> np.ndarray:
    """Inverse of encode_symbols: indices (stages, H, W). Constriction raises ValueError,
    RuntimeError or AssertionError on a malformed stream; the caller reports it as CorruptStream."""
    cfg = prior.config
    state = prior.new_state(height, width)
    out = np.zeros((height, width, cfg.num_stages), dtype=np.int64)
    out[..., stages:] = cfg.num_codes
    for rows, cols in wavefront(height, width):
        f = prior.trunk(state, rows, cols)
        earlier = np.zeros_like(f)
        for s in range(stages):
            symbols = decoder.decode(_MODEL, prior.stage_weights(f, earlier, s))
            out[rows, cols, s] = symbols
            earlier = earlier + prior.same_position[s][symbols]
        prior.set_symbols(state, rows, cols, out[rows, cols])
    return out[..., :stages].transpose(2, 0, 1).copy()
