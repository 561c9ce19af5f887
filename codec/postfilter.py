"""The reconstruction filter at run time: the last thing the decoder does, on pixels only
(`vqpress.nets.postfilter` says what it is; a codec file that has one holds its weights)."""

from __future__ import annotations

from functools import cached_property

import numpy as np

from .transforms import GRAPH_INPUT, advance

BIAS_INPUT = "bias"
TILE_PIXELS = 1024  # pixels per tile side, even


def postfilter_graph(config: dict) -> str:
    return f"postfilter-c{config['channels']}-l{config['layers']}.onnx"


class OnnxPostFilter:
    def __init__(self, config: dict, state: dict[str, np.ndarray], threads: int = 0):
        self.bias = state["quality_bias"].astype(np.float32)
        self.skipped = set(config.get("skip", []))  # qualities where validation showed no gain
        self.graph, self.threads = postfilter_graph(config), threads
        self.halo = 2 * config["layers"] + 2  # context on each side of a tile: more than the filter's reach
        self.tensors = {k: v for k, v in state.items() if k != "quality_bias"}

    @cached_property
    def session(self):  # made on first use: an encoder never needs it
        from .transforms import OnnxSession

        return OnnxSession(self.graph, self.tensors, "", self.threads)

    def prepare(self):
        """The session, built now if not yet (the decoder's worker thread does this early)."""
        return self.session

    def applies(self, quality: int) -> bool:
        return quality not in self.skipped

    def __call__(self, image: np.ndarray, quality: int, bar=None) -> np.ndarray:
        """(H, W, 3) uint8 -> the filtered image, tile by tile with overlap."""
        h, w = image.shape[:2]
        padded = np.pad(image, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        bias = self.bias[quality - 1][None, :, None, None]
        out = np.empty_like(padded)
        for y0 in range(0, padded.shape[0], TILE_PIXELS):
            for x0 in range(0, padded.shape[1], TILE_PIXELS):
                y1, x1 = min(y0 + TILE_PIXELS, padded.shape[0]), min(x0 + TILE_PIXELS, padded.shape[1])
                ya, xa = max(0, y0 - self.halo), max(0, x0 - self.halo)
                yb, xb = min(padded.shape[0], y1 + self.halo), min(padded.shape[1], x1 + self.halo)
                tile = padded[ya:yb, xa:xb].transpose(2, 0, 1)[None].astype(np.float32) / np.float32(255)
                y = self.session.run(**{GRAPH_INPUT: tile, BIAS_INPUT: bias})[0]
                y = y[:, y0 - ya:y1 - ya, x0 - xa:x1 - xa].transpose(1, 2, 0)
                out[y0:y1, x0:x1] = np.clip(np.round(y * 255), 0, 255)
                advance(bar, (y1 - y0) * (x1 - x0) // 64)
        return out[:h, :w]
