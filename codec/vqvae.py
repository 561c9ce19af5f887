"""The VQ-VAE: a GDN analysis/synthesis transform (compressai layers) around a residual VQ."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from compressai.layers import GDN, ResidualBlock
from compressai.models.utils import conv, deconv
from torch import nn

from .quantizer import ResidualVQ

DOWNSCALE = 8  # pixels per symbol along each side


@dataclass(frozen=True)
class VQVAEConfig:
    channels: int = 128
    latent_dim: int = 32
    num_codes: int = 256
    num_stages: int = 8
    beta: float = 0.25

    def to_dict(self) -> dict:
        return asdict(self)


def analysis_transform(channels: int, out: int, inputs: int = 3) -> nn.Sequential:
    """Image (`inputs` planes: RGB, and any extra ones) -> `out` channels at 1/DOWNSCALE resolution."""
    n = channels
    return nn.Sequential(
        conv(inputs, n), GDN(n), conv(n, n), GDN(n), conv(n, n), GDN(n),
        ResidualBlock(n, n), conv(n, out, kernel_size=3, stride=1),
    )


def synthesis_transform(latent: int, channels: int) -> nn.Sequential:
    """`latent` channels at 1/DOWNSCALE resolution -> image (3 channels)."""
    n = channels
    return nn.Sequential(
        conv(latent, n, kernel_size=3, stride=1), ResidualBlock(n, n), GDN(n, inverse=True),
        deconv(n, n), GDN(n, inverse=True), deconv(n, n), GDN(n, inverse=True), deconv(n, 3),
    )


class VQVAE(nn.Module):
    def __init__(self, config: VQVAEConfig = VQVAEConfig()):
        super().__init__()
        self.config = config
        self.encoder = analysis_transform(config.channels, config.latent_dim)
        self.decoder = synthesis_transform(config.latent_dim, config.channels)
        self.rvq = ResidualVQ(config.num_stages, config.num_codes, config.latent_dim, config.beta)

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None = None):
        """x in [0, 1], sides divisible by DOWNSCALE. Returns (reconstruction, indices, commitment)."""
        z_q, indices, commitment = self.rvq(self.encoder(x), keep)
        return self.decoder(z_q), indices, commitment

    @torch.no_grad()
    def encode(self, x: torch.Tensor, stages: int) -> torch.Tensor:
        return self.rvq.encode(self.encoder(x), stages)

    @torch.no_grad()
    def decode(self, indices: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.rvq.decode(indices))
