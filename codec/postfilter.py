"""The reconstruction filter at run time: the last thing the decoder does, on pixels only
(`vqpress.nets.postfilter` says what it is; a codec file that has one holds its weights)."""

from __future__ import annotations

import numpy as np

from . import strength
from .transforms import GRAPH_INPUT, advance

BIAS_INPUT = "bias"
TILE_PIXELS = 1024  # pixels per tile side, even
INT8_PREFIX = "int8_q"  # the filter's tensors that hold a quality's 8-bit graph (ONNX bytes, uint8)


def postfilter_graph(config: dict) -> str:
    return f"postfilter-c{config['channels']}-l{config['layers']}.onnx"


def float_weights(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The filter's own weights among its tensors (without the 8-bit graphs)."""
    return {k: v for k, v in state.items() if not k.startswith(INT8_PREFIX)}


def int8_graphs(state: dict[str, np.ndarray]) -> dict[int, np.ndarray]:
    """quality -> the 8-bit graph (`vqpress.training.quantise`) a codec file holds for it."""
    return {int(k[len(INT8_PREFIX):]): v for k, v in state.items() if k.startswith(INT8_PREFIX)}


class OnnxPostFilter:
    def __init__(self, config: dict, state: dict[str, np.ndarray], threads: int = 0):
        self.bias = state["quality_bias"].astype(np.float32)
        self.skipped = set(config.get("skip", []))  # qualities where validation showed no gain
        self.graph, self.threads = postfilter_graph(config), threads
        self.halo = 2 * config["layers"] + 2  # context on each side of a tile: more than the filter's reach
        self.strength_tile = config.get("strength_tile")  # tiles whose correction is scaled (`codec.strength`)
        self.int8 = int8_graphs(state)
        self.tensors = {k: v for k, v in float_weights(state).items() if k != "quality_bias"}
        self.sessions = {}  # made on first use: an encoder at a quality without the filter never needs one

    def session(self, quality: int):
        """The session that filters a quality: the quality's 8-bit graph (its bias folded into
        the first convolution) where the file holds one, else the float graph."""
        key = quality if quality in self.int8 else 0
        if key not in self.sessions:
            from .transforms import OnnxSession

            self.sessions[key] = (OnnxSession(self.int8[quality].tobytes(), {}, "", self.threads) if key
                                  else OnnxSession(self.graph, self.tensors, "", self.threads))
        return self.sessions[key]

    def prepare(self, quality: int):
        """The quality's session, built now if not yet (the decoder's worker thread does this early)."""
        return self.session(quality)

    def applies(self, quality: int) -> bool:
        return quality not in self.skipped

    def correction(self, image: np.ndarray, quality: int) -> np.ndarray:
        """(H, W, 3) float32: what the filter adds to an (H, W, 3) uint8 image, in pixel units."""
        out = np.empty(image.shape, np.float32)
        for rows, cols, y in self._tiles(image, quality):
            out[rows, cols] = np.multiply(y, np.float32(255), order="C") - image[rows, cols]
        return out

    def __call__(self, image: np.ndarray, quality: int, bar=None, strengths: np.ndarray | None = None) -> np.ndarray:
        """(H, W, 3) uint8 -> the filtered image; its correction scaled per tile by the
        `codec.strength` choices `strengths` (tiles down, across), if given."""
        out = np.empty_like(image)
        for rows, cols, y in self._tiles(image, quality):
            y = np.multiply(y, np.float32(255), order="C")  # pixel-interleaved, as the image
            if strengths is not None:
                x = image[rows, cols]
                y -= x
                y *= strength.per_pixel(strengths, self.strength_tile, rows, cols)
                y += x
            out[rows, cols] = np.clip(np.round(y, out=y), 0, 255, out=y)
            advance(bar, (rows.stop - rows.start) * (cols.stop - cols.start) // 64)
        return out

    def _tiles(self, image: np.ndarray, quality: int):
        """(rows, cols, the filter's output there in (h, w, 3) float32, 0..1) of each tile of an
        (H, W, 3) uint8 image, filtered with overlap."""
        h, w = image.shape[:2]
        padded = np.pad(image, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        inputs = {} if quality in self.int8 else {BIAS_INPUT: self.bias[quality - 1][None, :, None, None]}
        session = self.session(quality)
        for y0 in range(0, h, TILE_PIXELS):
            for x0 in range(0, w, TILE_PIXELS):
                y1, x1 = min(y0 + TILE_PIXELS, padded.shape[0]), min(x0 + TILE_PIXELS, padded.shape[1])
                ya, xa = max(0, y0 - self.halo), max(0, x0 - self.halo)
                yb, xb = min(padded.shape[0], y1 + self.halo), min(padded.shape[1], x1 + self.halo)
                tile = padded[ya:yb, xa:xb].transpose(2, 0, 1)[None].astype(np.float32) / np.float32(255)
                y = session.run(**{GRAPH_INPUT: tile}, **inputs)[0]
                rows, cols = slice(y0, min(y1, h)), slice(x0, min(x1, w))
                yield rows, cols, y[:, rows.start - ya:rows.stop - ya, cols.start - xa:cols.stop - xa].transpose(1, 2, 0)
