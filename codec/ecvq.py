"""Entropy-constrained choice of the VQ symbols, at encode time only (any symbols decode).

The nearest code is not always the best buy: a code the prior expects can cost a few bits less
for a little more error, which the detail layer (or nobody, at the lowest qualities) pays
for. Stage by stage, each position takes the code with the least

    squared latent error of the stage's residual + lam * (its bits under the prior),

the bits read from the prior's distribution at that position, in the context of the
nearest-code map (an estimate: the chosen codes change their neighbours' contexts), and of
the codes this pass already chose at the earlier stages of the same position (exact).
"""

from __future__ import annotations

import numpy as np

from .parallel import run_all
from .prior import FixedPointPrior


def choose(z: np.ndarray, nearest: np.ndarray, codebooks: np.ndarray, prior: FixedPointPrior,
           lam: float, chunk: int = 1024, map=map) -> np.ndarray:
    """Symbol maps (stages, h, w) for a latent z (latent, h, w), given its nearest-code maps
    and the codebooks (all stages, codes, latent). Chunks of positions run through `map` (a
    thread pool's: they are independent, and numpy releases the GIL in their products)."""
    stages, h, w = nearest.shape
    features = prior.all_features(prior.token_map(nearest), map=map).reshape(h * w, -1)
    residual = np.ascontiguousarray(z.reshape(len(z), -1).T)
    norms = np.square(codebooks).sum(-1)
    out = np.empty((stages, h * w), dtype=np.int64)

    def choose_chunk(i: int) -> None:  # positions i..i + chunk: the (positions, codes) arrays stay small
        part, f = residual[i:i + chunk], features[i:i + chunk]
        earlier = np.zeros_like(f)
        for s in range(stages):
            error = norms[s][None] - 2 * part @ codebooks[s].T  # + |part|^2, the same for every code
            chosen = (error + lam * prior.stage_bits(f, earlier, s)).argmin(1)
            out[s, i:i + chunk] = chosen
            part -= codebooks[s][chosen]
            earlier = earlier + prior.same_position[s][chosen]

    run_all(map, choose_chunk, range(0, h * w, chunk))
    return out.reshape(stages, h, w)
