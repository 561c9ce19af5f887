"""A payload: one range-coder stream holding the symbol maps, then (at the qualities that have
one) the detail layer's levels."""

from __future__ import annotations

import numpy as np

from . import detail, modes as block_modes
from .entropy import CorruptStream, PayloadDecoder, decode_symbols, encode_symbols, new_encoder
from .errors import VQPressError
from .model import CodecModel
from .parallel import one_blas_thread


def encode(model: CodecModel, quality: int, indices: np.ndarray, levels: np.ndarray | None,
           bar=None, modes: np.ndarray | None = None) -> tuple[bytes, float]:
    """(payload, the models' cross-entropy in bits) of symbol maps (stages, gh, gw) and, where
    the quality has a detail layer, its blocks' modes (bh, bw; models with block modes) and
    levels (bh, bw, 3, 64)."""
    return encode_later(model, quality, indices, lambda: (levels, modes), bar)


def encode_later(model: CodecModel, quality: int, indices: np.ndarray, detail_layer, bar=None) -> tuple[bytes, float]:
    """As `encode`, with the detail layer's (levels, modes) from detail_layer(), called once the
    symbol maps are coded (where the quality has a detail layer): the caller can compute them
    while the symbols are being coded."""
    with one_blas_thread():
        encoder = new_encoder()
        bits = encode_symbols(model.prior, indices, encoder, bar)
        if model.ladder[quality - 1].step is not None:
            levels, modes = detail_layer()
            predictors = model.predictors(quality)
            if predictors:
                bits += block_modes.encode(encoder, modes, predictors)
            else:
                modes = None  # what the decoder has at such a quality
            bits += detail.encode(encoder, levels, model.detail_table(quality), modes, bar, model.adaptive_detail)
    return encoder.get_compressed().astype("<u4").tobytes(), bits


def decode(model: CodecModel, quality: int, payload: bytes, height: int, width: int,
           bar=None, on_symbols=None) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Inverse of encode: (symbol maps, detail levels or None, block modes or None).
    on_symbols(symbol maps) is called as soon as they are decoded, before the detail layer."""
    rung = model.ladder[quality - 1]
    decoder = PayloadDecoder(payload)
    try:
        with one_blas_thread():
            grid = detail.block_grid(height, width)
            indices = decode_symbols(model.prior, decoder, rung.stages, *grid, bar)
            if on_symbols is not None:
                on_symbols(indices)
            levels = modes = None
            if rung.step is not None:
                predictors = model.predictors(quality)
                modes = block_modes.decode(decoder, *grid, predictors) if predictors else None
                levels = detail.decode(decoder, model.detail_table(quality), *grid, modes, bar, model.adaptive_detail)
    except VQPressError:
        raise
    except (ValueError, RuntimeError, AssertionError) as e:  # how constriction reports a bad stream
        raise CorruptStream(f"corrupted payload ({e})") from None
    return indices, levels, modes
