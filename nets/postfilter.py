"""The reconstruction filter: a small CNN that the decoder runs on its output, conditioned on the
quality, to take out what the coarse layers leave (VQ blur, DCT blocking and ringing).

It works at half resolution (pixel unshuffle: 12 channels of 2x2 pixel groups), so five 3x3
convolutions see 22 pixels across, and predicts a correction added to the image. The quality
enters as a learned bias of the first layer, one vector per quality level. It acts on pixels
only, after decoding, so the bitstream does not depend on it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class PostFilterConfig:
    qualities: int = 9
    channels: int = 32
    layers: int = 5  # 3x3 convolutions, ReLU between them

    def to_dict(self) -> dict:
        return asdict(self)


class PostFilter(nn.Module):
    def __init__(self, config: PostFilterConfig = PostFilterConfig()):
        super().__init__()
        self.config = c = config
        widths = [12] + [c.channels] * (c.layers - 1) + [12]
        self.convs = nn.ModuleList(nn.Conv2d(a, b, 3, padding=1) for a, b in zip(widths, widths[1:]))
        self.quality_bias = nn.Parameter(torch.zeros(c.qualities, c.channels))
        nn.init.zeros_(self.convs[-1].weight)  # starts as the identity: no correction
        nn.init.zeros_(self.convs[-1].bias)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """x (B, 3, H, W) in [0, 1], H and W even; bias (B, channels, 1, 1): the rows of
        `quality_bias` of each image's quality (`condition`)."""
        h = F.pixel_unshuffle(x, 2)
        h = F.relu(self.convs[0](h) + bias)
        for conv in self.convs[1:-1]:
            h = F.relu(conv(h))
        return x + F.pixel_shuffle(self.convs[-1](h), 2)

    def condition(self, quality: torch.Tensor) -> torch.Tensor:
        """The first layer's bias (B, channels, 1, 1) for qualities (B,) counted from 1."""
        return self.quality_bias[quality - 1][:, :, None, None]
