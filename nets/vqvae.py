"""The VQ-VAE: the GDN analysis and synthesis transforms around a residual VQ."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from .quantizer import ResidualVQ
from .transforms import analysis_transform, synthesis_transform


@dataclass(frozen=True)
class VQVAEConfig:
    channels: int = 128
    latent_dim: int = 32
    num_codes: int = 256
    num_stages: int = 8
    beta: float = 0.25

    def to_dict(self) -> dict:
        return asdict(self)


class VQVAE(nn.Module):
    def __init__(self, config: VQVAEConfig = VQVAEConfig()):
        super().__init__()
        self.config = config
        self.encoder = analysis_transform(config.channels, config.latent_dim)
        self.decoder = synthesis_transform(config.latent_dim, config.channels)
        self.rvq = ResidualVQ(config.num_stages, config.num_codes, config.latent_dim, config.beta)

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None = None):
        """x in [0, 1], sides divisible by 8. Returns (reconstruction, indices, commitment)."""
        z_q, indices, commitment = self.rvq(self.encoder(x), keep)
        return self.decoder(z_q), indices, commitment

    @torch.no_grad()
    def encode(self, x: torch.Tensor, stages: int) -> torch.Tensor:
        return self.rvq.encode(self.encoder(x), stages)

    @torch.no_grad()
    def decode(self, indices: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.rvq.decode(indices))
