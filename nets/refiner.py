"""The restoration refiner: a small CNN that corrects the restoration's estimate, seeing what the
estimate was made from (the observation, the known-pixel mask) and what the damage was.

Like the codec's reconstruction filter it works at half resolution (pixel unshuffle of its 7
input planes: estimate, observation, mask) and predicts a correction added to the estimate;
the damage enters as a bias of the first layer, a linear function of `CONDITIONS` numbers
(`vqpress.restore.refine.condition`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

CONDITIONS = 7
PLANES = 7  # estimate (3), observation (3), known-pixel mask (1)


@dataclass(frozen=True)
class RefinerConfig:
    channels: int = 64
    layers: int = 8  # 3x3 convolutions, ReLU between them
    skip: tuple[str, ...] = ()  # tasks whose estimate it leaves as it is (untrained, or too little gain)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, config: dict) -> RefinerConfig:
        """From `to_dict`'s output, after JSON (which turns `skip` into a list)."""
        return cls(**{**config, "skip": tuple(config.get("skip", ()))})


class Refiner(nn.Module):
    def __init__(self, config: RefinerConfig = RefinerConfig()):
        super().__init__()
        self.config = c = config
        widths = [4 * PLANES] + [c.channels] * (c.layers - 1) + [12]
        self.convs = nn.ModuleList(nn.Conv2d(a, b, 3, padding=1) for a, b in zip(widths, widths[1:]))
        self.condition = nn.Linear(CONDITIONS, c.channels, bias=False)
        for conv in self.convs[:-1]:  # He init: torch's default shrinks the signal layer by layer,
            nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")  # and 8 layers of it stalled training
            nn.init.zeros_(conv.bias)
        nn.init.zeros_(self.convs[-1].weight)  # starts as the identity: no correction
        nn.init.zeros_(self.convs[-1].bias)

    def forward(self, estimate: torch.Tensor, observed: torch.Tensor, known: torch.Tensor,
                condition: torch.Tensor) -> torch.Tensor:
        """estimate, observed (B, 3, H, W) and known (B, 1, H, W) in [0, 1], H and W even;
        condition (B, CONDITIONS). Returns the corrected estimate."""
        h = F.pixel_unshuffle(torch.cat([estimate, observed, known], 1), 2)
        h = F.relu(self.convs[0](h) + self.condition(condition)[:, :, None, None])
        for conv in self.convs[1:-1]:
            h = F.relu(conv(h))
        return estimate + F.pixel_shuffle(self.convs[-1](h), 2)
