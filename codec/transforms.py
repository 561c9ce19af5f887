"""The VQ-VAE's transforms at run time: image -> latent -> nearest codes, and symbol maps ->
image, tiled with overlap so memory stays bounded on big photos.

Two backends: ONNX Runtime (`OnnxTransforms`, the default: no torch import, so a command starts
in a fraction of a second) and torch (`TorchTransforms`, for `--device cuda`). The symbols are
whatever this machine's float arithmetic picks: the encoder writes them down, so decoding never
depends on it. The decoder's pixels may differ by a rounding step between machines and backends
(the detail layer's contexts never read them).
"""

from __future__ import annotations

import hashlib
from functools import cached_property

import numpy as np

from vqpress import weights

from .blocks import DOWNSCALE

GRAPH_INPUT, GRAPH_OUTPUT = "x", "y"

TILE_SYMBOLS = 96  # symbols per tile side (768 px). ONNX Runtime's arena keeps the largest
# tile's activations for the session's life: the synthesis adds 0.32 GB at this size, 0.51 GB at
# 1024 px; a 4000x3000 decode peaks at 1.25 GB, and at 1.55 GB with 1024-px tiles for 3% less time
HALO_SYMBOLS = 8  # symbols of overlap on each side of a tile, cropped away after the transform


def tiles(gh: int, gw: int):
    """Tiles of a gh x gw symbol grid: (core, halo) pairs of (y0, y1, x0, x1) boxes, the halo
    box being the core grown by HALO_SYMBOLS on each side (clipped to the grid)."""
    tile = TILE_SYMBOLS
    for y0 in range(0, gh, tile):
        for x0 in range(0, gw, tile):
            y1, x1 = min(y0 + tile, gh), min(x0 + tile, gw)
            yield (y0, y1, x0, x1), (max(0, y0 - HALO_SYMBOLS), min(gh, y1 + HALO_SYMBOLS),
                                     max(0, x0 - HALO_SYMBOLS), min(gw, x1 + HALO_SYMBOLS))


