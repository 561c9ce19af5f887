"""The GDN analysis and synthesis transforms that the codec's VQ-VAE and the restoration VAE share."""

from __future__ import annotations

from torch import nn

from .layers import GDN, ResidualBlock, conv, deconv


def analysis_transform(channels: int, out: int, inputs: int = 3) -> nn.Sequential:
    """Image (`inputs` planes: RGB, and any extra ones) -> `out` channels at 1/8 resolution
    (`vqpress.codec.blocks.DOWNSCALE`: three stride-2 layers)."""
    n = channels
    return nn.Sequential(
        conv(inputs, n), GDN(n), conv(n, n), GDN(n), conv(n, n), GDN(n),
        ResidualBlock(n), conv(n, out, kernel_size=3, stride=1),
    )


def synthesis_transform(latent: int, channels: int) -> nn.Sequential:
    """`latent` channels at 1/8 resolution -> image (3 channels)."""
    n = channels
    return nn.Sequential(
        conv(latent, n, kernel_size=3, stride=1), ResidualBlock(n), GDN(n, inverse=True),
        deconv(n, n), GDN(n, inverse=True), deconv(n, n), GDN(n, inverse=True), deconv(n, 3),
    )
