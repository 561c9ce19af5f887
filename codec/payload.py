"""A payload: one range-coder stream holding the symbol maps, then (at the qualities that have
one) the detail layer's levels."""

from __future__ import annotations

import numpy as np

from . import detail
from .entropy import CorruptStream, PayloadDecoder, decode_symbols, encode_symbols, new_encoder
from .errors import VQPressError
from .model import CodecModel


def encode(model: CodecModel, quality: int, indices: np.ndarray, levels: np.ndarray | None,
           bar=None) -> tuple[bytes, float]:
    """(payload, the models' cross-entropy in bits) of symbol maps (stages, gh, gw) and, where
    the quality has a detail layer, its levels (bh, bw, 3, 64)."""
    encoder = new_encoder()
    bits = encode_symbols(model.prior, indices, encoder, bar)
    if model.ladder[quality - 1].step is not None:
        bits += detail.encode(encoder, levels, model.detail_table(quality), bar, model.adaptive_detail)
    return encoder.get_compressed().astype("<u4").tobytes(), bits


def decode(model: CodecModel, quality: int, payload: bytes, height: int, width: int,
           bar=None) -> tuple[np.ndarray, np.ndarray | None]:
    """Inverse of encode: (symbol maps, detail levels or None)."""
    rung = model.ladder[quality - 1]
    decoder = PayloadDecoder(payload)
    try:
        indices = decode_symbols(model.prior, decoder, rung.stages, *detail.block_grid(height, width), bar)
        levels = None if rung.step is None else detail.decode(
            decoder, model.detail_table(quality), *detail.block_grid(height, width), bar, model.adaptive_detail)
    except VQPressError:
        raise
    except (ValueError, RuntimeError, AssertionError) as e:  # how constriction reports a bad stream
        raise CorruptStream(f"corrupted payload ({e})") from None
    return indices, levels
