"""Vector quantisers: one EMA codebook, and a residual stack of them.

A quality level of the codec is the number of residual stages kept: stage s quantises what the
first s-1 stages left over, so every extra stage adds bits and removes distortion, and one decoder
serves every level (it is trained with a random number of stages per image, "quantiser dropout").
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class VectorQuantizer(nn.Module):
    """Nearest-neighbour quantiser of channel vectors with an EMA-updated codebook.

    The codebook term ||sg[z] - e||^2 of the VQ-VAE loss is minimised by exponential moving
    averages of the vectors assigned to each code (the k-means step), not by gradients; the
    commitment term beta * ||z - sg[e]||^2 is returned for the encoder. Codes whose usage falls
    below `dead_threshold` are restarted on random inputs of the current batch.
    """

    def __init__(self, num_codes: int, dim: int, decay: float = 0.99, dead_threshold: float = 0.5):
        super().__init__()
        self.num_codes, self.dim, self.decay, self.dead_threshold = num_codes, dim, decay, dead_threshold
        self.register_buffer("codebook", torch.randn(num_codes, dim) * 0.1)
        self.register_buffer("cluster_size", torch.ones(num_codes))
        self.register_buffer("embed_sum", self.codebook.clone())
        self.register_buffer("initialised", torch.tensor(False))

    def indices(self, z: torch.Tensor) -> torch.Tensor:
        """Nearest code of each row of z (N, dim) -> (N,)."""
        distances = (z.pow(2).sum(1, keepdim=True) - 2 * z @ self.codebook.t()
                     + self.codebook.pow(2).sum(1)[None])
        return distances.argmin(1)

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        return F.embedding(indices, self.codebook)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Quantise rows of z (N, dim). Returns (quantised rows, indices); updates the codebook
        when training."""
        if self.training:
            self._update(z.detach())
        idx = self.indices(z.detach())
        return self.lookup(idx), idx

    @torch.no_grad()
    def _update(self, z: torch.Tensor) -> None:
        if not self.initialised:  # start the codebook on data, not noise
            self.codebook.copy_(z[torch.randint(len(z), (self.num_codes,), device=z.device)])
            self.embed_sum.copy_(self.codebook)
            self.initialised.fill_(True)
        idx = self.indices(z)
        onehot = F.one_hot(idx, self.num_codes).type(z.dtype)
        self.cluster_size.mul_(self.decay).add_(onehot.sum(0), alpha=1 - self.decay)
        self.embed_sum.mul_(self.decay).add_(onehot.t() @ z, alpha=1 - self.decay)
        n = self.cluster_size.sum()
        smoothed = (self.cluster_size + 1e-5) / (n + self.num_codes * 1e-5) * n
        self.codebook.copy_(self.embed_sum / smoothed[:, None])
        dead = self.cluster_size < self.dead_threshold
        if dead.any():
            replacements = z[torch.randint(len(z), (int(dead.sum()),), device=z.device)]
            self.codebook[dead] = replacements
            self.embed_sum[dead] = replacements
            self.cluster_size[dead] = 1.0


class ResidualVQ(nn.Module):
    """A stack of `num_stages` quantisers, each coding the residual of the ones before it."""

    def __init__(self, num_stages: int, num_codes: int, dim: int, beta: float = 0.25):
        super().__init__()
        self.stages = nn.ModuleList(VectorQuantizer(num_codes, dim) for _ in range(num_stages))
        self.beta = beta

    @property
    def num_stages(self) -> int:
        return len(self.stages)

    def forward(self, z: torch.Tensor, keep: torch.Tensor | None = None):
        """Quantise z (B, dim, H, W).

        keep (B,) gives the number of stages used for each image (all when None). Returns
        (z_q with straight-through gradients, indices (B, stages, H, W), commitment loss).
        """
        b, d, h, w = z.shape
        rows = z.permute(0, 2, 3, 1).reshape(-1, d)
        residual, total = rows, torch.zeros_like(rows)
        keep_rows = None if keep is None else keep.repeat_interleave(h * w)
        all_idx, full = [], torch.zeros_like(rows)
        for s, vq in enumerate(self.stages):
            q, idx = vq(residual)
            all_idx.append(idx)
            total = total + (q if keep_rows is None else q * (keep_rows > s)[:, None])
            full = full + q
            residual = residual - q.detach()
        # Commit to the full-depth quantisation only: committing to each stage would pull z
        # onto the first stage's 256 points and leave the later stages nothing to code.
        commitment = self.beta * F.mse_loss(rows, full.detach())
        z_q = rows + (total - rows).detach()  # straight-through estimator
        z_q = z_q.reshape(b, h, w, d).permute(0, 3, 1, 2)
        indices = torch.stack(all_idx, 1).reshape(b, h, w, -1).permute(0, 3, 1, 2)
        return z_q, indices, commitment

    @torch.no_grad()
    def encode(self, z: torch.Tensor, stages: int) -> torch.Tensor:
        """Indices (B, stages, H, W) of the first `stages` stages."""
        b, d, h, w = z.shape
        residual = z.permute(0, 2, 3, 1).reshape(-1, d)
        out = []
        for vq in self.stages[:stages]:
            idx = vq.indices(residual)
            residual = residual - vq.lookup(idx)
            out.append(idx)
        return torch.stack(out, 1).reshape(b, h, w, stages).permute(0, 3, 1, 2)

    def decode(self, indices: torch.Tensor) -> torch.Tensor:
        """Sum of the codes of indices (B, stages, H, W) -> (B, dim, H, W)."""
        total = sum(vq.lookup(indices[:, s]) for s, vq in enumerate(self.stages[: indices.shape[1]]))
        return total.permute(0, 3, 1, 2)