def grid(height: int, width: int) -> tuple[int, int]:
    """The symbol map's size for an image."""
    return -(-height // DOWNSCALE), -(-width // DOWNSCALE)


def graph_id(config: dict) -> str:
    """The name of a VQ-VAE architecture's ONNX graphs (`vqpress.training.graphs`)."""
    return f"gdn-c{config['channels']}-l{config['latent_dim']}"


def int8_analysis_graph(vqvae_state: dict[str, np.ndarray]) -> str:
    """The file name of the 8-bit analysis graph (`vqpress.training.quantise`) of a VQ-VAE's
    analysis weights, named by their sha256: a graph runs only with the weights it was made
    from, and models that share their analysis (rvq-dct-v9 and v11) share one graph."""
    digest = hashlib.sha256()
    for name in sorted(k for k in vqvae_state if k.startswith("encoder.")):
        tensor = np.ascontiguousarray(vqvae_state[name])
        digest.update(f"{name} {tensor.dtype.str} {tensor.shape}\n".encode())
        digest.update(tensor.tobytes())
    return f"analysis-{digest.hexdigest()[:8]}.int8.onnx"


class Transforms:
    """What both backends share: the tiling, and the residual VQ in numpy."""

    int8_analysis: str | None = None  # the 8-bit analysis graph's file name, where one runs

    def __init__(self, config: dict, state: dict[str, np.ndarray]):
        stages = range(config["num_stages"])
        self.codebooks = np.stack([state[f"rvq.stages.{s}.codebook"].astype(np.float32) for s in stages])
        self.code_norms = np.square(self.codebooks).sum(-1)

    def analysis(self, x: np.ndarray) -> np.ndarray:
        """(1, 3, h, w) float32 in [0, 1] -> (1, latent, h/8, w/8) float32."""
        raise NotImplementedError

    def synthesis(self, z: np.ndarray) -> np.ndarray:
        """(1, latent, h, w) float32 -> (1, 3, 8h, 8w) float32 (not clamped)."""
        raise NotImplementedError

    def prepare_synthesis(self):
        """Make what synthesis needs before its first run, if anything, and return it."""
        return None

    def quantise(self, z: np.ndarray, stages: int, chunk: int = 4096) -> np.ndarray:
        """Residual VQ of a latent (latent, h, w): nearest code per stage -> (stages, h, w)."""
        d, h, w = z.shape
        residual = np.ascontiguousarray(z.reshape(d, -1).T)
        out = np.empty((stages, h * w), dtype=np.int64)
        for i in range(0, h * w, chunk):  # positions at a time: the distances stay small
            part = residual[i:i + chunk]
            for s in range(stages):
                distances = self.code_norms[s][None] - 2 * part @ self.codebooks[s].T
                out[s, i:i + chunk] = distances.argmin(1)
                part -= self.codebooks[s][out[s, i:i + chunk]]
        return out.reshape(stages, h, w)

    def latent(self, indices: np.ndarray) -> np.ndarray:
        """Sum of the stages' codes: (stages, h, w) -> (latent, h, w)."""
        z = sum(self.codebooks[s][indices[s]] for s in range(len(indices)))
        return np.ascontiguousarray(z.transpose(2, 0, 1))

    def latents(self, rgb: np.ndarray, bar=None) -> np.ndarray:
        """The latent (latent, ceil(H/8), ceil(W/8)) float32 of an (H, W, 3) uint8 image."""
        h, w = rgb.shape[:2]
        gh, gw = grid(h, w)
        padded = np.pad(rgb, ((0, gh * DOWNSCALE - h), (0, gw * DOWNSCALE - w), (0, 0)), mode="edge")
        out = np.empty((self.codebooks.shape[-1], gh, gw), dtype=np.float32)
        s = DOWNSCALE
        for (y0, y1, x0, x1), (ya, yb, xa, xb) in tiles(gh, gw):
            tile = padded[ya * s:yb * s, xa * s:xb * s].transpose(2, 0, 1)[None]
            z = self.analysis(np.ascontiguousarray(tile, dtype=np.float32) / np.float32(255))[0]
            out[:, y0:y1, x0:x1] = z[:, y0 - ya:y1 - ya, x0 - xa:x1 - xa]
            advance(bar, (y1 - y0) * (x1 - x0))
        return out

    def pixels(self, indices: np.ndarray, height: int, width: int, bar=None) -> np.ndarray:
        """(H, W, 3) uint8 image of symbol maps (stages, gh, gw)."""
        _, gh, gw = indices.shape
        s = DOWNSCALE
        out = np.empty((gh * s, gw * s, 3), dtype=np.uint8)
        for (y0, y1, x0, x1), (ya, yb, xa, xb) in tiles(gh, gw):
            y = self.synthesis(self.latent(indices[:, ya:yb, xa:xb])[None])[0]
            y = y[:, (y0 - ya) * s:(y1 - ya) * s, (x0 - xa) * s:(x1 - xa) * s].transpose(1, 2, 0)
            out[y0 * s:y1 * s, x0 * s:x1 * s] = np.clip(np.round(y * 255), 0, 255)
            advance(bar, (y1 - y0) * (x1 - x0))
        return out[:height, :width]


class OnnxTransforms(Transforms):
    """The transforms on ONNX Runtime's CPU provider: the architecture's graphs (shipped in
    weights/, checksummed like the models) fed the model's own weights; or, for the analysis,
    a model's own 8-bit graph (`int8_analysis`: its file name), which holds its weights."""

    def __init__(self, config: dict, state: dict[str, np.ndarray], threads: int = 0,
                 int8_analysis: str | None = None):
        super().__init__(config, state)
        self.config, self.state, self.threads, self.int8_analysis = config, state, threads, int8_analysis

    @cached_property
    def analysis_session(self) -> OnnxSession:  # made on first use: a decoder never needs it
        if self.int8_analysis is not None:
            return OnnxSession(self.int8_analysis, {}, "", self.threads)
        return OnnxSession(f"{graph_id(self.config)}.analysis.onnx", self.state, "encoder.", self.threads)

    @cached_property
    def synthesis_session(self) -> OnnxSession:
        return OnnxSession(f"{graph_id(self.config)}.synthesis.onnx", self.state, "decoder.", self.threads)

    def prepare_synthesis(self):
        return self.synthesis_session

    def analysis(self, x: np.ndarray) -> np.ndarray:
        return self.analysis_session.run(**{GRAPH_INPUT: x})

    def synthesis(self, z: np.ndarray) -> np.ndarray:
        return self.synthesis_session.run(**{GRAPH_INPUT: z})


class OnnxSession:
    """An ONNX Runtime session of a shipped graph (its file name) whose weights are the tensors
    of `state` under `prefix` (held here: the session reads them without copying), or, with an
    empty `state`, in the graph itself; or of a graph a codec file holds (its bytes)."""

    def __init__(self, graph: str | bytes, state: dict[str, np.ndarray], prefix: str, threads: int):
        import onnxruntime as ort

        model = graph if isinstance(graph, bytes) else weights.verified_file(graph)[0].read_bytes()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.log_severity_level = 3
        # idle workers sleep instead of spinning: the prior's numpy work runs between the runs
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        names = [k[len(prefix):] for k in state if k.startswith(prefix)]
        self.values = [ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(state[prefix + n], dtype=np.float32))
                       for n in names]
        if names:
            options.add_external_initializers(names, self.values)
        self.session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])

    def run(self, **inputs: np.ndarray) -> np.ndarray:
        return self.session.run(None, inputs)[0]


class TorchTransforms(Transforms):
    """The transforms on torch (a CUDA GPU, or the CPU), from a codec file's VQ-VAE tensors."""

    def __init__(self, config: dict, state: dict[str, np.ndarray], device: str = "auto"):
        import torch

        from vqpress.nets.device import resolve_device
        from vqpress.nets.vqvae import VQVAE, VQVAEConfig

        super().__init__(config, state)
        self.torch = torch
        self.device = resolve_device(device)
        self.vqvae = VQVAE(VQVAEConfig(**config))
        self.vqvae.load_state_dict({k: torch.from_numpy(v.astype(np.float32) if v.dtype == np.float16 else v)
                                    for k, v in state.items()})
        self.vqvae.eval().to(self.device)

    def _run(self, module, x: np.ndarray) -> np.ndarray:
        with self.torch.no_grad():
            return module(self.torch.from_numpy(x).to(self.device)).cpu().numpy()

    def analysis(self, x: np.ndarray) -> np.ndarray:
        return self._run(self.vqvae.encoder, x)

    def synthesis(self, z: np.ndarray) -> np.ndarray:
        return self._run(self.vqvae.decoder, z)


def advance(bar, n: int) -> None:
    """Move a progress bar (or nothing) on by n."""
    if bar is not None:
        bar.update(n)
