"""A trained float PixelCNN prior -> the integer tables `vqpress.codec.prior` evaluates.

Weights are scaled by a power of two so the largest is WEIGHT_MAX and rounded; biases and
embeddings are rounded at the activations' scale; the nonlinearities become lookup tables."""

from __future__ import annotations

import math

import numpy as np
import torch

from vqpress.codec.prior import (
    ACT_BITS,
    EXP_BITS,
    EXP_RANGE,
    SIGMOID_RANGE,
    TANH_RANGE,
    WEIGHT_MAX,
    taps,
)
from vqpress.nets.pixelcnn import PixelCNNPrior


def _quantise(w: torch.Tensor) -> tuple[np.ndarray, int]:
    """Integer weights and their power-of-two scale exponent."""
    w = w.detach().double().numpy()
    peak = max(float(np.abs(w).max()), 1e-8)
    shift = math.floor(math.log2(WEIGHT_MAX / peak))
    return np.round(w * 2.0**shift), shift


def export_tables(prior: PixelCNNPrior) -> dict[str, np.ndarray]:
    """Integer tables of a trained float prior (stored as int32 in the weights file)."""
    cfg = prior.config
    tables: dict[str, np.ndarray] = {}
    emb = torch.stack([e.weight for e in prior.embed])  # (S, K+1, e)
    tables["embed"] = np.round(emb.detach().double().numpy() * 2**ACT_BITS)
    convs = [("first", prior.first, 5, "A")] + [
        (f"block{k}", b, 3, "B") for k, b in enumerate(prior.blocks)]
    for name, conv, kernel, mask_type in convs:
        offsets = taps(kernel, mask_type)
        w = torch.stack([conv.weight[:, :, dy + kernel // 2, dx + kernel // 2] for dy, dx in offsets])
        w_int, shift = _quantise(w.permute(0, 2, 1).reshape(-1, w.shape[1]))  # (taps*Cin, Cout)
        tables[f"{name}.weight"] = w_int
        tables[f"{name}.shift"] = np.array([shift])
        tables[f"{name}.bias"] = np.round(conv.bias.detach().double().numpy() * 2.0**(shift + ACT_BITS))
    tables["same_position"] = np.round(prior.same_position.detach().double().numpy() * 2**ACT_BITS)
    head, shift = _quantise(prior.head)
    tables["head.weight"] = head.transpose(0, 2, 1)  # (S, C, K)
    tables["head.shift"] = np.array([shift])
    tables["head.bias"] = np.round(prior.head_bias.detach().double().numpy() * 2.0**(shift + ACT_BITS))
    scale = 2.0**ACT_BITS
    tables["lut.tanh"] = np.round(np.tanh(np.arange(-TANH_RANGE, TANH_RANGE + 1) / scale) * scale)
    tables["lut.sigmoid"] = np.round(
        scale / (1 + np.exp(-np.arange(-SIGMOID_RANGE, SIGMOID_RANGE + 1) / scale)))
    tables["lut.exp"] = np.maximum(1, np.round(np.exp(-np.arange(EXP_RANGE + 1) / scale) * 2**EXP_BITS))
    tables["config"] = np.array([cfg.num_codes, cfg.num_stages, cfg.embed_dim, cfg.channels,
                                 cfg.blocks])
    # C order matters: safetensors stores the raw buffer, and astype keeps a transpose's layout
    return {k: np.ascontiguousarray(v, dtype=np.int32) for k, v in tables.items()}
