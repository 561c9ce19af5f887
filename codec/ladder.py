"""The quality ladder: what each quality level of a codec model codes; and the default model.

Read from a codec file's metadata alone, without numpy or a network, so that the command line
can check a quality before it loads anything heavy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .errors import VQPressError

DEFAULT_MODEL = "rvq-dct-v16"


@dataclass(frozen=True)
class Rung:
    """One quality level: how many VQ stages, the detail layer's step (None: no detail) and
    the reconstruction offset of its levels (`detail.dequantise`; 0 in the first models)."""
    stages: int
    step: float | None = None
    offset: float = 0.0

    def spec(self) -> str:
        """As `train detail --ladder` writes it: "2" or "2+60" or "2+60@0.15"."""
        text = f"{self.stages}" + (f"+{self.step:g}" if self.step is not None else "")
        return text + (f"@{self.offset:g}" if self.offset else "")

    @classmethod
    def parse(cls, text: str) -> Rung:
        stages, _, rest = text.partition("+")
        step, _, offset = rest.partition("@")
        return cls(int(stages), float(step) if step else None, float(offset) if offset else 0.0)


def ladder_from_metadata(meta: dict) -> list[Rung]:
    """A codec file's quality ladder, from its metadata alone (no network is loaded)."""
    if "ladder" in meta:
        return [Rung(*r) for r in meta["ladder"]]
    # the first codecs: quality k is k stages
    return [Rung(k) for k in range(1, meta.get("vqvae_config", {}).get("num_stages", 0) + 1)]


def check_quality(quality, ladder: list[Rung]) -> int:
    """The quality as an int; a whole float or a numeric string is taken, anything outside
    the ladder or not a whole number is a VQPressError."""
    try:
        number = float(quality) if not isinstance(quality, bool) else math.nan
    except (TypeError, ValueError):
        number = math.nan
    if not number.is_integer() or not 1 <= int(number) <= len(ladder):
        raise VQPressError(f"quality must be an integer from 1 to {len(ladder)}, got {quality!r}")
    return int(number)
