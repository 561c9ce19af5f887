"""PixelCNN prior over the residual-VQ symbol maps (float model, for training).

Symbols c[s, i, j] (stage s, row i, column j) are coded position by position in raster order
and, at each position, stage by stage. The probability of c[s, i, j] depends on

* every present stage at the positions before (i, j): a masked-convolution trunk (type A 5x5
  first, so the centre is never seen, then gated type B 3x3 blocks) turns the stage
  embeddings into features F[i, j];
* the earlier stages c[<s, i, j] at the same position: a per-stage head adds their
  embeddings to F and maps the sum to logits.

At quality q only stages 1..q exist; stages above q are fed as an "absent" token, so one
network serves every quality level. `vqpress.codec.prior` runs the same network in exact integer
arithmetic for coding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vqpress.codec.prior import PriorConfig

from .layers import MaskedConv2d


def gate(x: torch.Tensor) -> torch.Tensor:
    """Gated activation tanh(a) * sigmoid(b) over the two halves of the channels."""
    a, b = x.chunk(2, dim=1)
    return torch.tanh(a) * torch.sigmoid(b)


class PixelCNNPrior(nn.Module):
    def __init__(self, config: PriorConfig = PriorConfig()):
        super().__init__()
        self.config = c = config
        self.embed = nn.ModuleList(nn.Embedding(c.num_codes + 1, c.embed_dim)
                                   for _ in range(c.num_stages))
        self.first = MaskedConv2d(c.num_stages * c.embed_dim, 2 * c.channels, kernel_size=5,
                                  padding=2, mask_type="A")
        self.blocks = nn.ModuleList(MaskedConv2d(c.channels, 2 * c.channels, kernel_size=3,
                                                 padding=1, mask_type="B")
                                    for _ in range(c.blocks))
        # Embeddings of the earlier stages at the current position, one table per stage.
        self.same_position = nn.Parameter(torch.randn(c.num_stages, c.num_codes, c.channels) * 0.02)
        self.head = nn.Parameter(torch.randn(c.num_stages, c.num_codes, c.channels) * 0.05)
        self.head_bias = nn.Parameter(torch.zeros(c.num_stages, c.num_codes))

    def tokens(self, indices: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
        """Indices (B, S, H, W) with the stages above each image's quality set to absent."""
        stage = torch.arange(self.config.num_stages, device=indices.device)[None, :, None, None]
        return torch.where(stage < quality[:, None, None, None], indices, self.config.num_codes)

    def features(self, tokens: torch.Tensor) -> torch.Tensor:
        x = torch.cat([emb(tokens[:, s]) for s, emb in enumerate(self.embed)], dim=-1)
        h = gate(self.first(x.permute(0, 3, 1, 2)))
        for block in self.blocks:
            h = h + gate(block(h))
        return h

    def logits(self, indices: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
        """Logits (B, S, K, H, W) of every symbol given its causal context."""
        feats = self.features(self.tokens(indices, quality))  # (B, C, H, W)
        s = self.config.num_stages
        same = torch.stack([F.embedding(indices[:, t], self.same_position[t]) for t in range(s)], 1)
        earlier = same.cumsum(1) - same  # sum over stages t < s at each position: (B, S, H, W, C)
        u = F.relu(feats.permute(0, 2, 3, 1)[:, None] + earlier)
        return torch.einsum("bshwc,skc->bskhw", u, self.head) + self.head_bias[None, :, :, None, None]

    def bits(self, indices: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
        """Total bits of the present symbols of each image, (B,)."""
        nll = F.cross_entropy(self.logits(indices, quality).transpose(1, 2), indices, reduction="none")
        stage = torch.arange(self.config.num_stages, device=indices.device)[None, :, None, None]
        present = stage < quality[:, None, None, None]
        return (nll * present).flatten(1).sum(1) / torch.log(torch.tensor(2.0))
