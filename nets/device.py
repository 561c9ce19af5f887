"""Where the torch networks run."""

from __future__ import annotations

import torch

from vqpress.codec.errors import VQPressError


def resolve_device(device: str) -> torch.device:
    """"auto" (a CUDA GPU when torch sees one), "cpu" or "cuda"."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise VQPressError("--device cuda asked for, but torch sees no CUDA GPU")
    if device not in ("cpu", "cuda"):
        raise VQPressError(f"unknown device {device!r} (use auto, cpu or cuda)")
    return torch.device(device)


def to_uint8(x: torch.Tensor):
    """(3, H, W) float image in [0, 1] -> (H, W, 3) uint8 numpy array."""
    return x.clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()
