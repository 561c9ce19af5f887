"""A payload: one range-coder stream holding the symbol maps, then (at the qualities that have
one) the detail layer's levels."""

from __future__ import annotations

import numpy as np

from . import detail, modes as block_modes, strength
from .blocks import BLOCK
from .entropy import CorruptStream, PayloadDecoder, decode_symbols, encode_symbols, new_encoder
from .errors import VQPressError
from .model import CodecModel
from .parallel import one_blas_thread


def encode(model: CodecModel, quality: int, indices: np.ndarray, levels: np.ndarray | None,
           bar=None, modes: np.ndarray | None = None, strengths=None) -> tuple[bytes, float]:
    """(payload, the models' cross-entropy in bits) of symbol maps (stages, gh, gw) and, where
    the quality has a detail layer, its blocks' modes (bh, bw; models with block modes) and
    levels (bh, bw, 3, 64); where it has filter strengths (`codec.strength`), their choices
    (tiles down, across), or a function of the bits coded before them that returns them
    (`Codec.compress` prices the choices so), or None for strength 1 everywhere."""
    return encode_later(model, quality, indices, lambda: (levels, modes, strengths), bar)


def encode_later(model: CodecModel, quality: int, indices: np.ndarray, later, bar=None) -> tuple[bytes, float]:
    """As `encode`, with (levels, modes, strengths) from later(), called once the symbol maps
    are coded (where the quality has a detail layer or filter strengths): the caller can
    compute them while the symbols are being coded."""
    tile = model.strength_tile(quality)
    with one_blas_thread():
        encoder = new_encoder()
        bits = encode_symbols(model.prior, indices, encoder, bar)
        if model.ladder[quality - 1].step is None and tile is None:
            return encoder.get_compressed().astype("<u4").tobytes(), bits
        levels, modes, strengths = later()
        if model.ladder[quality - 1].step is not None:
            predictors = model.predictors(quality)
            if predictors:
                bits += block_modes.encode(encoder, modes, predictors)
            else:
                modes = None  # what the decoder has at such a quality
            bits += detail.encode(encoder, levels, model.detail_table(quality), modes, bar, model.adaptive_detail)
        if tile is not None:
            if strengths is None:
                strengths = np.full(strength.grid(*indices.shape[1:], tile // BLOCK), strength.NEUTRAL)
            elif callable(strengths):
                strengths = strengths(bits)
            bits += strength.encode(encoder, strengths)
    return encoder.get_compressed().astype("<u4").tobytes(), bits


def decode(model: CodecModel, quality: int, payload: bytes, height: int, width: int,
           bar=None, on_symbols=None) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """Inverse of encode: (symbol maps, detail levels or None, block modes or None, filter
    strength choices or None). on_symbols(symbol maps) is called as soon as they are decoded,
    before the detail layer."""
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
            tile = model.strength_tile(quality)
            strengths = None if tile is None else strength.decode(decoder, *strength.grid(height, width, tile))
    except VQPressError:
        raise
    except (ValueError, RuntimeError, AssertionError) as e:  # how constriction reports a bad stream
        raise CorruptStream(f"corrupted payload ({e})") from None
    return indices, levels, modes, strengths
